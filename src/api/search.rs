//! `GET /api/tenants/{tid}/search` (viewer, DESIGN.md §15): search the
//! newest configuration of every device, or when matching lines came and
//! went through history. Callers below `auth.reveal_secrets_role` search
//! masked text. Bad queries are `400 bad_query`; a search that runs out of
//! `[search] deadline` answers what it found with `partial: true`.

use actix_web::web;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::auth::{Caller, Role};
use super::error::{ApiError, TenantRouteErrors};
use super::path::TenantPath;
use super::secrets;
use crate::search::{self, Items, LineHit, LineLife, Request, Scope, VersionRef};

/// The query string.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// What to look for (1 to 1024 bytes); a literal unless `regex=true`.
    pub q: Option<String>,
    /// `q` is a regular expression (Rust `regex` syntax: no backreferences
    /// or look-around, linear time).
    pub regex: Option<bool>,
    /// Match regardless of case.
    pub ignore_case: Option<bool>,
    /// `current` (default): the newest version of each device; `history`:
    /// when matching lines appeared and went.
    #[param(value_type = Option<String>, pattern = "^(current|history)$")]
    pub scope: Option<Scope>,
    /// A device id or a glob (`*`, `?`).
    pub device: Option<String>,
    /// `history`: only lines still present at or after this time (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// `history`: only lines present by this time (RFC 3339).
    pub until: Option<DateTime<Utc>>,
    /// Hits per page, 1 to 1000 (default 100).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A matching line of a device's newest version (`scope=current`).
#[derive(Debug, Serialize, ToSchema)]
pub struct CurrentHitResponse {
    /// Device.
    pub device_id: String,
    /// The version searched.
    pub snapshot_id: i64,
    /// 1-based line number.
    pub line_no: usize,
    /// The line (secrets masked below `reveal_secrets_role`).
    pub line: String,
    /// Up to two lines before it.
    pub before: Vec<String>,
    /// Up to two lines after it.
    pub after: Vec<String>,
}

/// A version named by a history hit.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionRefResponse {
    /// Snapshot id.
    pub snapshot_id: i64,
    /// When it was collected.
    pub collected_at: DateTime<Utc>,
}

/// A matching line's life on a device (`scope=history`).
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryHitResponse {
    /// Device.
    pub device_id: String,
    /// The line.
    pub line: String,
    /// The first stored version that has it.
    pub added_in: VersionRefResponse,
    /// The version it went in; `null`: still in the newest.
    pub removed_in: Option<VersionRefResponse>,
    /// It was already in a version retention deleted, so it was added
    /// before `added_in`.
    pub added_earlier: bool,
}

/// One hit.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum SearchHitResponse {
    /// `scope=current`.
    Current(CurrentHitResponse),
    /// `scope=history`.
    History(HistoryHitResponse),
}

/// A page of hits, devices in id order.
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchResponse {
    /// The hits.
    pub items: Vec<SearchHitResponse>,
    /// The deadline passed before every device was searched: more may
    /// match; `next_cursor` continues where it stopped.
    pub partial: bool,
    /// `cursor` of the next page; `null` when nothing is left.
    pub next_cursor: Option<String>,
}

/// Searches the tenant's configurations.
#[utoipa::path(
    get,
    path = "/api/tenants/{tid}/search",
    tag = "search",
    params(TenantPath, SearchQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of hits", body = SearchResponse),
        TenantRouteErrors,
    )
)]
pub async fn search(
    path: TenantPath,
    caller: Caller,
    query: web::Query<SearchQuery>,
    state: web::Data<AppState>,
) -> Result<web::Json<SearchResponse>, ApiError> {
    caller.require(&path.tid, Role::Viewer)?;
    let query = query.into_inner();
    let request = Request {
        q: query.q.unwrap_or_default(),
        regex: query.regex.unwrap_or(false),
        ignore_case: query.ignore_case.unwrap_or(false),
        scope: query.scope.unwrap_or_default(),
        device: query.device,
        since: query.since,
        until: query.until,
        limit: query.limit,
        cursor: query.cursor,
    };
    let parsed = search::Query::parse(&request).map_err(ApiError::from)?;
    let secrets = secrets::unrevealed(&caller, &state);
    let page = state
        .searcher
        .search(path.tid.as_str(), &parsed, secrets)
        .await
        .map_err(ApiError::from)?;
    let items = match page.items {
        Items::Current(hits) => hits.into_iter().map(current).collect(),
        Items::History(lives) => lives.into_iter().map(history).collect(),
    };
    Ok(web::Json(SearchResponse {
        items,
        partial: page.partial,
        next_cursor: page.next_cursor,
    }))
}

fn current(h: LineHit) -> SearchHitResponse {
    SearchHitResponse::Current(CurrentHitResponse {
        device_id: h.device_id,
        snapshot_id: h.snapshot_id,
        line_no: h.line_no,
        line: h.line,
        before: h.before,
        after: h.after,
    })
}

fn version(v: VersionRef) -> VersionRefResponse {
    VersionRefResponse {
        snapshot_id: v.snapshot_id,
        collected_at: v.collected_at,
    }
}

fn history(l: LineLife) -> SearchHitResponse {
    SearchHitResponse::History(HistoryHitResponse {
        device_id: l.device_id,
        line: l.line,
        added_in: version(l.added_in),
        removed_in: l.removed_in.map(version),
        added_earlier: l.added_earlier,
    })
}
