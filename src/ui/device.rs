//! One device (`/ui/t/{tid}/devices/{did}`): its state and host key, the
//! timeline of its versions (component badges, summaries, +/− counts),
//! the choice of two versions to compare, **Back up now** for operators
//! (the API's `backup_now`: same checks, bus request, audit) and **Reset
//! host key** for admins, each a form post answered with a redirect that
//! carries the outcome.

use std::collections::HashMap;
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::{Deserialize, Serialize};
use tracing_actix_web::RequestId;

use super::fleet::{encode, status};
use super::page::{self, Chrome, UiError, render, see_other};
use super::time::Stamp;
use crate::api::error::ApiError;
use crate::api::path::DevicePath;
use crate::api::trigger::backup_now;
use crate::api::{AppState, Role};
use crate::store::history::ChangeSummary;

/// Versions per timeline page.
const PAGE: u32 = 20;

/// One version in the timeline.
pub struct Version {
    id: i64,
    previous: Option<i64>,
    at: Stamp,
    trigger: String,
    added: Option<i64>,
    removed: Option<i64>,
    changes: Vec<ChangeSummary>,
    /// Differs from its predecessor only in status comments.
    status_only: bool,
    routeros: String,
}

#[derive(Template)]
#[template(path = "device.html")]
struct DevicePage {
    chrome: Chrome,
    tenant: String,
    id: String,
    name: String,
    host: String,
    port: i32,
    status: &'static str,
    status_text: String,
    fingerprint: Option<String>,
    last_attempt: Option<Stamp>,
    last_success: Option<Stamp>,
    next_attempt: Option<Stamp>,
    failures: i32,
    versions: Vec<Version>,
    older: Option<String>,
    newest_page: bool,
    can_backup: bool,
    can_reset: bool,
    outcome: Option<Outcome>,
}

/// The result of a form post, shown on the page it redirected to.
pub struct Outcome {
    /// `ok` or `error` (the message's style).
    kind: &'static str,
    /// What happened.
    text: String,
    /// A version to open, when one was made.
    version: Option<i64>,
}

/// The device page's query string: a timeline page and a post's outcome.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct DeviceQuery {
    /// Versions older than this id.
    #[serde(skip_serializing_if = "Option::is_none")]
    before: Option<i64>,
    /// What a backup did: `new`, `unchanged`, `collected`, `busy`,
    /// `rate_limited`, `failed`, `timeout`, `unavailable`; `reset` after a
    /// host-key reset.
    #[serde(skip_serializing_if = "Option::is_none")]
    done: Option<String>,
    /// The new version.
    #[serde(skip_serializing_if = "Option::is_none")]
    sid: Option<i64>,
    /// Seconds to wait (rate limit).
    #[serde(skip_serializing_if = "Option::is_none")]
    wait: Option<u64>,
    /// The device's error kind.
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<String>,
}

