//! Authorization: the [`Caller`] extractor authenticates the
//! `Authorization: Bearer` token through [`AuthConfig`] (in `jwt`) or the
//! session cookie (`session`), and
//! [`Caller::require`] is the one check of tenant and role (DESIGN.md §4):
//! `viewer` < `operator` < `admin` < `super_admin`; `super_admin` acts in
//! any tenant, everyone else only in their own.
//!
//! Tokens are never logged; failures say what was wrong, not what was sent.
//! Layout: `caller` (the extractor and the check), `jwt` (token
//! verification and minting), `session` (cookie, CSRF, timeouts), `limit`
//! (sign-in attempt limits). Roles are `crate::account::Role`.

mod caller;
pub mod jwt;
pub mod limit;
pub mod login;
pub mod session;

pub use caller::Caller;
pub use jwt::{AuthConfig, AuthConfigError, MIN_SECRET_BYTES, install_crypto_provider};
pub use limit::LoginLimiter;
pub use session::SessionPolicy;

pub use crate::account::Role;
