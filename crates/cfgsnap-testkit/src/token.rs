//! JWTs for tests and benchmarks, minted with an HS256 secret the way
//! `cfgsnap token` does.

use std::time::Duration;

use cfgsnap::api::{AuthConfig, Role};
use cfgsnap::id::TenantId;

/// How long minted tokens stay valid.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(3_600);

/// A token for `sub` of `tenant` with `role`, signed with `secret`.
///
/// # Errors
/// A secret shorter than 32 bytes or an invalid tenant id.
pub fn try_mint(secret: &[u8], sub: &str, tenant: &str, role: Role) -> anyhow::Result<String> {
    let auth = AuthConfig::hs256(secret, None, None)?;
    Ok(auth.mint_token(sub, &TenantId::parse(tenant)?, role, TOKEN_LIFETIME)?)
}

/// [`try_mint`] for tests: panics on a bad secret or tenant.
pub fn mint(secret: &[u8], sub: &str, tenant: &str, role: Role) -> String {
    try_mint(secret, sub, tenant, role).expect("a 32-byte secret and a valid tenant id")
}
