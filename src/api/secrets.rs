//! Who sees the secrets in configurations (DESIGN.md §12): callers at or
//! above `[auth] reveal_secrets_role` get stored text as it is, everyone
//! else gets it through `backup::redact`. `?reveal=true` asks for the
//! secrets explicitly: allowed at or above that role and audited, refused
//! below it.

use actix_web::web;
use serde::Deserialize;
use serde_json::json;
use utoipa::IntoParams;

use super::AppState;
use super::auth::Caller;
use super::error::ApiError;
use super::path::SnapshotPath;
use crate::backup::redact;
use crate::store::audit::Action;
use crate::store::history::Secrets;

/// `?reveal=`: ask for the configuration with its secrets.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RevealQuery {
    /// `true` to see secrets (at or above `auth.reveal_secrets_role`;
    /// audited). Below that role secrets are masked as `********`.
    pub reveal: Option<bool>,
}

/// Whether `caller` sees secrets in what `path` serves; an explicit reveal
/// is audited.
///
/// # Errors
/// [`ApiError::Forbidden`] for `reveal=true` below the reveal role.
pub async fn secrets_for(
    caller: &Caller,
    state: &AppState,
    path: &SnapshotPath,
    reveal: Option<bool>,
) -> Result<Secrets, ApiError> {
    let allowed = caller.role >= state.reveal_role;
    match (reveal, allowed) {
        (Some(true), false) => Err(ApiError::Forbidden(
            "revealing secrets requires auth.reveal_secrets_role",
        )),
        (Some(true), true) => {
            let detail = json!({ "snapshot_id": path.sid.0 });
            state
                .store
                .audit(
                    Some(path.tid.as_str()),
                    Some(path.did.as_str()),
                    Action::SecretsRevealed,
                    Some(&caller.sub),
                    &detail,
                )
                .await?;
            Ok(Secrets::Shown)
        }
        (_, true) => Ok(Secrets::Shown),
        (_, false) => Ok(Secrets::Masked),
    }
}

/// What `caller` sees when not asking to reveal: the stored text at or
/// above `auth.reveal_secrets_role`, masked below it (search matches the
/// same text it shows).
pub fn unrevealed(caller: &Caller, state: &AppState) -> Secrets {
    match caller.role >= state.reveal_role {
        true => Secrets::Shown,
        false => Secrets::Masked,
    }
}

/// `text` as `secrets` allows, masked on the blocking pool.
///
/// # Errors
/// Only if the blocking pool fails.
pub async fn apply(text: String, secrets: Secrets) -> Result<String, ApiError> {
    match secrets {
        Secrets::Shown => Ok(text),
        Secrets::Masked => web::block(move || redact::redact(&text))
            .await
            .map_err(|e| ApiError::Unexpected(anyhow::anyhow!("masking secrets: {e}"))),
    }
}
