//! `cfgsnap token`: mints a JWT with the configured HS256 secret, for tests
//! and first steps. Prints only the token, so `$(cfgsnap token …)` works.

use std::time::Duration;

use super::Exit;
use crate::api::{AuthConfig, Role};
use crate::config::Settings;
use crate::id::TenantId;

/// Mints and prints a token for `sub` in `tenant` with `role`, valid for `ttl`.
pub(super) fn mint(
    settings: &Settings,
    sub: &str,
    tenant: &TenantId,
    role: Role,
    ttl: Duration,
) -> Exit {
    if let Err(e) = crate::app::ensure_jwt_secret_file(&settings.auth) {
        eprintln!("error: {e:#}");
        return Exit::Failed;
    }
    let minted = AuthConfig::from_settings(&settings.auth)
        .and_then(|auth| auth.mint_token(sub, tenant, role, ttl));
    match minted {
        Ok(token) => {
            println!("{token}");
            Exit::Ok
        }
        Err(e) => {
            eprintln!("error[config]: {e}");
            Exit::Failed
        }
    }
}

/// Parses `--tenant`.
pub(super) fn parse_tenant(s: &str) -> Result<TenantId, String> {
    TenantId::parse(s).map_err(|e| e.to_string())
}

/// Parses `--sub`: 1–256 bytes, as the API accepts.
pub(super) fn parse_sub(s: &str) -> Result<String, String> {
    if s.is_empty() || s.len() > 256 {
        return Err("must be 1 to 256 bytes".into());
    }
    Ok(s.to_owned())
}

/// Parses `--role`.
pub(super) fn parse_role(s: &str) -> Result<Role, String> {
    s.parse()
}
