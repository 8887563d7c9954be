//! What every page shares: the [`Chrome`] around it (who is signed in, the
//! tenant, navigation, theme, the CSRF token for its forms, asset URLs),
//! [`render`] of an askama template into a response, the signed-in caller
//! ([`signed_in`], the API's own authentication), and [`UiError`], which
//! turns every failure into an HTML error page (or a redirect to sign in).

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use askama::Template;

use super::asset;
use crate::api::error::ApiError;
use crate::api::{AppState, Caller, Role};
use crate::id::TenantId;

/// The theme cookie: `light`, `dark`, or absent to follow the system.
pub const THEME_COOKIE: &str = "cfgsnap_theme";

/// The frame of a page.
pub struct Chrome {
    /// The `<title>`, before " · cfgsnap".
    pub title: String,
    /// The signed-in user, if any.
    pub user: Option<String>,
    /// The user's role name.
    pub role: &'static str,
    /// The tenant the page is about (navigation links use it).
    pub tenant: Option<String>,
    /// Whether the user may see the audit log and deliveries of the tenant.
    pub admin: bool,
    /// Tenants a `super_admin` may switch to (empty for everyone else).
    pub tenants: Vec<String>,
    /// Which navigation entry is current: `fleet`, `changes`, `audit`,
    /// `notifications`, `account`.
    pub section: &'static str,
    /// The session's CSRF token for the page's forms.
    pub csrf: String,
    /// `light`, `dark` or empty (follow the system).
    pub theme: String,
    /// The stylesheet's URL (content-hashed).
    pub css: &'static str,
    /// The script's URL (content-hashed).
    pub js: &'static str,
    /// htmx's URL (content-hashed).
    pub htmx: &'static str,
}

impl Chrome {
    /// The frame for a signed-in `caller` looking at `tenant`.
    pub fn new(
        req: &HttpRequest,
        state: &AppState,
        caller: Option<&Caller>,
        tenant: Option<&TenantId>,
        title: impl Into<String>,
    ) -> Chrome {
        let tenants = match caller {
            Some(c) if c.role == Role::SuperAdmin => state
                .fleet
                .borrow()
                .tenants
                .iter()
                .map(|t| t.id.to_string())
                .collect(),
            _ => Vec::new(),
        };
        Chrome {
            title: title.into(),
            user: caller.map(|c| c.sub.clone()),
            role: caller.map_or("", |c| c.role.as_str()),
            tenant: tenant
                .map(ToString::to_string)
                .or_else(|| caller.and_then(|c| c.tenant_id.as_ref().map(ToString::to_string))),
            admin: caller.is_some_and(|c| c.role >= Role::Admin),
            tenants,
            section: "",
            csrf: caller
                .and_then(|c| c.csrf_token.clone())
                .unwrap_or_default(),
            theme: theme(req),
            css: asset::CSS.url(),
            js: asset::JS.url(),
            htmx: asset::HTMX.url(),
        }
    }

    /// The same frame with `section` marked current.
    #[must_use]
    pub fn section(mut self, section: &'static str) -> Chrome {
        self.section = section;
        self
    }
}

/// The theme the cookie asks for (`light`/`dark`), or empty.
fn theme(req: &HttpRequest) -> String {
    match req.cookie(THEME_COOKIE).as_ref().map(|c| c.value()) {
        Some("light") => "light".into(),
        Some("dark") => "dark".into(),
        _ => String::new(),
    }
}

/// Renders `page` as a `200` HTML response.
///
/// # Errors
/// [`UiError`] when rendering fails (a bug in a template).
pub fn render(page: &impl Template) -> Result<HttpResponse, UiError> {
    render_status(page, StatusCode::OK)
}

/// Renders `page` with `status`.
///
/// # Errors
/// As [`render`].
pub fn render_status(page: &impl Template, status: StatusCode) -> Result<HttpResponse, UiError> {
    let body = page.render().map_err(|e| {
        UiError::Api(ApiError::Unexpected(
            anyhow::Error::new(e).context("rendering a page"),
        ))
    })?;
    Ok(HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .body(body))
}

/// A `303 See Other` to `location` (post/redirect/get).
pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}

