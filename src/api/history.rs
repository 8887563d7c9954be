//! Snapshot history of a device: listings, one snapshot's metadata, its
//! normalized export (inline or as a download), diffs and the change
//! timeline.
//!
//! Listings are newest first with cursor pagination: `?limit=` (1–200,
//! default 50) and `?before=` (an id); the body is
//! `{"items": [...], "next_before": id | null}`, where `next_before` is the
//! `before` of the next page and `null` on the last page. Config text is
//! served with `Cache-Control: no-store`: it holds device secrets, which
//! callers below `auth.reveal_secrets_role` see masked (`secrets`).

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::auth::{Caller, Role};
use super::error::{ApiError, Problem, TenantRouteErrors};
use super::path::{DevicePath, PageQuery, SnapshotId, SnapshotPath, paginate};
use super::secrets::{self, RevealQuery};
use super::semantic::{self, DiffFormat, SemanticDiffResponse};
use crate::store::history::{ChangeSummary, HistoryEntry, SnapshotMeta};

const TEXT_PLAIN: &str = "text/plain; charset=utf-8";
const TEXT_DIFF: &str = "text/x-diff; charset=utf-8";

/// One snapshot's metadata.
#[derive(Debug, Serialize, ToSchema)]
pub struct SnapshotResponse {
    /// Snapshot id (the pagination cursor).
    pub id: i64,
    /// Tenant.
    pub tenant_id: String,
    /// Device.
    pub device_id: String,
    /// Lowercase hex SHA-256 of the normalized export.
    pub sha256_hash: String,
    /// When it was collected.
    pub collected_at: DateTime<Utc>,
    /// `scheduled` or `manual`.
    pub trigger: String,
    /// RouterOS version, if known.
    pub routeros_version: Option<String>,
    /// Bytes of the normalized export.
    pub size_bytes: i64,
    /// Lines of the normalized export.
    pub line_count: i64,
    /// Normalization rules used.
    pub normalization_version: i32,
    /// Lines added against the previous snapshot; `null` for the first.
    pub lines_added: Option<i64>,
    /// Lines removed against the previous snapshot; `null` for the first.
    pub lines_removed: Option<i64>,
    /// The previous snapshot, if it still exists.
    pub previous_snapshot_id: Option<i64>,
    /// Differs from its predecessor only in status comments (`# inactive
    /// time`, `# managed by CAPsMAN`, …), not in configuration; `false` for
    /// versions stored before the mark existed.
    pub status_only: bool,
    /// Collection warnings, e.g. a partial export.
    pub warnings: Vec<String>,
}

impl From<SnapshotMeta> for SnapshotResponse {
    fn from(m: SnapshotMeta) -> Self {
        let warnings = m.warning_list();
        Self {
            id: m.id,
            tenant_id: m.tenant_id,
            device_id: m.device_id,
            sha256_hash: m.sha256_hash,
            collected_at: m.collected_at,
            trigger: m.trigger.as_str().to_owned(),
            routeros_version: m.routeros_version,
            size_bytes: m.size_bytes,
            line_count: m.line_count,
            normalization_version: m.normalization_version,
            lines_added: m.lines_added,
            lines_removed: m.lines_removed,
            previous_snapshot_id: m.previous_snapshot_id,
            status_only: m.status_only,
            warnings,
        }
    }
}

/// A page of snapshots, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct SnapshotPageResponse {
    /// The snapshots.
    pub items: Vec<SnapshotResponse>,
    /// `before` of the next page; `null` on the last page.
    pub next_before: Option<i64>,
}

/// A component's change in a snapshot.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChangeResponse {
    /// Menu path, e.g. `ip/firewall/filter`.
    pub component: String,
    /// E.g. `Added 2 firewall filter rules`.
    pub summary: String,
    /// Logical lines added in the component.
    pub lines_added: i64,
    /// Logical lines removed in the component.
    pub lines_removed: i64,
}

impl From<ChangeSummary> for ChangeResponse {
    fn from(c: ChangeSummary) -> Self {
        Self {
            component: c.component,
            summary: c.summary,
            lines_added: c.lines_added,
            lines_removed: c.lines_removed,
        }
    }
}

/// A changed snapshot in the timeline.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryEntryResponse {
    /// The snapshot (the pagination cursor).
    pub snapshot_id: i64,
    /// When it was collected.
    pub collected_at: DateTime<Utc>,
    /// Lines added against its predecessor.
    pub lines_added: i64,
    /// Lines removed against its predecessor.
    pub lines_removed: i64,
    /// Differs from its predecessor only in status comments (`# inactive
    /// time`, `# managed by CAPsMAN`, …), not in configuration: no
    /// `config.changed` notification was sent for it (unless a target asks
    /// for them). `false` for versions stored before the mark existed.
    pub status_only: bool,
    /// Per-component summaries.
    pub changes: Vec<ChangeResponse>,
}

