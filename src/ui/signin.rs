//! Sign-in, sign-out, the theme switch, the account page (own password and
//! sessions) and the `super_admin`'s tenant switch. Sign-in and sessions go
//! through `api::auth::login`, the functions the JSON API uses.

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::page::{self, Chrome, THEME_COOKIE, UiError, render_status, see_other};
use super::time::Stamp;
use crate::api::auth::{login, session};
use crate::api::error::ApiError;
use crate::api::{AppState, Role};

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    chrome: Chrome,
    username: String,
    message: Option<String>,
}

/// `GET /ui/login`.
pub async fn login_form(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, UiError> {
    let page = LoginPage {
        chrome: Chrome::new(&req, &state, None, None, "Sign in"),
        username: String::new(),
        message: None,
    };
    render_status(&page, StatusCode::OK)
}

/// The sign-in form's fields.
#[derive(Deserialize)]
pub struct LoginForm {
    username: String,
    password: String,
}

/// `POST /ui/login`: signs in and goes to `/ui/`, or shows the form again
/// with one message for every wrong name or password.
pub async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<LoginForm>,
) -> Result<HttpResponse, UiError> {
    if !session::same_origin(&req) {
        return Err(UiError::Api(ApiError::CsrfFailed(
            "request from another origin",
        )));
    }
    let LoginForm { username, password } = form.into_inner();
    let address = req.peer_addr().map(|a| a.ip());
    let (status, message) = match login::sign_in(&state, address, &username, password).await {
        Ok(opened) => {
            return Ok(HttpResponse::SeeOther()
                .cookie(state.sessions.cookie(opened.secret))
                .insert_header((actix_web::http::header::LOCATION, "/ui/"))
                .finish());
        }
        Err(e @ (ApiError::InvalidCredentials | ApiError::SignInRateLimited { .. })) => {
            (actix_web::ResponseError::status_code(&e), e.to_string())
        }
        Err(e) => return Err(e.into()),
    };
    let page = LoginPage {
        chrome: Chrome::new(&req, &state, None, None, "Sign in"),
        username,
        message: Some(message),
    };
    render_status(&page, status)
}

/// A form carrying only the CSRF token.
#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf_token: String,
}

/// `POST /ui/logout`: ends the session, forgets the cookie.
pub async fn logout(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, UiError> {
    let caller = page::signed_in_form(&req, &form.csrf_token).await?;
    login::sign_out(&state, &caller).await?;
    Ok(HttpResponse::SeeOther()
        .cookie(state.sessions.removal())
        .insert_header((actix_web::http::header::LOCATION, "/ui/login"))
        .finish())
}

/// The theme form.
#[derive(Deserialize)]
pub struct ThemeForm {
    theme: String,
    #[serde(default)]
    back: String,
}

/// `POST /ui/theme`: remembers `light`, `dark` or `system` in a cookie and
/// goes back to the page (the form's `back`, set by script, or the
/// same-origin `Referer`; a path under `/ui/` only).
pub async fn set_theme(req: HttpRequest, form: web::Form<ThemeForm>) -> HttpResponse {
    let referer = req
        .headers()
        .get(actix_web::http::header::REFERER)
        .and_then(|v| v.to_str().ok())
        .filter(|_| session::same_origin(&req))
        .and_then(|r| r.find("/ui/").map(|i| r[i..].to_owned()))
        .unwrap_or_default();
    let back = [form.back.as_str(), referer.as_str()]
        .into_iter()
        .find(|b| b.starts_with("/ui/") && !b.contains("//") && !b.contains('\\'))
        .unwrap_or("/ui/");
    let mut cookie = Cookie::build(THEME_COOKIE, form.theme.clone())
        .path("/ui")
        .same_site(SameSite::Strict)
        .http_only(true)
        .max_age(actix_web::cookie::time::Duration::days(365))
        .finish();
    if !matches!(form.theme.as_str(), "light" | "dark") {
        cookie.make_removal();
    }
    HttpResponse::SeeOther()
        .cookie(cookie)
        .insert_header((actix_web::http::header::LOCATION, back))
        .finish()
}

/// A session as the account page lists it.
struct SessionRow {
    id: String,
    current: bool,
    created: Stamp,
    last_seen: Stamp,
    expires: Stamp,
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    chrome: Chrome,
    sessions: Vec<SessionRow>,
    message: Option<String>,
}

/// `?done=` after a change on the account page.
#[derive(Deserialize)]
pub struct AccountQuery {
    done: Option<String>,
}

/// `GET /ui/account`: change the password, see and end own sessions.
pub async fn account(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<AccountQuery>,
) -> Result<HttpResponse, UiError> {
    let caller = page::signed_in(&req).await?;
    account_page(
        &req,
        &state,
        &caller,
        query.done.as_deref().map(done_message),
        StatusCode::OK,
    )
    .await
}

fn done_message(done: &str) -> String {
    match done {
        "ended" => "The session ended.".into(),
        _ => "Done.".into(),
    }
}

async fn account_page(
    req: &HttpRequest,
    state: &AppState,
    caller: &crate::api::Caller,
    message: Option<String>,
    status: StatusCode,
) -> Result<HttpResponse, UiError> {
    let sessions = login::own_sessions(state, caller).await?;
    let now = chrono::Utc::now();
    let page = AccountPage {
        chrome: Chrome::new(req, state, Some(caller), None, "Account").section("account"),
        sessions: sessions
            .into_iter()
            .map(|s| SessionRow {
                current: caller.sid.as_deref() == Some(s.session_id.as_str()),
                id: s.session_id,
                created: Stamp::new(s.created_at, now),
                last_seen: Stamp::new(s.last_seen_at, now),
                expires: Stamp::new(s.expires_at, now),
            })
            .collect(),
        message,
    };
    render_status(&page, status)
}

/// The password form.
#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    csrf_token: String,
    current_password: String,
    new_password: String,
    confirm_password: String,
}