/// `GET /ui/t/{tid}/devices/{did}`.
pub async fn device(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    query: web::Query<DeviceQuery>,
) -> Result<HttpResponse, UiError> {
    let caller = page::signed_in(&req).await?;
    let (tenant, did) = (page::tenant_id(&path.0)?, page::device_id(&path.1)?);
    caller.require(&tenant, Role::Viewer)?;
    let d = state
        .store
        .get_device(tenant.as_str(), did.as_str())
        .await?;
    let mut metas = state
        .store
        .list_snapshots(tenant.as_str(), did.as_str(), PAGE + 1, query.before)
        .await?;
    let more = metas.len() > PAGE as usize;
    metas.truncate(PAGE as usize);
    let ids: Vec<i64> = metas.iter().map(|m| m.id).collect();
    let mut changes: HashMap<i64, Vec<ChangeSummary>> = HashMap::new();
    for c in state.store.changes_of(tenant.as_str(), &ids).await? {
        changes.entry(c.snapshot_id).or_default().push(c);
    }
    let now = chrono::Utc::now();
    let versions: Vec<Version> = metas
        .into_iter()
        .map(|m| Version {
            changes: changes.remove(&m.id).unwrap_or_default(),
            id: m.id,
            previous: m.previous_snapshot_id,
            at: Stamp::new(m.collected_at, now),
            trigger: m.trigger.as_str().to_owned(),
            added: m.lines_added,
            removed: m.lines_removed,
            status_only: m.status_only,
            routeros: m.routeros_version.unwrap_or_default(),
        })
        .collect();
    let older = more
        .then(|| {
            versions
                .last()
                .map(|v| format!("?before={}#timeline", v.id))
        })
        .flatten();
    let (status, status_text) = status(&d);
    let page = DevicePage {
        chrome: Chrome::new(&req, &state, Some(&caller), Some(&tenant), d.name.clone())
            .section("fleet"),
        tenant: tenant.to_string(),
        id: d.device_id.clone(),
        name: d.name.clone(),
        host: d.host.clone(),
        port: d.port,
        status,
        status_text,
        fingerprint: d.host_key_fingerprint.clone(),
        last_attempt: Stamp::of(d.last_attempt_at),
        last_success: Stamp::of(d.last_success_at),
        next_attempt: Stamp::of(d.next_attempt_at),
        failures: d.consecutive_failures,
        versions,
        older,
        newest_page: query.before.is_none(),
        can_backup: caller.require(&tenant, Role::Operator).is_ok(),
        can_reset: caller.require(&tenant, Role::Admin).is_ok(),
        outcome: outcome(&query),
    };
    render(&page)
}

/// The message for a post's outcome in the query string.
fn outcome(q: &DeviceQuery) -> Option<Outcome> {
    let ok = |text: String, version| Outcome {
        kind: "ok",
        text,
        version,
    };
    let error = |text: String| Outcome {
        kind: "error",
        text,
        version: None,
    };
    Some(match q.done.as_deref()? {
        "new" => ok("Backed up: a new version was stored.".into(), q.sid),
        "unchanged" => ok("Backed up: the configuration is unchanged.".into(), None),
        "collected" => ok(
            "Backed up; the new version is being stored. Reload in a moment.".into(),
            None,
        ),
        "reset" => ok(
            "The host key was forgotten; the next backup pins the key it sees.".into(),
            None,
        ),
        "busy" => {
            error("A backup of this device is already running (409). Try again shortly.".into())
        }
        "rate_limited" => error(format!(
            "Too many backups requested (429). Wait {} s and try again.",
            q.wait.unwrap_or(1)
        )),
        "failed" => error(format!(
            "The device backup failed (502): {}.",
            q.kind.as_deref().unwrap_or("internal")
        )),
        "timeout" => error("No answer from a poller in time (504).".into()),
        _ => error(
            "The backup could not be started (503): no poller or lock service available.".into(),
        ),
    })
}

/// A form carrying only the CSRF token (and a confirmation).
#[derive(Deserialize)]
pub struct ActionForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    confirm: String,
}

/// `POST …/backup`: backs the device up now through the bus, then shows
/// the outcome on the device page.
pub async fn backup(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    form: web::Form<ActionForm>,
    request_id: RequestId,
) -> Result<HttpResponse, UiError> {
    let caller = page::signed_in_form(&req, &form.csrf_token).await?;
    let path = DevicePath {
        tid: page::tenant_id(&path.0)?,
        did: page::device_id(&path.1)?,
    };
    caller.require(&path.tid, Role::Operator)?;
    let before = state
        .store
        .newest_snapshot(path.tid.as_str(), path.did.as_str())
        .await?;
    let done = match backup_now(&state, &path, &caller, &request_id).await {
        Ok(reply) => {
            let hash = reply.sha256_hash.unwrap_or_default();
            if before.is_some_and(|b| b.sha256_hash == hash) {
                DeviceQuery {
                    done: Some("unchanged".into()),
                    ..DeviceQuery::default()
                }
            } else {
                match stored_version(&state, &path, &hash).await? {
                    Some(sid) => DeviceQuery {
                        done: Some("new".into()),
                        sid: Some(sid),
                        ..DeviceQuery::default()
                    },
                    None => DeviceQuery {
                        done: Some("collected".into()),
                        ..DeviceQuery::default()
                    },
                }
            }
        }
        Err(e) => failure(e)?,
    };
    Ok(see_other(&format!(
        "/ui/t/{}/devices/{}?{}",
        path.tid,
        path.did,
        encode(&done)
    )))
}

