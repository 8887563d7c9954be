//! The tenant's notification deliveries (`/ui/t/{tid}/notifications`,
//! admins): the newest rows, filterable by status, with attempts, the last
//! error and the next try, and a **Redeliver** form per row that queues it
//! again (same `webhook-id`). The same store calls, filter check and role
//! as the admin API (`api::notifications`).

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::page::{self, Chrome, UiError, render, see_other};
use super::time::Stamp;
use crate::api::notifications::{notification_id, status_filter};
use crate::api::{AppState, Role};
use crate::store::outbox::Notification;

/// Rows shown (the newest; the API lists the same at most).
const PAGE: u32 = 200;

/// `?status=&done=`.
#[derive(Debug, Default, Deserialize)]
pub struct DeliveryQuery {
    #[serde(default)]
    status: String,
    /// `redelivered` after a Redeliver.
    #[serde(default)]
    done: String,
}

/// One delivery as the page shows it.
pub struct Row {
    id: i64,
    created: Stamp,
    event: String,
    target: String,
    device: String,
    status: String,
    attempts: i32,
    last_error: String,
    /// While pending.
    next_try: Option<Stamp>,
    delivered: Option<Stamp>,
}

impl Row {
    fn new(n: Notification, now: DateTime<Utc>) -> Row {
        let at = |ms: i64| DateTime::<Utc>::from_timestamp_millis(ms).map(|t| Stamp::new(t, now));
        Row {
            id: n.notification_id,
            created: at(n.created_ms).unwrap_or_else(|| Stamp::new(now, now)),
            next_try: (n.status == "pending")
                .then(|| at(n.next_attempt_ms))
                .flatten(),
            delivered: n.delivered_ms.and_then(at),
            event: n.event_type,
            target: n.target,
            device: n.device_id,
            status: n.status,
            attempts: n.attempts,
            last_error: n.last_error.unwrap_or_default(),
        }
    }
}

#[derive(Template)]
#[template(path = "notifications.html")]
struct DeliveriesPage {
    chrome: Chrome,
    tenant: String,
    status: String,
    statuses: [&'static str; 3],
    notice: Option<&'static str>,
    rows: Vec<Row>,
}

/// `GET /ui/t/{tid}/notifications` (admin).
pub async fn deliveries(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<DeliveryQuery>,
) -> Result<HttpResponse, UiError> {
    let caller = page::signed_in(&req).await?;
    let tenant = page::tenant_id(&path)?;
    caller.require(&tenant, Role::Admin)?;
    let status = status_filter(Some(query.status.as_str()))?;
    let rows = state
        .store
        .list_notifications(tenant.as_str(), status, PAGE)
        .await?;
    let now = Utc::now();
    let page = DeliveriesPage {
        chrome: Chrome::new(&req, &state, Some(&caller), Some(&tenant), "Deliveries")
            .section("notifications"),
        tenant: tenant.to_string(),
        status: status.unwrap_or_default().to_owned(),
        statuses: ["pending", "delivered", "failed"],
        notice: (query.done == "redelivered").then_some("Queued for delivery again."),
        rows: rows.into_iter().map(|n| Row::new(n, now)).collect(),
    };
    render(&page)
}

/// The Redeliver form.
#[derive(Deserialize)]
pub struct RedeliverForm {
    #[serde(default)]
    csrf_token: String,
    /// The status filter to return to.
    #[serde(default)]
    status: String,
}

/// `POST /ui/t/{tid}/notifications/{nid}/redeliver` (admin): queues the row
/// again, then shows the list.
pub async fn redeliver(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    form: web::Form<RedeliverForm>,
) -> Result<HttpResponse, UiError> {
    let caller = page::signed_in_form(&req, &form.csrf_token).await?;
    let tenant = page::tenant_id(&path.0)?;
    caller.require(&tenant, Role::Admin)?;
    let nid = notification_id(&path.1)?;
    let back = status_filter(Some(form.status.as_str()))?.unwrap_or_default();
    state
        .store
        .redeliver_notification(tenant.as_str(), nid)
        .await?;
    Ok(see_other(&format!(
        "/ui/t/{tenant}/notifications?status={back}&done=redelivered"
    )))
}
