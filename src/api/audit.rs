//! The tenant's audit log (`GET /api/tenants/{tid}/audit-events`, admin):
//! newest first, with the cursor pagination of the history listings.

use actix_web::web;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::auth::{Caller, Role};
use super::error::{ApiError, TenantRouteErrors};
use super::path::{PageQuery, TenantPath, paginate};
use crate::store::audit::AuditEvent;

/// One audit event.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEventResponse {
    /// Event id (the pagination cursor).
    pub id: i64,
    /// Tenant.
    pub tenant_id: Option<String>,
    /// Device, when the event concerns one.
    pub device_id: Option<String>,
    /// E.g. `config_backup_manual_trigger`.
    pub action: String,
    /// Who did it (the caller's `sub`), when a person did.
    pub actor: Option<String>,
    /// Small JSON details (never config text).
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
    /// When.
    pub created_at: DateTime<Utc>,
}

impl From<AuditEvent> for AuditEventResponse {
    fn from(e: AuditEvent) -> Self {
        let detail = e.detail_json();
        Self {
            id: e.id,
            tenant_id: e.tenant_id,
            device_id: e.device_id,
            action: e.action.as_str().to_owned(),
            actor: e.actor,
            detail,
            created_at: e.created_at,
        }
    }
}

/// A page of the audit log, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPageResponse {
    /// The events.
    pub items: Vec<AuditEventResponse>,
    /// `before` of the next page; `null` on the last page.
    pub next_before: Option<i64>,
}

/// The tenant's audit log, newest first.
#[utoipa::path(
    get,
    path = "/api/tenants/{tid}/audit-events",
    tag = "audit",
    params(TenantPath, PageQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of audit events", body = AuditPageResponse),
        TenantRouteErrors,
    )
)]
pub async fn list_audit_events(
    path: TenantPath,
    caller: Caller,
    query: web::Query<PageQuery>,
    state: web::Data<AppState>,
) -> Result<web::Json<AuditPageResponse>, ApiError> {
    caller.require(&path.tid, Role::Admin)?;
    let limit = query.limit()?;
    let rows = state
        .store
        .list_audit(path.tid.as_str(), limit + 1, query.before)
        .await?;
    let (items, next_before) = paginate(rows, limit, |e| e.id);
    Ok(web::Json(AuditPageResponse {
        items: items.into_iter().map(Into::into).collect(),
        next_before,
    }))
}
