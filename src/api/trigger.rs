//! `POST /api/tenants/{tid}/devices/{did}/config-snapshot/trigger`: a manual
//! backup through the bus's request-reply (DESIGN.md §3.1, §4). Order: ids
//! validated, caller authenticated and authorized, then the per-caller rate
//! limit (so anonymous floods never spend a user's quota), then the device
//! looked up; only then is a request sent.

use std::num::NonZeroU32;
use std::sync::Arc;

use actix_web::{HttpResponse, ResponseError as _, web};
use chrono::{DateTime, Utc};
use governor::clock::Clock as _;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::Serialize;
use serde_json::json;
use tracing::Instrument as _;
use tracing_actix_web::RequestId;
use utoipa::ToSchema;

use super::AppState;
use super::auth::{Caller, Role};
use super::error::{ApiError, Problem, TenantRouteErrors};
use super::path::DevicePath;
use crate::backup::{AttemptStatus, ErrorKind};
use crate::bus::{TriggerReply, TriggerRequest};
use crate::store::audit::Action;

/// Per-caller trigger rate limit (GCRA, keyed by the token's `sub`): a burst
/// of `per_minute`, then one every `60 s / per_minute`. Clones share the
/// state.
#[derive(Clone)]
pub struct TriggerLimiter {
    limiter: Arc<DefaultKeyedRateLimiter<String>>,
}

impl std::fmt::Debug for TriggerLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TriggerLimiter")
            .field("keys", &self.limiter.len())
            .finish()
    }
}

impl TriggerLimiter {
    /// `per_minute` triggers per caller and minute (`auth.trigger_rate_per_minute`;
    /// 0, which config validation refuses, counts as 1).
    pub fn new(per_minute: u32) -> Self {
        let quota = Quota::per_minute(NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN));
        Self {
            limiter: Arc::new(RateLimiter::keyed(quota)),
        }
    }

    /// Takes one trigger from `sub`'s quota.
    ///
    /// # Errors
    /// [`ApiError::RateLimited`] with the wait until the next is allowed.
    pub fn check(&self, sub: &str) -> Result<(), ApiError> {
        self.limiter
            .check_key(&sub.to_owned())
            .map_err(|not_until| ApiError::RateLimited {
                retry_after: not_until.wait_time_from(self.limiter.clock().now()),
            })
    }

    /// Forgets callers whose quota is full again, bounding the memory the
    /// limiter holds; the app calls it periodically (e.g. every minute).
    pub fn prune(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    /// Callers currently remembered.
    pub fn len(&self) -> usize {
        self.limiter.len()
    }

    /// Whether no caller is remembered.
    pub fn is_empty(&self) -> bool {
        self.limiter.len() == 0
    }
}

/// `201` body: the backup succeeded (DESIGN.md §4).
#[derive(Debug, Serialize, ToSchema)]
pub struct TriggerResponse {
    /// Always `success`.
    #[schema(example = "success")]
    pub status: &'static str,
    /// The tenant.
    pub tenant_id: String,
    /// The device.
    pub device_id: String,
    /// Lowercase hex SHA-256 of the normalized export.
    pub sha256_hash: String,
    /// When the export was taken (RFC 3339 UTC).
    pub collected_at: Option<DateTime<Utc>>,
    /// RouterOS version, if known.
    pub routeros_version: Option<String>,
    /// Human text, e.g. `Config snapshot collected`.
    pub message: String,
    /// Non-fatal problems, e.g. a partial export.
    pub warnings: Vec<String>,
}

impl TriggerResponse {
    /// Maps a responder's reply: `success` → this body; `locked` and
    /// `failed` → the matching [`ApiError`].
    ///
    /// # Errors
    /// [`ApiError::BackupInProgress`], [`ApiError::BackupFailed`], or
    /// [`ApiError::InvalidReply`] for a success without a hash.
    pub fn from_reply(path: &DevicePath, reply: TriggerReply) -> Result<Self, ApiError> {
        match reply.status {
            AttemptStatus::Success => Ok(TriggerResponse {
                status: "success",
                tenant_id: path.tid.to_string(),
                device_id: path.did.to_string(),
                sha256_hash: reply.sha256_hash.ok_or_else(|| {
                    ApiError::InvalidReply("a success without sha256_hash".into())
                })?,
                collected_at: reply.collected_at,
                routeros_version: reply.routeros_version,
                message: reply
                    .message
                    .unwrap_or_else(|| "Config snapshot collected".into()),
                warnings: reply.warnings,
            }),
            AttemptStatus::Locked => Err(ApiError::BackupInProgress),
            AttemptStatus::Failed => Err(ApiError::BackupFailed {
                kind: reply.error_kind.unwrap_or(ErrorKind::Internal),
                message: reply.error.unwrap_or_else(|| "backup failed".into()),
            }),
        }
    }
}

