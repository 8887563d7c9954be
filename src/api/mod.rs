//! The HTTP API (DESIGN.md §4): [`AppState`], the route table and the
//! middleware, served by actix-web on a listener the caller binds.
//!
//! Middleware, outermost first: request spans ([`TracingLogger`], which
//! records no headers, so tokens never reach the log), HTTP metrics keyed by
//! route pattern, the header and request body limits. Every error, extractor failures
//! and unknown routes included, is an `application/problem+json` document
//! built by [`error::ApiError`]. Handlers live in `devices`, `history`,
//! `trigger`, `ops`, `signin` (sign-in sessions) and `user` (a tenant's
//! accounts); authentication in `auth`; id extractors in `path`.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Server, ServiceRequest, ServiceResponse};
use actix_web::middleware::{Next, from_fn};
use actix_web::{App, HttpServer, Resource, http::header, web};
use tokio::sync::watch;
use tokio_util::task::TaskTracker;
use tracing_actix_web::TracingLogger;

use crate::bus::{Bus, HostKeyReset};
use crate::config::{Fleet, Settings};
use crate::id::{DeviceId, TenantId};
use crate::lock::Locker;
use crate::metrics::Metrics;
use crate::search::Searcher;
use crate::store::Store;

pub mod account;
pub mod audit;
pub mod auth;
pub mod devices;
pub mod error;
pub mod history;
pub mod notifications;
pub mod ops;
pub mod path;
pub mod problem;
pub mod search;
pub mod secrets;
pub mod semantic;
pub mod signin;
pub mod trigger;
pub mod user;

pub use auth::{AuthConfig, AuthConfigError, Caller, LoginLimiter, Role, SessionPolicy, jwt};
pub use error::ApiError;
pub use trigger::TriggerLimiter;

/// Largest request body accepted, in bytes. No route takes a large body.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Largest total size of a request's header names and values, in bytes.
/// The HTTP layer itself accepts heads up to 128 KiB; no client of this API
/// needs more than a token (a few KiB), so larger heads are refused early.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// What every handler shares; cheap to clone (handles and `Arc`s).
#[derive(Clone)]
pub struct AppState {
    /// Snapshots, devices, audit.
    pub store: Store,
    /// Searches over the store (`[search]`).
    pub searcher: Searcher,
    /// Device locks (probed by `/readyz`).
    pub locker: Locker,
    /// Trigger requests and host-key-reset notices; `None` on a node
    /// without a bus (triggers then answer `503 no_responder`).
    pub bus: Option<Bus>,
    /// The configured fleet; updated on reload (device names, trigger checks).
    pub fleet: watch::Receiver<Arc<Fleet>>,
    /// Token verification.
    pub auth: Arc<AuthConfig>,
    /// Per-caller trigger rate limit; call [`TriggerLimiter::prune`] periodically.
    pub limiter: TriggerLimiter,
    /// Sign-in attempt limits; call [`LoginLimiter::prune`] periodically.
    pub login_limiter: LoginLimiter,
    /// Session timeouts and the cookie's attributes.
    pub sessions: SessionPolicy,
    /// The lowest role that sees configurations with their secrets.
    pub reveal_role: Role,
    /// Metrics registry.
    pub metrics: Metrics,
    /// How long a trigger waits for the responder (`bus.trigger_timeout`).
    pub trigger_timeout: Duration,
    /// How long in-flight requests may finish on shutdown (`server.shutdown_timeout`).
    pub shutdown_timeout: Duration,
    /// Writes a handler leaves running after it answered (the manual-trigger
    /// audit row); the node waits for them before it closes the store.
    pub background: TaskTracker,
    /// The runtime those writes run on. Handlers run on actix's per-worker
    /// runtimes, which drop their tasks when the server stops, so a write
    /// spawned there could be lost at shutdown; `None` spawns on the caller's.
    pub background_runtime: Option<tokio::runtime::Handle>,
    /// How long a successful manual backup's answer waits for its snapshot
    /// to be listed ([`Store::wait_until_listed`]); `None` answers at once.
    /// Set on a node that also ingests.
    pub listed_wait: Option<Duration>,
}

impl AppState {
    /// Assembles the state; the rate limit and timeouts come from `settings`.
    pub fn new(
        settings: &Settings,
        store: Store,
        locker: Locker,
        bus: Option<Bus>,
        fleet: watch::Receiver<Arc<Fleet>>,
        auth: AuthConfig,
        metrics: Metrics,
    ) -> Self {
        Self {
            searcher: Searcher::new(store.clone(), &settings.search),
            store,
            locker,
            bus,
            fleet,
            auth: Arc::new(auth),
            limiter: TriggerLimiter::new(settings.auth.trigger_rate_per_minute),
            login_limiter: LoginLimiter::new(&settings.auth),
            sessions: SessionPolicy::from_settings(settings),
            reveal_role: settings.auth.reveal_secrets_role,
            metrics,
            trigger_timeout: settings.bus.trigger_timeout,
            shutdown_timeout: settings.server.shutdown_timeout,
            background: TaskTracker::new(),
            background_runtime: None,
            listed_wait: None,
        }
    }