/// Waits briefly for the ingester to store the version with `hash` (it
/// does so right after the backup's event); its id, or `None` if it is not
/// there yet.
async fn stored_version(
    state: &AppState,
    path: &DevicePath,
    hash: &str,
) -> Result<Option<i64>, UiError> {
    for _ in 0..50 {
        let newest = state
            .store
            .newest_snapshot(path.tid.as_str(), path.did.as_str())
            .await?;
        if let Some(n) = newest.filter(|n| n.sha256_hash == hash) {
            return Ok(Some(n.id));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(None)
}

/// The outcome of a refused or failed backup; errors that are about the
/// request itself (not allowed, unknown device) stay error pages.
fn failure(e: ApiError) -> Result<DeviceQuery, UiError> {
    let (done, wait, kind) = match e {
        ApiError::BackupInProgress => ("busy", None, None),
        ApiError::RateLimited { retry_after } => {
            ("rate_limited", Some(whole_seconds(retry_after)), None)
        }
        ApiError::BackupFailed { kind, .. } => ("failed", None, Some(kind.as_str().to_owned())),
        ApiError::InvalidReply(_) => ("failed", None, Some("invalid_reply".to_owned())),
        ApiError::TriggerTimeout(_) => ("timeout", None, None),
        ApiError::NoResponder | ApiError::BusUnavailable(_) => ("unavailable", None, None),
        other => return Err(other.into()),
    };
    Ok(DeviceQuery {
        done: Some(done.into()),
        wait,
        kind,
        ..DeviceQuery::default()
    })
}

/// `wait` rounded up to whole seconds, at least one (as `Retry-After`).
fn whole_seconds(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

/// `POST …/reset-host-key`: an admin forgets the pinned host key, after
/// ticking the confirmation.
pub async fn reset_host_key(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    form: web::Form<ActionForm>,
) -> Result<HttpResponse, UiError> {
    let caller = page::signed_in_form(&req, &form.csrf_token).await?;
    let (tid, did) = (page::tenant_id(&path.0)?, page::device_id(&path.1)?);
    caller.require(&tid, Role::Admin)?;
    if form.confirm != "yes" {
        return Err(UiError::Api(ApiError::BadRequest {
            code: "bad_body",
            detail: "tick the confirmation to reset the host key".into(),
        }));
    }
    state
        .store
        .reset_host_key(tid.as_str(), did.as_str(), &caller.sub)
        .await?;
    state.announce_hostkey_reset(&tid, &did, &caller.sub).await;
    Ok(see_other(&format!("/ui/t/{tid}/devices/{did}?done=reset")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_and_failed_backups_read_with_their_status_and_detail() {
        let q = |done: &str| DeviceQuery {
            done: Some(done.into()),
            wait: Some(7),
            kind: Some("unreachable".into()),
            ..DeviceQuery::default()
        };
        let text = |done| {
            outcome(&q(done))
                .map(|o| (o.kind, o.text))
                .expect("an outcome")
        };
        assert_eq!(text("new").0, "ok");
        assert!(text("busy").1.contains("409"));
        let limited = text("rate_limited").1;
        assert!(
            limited.contains("429") && limited.contains("7 s"),
            "{limited}"
        );
        let failed = text("failed").1;
        assert!(
            failed.contains("502") && failed.contains("unreachable"),
            "{failed}"
        );
        assert!(text("timeout").1.contains("504"));
        assert!(outcome(&DeviceQuery::default()).is_none());
    }

    #[test]
    fn waits_round_up_to_whole_seconds() {
        assert_eq!(whole_seconds(Duration::from_millis(5_001)), 6);
        assert_eq!(whole_seconds(Duration::from_secs(6)), 6);
        assert_eq!(whole_seconds(Duration::ZERO), 1);
    }
}
