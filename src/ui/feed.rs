//! The tenant's feeds: recent changes across the fleet
//! (`/ui/t/{tid}/changes`, filterable by device and component) and the
//! audit log (`/ui/t/{tid}/audit`, admins, filterable by action, actor and
//! device), newest first with "older" cursor pages.

use std::collections::HashMap;

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::{Deserialize, Serialize};

use super::fleet::encode;
use super::page::{self, Chrome, UiError, render};
use super::time::Stamp;
use crate::api::{AppState, Role};
use crate::store::browse::AuditFilter;
use crate::store::history::ChangeSummary;

/// Entries per page.
const PAGE: u32 = 50;

/// The changes feed's query string.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
pub struct ChangesQuery {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    device: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    component: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    before: Option<i64>,
}

/// One changed version.
pub struct Entry {
    id: i64,
    previous: Option<i64>,
    device: String,
    name: String,
    at: Stamp,
    added: i64,
    removed: i64,
    /// Differs from its predecessor only in status comments.
    status_only: bool,
    changes: Vec<ChangeSummary>,
}

#[derive(Template)]
#[template(path = "changes.html")]
struct ChangesPage {
    chrome: Chrome,
    tenant: String,
    query: ChangesQuery,
    devices: Vec<(String, String)>,
    entries: Vec<Entry>,
    older: Option<String>,
}

/// `GET /ui/t/{tid}/changes`.
pub async fn changes(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<ChangesQuery>,
) -> Result<HttpResponse, UiError> {
    let caller = page::signed_in(&req).await?;
    let tenant = page::tenant_id(&path)?;
    caller.require(&tenant, Role::Viewer)?;
    let query = query.into_inner();
    let filter = (
        Some(query.device.as_str()).filter(|s| !s.is_empty()),
        Some(query.component.as_str()).filter(|s| !s.is_empty()),
    );
    let mut metas = state
        .store
        .recent_changes(tenant.as_str(), filter, PAGE + 1, query.before)
        .await?;
    let more = metas.len() > PAGE as usize;
    metas.truncate(PAGE as usize);
    let ids: Vec<i64> = metas.iter().map(|m| m.id).collect();
    let mut changes: HashMap<i64, Vec<ChangeSummary>> = HashMap::new();
    for c in state.store.changes_of(tenant.as_str(), &ids).await? {
        changes.entry(c.snapshot_id).or_default().push(c);
    }
    let devices: Vec<(String, String)> = {
        let fleet = state.fleet.borrow();
        fleet
            .devices
            .iter()
            .filter(|d| d.tenant == tenant)
            .map(|d| (d.id.to_string(), d.name.clone()))
            .collect()
    };
    let name_of = |id: &str| {
        devices
            .iter()
            .find(|(d, _)| d == id)
            .map_or_else(|| id.to_owned(), |(_, n)| n.clone())
    };
    let now = chrono::Utc::now();
    let entries: Vec<Entry> = metas
        .into_iter()
        .map(|m| Entry {
            changes: changes.remove(&m.id).unwrap_or_default(),
            id: m.id,
            previous: m.previous_snapshot_id,
            name: name_of(&m.device_id),
            device: m.device_id,
            at: Stamp::new(m.collected_at, now),
            added: m.lines_added.unwrap_or(0),
            removed: m.lines_removed.unwrap_or(0),
            status_only: m.status_only,
        })
        .collect();
    let older = more
        .then(|| {
            entries.last().map(|e| ChangesQuery {
                before: Some(e.id),
                ..query.clone()
            })
        })
        .flatten()
        .map(|q| format!("?{}", encode(&q)));
    let page = ChangesPage {
        chrome: Chrome::new(&req, &state, Some(&caller), Some(&tenant), "Recent changes")
            .section("changes"),
        tenant: tenant.to_string(),
        query,
        devices,
        entries,
        older,
    };
    render(&page)
}

/// The audit log's query string.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
pub struct AuditQuery {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    action: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    actor: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    device: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    before: Option<i64>,
}

/// One audit event.
pub struct Event {
    at: Stamp,
    action: &'static str,
    actor: String,
    device: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    chrome: Chrome,
    tenant: String,
    query: AuditQuery,
    actions: Vec<&'static str>,
    events: Vec<Event>,
    older: Option<String>,
}

/// `GET /ui/t/{tid}/audit` (admin).
pub async fn audit(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, UiError> {
    let caller = page::signed_in(&req).await?;
    let tenant = page::tenant_id(&path)?;
    caller.require(&tenant, Role::Admin)?;
    let query = query.into_inner();
    let nonempty = |s: &str| Some(s.to_owned()).filter(|s| !s.is_empty());
    let filter = AuditFilter {
        action: nonempty(&query.action),
        actor: nonempty(&query.actor),
        device: nonempty(&query.device),
    };
    let mut rows = state
        .store
        .query_audit(tenant.as_str(), &filter, PAGE + 1, query.before)
        .await?;
    let more = rows.len() > PAGE as usize;
    rows.truncate(PAGE as usize);
    let older = more
        .then(|| {
            rows.last().map(|e| AuditQuery {
                before: Some(e.id),
                ..query.clone()
            })
        })
        .flatten()
        .map(|q| format!("?{}", encode(&q)));
    let now = chrono::Utc::now();
    let events = rows
        .into_iter()
        .map(|e| Event {
            at: Stamp::new(e.created_at, now),
            action: e.action.as_str(),
            actor: e.actor.clone().unwrap_or_default(),
            device: e.device_id.clone().unwrap_or_default(),
            detail: e.detail_json().to_string(),
        })
        .collect();
    let page = AuditPage {
        chrome: Chrome::new(&req, &state, Some(&caller), Some(&tenant), "Audit log")
            .section("audit"),
        tenant: tenant.to_string(),
        query,
        actions: crate::store::audit::Action::ALL
            .iter()
            .map(|a| a.as_str())
            .collect(),
        events,
        older,
    };
    render(&page)
}