/// The signed-in caller, authenticated exactly as the API does.
///
/// # Errors
/// [`UiError::SignIn`] without a valid session (the page redirects to the
/// sign-in form), other [`ApiError`]s as error pages.
pub async fn signed_in(req: &HttpRequest) -> Result<Caller, UiError> {
    use actix_web::FromRequest as _;
    Caller::extract(req).await.map_err(UiError::from)
}

/// The caller of a form post, with the form's CSRF token.
///
/// # Errors
/// As [`signed_in`]; a missing or wrong CSRF token is a `403` page.
pub async fn signed_in_form(req: &HttpRequest, csrf: &str) -> Result<Caller, UiError> {
    Caller::from_form(req, csrf).await.map_err(UiError::from)
}

/// A page that failed.
#[derive(Debug, thiserror::Error)]
pub enum UiError {
    /// Not signed in (or the session ended): go to the sign-in form.
    #[error("sign in first")]
    SignIn,
    /// Anything the API would refuse, shown as an error page.
    #[error(transparent)]
    Api(ApiError),
}

impl From<ApiError> for UiError {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::MissingToken | ApiError::InvalidToken(_) => UiError::SignIn,
            other => UiError::Api(other),
        }
    }
}

impl From<crate::store::Error> for UiError {
    fn from(e: crate::store::Error) -> Self {
        UiError::Api(ApiError::from(e))
    }
}

/// An error page.
#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    chrome: Chrome,
    status: u16,
    heading: &'static str,
    detail: String,
}

impl ResponseError for UiError {
    fn status_code(&self) -> StatusCode {
        match self {
            UiError::SignIn => StatusCode::SEE_OTHER,
            UiError::Api(e) => e.status_code(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        let e = match self {
            UiError::SignIn => return see_other("/ui/login"),
            UiError::Api(e) => e,
        };
        let status = e.status_code();
        e.log(status);
        error_page(status, e.detail())
    }
}

/// An HTML error page for `status` with `detail`, without a signed-in frame.
pub fn error_page(status: StatusCode, detail: String) -> HttpResponse {
    let heading = match status.as_u16() {
        400 => "Bad request",
        403 => "Not allowed",
        404 => "Not found",
        405 => "Method not allowed",
        409 => "Conflict",
        429 => "Too many requests",
        500 => "Something went wrong",
        502..=504 => "Unavailable",
        _ => "Error",
    };
    let page = ErrorPage {
        chrome: bare_chrome(heading),
        status: status.as_u16(),
        heading,
        detail,
    };
    match page.render() {
        Ok(body) => HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .body(body),
        Err(_) => HttpResponse::build(status)
            .content_type("text/plain; charset=utf-8")
            .body(heading),
    }
}

/// A frame with nobody signed in and the system theme, for error pages.
pub fn bare_chrome(title: &str) -> Chrome {
    Chrome {
        title: title.to_owned(),
        user: None,
        role: "",
        tenant: None,
        admin: false,
        tenants: Vec::new(),
        section: "",
        csrf: String::new(),
        theme: String::new(),
        css: asset::CSS.url(),
        js: asset::JS.url(),
        htmx: asset::HTMX.url(),
    }
}

/// Parses a tenant id from a path segment.
///
/// # Errors
/// A `400` page.
pub fn tenant_id(s: &str) -> Result<TenantId, UiError> {
    TenantId::parse(s).map_err(|e| UiError::Api(ApiError::bad_id("tenant id", &e)))
}

/// Parses a device id from a path segment.
///
/// # Errors
/// A `400` page.
pub fn device_id(s: &str) -> Result<crate::id::DeviceId, UiError> {
    crate::id::DeviceId::parse(s).map_err(|e| UiError::Api(ApiError::bad_id("device id", &e)))
}

/// Parses a snapshot id.
///
/// # Errors
/// A `400` page.
pub fn snapshot_id(s: &str) -> Result<i64, UiError> {
    crate::api::path::SnapshotId::parse(s)
        .map(|id| id.0)
        .map_err(|reason| {
            UiError::Api(ApiError::BadId {
                what: "snapshot id",
                reason: reason.to_owned(),
            })
        })
}
