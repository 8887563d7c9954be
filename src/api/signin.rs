//! Sign-in (DESIGN.md §11): `POST /api/auth/login` checks a user name and
//! password and opens a session (an access token carrying its `sid`, and
//! the session cookie), `POST /api/auth/logout` ends it, `GET /api/auth/me`
//! says who the caller is. An unknown user, a wrong password and a disabled
//! account get the same answer after the same work; attempts are limited
//! per user name and address and audited, never with the password.

use std::net::IpAddr;

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::auth::{Caller, login};
use super::error::{ApiError, Problem};
use crate::account::Role;
use crate::store::account::Account;
use crate::store::session::SessionKey;

/// `POST /api/auth/login` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// The user name.
    pub username: String,
    /// The password.
    pub password: String,
}

/// Who a signed-in user is.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserInfo {
    /// The user name (or a token's `sub`).
    pub username: String,
    /// The tenant; `null` for a `super_admin` account.
    pub tenant_id: Option<String>,
    /// The role.
    #[schema(value_type = String, example = "operator")]
    pub role: Role,
}

/// `200` body of a sign-in.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    /// A JWT for `Authorization: Bearer`, valid while the session is open.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// The token cookie-authenticated changes send in `X-CSRF-Token`.
    pub csrf_token: String,
    /// Who signed in.
    pub user: UserInfo,
}

/// `GET /api/auth/me` body.
#[derive(Debug, Serialize, ToSchema)]
pub struct MeResponse {
    /// Who the caller is.
    pub user: UserInfo,
    /// The sign-in session, when the caller signed in here (not for an
    /// outside token).
    pub session_id: Option<String>,
    /// When that session ends at the latest.
    pub session_expires_at: Option<DateTime<Utc>>,
    /// The CSRF token, for a caller authenticated by the session cookie.
    pub csrf_token: Option<String>,
}

/// Signs in with a user name and password.
#[utoipa::path(
    post,
    path = "/api/auth/login",
    tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in; sets the `cfgsnap_session` cookie", body = LoginResponse),
        (status = 400, description = "Malformed body (`bad_body`)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Unknown user, wrong password or disabled account (`invalid_credentials`)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many attempts for the name or address (`rate_limited`); see `Retry-After`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "No HS256 secret to sign tokens with (`sign_in_unavailable`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let LoginRequest { username, password } = body.into_inner();
    let address: Option<IpAddr> = req.peer_addr().map(|a| a.ip());
    if !state.auth.can_mint() {
        return Err(ApiError::SignInUnavailable);
    }
    let opened = login::sign_in(&state, address, &username, password).await?;
    let policy = &state.sessions;
    let ttl = policy.token_ttl.min(policy.absolute);
    let account = &opened.account;
    let access_token = state
        .auth
        .mint_session_token(
            &account.username,
            account.tenant_id.as_deref(),
            account.role,
            &opened.session_id,
            ttl,
        )
        .map_err(|e| ApiError::Unexpected(anyhow::Error::new(e).context("minting a token")))?;
    let response = LoginResponse {
        access_token,
        token_type: "Bearer",
        expires_in: ttl.as_secs(),
        csrf_token: opened.csrf_token,
        user: user_info(account),
    };
    Ok(HttpResponse::Ok()
        .cookie(state.sessions.cookie(opened.secret))
        .json(response))
}

fn user_info(account: &Account) -> UserInfo {
    UserInfo {
        username: account.username.clone(),
        tenant_id: account.tenant_id.clone(),
        role: account.role,
    }
}

/// Ends the caller's session and clears the cookie.
#[utoipa::path(
    post,
    path = "/api/auth/logout",
    tag = "auth",
    responses(
        (status = 204, description = "The session ended (or there was none); the cookie is cleared"),
        (status = 401, description = "No valid token or session", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Cookie without the CSRF token, or from another origin (`csrf_failed`)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn logout(caller: Caller, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    login::sign_out(&state, &caller).await?;
    Ok(HttpResponse::NoContent()
        .cookie(state.sessions.removal())
        .finish())
}

/// Who the caller is, and its session.
#[utoipa::path(
    get,
    path = "/api/auth/me",
    tag = "auth",
    responses(
        (status = 200, description = "The caller", body = MeResponse),
        (status = 401, description = "No valid token or session", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn me(
    caller: Caller,
    state: web::Data<AppState>,
) -> Result<web::Json<MeResponse>, ApiError> {
    let session = match &caller.sid {
        Some(sid) => {
            state
                .store
                .open_session(SessionKey::Id(sid), state.sessions.idle)
                .await?
        }
        None => None,
    };
    Ok(web::Json(MeResponse {
        user: UserInfo {
            username: caller.sub.clone(),
            tenant_id: caller.tenant_id.as_ref().map(ToString::to_string),
            role: caller.role,
        },
        session_id: caller.sid.clone(),
        session_expires_at: session.as_ref().map(|s| s.session.expires_at),
        csrf_token: session.filter(|_| caller.via_cookie).map(|s| s.csrf_token),
    }))
}
