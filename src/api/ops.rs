//! Unauthenticated operational endpoints: liveness (`/healthz`), readiness
//! (`/readyz`: store, lock backend and bus answer), Prometheus metrics
//! (`/metrics`) and the OpenAPI document (`/api/openapi.json`), generated
//! from the handlers' `#[utoipa::path]` annotations by [`ApiDoc`].

use std::collections::BTreeMap;
use std::time::Duration;

use actix_web::{HttpResponse, web};
use serde::Serialize;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use super::AppState;
use super::error::{ApiError, Problem};
use super::{account, audit, devices, history, notifications, search, signin, trigger, user};

/// How long each readiness probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// `/healthz` and `/readyz` bodies.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthResponse {
    /// `ok`.
    pub status: &'static str,
    /// `/readyz` only: each dependency and `ok` (or `absent` for a bus this
    /// node does not use).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub checks: BTreeMap<&'static str, &'static str>,
}

/// Liveness: the process serves HTTP.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "ops",
    responses((status = 200, description = "Alive", body = HealthResponse))
)]
pub async fn healthz() -> web::Json<HealthResponse> {
    web::Json(HealthResponse {
        status: "ok",
        checks: BTreeMap::new(),
    })
}

/// Readiness: the store, the lock backend and (when this node has one) the
/// bus answer within 2 s each.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "ops",
    responses(
        (status = 200, description = "Every dependency answers", body = HealthResponse),
        (status = 503, description = "`not_ready`; `failed` lists the dependencies that did not answer", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn readyz(state: web::Data<AppState>) -> Result<web::Json<HealthResponse>, ApiError> {
    let (store, lock, bus) = tokio::join!(
        probe(state.store.ping()),
        probe(state.locker.ping()),
        state.ping_bus(),
    );
    let checks = BTreeMap::from([("store", store), ("lock", lock), ("bus", bus)]);
    let failed: Vec<&'static str> = checks
        .iter()
        .filter(|(_, v)| **v == "unavailable")
        .map(|(k, _)| *k)
        .collect();
    if !failed.is_empty() {
        return Err(ApiError::NotReady(failed));
    }
    Ok(web::Json(HealthResponse {
        status: "ok",
        checks,
    }))
}

/// `ok` when `check` succeeds within [`PROBE_TIMEOUT`], else `unavailable`.
pub(super) async fn probe<E>(check: impl Future<Output = Result<(), E>>) -> &'static str {
    match tokio::time::timeout(PROBE_TIMEOUT, check).await {
        Ok(Ok(())) => "ok",
        _ => "unavailable",
    }
}

/// Every metric in the Prometheus (OpenMetrics) text format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "ops",
    responses((status = 200, description = "Prometheus text exposition", body = String,
        content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8"))
)]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(state.metrics.encode())
}

/// This API's OpenAPI 3 document.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "ops",
    responses((status = 200, description = "OpenAPI 3 document", body = Object))
)]
pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(ApiDoc::openapi().to_json().unwrap_or_else(|_| "{}".into()))
}

/// The OpenAPI document of every route.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "cfgsnap",
        description = "Versioned, encrypted snapshots of MikroTik RouterOS configurations. Errors are RFC 9457 `application/problem+json` with a stable `code`."
    ),
    paths(
        healthz,
        readyz,
        metrics,
        openapi,
        devices::list_devices,
        devices::get_device,
        devices::reset_host_key,
        history::list_snapshots,
        history::get_snapshot,
        history::snapshot_content,
        history::download_snapshot,
        history::snapshot_diff,
        history::config_history,
        audit::list_audit_events,
        search::search,
        notifications::list_notifications,
        notifications::redeliver_notification,
        trigger::trigger_backup,
        signin::login,
        signin::logout,
        signin::me,
        account::list_sessions,
        account::end_session,
        account::change_password,
        user::list_users,
        user::create_user,
        user::update_user,
        user::delete_user,
    ),
    components(schemas(Problem)),
    modifiers(&BearerAuth),
    tags(
        (name = "devices", description = "Devices and their backup state"),
        (name = "history", description = "Snapshots, contents, diffs and the change timeline"),
        (name = "audit", description = "The audit log"),
        (name = "search", description = "Search across configurations and their history"),
        (name = "trigger", description = "Manual backups"),
        (name = "auth", description = "Sign-in sessions"),
        (name = "users", description = "A tenant's local accounts"),
        (name = "ops", description = "Health, readiness, metrics, this document"),
    )
)]
pub struct ApiDoc;

/// Declares the `bearer` (JWT) security scheme the routes refer to.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let mut scheme = Http::new(HttpAuthScheme::Bearer);
        scheme.bearer_format = Some("JWT".into());
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}