/// `POST /ui/account/password`: a new password ends every session of the
/// account, this one included, so the user signs in again.
pub async fn change_password(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<PasswordForm>,
) -> Result<HttpResponse, UiError> {
    let caller = page::signed_in_form(&req, &form.csrf_token).await?;
    let form = form.into_inner();
    if form.new_password != form.confirm_password {
        let message = Some("The new passwords do not match.".to_owned());
        return account_page(&req, &state, &caller, message, StatusCode::BAD_REQUEST).await;
    }
    match login::change_own_password(&state, &caller, form.current_password, form.new_password)
        .await
    {
        Ok(()) => Ok(HttpResponse::SeeOther()
            .cookie(state.sessions.removal())
            .insert_header((actix_web::http::header::LOCATION, "/ui/login"))
            .finish()),
        Err(e @ (ApiError::InvalidCredentials | ApiError::BadRequest { .. })) => {
            let message = match e {
                ApiError::InvalidCredentials => "The current password is wrong.".to_owned(),
                other => other.to_string(),
            };
            account_page(
                &req,
                &state,
                &caller,
                Some(message),
                StatusCode::BAD_REQUEST,
            )
            .await
        }
        Err(e) => Err(e.into()),
    }
}

/// The end-session form.
#[derive(Deserialize)]
pub struct EndSessionForm {
    #[serde(default)]
    csrf_token: String,
    session_id: String,
}

/// `POST /ui/account/sessions/end`: ends one of the user's own sessions
/// (ending the current one signs out).
pub async fn end_session(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<EndSessionForm>,
) -> Result<HttpResponse, UiError> {
    let caller = page::signed_in_form(&req, &form.csrf_token).await?;
    if !login::end_own_session(&state, &caller, &form.session_id).await? {
        return Err(UiError::Api(ApiError::RouteNotFound));
    }
    if caller.sid.as_deref() == Some(form.session_id.as_str()) {
        return Ok(HttpResponse::SeeOther()
            .cookie(state.sessions.removal())
            .insert_header((actix_web::http::header::LOCATION, "/ui/login"))
            .finish());
    }
    Ok(see_other("/ui/account?done=ended"))
}

/// `?tenant=` of the tenant switch.
#[derive(Deserialize)]
pub struct TenantQuery {
    tenant: String,
}

/// `GET /ui/tenant?tenant=`: a `super_admin` opens another tenant's fleet.
pub async fn switch_tenant(
    req: HttpRequest,
    query: web::Query<TenantQuery>,
) -> Result<HttpResponse, UiError> {
    let caller = page::signed_in(&req).await?;
    let tenant = page::tenant_id(&query.tenant)?;
    caller.require(&tenant, Role::Viewer)?;
    Ok(see_other(&format!("/ui/t/{tenant}/devices")))
}
