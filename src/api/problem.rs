//! The RFC 9457 problem document every error response carries, and its
//! OpenAPI description. [`super::error::ApiError`] decides which problem a
//! failure is; this module only describes the shape.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The problem+json media type.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An RFC 9457 problem document, as every error response carries it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// `https://cfgsnap.dev/problems/{code}`.
    #[serde(rename = "type")]
    pub type_: String,
    /// The status's reason phrase, e.g. `Not Found`.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong, for people.
    pub detail: String,
    /// Stable machine code, e.g. `device_not_found`.
    pub code: String,
    /// `/readyz` only: the dependencies that did not answer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<String>,
}

/// The problems every tenant route can answer, for the OpenAPI document.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // only its OpenAPI description is used
pub enum TenantRouteErrors {
    /// A malformed path id (`bad_id`) or query (`bad_query`).
    #[response(status = 400, content_type = "application/problem+json")]
    BadRequest(Problem),
    /// No token (`missing_token`) or an invalid one (`invalid_token`); with
    /// `WWW-Authenticate: Bearer`.
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthorized(Problem),
    /// Not allowed in this tenant, or the role is too low (`forbidden`).
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(Problem),
    /// An unexpected failure (`internal`); details are in the server log.
    #[response(status = 500, content_type = "application/problem+json")]
    Internal(Problem),
}