    /// Lets a successful manual backup's answer wait up to `bound` for its
    /// snapshot to be listed, so the history read next shows it.
    #[must_use]
    pub fn with_listed_wait(mut self, bound: Duration) -> Self {
        self.listed_wait = Some(bound);
        self
    }

    /// Tracks the handlers' background writes in `tracker` (the node's
    /// consumer stage, stopped after the HTTP server and before the store)
    /// and runs them on `runtime`, which outlives the HTTP workers.
    #[must_use]
    pub fn with_background(
        mut self,
        tracker: TaskTracker,
        runtime: tokio::runtime::Handle,
    ) -> Self {
        self.background = tracker;
        self.background_runtime = Some(runtime);
        self
    }

    /// Runs `task` after the handler answered; shutdown waits for it.
    pub fn spawn_background<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        match &self.background_runtime {
            Some(runtime) => self.background.spawn_on(task, runtime),
            None => self.background.spawn(task),
        };
    }

    /// The configured display name of a device, or its id when the device
    /// is no longer configured (its history outlives it).
    pub fn device_name(&self, device: &DeviceId) -> String {
        self.fleet
            .borrow()
            .device(device.as_str())
            .map_or_else(|| device.to_string(), |d| d.name.clone())
    }

    /// Checks that `device` is configured and belongs to `tenant`.
    ///
    /// # Errors
    /// [`ApiError::DeviceNotFound`] otherwise (another tenant's device looks
    /// the same as an unknown one).
    pub fn configured_device(&self, tenant: &TenantId, device: &DeviceId) -> Result<(), ApiError> {
        match self.fleet.borrow().device(device.as_str()) {
            Some(d) if &d.tenant == tenant => Ok(()),
            _ => Err(ApiError::DeviceNotFound),
        }
    }

    /// Tells pollers that pin host keys in a file to forget `device`'s key
    /// (best effort: the store's reset already happened; a failure is
    /// logged at `warn`).
    pub async fn announce_hostkey_reset(&self, tenant: &TenantId, device: &DeviceId, actor: &str) {
        let Some(bus) = &self.bus else { return };
        let notice = HostKeyReset {
            device_id: device.clone(),
            tenant_id: tenant.clone(),
            actor: Some(actor.to_owned()),
            at: chrono::Utc::now(),
        };
        if let Err(e) = bus.publish_hostkey_reset(&notice).await {
            tracing::warn!(error.message = %e, error.cause_chain = ?e, device_id = %device, "announcing a host-key reset failed");
        }
    }

    /// `/readyz`'s bus probe: `absent` on a node without a bus.
    async fn ping_bus(&self) -> &'static str {
        match &self.bus {
            Some(bus) => ops::probe(bus.ping()).await,
            None => "absent",
        }
    }
}

/// Builds the HTTP server on `listener` (bind port 0 in tests and read the
/// port from the listener), with the API's routes and the ones `pages` adds
/// (the web UI, which `app` hands in: the API does not know it). It does
/// not handle signals: the caller stops it through the returned server's
/// handle. Spawn it with `tokio::spawn`.
///
/// # Errors
/// When actix cannot take over the listener.
pub fn build_server(
    state: AppState,
    listener: TcpListener,
    pages: fn(&mut web::ServiceConfig),
) -> std::io::Result<Server> {
    let shutdown_timeout = state.shutdown_timeout.as_secs().max(1);
    let data = web::Data::new(state);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
            .app_data(
                web::JsonConfig::default()
                    .limit(MAX_BODY_BYTES)
                    .error_handler(|e, _| ApiError::from(e).into()),
            )
            .app_data(web::PathConfig::default().error_handler(|e, _| ApiError::from(e).into()))
            .app_data(web::QueryConfig::default().error_handler(|e, _| ApiError::from(e).into()))
            .wrap(from_fn(limit_body))
            .wrap(from_fn(limit_headers))
            .wrap(from_fn(record_metrics))
            .wrap(TracingLogger::default())
            .configure(routes)
            .configure(pages)
            .default_service(web::to(not_found))
    })
    .disable_signals()
    // actix leaves Nagle on: a response written in two segments would wait
    // for the client's delayed ACK.
    .tcp_nodelay(true)
    .shutdown_timeout(shutdown_timeout)
    .listen(listener)?
    .run();
    Ok(server)
}

