//! The web UI (DESIGN.md §13): server-rendered pages under `/ui/`, from the
//! same binary and port as the API, and `/` redirecting there.
//!
//! Handlers build a view model and render an askama template from
//! `templates/` (compile-time checked, escaping by default); assets are
//! embedded ([`asset`]). Every page authenticates with the API's own
//! [`Caller`](crate::api::Caller) (session cookie, CSRF token in forms) and
//! checks roles with `Caller::require`, and reads through the same store and
//! bus functions with the same masking of secrets, so a page never shows
//! more than the API gives the same caller. This module depends on
//! `api::{AppState, auth, error}`, `api::trigger::backup_now` and the
//! notification listing's checks for that reason, never on the API's
//! response types.
//!
//! Every UI response carries a strict Content-Security-Policy (no inline
//! script or style), `X-Content-Type-Options`, `Referrer-Policy` and frame
//! denial. Every page works without JavaScript; htmx and `assets/app.js`
//! only enhance.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::{Next, from_fn};
use actix_web::{HttpRequest, HttpResponse, web};

pub mod asset;
mod delivery;
mod device;
mod diff;
mod diffview;
mod feed;
mod fleet;
mod page;
mod search;
mod signin;
mod time;
mod version;

pub use page::UiError;

/// The Content-Security-Policy of every UI response: own scripts, styles,
/// images and form targets only; no inline code, no framing, no plugins.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// Adds the UI's routes to an actix app: `/` and everything under `/ui`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    const DEVICE: &str = "/t/{tid}/devices/{did}";
    cfg.route("/", web::get().to(root)).service(
        web::scope("/ui")
            .wrap(from_fn(security_headers))
            .app_data(web::QueryConfig::default().error_handler(|e, _| bad_input(e.to_string())))
            .app_data(web::FormConfig::default().error_handler(|e, _| bad_input(e.to_string())))
            .route("", web::get().to(home))
            .route("/", web::get().to(home))
            .route("/assets/{name}", web::get().to(asset::serve))
            .route("/login", web::get().to(signin::login_form))
            .route("/login", web::post().to(signin::login))
            .route("/logout", web::post().to(signin::logout))
            .route("/theme", web::post().to(signin::set_theme))
            .route("/account", web::get().to(signin::account))
            .route("/account/password", web::post().to(signin::change_password))
            .route("/account/sessions/end", web::post().to(signin::end_session))
            .route("/tenant", web::get().to(signin::switch_tenant))
            .route("/t/{tid}/devices", web::get().to(fleet::fleet))
            .route(DEVICE, web::get().to(device::device))
            .route(&format!("{DEVICE}/backup"), web::post().to(device::backup))
            .route(
                &format!("{DEVICE}/reset-host-key"),
                web::post().to(device::reset_host_key),
            )
            .route(
                &format!("{DEVICE}/snapshots/{{sid}}"),
                web::get().to(version::version),
            )
            .route(&format!("{DEVICE}/diff"), web::get().to(diff::diff))
            .route("/t/{tid}/changes", web::get().to(feed::changes))
            .route("/t/{tid}/search", web::get().to(search::search))
            .route("/t/{tid}/audit", web::get().to(feed::audit))
            .route(
                "/t/{tid}/notifications",
                web::get().to(delivery::deliveries),
            )
            .route(
                "/t/{tid}/notifications/{nid}/redeliver",
                web::post().to(delivery::redeliver),
            )
            .default_service(web::to(not_found)),
    );
}

/// `/` → `/ui/`.
async fn root() -> HttpResponse {
    page::see_other("/ui/")
}

/// `/ui/`: the fleet of the caller's tenant (the first tenant for a
/// `super_admin`), or the sign-in form.
async fn home(
    req: HttpRequest,
    state: web::Data<crate::api::AppState>,
) -> Result<HttpResponse, UiError> {
    let caller = page::signed_in(&req).await?;
    let tenant = match caller.tenant_id {
        Some(t) => Some(t.to_string()),
        None => state
            .fleet
            .borrow()
            .tenants
            .first()
            .map(|t| t.id.to_string()),
    };
    Ok(match tenant {
        Some(t) => page::see_other(&format!("/ui/t/{t}/devices")),
        None => page::see_other("/ui/account"),
    })
}

async fn not_found() -> HttpResponse {
    page::error_page(
        actix_web::http::StatusCode::NOT_FOUND,
        "no such page".into(),
    )
}

fn bad_input(detail: String) -> actix_web::Error {
    let response = page::error_page(actix_web::http::StatusCode::BAD_REQUEST, detail);
    actix_web::error::InternalError::from_response("bad input", response).into()
}

/// Adds the security headers to every UI response, error pages included.
async fn security_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let mut res = next.call(req).await?;
    let headers = res.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    Ok(res)
}
