//! The fleet page (`/ui/t/{tid}/devices`): every device of the tenant with
//! its status, last success, last change and newest change summary;
//! filtered by text and status, sorted by name, id, status, last success or last change, one keyset page at a
//! time (the store's `query_devices`, the same query the API's device list
//! uses), so a large fleet costs one page of rows.

use std::collections::HashMap;

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::{Deserialize, Serialize};

use super::page::{self, Chrome, UiError, render};
use super::time::Stamp;
use crate::api::{AppState, Role};
use crate::store::browse::{DeviceOrder, DeviceQuery, DeviceStatus};
use crate::store::device::DeviceState;

/// Devices per page unless `limit` says otherwise.
pub const PAGE: u32 = 50;
/// The largest `limit`.
pub const MAX_PAGE: u32 = 200;

/// The fleet's query string.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
pub struct FleetQuery {
    /// Text in the id, name or host.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub q: String,
    /// `ok`, `failing`, `blocked`, `never`, or empty for all.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub status: String,
    /// `name` (default), `id`, `status` (trouble first), `last_success`
    /// (stalest first) or `last_change` (newest first).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sort: String,
    /// Next page: after this device id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// Previous page: before this device id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    /// Devices per page, 1–200 (50 when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// The fleet's orders: query-string name and label.
const SORTS: [(&str, &str); 5] = [
    ("name", "Name"),
    ("id", "Id"),
    ("status", "Status, trouble first"),
    ("last_success", "Last success, oldest first"),
    ("last_change", "Last change, newest first"),
];

/// One device row.
pub struct Row {
    id: String,
    name: String,
    host: String,
    status: &'static str,
    status_text: String,
    last_success: Option<Stamp>,
    last_change: Option<Stamp>,
    summary: Option<String>,
}

#[derive(Template)]
#[template(path = "fleet.html")]
struct FleetPage {
    chrome: Chrome,
    tenant: String,
    query: FleetQuery,
    statuses: [&'static str; 4],
    sorts: [(&'static str, &'static str); 5],
    rows: Vec<Row>,
    prev: Option<String>,
    next: Option<String>,
}

/// `GET /ui/t/{tid}/devices`.
pub async fn fleet(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<FleetQuery>,
) -> Result<HttpResponse, UiError> {
    let caller = page::signed_in(&req).await?;
    let tenant = page::tenant_id(&path)?;
    caller.require(&tenant, Role::Viewer)?;
    let query = query.into_inner();
    let page_size = query.limit.unwrap_or(PAGE).clamp(1, MAX_PAGE);
    let store_query = DeviceQuery {
        q: Some(query.q.trim().to_owned()).filter(|q| !q.is_empty()),
        status: match query.status.as_str() {
            "" => None,
            s => Some(
                s.parse()
                    .map_err(|detail| crate::api::ApiError::BadRequest {
                        code: "bad_query",
                        detail,
                    })?,
            ),
        },
        order: DeviceOrder::parse(&query.sort).unwrap_or(DeviceOrder::Name),
        after: query.after.clone(),
        before: query.before.clone(),
        limit: Some(page_size + 1),
    };
    let mut devices = state
        .store
        .query_devices(tenant.as_str(), &store_query)
        .await?;
    let (has_prev, has_next) = trim_page(&mut devices, &query, page_size);
    let rows = rows(&state, tenant.as_str(), devices).await?;
    let link = |after: Option<String>, before: Option<String>| {
        let q = FleetQuery {
            after,
            before,
            ..query.clone()
        };
        format!("/ui/t/{tenant}/devices?{}", encode(&q))
    };
    let prev = has_prev
        .then(|| rows.first().map(|r| link(None, Some(r.id.clone()))))
        .flatten();
    let next = has_next
        .then(|| rows.last().map(|r| link(Some(r.id.clone()), None)))
        .flatten();
    let page = FleetPage {
        chrome: Chrome::new(&req, &state, Some(&caller), Some(&tenant), "Fleet").section("fleet"),
        tenant: tenant.to_string(),
        statuses: DeviceStatus::ALL.map(DeviceStatus::as_str),
        sorts: SORTS,
        query,
        rows,
        prev,
        next,
    };
    render(&page)
}

/// Cuts the extra row fetched to learn whether another page exists;
/// returns whether there is a previous and a next page.
fn trim_page(devices: &mut Vec<DeviceState>, query: &FleetQuery, size: u32) -> (bool, bool) {
    let full = devices.len() > size as usize;
    if query.after.is_none() && query.before.is_some() {
        if full {
            devices.remove(0);
        }
        (full, true)
    } else {
        devices.truncate(size as usize);
        (query.after.is_some(), full)
    }
}

/// The rows of a page, with the newest version's time and summary.
async fn rows(
    state: &AppState,
    tenant: &str,
    devices: Vec<DeviceState>,
) -> Result<Vec<Row>, UiError> {
    let ids: Vec<i64> = devices
        .iter()
        .filter_map(|d| d.newest_snapshot_id)
        .collect();
    let newest: HashMap<i64, _> = state
        .store
        .snapshots_by_id(tenant, &ids)
        .await?
        .into_iter()
        .map(|s| (s.id, (s.collected_at, s.previous_snapshot_id.is_none())))
        .collect();
    let mut summaries: HashMap<i64, Vec<String>> = HashMap::new();
    for change in state.store.changes_of(tenant, &ids).await? {
        summaries
            .entry(change.snapshot_id)
            .or_default()
            .push(change.summary);
    }
    Ok(devices
        .into_iter()
        .map(|d| {
            let (status, status_text) = status(&d);
            let newest_id = d.newest_snapshot_id;
            Row {
                status,
                status_text,
                last_success: Stamp::of(d.last_success_at),
                last_change: Stamp::of(newest_id.and_then(|id| newest.get(&id).map(|n| n.0))),
                summary: newest_id.and_then(|id| {
                    let first = newest.get(&id).is_some_and(|n| n.1);
                    summary(summaries.get(&id))
                        .or_else(|| first.then(|| "first version".to_owned()))
                }),
                id: d.device_id,
                name: d.name,
                host: d.host,
            }
        })
        .collect())
}

/// The status class and its text: `failing (unreachable)`, `blocked
/// (auth_failed)`, …
pub fn status(d: &DeviceState) -> (&'static str, String) {
    let status = DeviceStatus::of(d);
    let text = match status {
        DeviceStatus::Ok => "ok".to_owned(),
        DeviceStatus::Never => "never backed up".to_owned(),
        DeviceStatus::Failing => match &d.last_error_kind {
            Some(kind) => format!("failing: {kind}"),
            None => "failing".to_owned(),
        },
        DeviceStatus::Blocked => format!("blocked: {}", d.blocked_reason.as_deref().unwrap_or("")),
    };
    (status.as_str(), text)
}

/// "Added 2 firewall filter rules; +1 more".
fn summary(changes: Option<&Vec<String>>) -> Option<String> {
    let changes = changes?;
    let first = changes.first()?;
    Some(match changes.len() {
        1 => first.clone(),
        n => format!("{first}; {} more", n - 1),
    })
}

/// A query string.
pub fn encode(value: &impl Serialize) -> String {
    serde_urlencoded::to_string(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_offered_sort_is_an_order_of_the_store() {
        for (name, _) in SORTS {
            assert!(DeviceOrder::parse(name).is_some(), "{name}");
        }
        assert_eq!(SORTS.len(), DeviceOrder::ALL.len());
    }
}
