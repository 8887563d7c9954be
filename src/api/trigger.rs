//! `POST /api/tenants/{tid}/devices/{did}/config-snapshot/trigger`: a manual
//! backup through the bus's request-reply (DESIGN.md §3.1, §4). Order: ids
//! validated, caller authenticated and authorized, then the per-caller rate
//! limit (so anonymous floods never spend a user's quota), then the device
//! looked up; only then is a request sent.

use std::num::NonZeroU32;
use std::sync::Arc;

use governor::clock::Clock as _;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::error::ApiError;

/// Per-caller trigger rate limit (GCRA, keyed by the token's `sub`): a burst
/// of `per_minute`, then one every `60 s / per_minute`. Clones share the
/// state.
#[derive(Clone)]
pub struct TriggerLimiter {
    limiter: Arc<DefaultKeyedRateLimiter<String>>,
}

impl std::fmt::Debug for TriggerLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TriggerLimiter")
            .field("keys", &self.limiter.len())
            .finish()
    }
}

impl TriggerLimiter {
    /// `per_minute` triggers per caller and minute (`auth.trigger_rate_per_minute`;
    /// 0, which config validation refuses, counts as 1).
    pub fn new(per_minute: u32) -> Self {
        let quota = Quota::per_minute(NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN));
        Self {
            limiter: Arc::new(RateLimiter::keyed(quota)),
        }
    }

    /// Takes one trigger from `sub`'s quota.
    ///
    /// # Errors
    /// [`ApiError::RateLimited`] with the wait until the next is allowed.
    pub fn check(&self, sub: &str) -> Result<(), ApiError> {
        self.limiter
            .check_key(&sub.to_owned())
            .map_err(|not_until| ApiError::RateLimited {
                retry_after: not_until.wait_time_from(self.limiter.clock().now()),
            })
    }

    /// Forgets callers whose quota is full again, bounding the memory the
    /// limiter holds; the app calls it periodically (e.g. every minute).
    pub fn prune(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    /// Callers currently remembered.
    pub fn len(&self) -> usize {
        self.limiter.len()
    }

    /// Whether no caller is remembered.
    pub fn is_empty(&self) -> bool {
        self.limiter.len() == 0
    }
}
