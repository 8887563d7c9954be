//! The authenticated [`Caller`]: the extractor reads the
//! `Authorization: Bearer` token and verifies it with the state's
//! [`AuthConfig`](super::AuthConfig), or, without one, the session cookie
//! (DESIGN.md §11). A token carrying a `sid` and a cookie both stand only
//! while their session is open; the account's current role and tenant apply,
//! not the ones at sign-in. Cookie-authenticated changes need the session's
//! CSRF token and a same-origin `Origin`/`Referer` when one is sent.
//! [`Caller::require`] is the one check of tenant and role (DESIGN.md §4).

use actix_web::http::{Method, header};
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use futures_util::future::LocalBoxFuture;

use super::session::{self, COOKIE, CSRF_HEADER};
use crate::account::Role;
use crate::account::secret::{secret_hash, tokens_equal};
use crate::api::AppState;
use crate::api::error::ApiError;
use crate::id::TenantId;
use crate::store::session::{OpenSession, SessionKey};

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Who is calling (audit actor, rate-limit key): the token's `sub`, or
    /// the signed-in user name.
    pub sub: String,
    /// The caller's own tenant; `None` only for a `super_admin` account.
    pub tenant_id: Option<TenantId>,
    /// What the caller may do.
    pub role: Role,
    /// The sign-in session, when the caller signed in here.
    pub sid: Option<String>,
    /// Whether the session cookie (not a bearer token) authenticated it.
    pub via_cookie: bool,
    /// The session's CSRF token, when the session cookie authenticated it
    /// (pages put it in their forms).
    pub csrf_token: Option<String>,
}

impl Caller {
    /// Allows the request when the caller has at least `min` and may act in
    /// `tenant` (its own, or any for `super_admin`).
    ///
    /// # Errors
    /// [`ApiError::Forbidden`] otherwise.
    pub fn require(&self, tenant: &TenantId, min: Role) -> Result<(), ApiError> {
        if self.role != Role::SuperAdmin && self.tenant_id.as_ref() != Some(tenant) {
            return Err(ApiError::Forbidden("not allowed in this tenant"));
        }
        if self.role < min {
            return Err(ApiError::Forbidden(match min {
                Role::Viewer => "requires the viewer role",
                Role::Operator => "requires the operator role",
                Role::Admin => "requires the admin role",
                Role::SuperAdmin => "requires the super_admin role",
            }));
        }
        Ok(())
    }

    fn from_session(open: OpenSession, via_cookie: bool) -> Result<Caller, ApiError> {
        let tenant_id = match open.account.tenant_id.as_deref() {
            Some(t) => Some(TenantId::parse(t).map_err(|_| ApiError::InvalidToken("bad tenant"))?),
            None => None,
        };
        Ok(Caller {
            sub: open.account.username,
            tenant_id,
            role: open.account.role,
            sid: Some(open.session.session_id),
            via_cookie,
            csrf_token: via_cookie.then_some(open.csrf_token),
        })
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { authenticate(&req, None).await })
    }
}

impl Caller {
    /// Authenticates a form post: as the extractor does, but a cookie
    /// session's CSRF token may come in the form's `csrf_token` field
    /// (DESIGN.md §11) instead of the header.
    ///
    /// # Errors
    /// As the extractor: no or an ended session, a wrong CSRF token, another
    /// origin.
    pub async fn from_form(req: &HttpRequest, csrf_token: &str) -> Result<Caller, ApiError> {
        authenticate(req, Some(csrf_token)).await
    }
}

fn state(req: &HttpRequest) -> Result<&web::Data<AppState>, ApiError> {
    req.app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::Unexpected(anyhow::anyhow!("BUG: AppState is not registered")))
}

async fn authenticate(req: &HttpRequest, form_token: Option<&str>) -> Result<Caller, ApiError> {
    let state = state(req)?;
    if let Some(value) = req.headers().get(header::AUTHORIZATION) {
        let value = value
            .to_str()
            .map_err(|_| ApiError::InvalidToken("malformed Authorization header"))?;
        let (scheme, token) = value.split_once(' ').ok_or(ApiError::MissingToken)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(ApiError::MissingToken);
        }
        let caller = state.auth.verify(token.trim())?;
        return match &caller.sid {
            Some(sid) => bearer_session(state, &caller, sid).await,
            None => Ok(caller),
        };
    }
    let Some(cookie) = req.cookie(COOKIE) else {
        return Err(ApiError::MissingToken);
    };
    let hash = secret_hash(cookie.value());
    let open = state
        .store
        .open_session(SessionKey::SecretHash(&hash), state.sessions.idle)
        .await?
        .ok_or(ApiError::InvalidToken("session ended"))?;
    if !is_safe(req.method()) {
        check_csrf(req, form_token, &open.csrf_token)?;
    }
    Caller::from_session(open, true)
}

/// A token of a sign-in session: valid while the session is open and
/// belongs to the token's subject.
async fn bearer_session(state: &AppState, caller: &Caller, sid: &str) -> Result<Caller, ApiError> {
    let open = state
        .store
        .open_session(SessionKey::Id(sid), state.sessions.idle)
        .await?
        .ok_or(ApiError::InvalidToken("session ended"))?;
    if open.account.username != caller.sub {
        return Err(ApiError::InvalidToken("session of another user"));
    }
    Caller::from_session(open, false)
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// A cookie-authenticated change needs the session's CSRF token in
/// `X-CSRF-Token` (or the form field `csrf_token`, passed as `form_token`)
/// and, when the browser names one, a same-origin `Origin` (or `Referer`).
fn check_csrf(req: &HttpRequest, form_token: Option<&str>, expected: &str) -> Result<(), ApiError> {
    let sent = req
        .headers()
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .or(form_token.filter(|t| !t.is_empty()))
        .ok_or(ApiError::CsrfFailed("missing CSRF token"))?;
    if !tokens_equal(sent, expected) {
        return Err(ApiError::CsrfFailed("wrong CSRF token"));
    }
    if !session::same_origin(req) {
        return Err(ApiError::CsrfFailed("request from another origin"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(s: &str) -> TenantId {
        TenantId::parse(s).expect("valid")
    }

    #[test]
    fn require_checks_tenant_then_role() {
        let c = |role, tenant_id| Caller {
            sub: "u".into(),
            tenant_id,
            role,
            sid: None,
            via_cookie: false,
            csrf_token: None,
        };
        let a = Some(tenant("a"));
        assert!(
            c(Role::Viewer, a.clone())
                .require(&tenant("a"), Role::Viewer)
                .is_ok()
        );
        assert!(
            c(Role::Viewer, a.clone())
                .require(&tenant("a"), Role::Operator)
                .is_err()
        );
        assert!(
            c(Role::Admin, a.clone())
                .require(&tenant("b"), Role::Viewer)
                .is_err()
        );
        assert!(
            c(Role::Admin, None)
                .require(&tenant("b"), Role::Viewer)
                .is_err()
        );
        assert!(
            c(Role::SuperAdmin, a)
                .require(&tenant("b"), Role::Admin)
                .is_ok()
        );
        assert!(
            c(Role::SuperAdmin, None)
                .require(&tenant("b"), Role::Admin)
                .is_ok()
        );
    }
}
