//! The tenant's notification deliveries (admin):
//! `GET /api/tenants/{tid}/notifications?status=&limit=` (newest first, with
//! attempts, last error and next try) and
//! `POST /api/tenants/{tid}/notifications/{nid}/redeliver` (queued again,
//! same `webhook-id`).

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::auth::{Caller, Role};
use super::error::{ApiError, TenantRouteErrors};
use super::path::TenantPath;
use crate::store::outbox::Notification;

/// Most rows a listing returns.
const MAX_LIMIT: u32 = 200;

/// `?status=pending|delivered|failed&limit=`.
#[derive(Debug, Deserialize, IntoParams)]
pub struct NotificationQuery {
    /// Only rows in this state.
    pub status: Option<String>,
    /// Rows to return, 1–200 (50 when absent).
    pub limit: Option<u32>,
}

/// One notification delivery.
#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationResponse {
    /// Row id.
    pub id: i64,
    /// The `webhook-id` of every attempt.
    pub webhook_id: String,
    /// Target name.
    pub target: String,
    /// Event type, e.g. `config.changed`.
    pub event_type: String,
    /// Device.
    pub device_id: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    /// Attempts made.
    pub attempts: i32,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When the event was queued.
    pub created_at: Option<DateTime<Utc>>,
    /// Next attempt, while pending.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When it was delivered.
    pub delivered_at: Option<DateTime<Utc>>,
}

impl From<Notification> for NotificationResponse {
    fn from(n: Notification) -> Self {
        let at = DateTime::<Utc>::from_timestamp_millis;
        Self {
            id: n.notification_id,
            webhook_id: n.webhook_id,
            target: n.target,
            event_type: n.event_type,
            device_id: n.device_id,
            next_attempt_at: (n.status == "pending")
                .then(|| at(n.next_attempt_ms))
                .flatten(),
            status: n.status,
            attempts: n.attempts,
            last_error: n.last_error,
            created_at: at(n.created_ms),
            delivered_at: n.delivered_ms.and_then(at),
        }
    }
}

/// The deliveries of a tenant.
#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationListResponse {
    /// Newest first.
    pub items: Vec<NotificationResponse>,
}

fn bad_query(detail: &str) -> ApiError {
    ApiError::BadRequest {
        code: "bad_query",
        detail: detail.to_owned(),
    }
}

/// The `?status=` filter of a listing (the API's and the UI page's): empty
/// or absent is every state.
///
/// # Errors
/// A `400` for anything but `pending`, `delivered` and `failed`.
pub fn status_filter(status: Option<&str>) -> Result<Option<&str>, ApiError> {
    match status {
        None | Some("") => Ok(None),
        Some(s @ ("pending" | "delivered" | "failed")) => Ok(Some(s)),
        Some(_) => Err(bad_query("status must be pending, delivered or failed")),
    }
}

/// A notification id from a path segment.
///
/// # Errors
/// A `400` unless it is a positive integer.
pub fn notification_id(segment: &str) -> Result<i64, ApiError> {
    segment
        .parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| ApiError::BadId {
            what: "notification id",
            reason: "not a positive integer".to_owned(),
        })
}

/// The tenant's notification deliveries, newest first.
#[utoipa::path(
    get,
    path = "/api/tenants/{tid}/notifications",
    tag = "audit",
    params(TenantPath, NotificationQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Deliveries", body = NotificationListResponse),
        TenantRouteErrors,
    )
)]
pub async fn list_notifications(
    path: TenantPath,
    caller: Caller,
    query: web::Query<NotificationQuery>,
    state: web::Data<AppState>,
) -> Result<web::Json<NotificationListResponse>, ApiError> {
    caller.require(&path.tid, Role::Admin)?;
    let status = status_filter(query.status.as_deref())?;
    let limit = match query.limit {
        None => 50,
        Some(n @ 1..=MAX_LIMIT) => n,
        Some(_) => return Err(bad_query("limit must be between 1 and 200")),
    };
    let rows = state
        .store
        .list_notifications(path.tid.as_str(), status, limit)
        .await?;
    Ok(web::Json(NotificationListResponse {
        items: rows.into_iter().map(Into::into).collect(),
    }))
}

/// Queues a notification for delivery again (same `webhook-id`).
#[utoipa::path(
    post,
    path = "/api/tenants/{tid}/notifications/{nid}/redeliver",
    tag = "audit",
    params(TenantPath, ("nid" = i64, Path, description = "Notification id")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Queued again"),
        TenantRouteErrors,
    )
)]
pub async fn redeliver_notification(
    path: TenantPath,
    caller: Caller,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require(&path.tid, Role::Admin)?;
    let nid = notification_id(req.match_info().get("nid").unwrap_or(""))?;
    state
        .store
        .redeliver_notification(path.tid.as_str(), nid)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
