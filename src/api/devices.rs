//! Devices and their backup state (`GET …/devices` with filters and cursor
//! pages, `GET …/devices/{did}`) and the admin's host-key reset. Handlers stay thin: check the caller,
//! call the store, map to a DTO.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::auth::{Caller, Role};
use super::error::{ApiError, Problem, TenantRouteErrors};
use super::path::{DevicePath, MAX_LIMIT, TenantPath};
use crate::id::DeviceId;
use crate::store::browse::{DeviceOrder, DeviceQuery, DeviceStatus};
use crate::store::device::DeviceState;

/// A device with its backup state.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceResponse {
    /// Device id.
    pub device_id: String,
    /// Owning tenant.
    pub tenant_id: String,
    /// Display name.
    pub name: String,
    /// Host name or address.
    pub host: String,
    /// SSH port.
    pub port: i32,
    /// False once removed from the configuration (its history stays).
    pub active: bool,
    /// Pinned `SHA256:` host key fingerprint.
    pub host_key_fingerprint: Option<String>,
    /// Last backup attempt.
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// Last successful backup.
    pub last_success_at: Option<DateTime<Utc>>,
    /// `success`, `failed` or `locked`.
    pub last_status: Option<String>,
    /// `error_kind` of the last failure.
    pub last_error_kind: Option<String>,
    /// Failures since the last success.
    pub consecutive_failures: i32,
    /// Earliest next scheduled attempt after a failure.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// Why scheduled retries stopped (`auth_failed`, `hostkey_mismatch`).
    pub blocked_reason: Option<String>,
    /// Newest snapshot id.
    pub newest_snapshot_id: Option<i64>,
    /// Newest snapshot hash.
    pub newest_sha256_hash: Option<String>,
}

impl From<DeviceState> for DeviceResponse {
    fn from(d: DeviceState) -> Self {
        Self {
            device_id: d.device_id,
            tenant_id: d.tenant_id,
            name: d.name,
            host: d.host,
            port: d.port,
            active: d.active,
            host_key_fingerprint: d.host_key_fingerprint,
            last_attempt_at: d.last_attempt_at,
            last_success_at: d.last_success_at,
            last_status: d.last_status,
            last_error_kind: d.last_error_kind,
            consecutive_failures: d.consecutive_failures,
            next_attempt_at: d.next_attempt_at,
            blocked_reason: d.blocked_reason,
            newest_snapshot_id: d.newest_snapshot_id,
            newest_sha256_hash: d.newest_sha256_hash,
        }
    }
}

/// A tenant's devices, by id.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceListResponse {
    /// The devices.
    pub items: Vec<DeviceResponse>,
    /// With `limit`: the `after` of the next page, when there is one.
    pub next_after: Option<String>,
    /// With `limit`: the `before` of the previous page, when there is one.
    pub prev_before: Option<String>,
}

/// `?limit=&after=&before=&status=&q=`: filters and cursor pages of the
/// device list. Without any, every device of the tenant, by id.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeviceListQuery {
    /// Devices per page, 1–200; all when absent.
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// Only devices with ids after this one: the previous page's `next_after`.
    pub after: Option<String>,
    /// Only devices with ids before this one: a page's `prev_before`
    /// (ignored with `after`).
    pub before: Option<String>,
    /// `ok`, `failing` (last backup failed), `blocked` (scheduled retries
    /// stopped) or `never` (no backup succeeded yet).
    pub status: Option<String>,
    /// Case-insensitive text in the device's id, name or host (at most 200
    /// characters).
    pub q: Option<String>,
}