impl From<HistoryEntry> for HistoryEntryResponse {
    fn from(e: HistoryEntry) -> Self {
        Self {
            snapshot_id: e.snapshot_id,
            collected_at: e.collected_at,
            lines_added: e.lines_added,
            lines_removed: e.lines_removed,
            status_only: e.status_only,
            changes: e.changes.into_iter().map(Into::into).collect(),
        }
    }
}

/// A page of the change timeline, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryPageResponse {
    /// The changed snapshots.
    pub items: Vec<HistoryEntryResponse>,
    /// `before` of the next page; `null` on the last page.
    pub next_before: Option<i64>,
}

/// `?against=&format=`: the snapshot to diff against and the form.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DiffQuery {
    /// Another snapshot of the same device; the previous one when absent.
    #[param(value_type = Option<i64>, minimum = 1)]
    pub against: Option<SnapshotId>,
    /// `true` to see secrets (see [`RevealQuery`]).
    pub reveal: Option<bool>,
    /// `unified` (default): a unified diff; `semantic`: what changed item
    /// by item as JSON.
    #[param(value_type = Option<String>, example = "semantic")]
    pub format: Option<String>,
}

/// A device's snapshots, newest first.
#[utoipa::path(
    get,
    path = "/api/tenants/{tid}/devices/{did}/config-snapshots",
    tag = "history",
    params(DevicePath, PageQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of snapshots", body = SnapshotPageResponse),
        TenantRouteErrors,
        (status = 404, description = "Unknown device (`device_not_found`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_snapshots(
    path: DevicePath,
    caller: Caller,
    query: web::Query<PageQuery>,
    state: web::Data<AppState>,
) -> Result<web::Json<SnapshotPageResponse>, ApiError> {
    caller.require(&path.tid, Role::Viewer)?;
    let limit = query.limit()?;
    let (tid, did) = (path.tid.as_str(), path.did.as_str());
    state.store.get_device(tid, did).await?;
    let rows = state
        .store
        .list_snapshots(tid, did, limit + 1, query.before)
        .await?;
    let (items, next_before) = paginate(rows, limit, |s| s.id);
    Ok(web::Json(SnapshotPageResponse {
        items: items.into_iter().map(Into::into).collect(),
        next_before,
    }))
}

/// One snapshot's metadata.
#[utoipa::path(
    get,
    path = "/api/tenants/{tid}/devices/{did}/config-snapshots/{sid}",
    tag = "history",
    params(SnapshotPath),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The snapshot's metadata", body = SnapshotResponse),
        TenantRouteErrors,
        (status = 404, description = "Unknown snapshot (`snapshot_not_found`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_snapshot(
    path: SnapshotPath,
    caller: Caller,
    state: web::Data<AppState>,
) -> Result<web::Json<SnapshotResponse>, ApiError> {
    caller.require(&path.tid, Role::Viewer)?;
    let meta = state
        .store
        .get_snapshot(path.tid.as_str(), path.did.as_str(), path.sid.0)
        .await?;
    Ok(web::Json(meta.into()))
}

/// The snapshot's normalized export.
#[utoipa::path(
    get,
    path = "/api/tenants/{tid}/devices/{did}/config-snapshots/{sid}/content",
    tag = "history",
    params(SnapshotPath, RevealQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The normalized export", body = String, content_type = "text/plain; charset=utf-8"),
        TenantRouteErrors,
        (status = 404, description = "Unknown snapshot (`snapshot_not_found`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn snapshot_content(
    path: SnapshotPath,
    caller: Caller,
    query: web::Query<RevealQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require(&path.tid, Role::Viewer)?;
    let secrets = secrets::secrets_for(&caller, &state, &path, query.reveal).await?;
    let text = state
        .store
        .snapshot_content(path.tid.as_str(), path.did.as_str(), path.sid.0)
        .await?;
    let text = secrets::apply(text, secrets).await?;
    Ok(config_text(TEXT_PLAIN, text, None))
}

/// The snapshot's normalized export as a `.rsc` file download.
#[utoipa::path(
    get,
    path = "/api/tenants/{tid}/devices/{did}/config-snapshots/{sid}/download",
    tag = "history",
    params(SnapshotPath, RevealQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The export as an attachment `router-{device_name}-{YYYYMMDDTHHMMSSZ}.rsc`",
            body = String, content_type = "text/plain; charset=utf-8",
            headers(("Content-Disposition" = String, description = "attachment; filename=\"router-….rsc\""))),
        TenantRouteErrors,
        (status = 404, description = "Unknown snapshot (`snapshot_not_found`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn download_snapshot(
    path: SnapshotPath,
    caller: Caller,
    query: web::Query<RevealQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require(&path.tid, Role::Viewer)?;
    let secrets = secrets::secrets_for(&caller, &state, &path, query.reveal).await?;
    let (tid, did) = (path.tid.as_str(), path.did.as_str());
    let meta = state.store.get_snapshot(tid, did, path.sid.0).await?;
    let text = state.store.snapshot_content(tid, did, path.sid.0).await?;
    let text = secrets::apply(text, secrets).await?;
    let filename = download_filename(&state.device_name(&path.did), meta.collected_at);
    Ok(config_text(TEXT_PLAIN, text, Some(&filename)))
}

/// The diff of a snapshot against another (default: its predecessor; the
/// device's first snapshot diffs against an empty file): unified, or with
/// `format=semantic` item by item (DESIGN.md §16).
#[utoipa::path(
    get,
    path = "/api/tenants/{tid}/devices/{did}/config-snapshots/{sid}/diff",
    tag = "history",
    params(SnapshotPath, DiffQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Unified diff, or with `format=semantic` the changed items", content(
            (String = "text/x-diff; charset=utf-8"),
            (SemanticDiffResponse = "application/json"),
        )),
        (status = 400, description = "A `format` other than `unified` or `semantic` (`bad_query`)", body = Problem, content_type = "application/problem+json"),
        TenantRouteErrors,
        (status = 404, description = "Either snapshot unknown (`snapshot_not_found`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn snapshot_diff(
    path: SnapshotPath,
    caller: Caller,
    query: web::Query<DiffQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require(&path.tid, Role::Viewer)?;
    let format = DiffFormat::parse(query.format.as_deref())?;
    let secrets = secrets::secrets_for(&caller, &state, &path, query.reveal).await?;
    let ids = (path.sid.0, query.against.map(|s| s.0));
    let (tid, did) = (path.tid.as_str(), path.did.as_str());
    if format == DiffFormat::Semantic {
        let diff = state.store.semantic_diff_as(tid, did, ids, secrets).await?;
        return Ok(semantic::response(diff));
    }
    let diff = state.store.diff_as(tid, did, ids, secrets).await?;
    Ok(config_text(TEXT_DIFF, diff, None))
}

/// The change timeline: snapshots that differ from their predecessor.
#[utoipa::path(
    get,
    path = "/api/tenants/{tid}/devices/{did}/config-history",
    tag = "history",
    params(DevicePath, PageQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of the timeline", body = HistoryPageResponse),
        TenantRouteErrors,
        (status = 404, description = "Unknown device (`device_not_found`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn config_history(
    path: DevicePath,
    caller: Caller,
    query: web::Query<PageQuery>,
    state: web::Data<AppState>,
) -> Result<web::Json<HistoryPageResponse>, ApiError> {
    caller.require(&path.tid, Role::Viewer)?;
    let limit = query.limit()?;
    let (tid, did) = (path.tid.as_str(), path.did.as_str());
    state.store.get_device(tid, did).await?;
    let rows = state
        .store
        .config_history(tid, did, limit + 1, query.before)
        .await?;
    let (items, next_before) = paginate(rows, limit, |e| e.snapshot_id);
    Ok(web::Json(HistoryPageResponse {
        items: items.into_iter().map(Into::into).collect(),
        next_before,
    }))
}

/// A config text response with `Cache-Control: no-store`, as an attachment
/// named `filename` when given.
fn config_text(content_type: &'static str, body: String, filename: Option<&str>) -> HttpResponse {
    let mut response = HttpResponse::Ok();
    response
        .content_type(content_type)
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")));
    if let Some(name) = filename {
        response.insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{name}\""),
        ));
    }
    response.body(body)
}

/// `router-{name}-{YYYYMMDDTHHMMSSZ}.rsc`, with every character of the name
/// outside `[A-Za-z0-9._-]` replaced by `_` so it is safe in a header.
pub fn download_filename(device_name: &str, collected_at: DateTime<Utc>) -> String {
    let safe: String = device_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!(
        "router-{safe}-{}.rsc",
        collected_at.format("%Y%m%dT%H%M%SZ")
    )
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;

    #[test]
    fn download_names_are_header_safe() {
        let at = Utc
            .with_ymd_and_hms(2024, 3, 9, 7, 5, 1)
            .single()
            .expect("valid time");
        assert_eq!(
            download_filename("core-1.lab", at),
            "router-core-1.lab-20240309T070501Z.rsc"
        );
        assert_eq!(
            download_filename("a \"b\"/c;é\r\n", at),
            "router-a__b__c____-20240309T070501Z.rsc"
        );
    }
}
