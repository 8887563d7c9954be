//! Sign-in attempt limits (DESIGN.md §11): per user name and per client
//! address, with governor's keyed GCRA limiters. Attempts count whether or
//! not they succeed, so guessing is slow and a locked-out name says nothing
//! about whether it exists.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use governor::clock::Clock as _;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::api::error::ApiError;
use crate::config::AuthSettings;

/// The two limiters of `POST /api/auth/login`.
#[derive(Clone)]
pub struct LoginLimiter {
    by_name: Arc<DefaultKeyedRateLimiter<String>>,
    by_address: Arc<DefaultKeyedRateLimiter<IpAddr>>,
}

impl std::fmt::Debug for LoginLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginLimiter")
            .field("names", &self.by_name.len())
            .field("addresses", &self.by_address.len())
            .finish()
    }
}

fn quota(per_minute: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN))
}

impl LoginLimiter {
    /// Limiters with `[auth]`'s rates.
    pub fn new(settings: &AuthSettings) -> LoginLimiter {
        LoginLimiter {
            by_name: Arc::new(RateLimiter::keyed(quota(
                settings.login_attempts_per_minute,
            ))),
            by_address: Arc::new(RateLimiter::keyed(quota(
                settings.login_attempts_per_address_per_minute,
            ))),
        }
    }

    /// Takes one attempt from the address's and the name's quotas. Names
    /// are keyed as sent (at most 64 bytes of them), so a flood of made-up
    /// names costs the address, not the memory.
    ///
    /// # Errors
    /// [`ApiError::SignInRateLimited`] with the wait until the next attempt.
    pub fn check(&self, address: Option<IpAddr>, username: &str) -> Result<(), ApiError> {
        let limited = |wait| ApiError::SignInRateLimited { retry_after: wait };
        if let Some(address) = address {
            self.by_address
                .check_key(&address)
                .map_err(|n| limited(n.wait_time_from(self.by_address.clock().now())))?;
        }
        let key: String = username.chars().take(64).collect();
        self.by_name
            .check_key(&key)
            .map_err(|n| limited(n.wait_time_from(self.by_name.clock().now())))
    }

    /// Forgets keys whose quota is full again (called periodically).
    pub fn prune(&self) {
        self.by_name.retain_recent();
        self.by_name.shrink_to_fit();
        self.by_address.retain_recent();
        self.by_address.shrink_to_fit();
    }
}