impl DeviceListQuery {
    /// The store query, checked.
    fn to_query(&self) -> Result<DeviceQuery, ApiError> {
        let bad = |detail: String| ApiError::BadRequest {
            code: "bad_query",
            detail,
        };
        let limit = match self.limit {
            None => None,
            Some(n @ 1..=MAX_LIMIT) => Some(n + 1),
            Some(_) => return Err(bad(format!("limit must be between 1 and {MAX_LIMIT}"))),
        };
        let cursor = |c: &Option<String>, what: &'static str| -> Result<Option<String>, ApiError> {
            c.as_deref()
                .map(|c| {
                    DeviceId::parse(c)
                        .map(|d| d.to_string())
                        .map_err(|e| ApiError::bad_id(what, &e))
                })
                .transpose()
        };
        if self.q.as_ref().is_some_and(|q| q.chars().count() > 200) {
            return Err(bad("q must be at most 200 characters".into()));
        }
        Ok(DeviceQuery {
            q: self.q.clone().filter(|q| !q.is_empty()),
            status: self
                .status
                .as_deref()
                .map(str::parse::<DeviceStatus>)
                .transpose()
                .map_err(bad)?,
            order: DeviceOrder::Id,
            after: cursor(&self.after, "after")?,
            before: cursor(&self.before, "before")?,
            limit,
        })
    }
}

/// Lists a tenant's devices with their backup state.
#[utoipa::path(
    get,
    path = "/api/tenants/{tid}/devices",
    tag = "devices",
    params(TenantPath, DeviceListQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The tenant's devices, by id; a page of them with `limit`", body = DeviceListResponse),
        (status = 400, description = "A bad `limit`, `status`, `q` or cursor (`bad_query`, `bad_id`)", body = Problem, content_type = "application/problem+json"),
        TenantRouteErrors,
    )
)]
pub async fn list_devices(
    path: TenantPath,
    caller: Caller,
    query: web::Query<DeviceListQuery>,
    state: web::Data<AppState>,
) -> Result<web::Json<DeviceListResponse>, ApiError> {
    caller.require(&path.tid, Role::Viewer)?;
    let store_query = query.to_query()?;
    let mut devices = state
        .store
        .query_devices(path.tid.as_str(), &store_query)
        .await?;
    let (mut next_after, mut prev_before) = (None, None);
    if let Some(limit) = query.limit {
        let full = devices.len() > limit as usize;
        let backwards = query.after.is_none() && query.before.is_some();
        if backwards {
            if full {
                devices.remove(0);
            }
        } else {
            devices.truncate(limit as usize);
        }
        let (has_prev, has_next) = if backwards {
            (full, true)
        } else {
            (query.after.is_some(), full)
        };
        next_after = has_next
            .then(|| devices.last().map(|d| d.device_id.clone()))
            .flatten();
        prev_before = has_prev
            .then(|| devices.first().map(|d| d.device_id.clone()))
            .flatten();
    }
    Ok(web::Json(DeviceListResponse {
        items: devices.into_iter().map(DeviceResponse::from).collect(),
        next_after,
        prev_before,
    }))
}

/// One device with its backup state.
#[utoipa::path(
    get,
    path = "/api/tenants/{tid}/devices/{did}",
    tag = "devices",
    params(DevicePath),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The device", body = DeviceResponse),
        TenantRouteErrors,
        (status = 404, description = "Unknown device (`device_not_found`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_device(
    path: DevicePath,
    caller: Caller,
    state: web::Data<AppState>,
) -> Result<web::Json<DeviceResponse>, ApiError> {
    caller.require(&path.tid, Role::Viewer)?;
    let device = state
        .store
        .get_device(path.tid.as_str(), path.did.as_str())
        .await?;
    Ok(web::Json(device.into()))
}

/// Forgets a device's pinned SSH host key and lifts a host-key block; the
/// next backup pins the key it sees. Audited as `ssh_host_key_reset`, and
/// announced on the bus so pollers that pin keys in a file forget theirs.
#[utoipa::path(
    post,
    path = "/api/tenants/{tid}/devices/{did}/ssh-host-key/reset",
    tag = "devices",
    params(DevicePath),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Reset"),
        TenantRouteErrors,
        (status = 404, description = "Unknown device (`device_not_found`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn reset_host_key(
    path: DevicePath,
    caller: Caller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require(&path.tid, Role::Admin)?;
    state
        .store
        .reset_host_key(path.tid.as_str(), path.did.as_str(), &caller.sub)
        .await?;
    state
        .announce_hostkey_reset(&path.tid, &path.did, &caller.sub)
        .await;
    Ok(HttpResponse::NoContent().finish())
}