/// The route table.
fn routes(cfg: &mut web::ServiceConfig) {
    const DEVICE: &str = "/api/tenants/{tid}/devices/{did}";
    const SNAPSHOT: &str = "/api/tenants/{tid}/devices/{did}/config-snapshots/{sid}";
    cfg.service(resource("/healthz", "GET").get(ops::healthz))
        .service(resource("/readyz", "GET").get(ops::readyz))
        .service(resource("/metrics", "GET").get(ops::metrics))
        .service(resource("/api/openapi.json", "GET").get(ops::openapi))
        .service(resource("/api/tenants/{tid}/devices", "GET").get(devices::list_devices))
        .service(resource(DEVICE, "GET").get(devices::get_device))
        .service(
            resource(&format!("{DEVICE}/ssh-host-key/reset"), "POST").post(devices::reset_host_key),
        )
        .service(
            resource(&format!("{DEVICE}/config-snapshots"), "GET").get(history::list_snapshots),
        )
        .service(resource(SNAPSHOT, "GET").get(history::get_snapshot))
        .service(resource(&format!("{SNAPSHOT}/content"), "GET").get(history::snapshot_content))
        .service(resource(&format!("{SNAPSHOT}/download"), "GET").get(history::download_snapshot))
        .service(resource(&format!("{SNAPSHOT}/diff"), "GET").get(history::snapshot_diff))
        .service(resource(&format!("{DEVICE}/config-history"), "GET").get(history::config_history))
        .service(
            resource(&format!("{DEVICE}/config-snapshot/trigger"), "POST")
                .post(trigger::trigger_backup),
        )
        .service(resource("/api/tenants/{tid}/audit-events", "GET").get(audit::list_audit_events))
        .service(resource("/api/tenants/{tid}/search", "GET").get(search::search))
        .service(
            resource("/api/tenants/{tid}/notifications", "GET")
                .get(notifications::list_notifications),
        )
        .service(
            resource("/api/tenants/{tid}/notifications/{nid}/redeliver", "POST")
                .post(notifications::redeliver_notification),
        )
        .service(resource("/api/auth/login", "POST").post(signin::login))
        .service(resource("/api/auth/logout", "POST").post(signin::logout))
        .service(resource("/api/auth/me", "GET").get(signin::me))
        .service(resource("/api/auth/sessions", "GET").get(account::list_sessions))
        .service(resource("/api/auth/sessions/{sid}", "DELETE").delete(account::end_session))
        .service(resource("/api/auth/password", "POST").post(account::change_password))
        .service(
            resource("/api/tenants/{tid}/users", "GET, POST")
                .get(user::list_users)
                .post(user::create_user),
        )
        .service(
            resource("/api/tenants/{tid}/users/{username}", "PATCH, DELETE")
                .patch(user::update_user)
                .delete(user::delete_user),
        );
}

/// A resource whose unsupported methods answer `405` as a problem document
/// with `Allow: {allow}`: the methods chained onto it, which the caller
/// names (a test checks them against the OpenAPI document).
fn resource(path: &str, allow: &'static str) -> Resource {
    web::resource(path).default_service(web::to(move || method_not_allowed(allow)))
}

async fn not_found() -> Result<&'static str, ApiError> {
    Err(ApiError::RouteNotFound)
}

async fn method_not_allowed(allow: &'static str) -> Result<&'static str, ApiError> {
    Err(ApiError::MethodNotAllowed { allow })
}

/// Refuses bodies announced larger than [`MAX_BODY_BYTES`] before any
/// handler runs (`413`); bodies without a length are capped by the
/// extractors' limits.
async fn limit_body(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        let error = ApiError::PayloadTooLarge {
            limit: MAX_BODY_BYTES,
        };
        return Ok(req.error_response(error).map_into_right_body());
    }
    Ok(next.call(req).await?.map_into_left_body())
}

/// Refuses requests whose headers together exceed [`MAX_HEADER_BYTES`]
/// (`431`) before authentication or any handler runs.
async fn limit_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let total: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if total > MAX_HEADER_BYTES {
        let error = ApiError::HeadersTooLarge {
            limit: MAX_HEADER_BYTES,
        };
        return Ok(req.error_response(error).map_into_right_body());
    }
    Ok(next.call(req).await?.map_into_left_body())
}

/// Counts each request by method, route pattern (never the raw path, so ids
/// don't become labels) and status.
async fn record_metrics(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let metrics = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.metrics.clone());
    let route = req.match_pattern().unwrap_or_else(|| "unmatched".into());
    let method = method_label(req.method());
    let result = next.call(req).await;
    if let Some(metrics) = metrics {
        let status = match &result {
            Ok(res) => res.status(),
            Err(e) => e.as_response_error().status_code(),
        };
        metrics.http_request(method, &route, status.as_u16());
    }
    result
}

/// The method as a label from a closed set.
fn method_label(method: &actix_web::http::Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}