/// Backs a device up now, through a responder on the bus, and waits for
/// the result (up to `bus.trigger_timeout`). Audited as
/// `config_backup_manual_trigger` with the caller and the outcome, written
/// while the response goes out.
#[utoipa::path(
    post,
    path = "/api/tenants/{tid}/devices/{did}/config-snapshot/trigger",
    tag = "trigger",
    params(DevicePath),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Snapshot collected", body = TriggerResponse),
        TenantRouteErrors,
        (status = 404, description = "Unknown device (`device_not_found`, or `not_found` from the responder)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Backup already in progress (`backup_in_progress`)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Over `auth.trigger_rate_per_minute` (`rate_limited`); see `Retry-After`", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds until the next trigger is allowed"))),
        (status = 502, description = "The device backup failed; `code` is the reply's `error_kind` (e.g. `auth_failed`, `unreachable`), or `invalid_reply`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "No responder (`no_responder`), lock backend down (`lock_unavailable`) or bus down (`bus_unavailable`)", body = Problem, content_type = "application/problem+json"),
        (status = 504, description = "No reply within `bus.trigger_timeout` (`trigger_timeout`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn trigger_backup(
    path: DevicePath,
    caller: Caller,
    request_id: RequestId,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let reply = backup_now(&state, &path, &caller, &request_id).await?;
    let body = TriggerResponse::from_reply(&path, reply)?;
    Ok(HttpResponse::Created().json(body))
}

/// A manual backup of `path`'s device for `caller`, as the API and the web
/// UI both run it: role, rate limit and device checks, the request on the
/// bus, the audit row and the trigger metric. Returns the responder's
/// successful reply (with its hash).
///
/// # Errors
/// Every failure `trigger_backup` documents, as an [`ApiError`]; a
/// `locked` or `failed` reply becomes [`ApiError::BackupInProgress`] or
/// [`ApiError::BackupFailed`].
pub async fn backup_now(
    state: &AppState,
    path: &DevicePath,
    caller: &Caller,
    request_id: &RequestId,
) -> Result<TriggerReply, ApiError> {
    let result: Result<TriggerReply, ApiError> = async {
        caller.require(&path.tid, Role::Operator)?;
        state.limiter.check(&caller.sub)?;
        state.configured_device(&path.tid, &path.did)?;
        let reply = send(state, path, caller, request_id).await;
        audit(state, path, caller, request_id, &reply);
        let reply = reply?;
        TriggerResponse::from_reply(path, reply.clone())?;
        wait_until_listed(state, path, &reply).await;
        Ok(reply)
    }
    .await;
    let status = match &result {
        Ok(_) => actix_web::http::StatusCode::CREATED,
        Err(e) => e.status_code(),
    };
    state.metrics.trigger_response(status.as_u16());
    result
}

/// Waits (at most `state.listed_wait`) until the snapshot of a successful
/// reply is the device's newest, so the history the caller reads next
/// shows it; the answer is the same either way.
async fn wait_until_listed(state: &AppState, path: &DevicePath, reply: &TriggerReply) {
    let (Some(bound), Some(hash)) = (state.listed_wait, reply.sha256_hash.as_deref()) else {
        return;
    };
    let listed = state
        .store
        .wait_until_listed(path.tid.as_str(), path.did.as_str(), hash, bound)
        .await;
    if !listed {
        tracing::debug!(device_id = %path.did, "the triggered snapshot was not listed within the wait; answering anyway");
    }
}

/// Sends the trigger request and waits for the reply.
async fn send(
    state: &AppState,
    path: &DevicePath,
    caller: &Caller,
    request_id: &RequestId,
) -> Result<TriggerReply, ApiError> {
    let bus = state.bus.as_ref().ok_or(ApiError::NoResponder)?;
    let request = TriggerRequest {
        device_id: path.did.to_string(),
        tenant_id: path.tid.to_string(),
        requested_by: Some(caller.sub.clone()),
        request_id: Some(request_id.to_string()),
    };
    Ok(bus.request_trigger(&request, state.trigger_timeout).await?)
}

/// Records `config_backup_manual_trigger` with the caller and the outcome,
/// while the response goes out: best effort (the backup already happened or not), and
/// off the caller's wait, since the row costs a commit. The task is tracked
/// in [`AppState::background`] and runs on the node's runtime, so shutdown
/// waits for it.
fn audit(
    state: &AppState,
    path: &DevicePath,
    caller: &Caller,
    request_id: &RequestId,
    reply: &Result<TriggerReply, ApiError>,
) {
    let detail = match reply {
        Ok(r) => json!({
            "outcome": r.status,
            "error_kind": r.error_kind,
            "sha256_hash": r.sha256_hash,
            "request_id": request_id.to_string(),
        }),
        Err(e) => json!({"outcome": e.code(), "request_id": request_id.to_string()}),
    };
    let (store, tenant, device, actor) = (
        state.store.clone(),
        path.tid.to_string(),
        path.did.to_string(),
        caller.sub.clone(),
    );
    let write = async move {
        store
            .audit_best_effort(
                Some(&tenant),
                Some(&device),
                Action::ManualTrigger,
                Some(&actor),
                &detail,
            )
            .await;
    };
    state.spawn_background(write.in_current_span());
}
