//! Signing in and out (DESIGN.md §11), shared by the JSON API and the web
//! UI so both apply the same attempt limits, password check and audit:
//! [`sign_in`] checks a user name and password and opens a session,
//! [`sign_out`] ends one. An unknown user, a wrong password and a disabled
//! account fail alike after the same work; the password is never audited.

use std::net::IpAddr;

use actix_web::web;
use chrono::{DateTime, Utc};
use serde_json::json;

use super::Caller;
use crate::account::secret::{random_token, secret_hash};
use crate::account::{Username, password};
use crate::api::AppState;
use crate::api::error::ApiError;
use crate::store::account::{Account, AccountChange};
use crate::store::audit::Action;
use crate::store::session::{NewSession, Session};

/// A session just opened.
pub struct Opened {
    /// Whose it is.
    pub account: Account,
    /// Its public id (`sid`).
    pub session_id: String,
    /// The cookie secret (only its hash is stored).
    pub secret: String,
    /// Its CSRF token.
    pub csrf_token: String,
}

/// Checks `username` and `password` and opens a session; audited.
///
/// # Errors
/// [`ApiError::SignInRateLimited`] over the attempt limits,
/// [`ApiError::InvalidCredentials`] for any wrong name, password or a
/// disabled account; store failures.
pub async fn sign_in(
    state: &AppState,
    address: Option<IpAddr>,
    username: &str,
    password: String,
) -> Result<Opened, ApiError> {
    if let Err(limited) = state.login_limiter.check(address, username) {
        audit_attempt(state, None, username, Action::LoginRateLimited).await;
        return Err(limited);
    }
    let Some(account) = check_password(state, username, password).await? else {
        return Err(ApiError::InvalidCredentials);
    };
    let opened = open_session(state, account).await?;
    let tenant = opened.account.tenant_id.as_deref();
    audit_attempt(
        state,
        tenant,
        &opened.account.username,
        Action::LoginSucceeded,
    )
    .await;
    Ok(opened)
}

/// Ends the caller's session, if it has one; audited.
///
/// # Errors
/// Store failures.
pub async fn sign_out(state: &AppState, caller: &Caller) -> Result<(), ApiError> {
    if let Some(sid) = &caller.sid
        && state.store.end_session(sid).await?
    {
        let tenant = caller.tenant_id.as_ref().map(|t| t.as_str());
        let detail = json!({ "username": caller.sub });
        state
            .store
            .audit_best_effort(tenant, None, Action::Logout, Some(&caller.sub), &detail)
            .await;
    }
    Ok(())
}

/// The enabled account `username` names when `password` is its password,
/// after one Argon2 verification whatever the outcome; failures audited.
async fn check_password(
    state: &AppState,
    username: &str,
    password: String,
) -> Result<Option<Account>, ApiError> {
    let found = match Username::parse(username) {
        Ok(name) => state.store.credentials(name.as_str()).await?,
        Err(_) => None,
    };
    let (account, stored) = match found {
        Some((account, stored)) => (Some(account), Some(stored)),
        None => (None, None),
    };
    let verified = web::block(move || match stored {
        Some(stored) if password.len() <= password::MAX_LEN => password::verify(&password, &stored),
        _ => password::verify_dummy(&password),
    })
    .await
    .map_err(|e| ApiError::Unexpected(anyhow::anyhow!("password check: {e}")))?;
    match account {
        Some(account) if verified && !account.disabled => Ok(Some(account)),
        account => {
            let tenant = account.as_ref().and_then(|a| a.tenant_id.as_deref());
            audit_attempt(state, tenant, username, Action::LoginFailed).await;
            Ok(None)
        }
    }
}

/// Begins a session for `account`.
async fn open_session(state: &AppState, account: Account) -> Result<Opened, ApiError> {
    let policy = &state.sessions;
    let (session_id, secret, csrf_token) = (random_token(), random_token(), random_token());
    let absolute = chrono::Duration::from_std(policy.absolute).unwrap_or(chrono::Duration::MAX);
    let new = NewSession {
        session_id: session_id.clone(),
        account_id: account.account_id,
        secret_hash: secret_hash(&secret),
        csrf_token: csrf_token.clone(),
        expires_at: Utc::now()
            .checked_add_signed(absolute)
            .unwrap_or(DateTime::<Utc>::MAX_UTC),
    };
    state.store.create_session(&new).await?;
    Ok(Opened {
        account,
        session_id,
        secret,
        csrf_token,
    })
}

/// Audits a sign-in event; the user name only when it has a valid shape
/// (an attempt may send anything there, a password included).
async fn audit_attempt(state: &AppState, tenant: Option<&str>, username: &str, action: Action) {
    let name = Username::parse(username).ok();
    let detail = json!({ "username": name.as_ref().map(Username::as_str) });
    let actor = name.as_ref().map(Username::as_str);
    state
        .store
        .audit_best_effort(tenant, None, action, actor, &detail)
        .await;
}

/// Changes the caller's own password after checking the current one; every
/// session of the account ends (the caller signs in again). Audited as a
/// user update by the caller.
///
/// # Errors
/// [`ApiError::InvalidCredentials`] for a wrong current password,
/// [`ApiError::BadRequest`] for a new one of the wrong length,
/// [`ApiError::Forbidden`] for a caller without an account (an outside
/// token).
pub async fn change_own_password(
    state: &AppState,
    caller: &Caller,
    current: String,
    new: String,
) -> Result<(), ApiError> {
    if caller.sid.is_none() {
        return Err(ApiError::Forbidden(
            "only signed-in users have a password here",
        ));
    }
    let new = password::Password::new(new).map_err(|e| ApiError::BadRequest {
        code: "bad_body",
        detail: e.to_string(),
    })?;
    if check_password(state, &caller.sub, current).await?.is_none() {
        return Err(ApiError::InvalidCredentials);
    }
    let hash = web::block(move || password::hash(&new))
        .await
        .map_err(|e| ApiError::Unexpected(anyhow::anyhow!("hashing a password: {e}")))?
        .map_err(ApiError::Unexpected)?;
    let change = AccountChange {
        password_hash: Some(hash),
        ..AccountChange::default()
    };
    state
        .store
        .update_account(&caller.sub, &change, Some(&caller.sub))
        .await?;
    Ok(())
}

/// The caller's open sessions, newest first (none for an outside token).
///
/// # Errors
/// Store failures.
pub async fn own_sessions(state: &AppState, caller: &Caller) -> Result<Vec<Session>, ApiError> {
    if caller.sid.is_none() {
        return Ok(Vec::new());
    }
    let account = state.store.account(&caller.sub).await?;
    Ok(state.store.list_sessions(account.account_id).await?)
}

/// Ends one of the caller's own sessions; `false` when `session_id` is not
/// one of them (another user's looks the same as an unknown one).
///
/// # Errors
/// Store failures.
pub async fn end_own_session(
    state: &AppState,
    caller: &Caller,
    session_id: &str,
) -> Result<bool, ApiError> {
    let mine = own_sessions(state, caller).await?;
    if !mine.iter().any(|s| s.session_id == session_id) {
        return Ok(false);
    }
    let ended = state.store.end_session(session_id).await?;
    if ended {
        let tenant = caller.tenant_id.as_ref().map(|t| t.as_str());
        let detail = json!({ "username": caller.sub, "session_id": session_id });
        state
            .store
            .audit_best_effort(tenant, None, Action::Logout, Some(&caller.sub), &detail)
            .await;
    }
    Ok(ended)
}
