//! The caller's own account (DESIGN.md §11): `GET /api/auth/sessions` lists
//! its open sessions, `DELETE /api/auth/sessions/{sid}` ends one,
//! `POST /api/auth/password` changes its password (ending every session).
//! The work is `auth::login`'s, shared with the web UI's account page.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::auth::{Caller, login};
use super::error::{ApiError, Problem};

/// One of the caller's sessions.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionResponse {
    /// Its id (`sid`).
    pub session_id: String,
    /// When it began.
    pub created_at: DateTime<Utc>,
    /// When it was last used (to the minute).
    pub last_seen_at: DateTime<Utc>,
    /// When it ends at the latest.
    pub expires_at: DateTime<Utc>,
    /// Whether this request came with it.
    pub current: bool,
}

/// `GET /api/auth/sessions` body.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionListResponse {
    /// Open sessions, newest first.
    pub items: Vec<SessionResponse>,
}

/// `POST /api/auth/password` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordRequest {
    /// The password now.
    pub current_password: String,
    /// The new one (8 to 1024 bytes).
    pub new_password: String,
}

/// The caller's open sessions.
#[utoipa::path(
    get,
    path = "/api/auth/sessions",
    tag = "auth",
    responses(
        (status = 200, description = "The caller's open sessions (none for an outside token)", body = SessionListResponse),
        (status = 401, description = "No valid token or session", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn list_sessions(
    caller: Caller,
    state: web::Data<AppState>,
) -> Result<web::Json<SessionListResponse>, ApiError> {
    let sessions = login::own_sessions(&state, &caller).await?;
    Ok(web::Json(SessionListResponse {
        items: sessions
            .into_iter()
            .map(|s| SessionResponse {
                current: caller.sid.as_deref() == Some(s.session_id.as_str()),
                session_id: s.session_id,
                created_at: s.created_at,
                last_seen_at: s.last_seen_at,
                expires_at: s.expires_at,
            })
            .collect(),
    }))
}

/// Ends one of the caller's own sessions.
#[utoipa::path(
    delete,
    path = "/api/auth/sessions/{sid}",
    tag = "auth",
    params(("sid" = String, Path, description = "A session id from the list")),
    responses(
        (status = 204, description = "The session ended"),
        (status = 401, description = "No valid token or session", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Cookie without the CSRF token (`csrf_failed`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not one of the caller's open sessions (`not_found`)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn end_session(
    caller: Caller,
    state: web::Data<AppState>,
    sid: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    if !login::end_own_session(&state, &caller, &sid).await? {
        return Err(ApiError::RouteNotFound);
    }
    Ok(HttpResponse::NoContent().finish())
}

/// Changes the caller's password; every session of the account ends.
#[utoipa::path(
    post,
    path = "/api/auth/password",
    tag = "auth",
    request_body = PasswordRequest,
    responses(
        (status = 204, description = "Changed; all the account's sessions ended and the cookie is cleared"),
        (status = 400, description = "A new password of the wrong length (`bad_body`)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Wrong current password (`invalid_credentials`), or no valid session", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "An outside token without an account here (`forbidden`), or no CSRF token (`csrf_failed`)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn change_password(
    caller: Caller,
    state: web::Data<AppState>,
    body: web::Json<PasswordRequest>,
) -> Result<HttpResponse, ApiError> {
    let PasswordRequest {
        current_password,
        new_password,
    } = body.into_inner();
    login::change_own_password(&state, &caller, current_password, new_password).await?;
    Ok(HttpResponse::NoContent()
        .cookie(state.sessions.removal())
        .finish())
}
