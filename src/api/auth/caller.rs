//! The authenticated [`Caller`]: the extractor reads the
//! `Authorization: Bearer` token and verifies it with the state's
//! [`AuthConfig`](super::AuthConfig), and [`Caller::require`] is the one
//! check of tenant and role (DESIGN.md §4): `super_admin` acts in any
//! tenant, everyone else only in their own.

use std::future::{Ready, ready};

use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};

use crate::account::Role;
use crate::api::AppState;
use crate::api::error::ApiError;
use crate::id::TenantId;

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's `sub`: who is calling (audit actor, rate-limit key).
    pub sub: String,
    /// The caller's own tenant.
    pub tenant_id: TenantId,
    /// What the caller may do.
    pub role: Role,
}

impl Caller {
    /// Allows the request when the caller has at least `min` and may act in
    /// `tenant` (its own, or any for `super_admin`).
    ///
    /// # Errors
    /// [`ApiError::Forbidden`] otherwise.
    pub fn require(&self, tenant: &TenantId, min: Role) -> Result<(), ApiError> {
        if self.role != Role::SuperAdmin && &self.tenant_id != tenant {
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
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req))
    }
}

fn authenticate(req: &HttpRequest) -> Result<Caller, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::Unexpected(anyhow::anyhow!("BUG: AppState is not registered")))?;
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or(ApiError::MissingToken)?;
    let value = value
        .to_str()
        .map_err(|_| ApiError::InvalidToken("malformed Authorization header"))?;
    let (scheme, token) = value.split_once(' ').ok_or(ApiError::MissingToken)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::MissingToken);
    }
    state.auth.verify(token.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(s: &str) -> TenantId {
        TenantId::parse(s).expect("valid")
    }

    #[test]
    fn require_checks_tenant_then_role() {
        let c = |role| Caller {
            sub: "u".into(),
            tenant_id: tenant("a"),
            role,
        };
        assert!(c(Role::Viewer).require(&tenant("a"), Role::Viewer).is_ok());
        assert!(
            c(Role::Viewer)
                .require(&tenant("a"), Role::Operator)
                .is_err()
        );
        assert!(c(Role::Admin).require(&tenant("b"), Role::Viewer).is_err());
        assert!(
            c(Role::SuperAdmin)
                .require(&tenant("b"), Role::Admin)
                .is_ok()
        );
    }
}
