//! Authorization: the [`Caller`] extractor authenticates the
//! `Authorization: Bearer` token through [`AuthConfig`] (in `jwt`), and
//! [`Caller::require`] is the one check of tenant and role (DESIGN.md §4):
//! `viewer` < `operator` < `admin` < `super_admin`; `super_admin` acts in
//! any tenant, everyone else only in their own.
//!
//! Tokens are never logged; failures say what was wrong, not what was sent.
//! Layout: `role`, `caller` (the extractor and the check), `jwt` (token
//! verification and minting).

mod caller;
pub mod jwt;

pub use crate::account::Role;
pub use caller::Caller;
pub use jwt::{AuthConfig, AuthConfigError, MIN_SECRET_BYTES, install_crypto_provider};
