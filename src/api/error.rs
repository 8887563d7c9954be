//! [`ApiError`]: every way a request can fail, and the only place that picks
//! HTTP status codes. Responses are RFC 9457 `application/problem+json` with a
//! stable machine `code` (DESIGN.md §4). Handlers return `Result<_, ApiError>`
//! and use `?`: the `From` impls below turn module errors into the right
//! problem.
//!
//! Server errors are logged once, here, with their cause chain; unexpected
//! ones answer with a generic `detail` so nothing internal leaks.

use std::fmt;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};

use crate::backup::ErrorKind;
use crate::id::IdError;
use crate::{bus, lock, search, store};

pub use super::problem::{PROBLEM_JSON, Problem, TenantRouteErrors};

/// A failed API request.
#[derive(thiserror::Error)]
pub enum ApiError {
    /// A path id outside `[A-Za-z0-9_-]{1,64}` (or a snapshot id that is not
    /// a positive integer).
    #[error("invalid {what}: {reason}")]
    BadId {
        /// Which id, e.g. `device id`.
        what: &'static str,
        /// Why, without echoing the input.
        reason: String,
    },
    /// A malformed query string or body.
    #[error("{detail}")]
    BadRequest {
        /// `bad_query` or `bad_body`.
        code: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// A request body over the limit.
    #[error("request body larger than {limit} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// Request headers over the limit, together.
    #[error("request headers larger than {limit} bytes")]
    HeadersTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// No bearer token.
    #[error("missing bearer token")]
    MissingToken,
    /// A token that is malformed, badly signed, expired, not yet valid or
    /// has unacceptable claims.
    #[error("invalid token: {0}")]
    InvalidToken(&'static str),
    /// Authenticated, but not allowed here.
    #[error("{0}")]
    Forbidden(&'static str),
    /// A sign-in with an unknown user, a wrong password or a disabled
    /// account: one answer for all three.
    #[error("invalid user name or password")]
    InvalidCredentials,
    /// A cookie-authenticated change without the session's CSRF token, or
    /// from another origin.
    #[error("{0}")]
    CsrfFailed(&'static str),
    /// Over the sign-in attempts allowed for a user name or address.
    #[error("too many sign-in attempts; retry in {} s", retry_after_secs(*.retry_after))]
    SignInRateLimited {
        /// When the next attempt is allowed.
        retry_after: Duration,
    },
    /// Local sign-in needs an HS256 secret to sign access tokens.
    #[error("local sign-in needs an HS256 secret (auth.jwt_secret_env or auth.jwt_secret_file)")]
    SignInUnavailable,
    /// No such account in the caller's view.
    #[error("user not found")]
    UserNotFound,
    /// The user name is taken.
    #[error("a user of that name exists")]
    UserExists,
    /// The change would leave no enabled super_admin.
    #[error("the last enabled super_admin cannot be disabled or deleted")]
    LastSuperAdmin,
    /// Unknown device, or another tenant's.
    #[error("device not found")]
    DeviceNotFound,
    /// Unknown snapshot, or another tenant's or device's.
    #[error("snapshot not found")]
    SnapshotNotFound,
    /// Unknown notification, or another tenant's.
    #[error("notification not found")]
    NotificationNotFound,
    /// No route for this path.
    #[error("no such resource")]
    RouteNotFound,
    /// The route exists, but not for this method; `allow` lists the
    /// methods it has (the `Allow` header, RFC 9110 §15.5.6).
    #[error("method not allowed")]
    MethodNotAllowed {
        /// E.g. `"GET"` or `"GET, POST"`.
        allow: &'static str,
    },
    /// Over the caller's trigger rate.
    #[error("too many triggers; retry in {} s", retry_after_secs(*.retry_after))]
    RateLimited {
        /// When the next trigger is allowed.
        retry_after: Duration,
    },
    /// Another backup of the device holds its lock.
    #[error("backup already in progress")]
    BackupInProgress,
    /// The responder ran the backup and it failed.
    #[error("backup failed ({kind}): {message}")]
    BackupFailed {
        /// The reply's `error_kind`.
        kind: ErrorKind,
        /// The reply's `error` (never holds secrets, DESIGN.md §3.1).
        message: String,
    },
    /// A responder's reply that is not a §3.1 reply.
    #[error("invalid reply from the responder: {0}")]
    InvalidReply(String),
    /// Nobody answers triggers.
    #[error("no responder is listening for triggers")]
    NoResponder,
    /// A responder exists but did not reply in time.
    #[error("no reply within {}", humantime::format_duration(*.0))]
    TriggerTimeout(Duration),
    /// The bus could not carry the request or returned garbage.
    #[error("the bus is unavailable")]
    BusUnavailable(#[source] anyhow::Error),
    /// `/readyz`: these dependencies did not answer.
    #[error("not ready: {} unreachable", .0.join(", "))]
    NotReady(Vec<&'static str>),
    /// The store could not be reached or is busy.
    #[error("the store is unavailable")]
    StoreUnavailable(#[source] store::Error),
    /// Anything the caller cannot act on.
    #[error("an unexpected error occurred")]
    Unexpected(#[source] anyhow::Error),
}

fn retry_after_secs(d: Duration) -> u64 {
    // Rounded up, so a client waiting that long is never early.
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

impl ApiError {
    /// The stable machine code of the problem body.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadId { .. } => "bad_id",
            ApiError::BadRequest { code, .. } => code,
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::HeadersTooLarge { .. } => "headers_too_large",
            ApiError::MissingToken => "missing_token",
            ApiError::InvalidToken(_) => "invalid_token",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::InvalidCredentials => "invalid_credentials",
            ApiError::CsrfFailed(_) => "csrf_failed",
            ApiError::SignInRateLimited { .. } => "rate_limited",
            ApiError::SignInUnavailable => "sign_in_unavailable",
            ApiError::UserNotFound => "user_not_found",
            ApiError::UserExists => "user_exists",
            ApiError::LastSuperAdmin => "last_super_admin",
            ApiError::DeviceNotFound => "device_not_found",
            ApiError::SnapshotNotFound => "snapshot_not_found",
            ApiError::NotificationNotFound => "notification_not_found",
            ApiError::RouteNotFound => "not_found",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::BackupInProgress => "backup_in_progress",
            ApiError::BackupFailed { kind, .. } => kind.as_str(),
            ApiError::InvalidReply(_) => "invalid_reply",
            ApiError::NoResponder => "no_responder",
            ApiError::TriggerTimeout(_) => "trigger_timeout",
            ApiError::BusUnavailable(_) => "bus_unavailable",
            ApiError::NotReady(_) => "not_ready",
            ApiError::StoreUnavailable(_) => "store_unavailable",
            ApiError::Unexpected(_) => "internal",
        }
    }

    /// A `bad_id` problem for a path id that failed [`IdError`] checks.
    pub fn bad_id(what: &'static str, e: &IdError) -> Self {
        ApiError::BadId {
            what,
            reason: e.to_string(),
        }
    }

    /// The response `detail`: the message, except for unexpected failures,
    /// whose details stay in the log.
    pub fn detail(&self) -> String {
        match self {
            ApiError::Unexpected(_) => "an unexpected error occurred; see the server log".into(),
            ApiError::StoreUnavailable(_) => "the store is unavailable; retry later".into(),
            ApiError::BusUnavailable(_) => "the bus is unavailable; retry later".into(),
            other => other.to_string(),
        }
    }

    /// Logs a server error once, with its cause chain. Unexpected failures
    /// are errors; expected operational outcomes (a device that failed, no
    /// responder, a timeout, a dependency down) are warnings.
    pub fn log(&self, status: StatusCode) {
        if !status.is_server_error() {
            return;
        }
        let code = self.code();
        match self {
            ApiError::Unexpected(_) => {
                tracing::error!(error.message = %self, error.cause_chain = ?self, code, "request failed");
            }
            _ => {
                tracing::warn!(error.message = %self, error.cause_chain = ?self, code, "request failed");
            }
        }
    }
}

impl fmt::Debug for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        error_chain_fmt(self, f)
    }
}

/// Writes `e` and each of its sources on its own line.
pub fn error_chain_fmt(e: &impl std::error::Error, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    writeln!(f, "{e}")?;
    let mut current = e.source();
    while let Some(cause) = current {
        writeln!(f, "Caused by:\n\t{cause}")?;
        current = cause.source();
    }
    Ok(())
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadId { .. } | ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::HeadersTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::MissingToken | ApiError::InvalidToken(_) | ApiError::InvalidCredentials => {
                StatusCode::UNAUTHORIZED
            }
            ApiError::Forbidden(_) | ApiError::CsrfFailed(_) => StatusCode::FORBIDDEN,
            ApiError::UserNotFound => StatusCode::NOT_FOUND,
            ApiError::UserExists | ApiError::LastSuperAdmin => StatusCode::CONFLICT,
            ApiError::SignInRateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::SignInUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::DeviceNotFound
            | ApiError::SnapshotNotFound
            | ApiError::NotificationNotFound
            | ApiError::RouteNotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::BackupInProgress => StatusCode::CONFLICT,
            ApiError::BackupFailed { kind, .. } => match kind {
                ErrorKind::NotFound => StatusCode::NOT_FOUND,
                ErrorKind::LockUnavailable => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::BAD_GATEWAY,
            },
            ApiError::InvalidReply(_) => StatusCode::BAD_GATEWAY,
            ApiError::NoResponder
            | ApiError::BusUnavailable(_)
            | ApiError::NotReady(_)
            | ApiError::StoreUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::TriggerTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Unexpected(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        self.log(status);
        let code = self.code();
        let body = Problem {
            type_: format!("https://cfgsnap.dev/problems/{code}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: self.detail(),
            code: code.to_owned(),
            failed: match self {
                ApiError::NotReady(failed) => failed.iter().map(|s| (*s).to_owned()).collect(),
                _ => Vec::new(),
            },
        };
        let mut response = HttpResponse::build(status);
        response.insert_header((header::CONTENT_TYPE, PROBLEM_JSON));
        match self {
            ApiError::MissingToken => {
                response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            ApiError::InvalidToken(_) => {
                response.insert_header((
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(r#"Bearer error="invalid_token""#),
                ));
            }
            ApiError::MethodNotAllowed { allow } => {
                response.insert_header((header::ALLOW, *allow));
            }
            ApiError::RateLimited { retry_after } | ApiError::SignInRateLimited { retry_after } => {
                response.insert_header((header::RETRY_AFTER, retry_after_secs(*retry_after)));
            }
            _ => {}
        }
        response
            .body(serde_json::to_string(&body).expect("BUG: a problem document always serializes"))
    }
}

impl From<store::Error> for ApiError {
    fn from(e: store::Error) -> Self {
        match e {
            store::Error::SnapshotNotFound => ApiError::SnapshotNotFound,
            store::Error::DeviceNotFound => ApiError::DeviceNotFound,
            store::Error::NotificationNotFound => ApiError::NotificationNotFound,
            store::Error::AccountNotFound => ApiError::UserNotFound,
            store::Error::AccountExists => ApiError::UserExists,
            store::Error::LastSuperAdmin => ApiError::LastSuperAdmin,
            store::Error::InvalidAccount(detail) => ApiError::BadRequest {
                code: "bad_body",
                detail: detail.to_owned(),
            },
            e @ (store::Error::Unavailable(_) | store::Error::DiskFull(_)) => {
                ApiError::StoreUnavailable(e)
            }
            e @ (store::Error::InvalidSnapshot(_)
            | store::Error::Crypto(_)
            | store::Error::Unexpected(_)) => {
                ApiError::Unexpected(anyhow::Error::new(e).context("store operation"))
            }
        }
    }
}

impl From<bus::Error> for ApiError {
    fn from(e: bus::Error) -> Self {
        match e {
            bus::Error::NoResponders => ApiError::NoResponder,
            bus::Error::TimedOut(after) => ApiError::TriggerTimeout(after),
            bus::Error::InvalidReply(reason) => ApiError::InvalidReply(reason),
            e @ bus::Error::Unavailable(_) => ApiError::BusUnavailable(anyhow::Error::new(e)),
            e @ (bus::Error::InvalidSettings(_)
            | bus::Error::InvalidRequest(_)
            | bus::Error::InvalidEvent(_)
            | bus::Error::Unexpected(_)) => {
                ApiError::Unexpected(anyhow::Error::new(e).context("bus operation"))
            }
        }
    }
}

impl From<lock::Error> for ApiError {
    fn from(e: lock::Error) -> Self {
        ApiError::Unexpected(anyhow::Error::new(e).context("lock operation"))
    }
}

impl From<actix_web::error::BlockingError> for ApiError {
    fn from(e: actix_web::error::BlockingError) -> Self {
        ApiError::Unexpected(anyhow::Error::new(e).context("blocking task"))
    }
}

impl From<actix_web::error::PathError> for ApiError {
    fn from(e: actix_web::error::PathError) -> Self {
        // The path extractors deserialize ids with their validating `parse`,
        // whose messages never echo the input.
        let reason = match e {
            actix_web::error::PathError::Deserialize(e) => e.to_string(),
            other => other.to_string(),
        };
        ApiError::BadId {
            what: "path parameter",
            reason,
        }
    }
}

impl From<search::Error> for ApiError {
    fn from(e: search::Error) -> Self {
        match e {
            search::Error::BadQuery(detail) => ApiError::BadRequest {
                code: "bad_query",
                detail,
            },
            search::Error::Store(e) => e.into(),
            search::Error::Unexpected(e) => ApiError::Unexpected(e),
        }
    }
}

impl From<actix_web::error::QueryPayloadError> for ApiError {
    fn from(e: actix_web::error::QueryPayloadError) -> Self {
        ApiError::BadRequest {
            code: "bad_query",
            detail: e.to_string(),
        }
    }
}

impl From<actix_web::error::JsonPayloadError> for ApiError {
    fn from(e: actix_web::error::JsonPayloadError) -> Self {
        use actix_web::error::JsonPayloadError as J;
        match e {
            J::OverflowKnownLength { limit, .. } | J::Overflow { limit } => {
                ApiError::PayloadTooLarge { limit }
            }
            other => ApiError::BadRequest {
                code: "bad_body",
                detail: other.to_string(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::from_millis(5_001)), 6);
        assert_eq!(retry_after_secs(Duration::from_secs(6)), 6);
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
    }

    #[test]
    fn failed_backups_map_their_kind_to_status_and_code() {
        let failed = |kind| ApiError::BackupFailed {
            kind,
            message: "x".into(),
        };
        let e = failed(ErrorKind::AuthFailed);
        assert_eq!(e.status_code(), StatusCode::BAD_GATEWAY);
        assert_eq!(e.code(), "auth_failed");
        assert_eq!(
            failed(ErrorKind::LockUnavailable).status_code(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            failed(ErrorKind::NotFound).status_code(),
            StatusCode::NOT_FOUND
        );
    }

    #[test]
    fn unexpected_errors_answer_generically_and_debug_prints_the_chain() {
        let e = ApiError::Unexpected(
            anyhow::anyhow!("secret internals").context("decrypting snapshot 7"),
        );
        assert!(!e.detail().contains("secret internals"));
        let debug = format!("{e:?}");
        assert!(debug.contains("decrypting snapshot 7"), "{debug}");
        assert!(debug.contains("secret internals"), "{debug}");
    }
}
