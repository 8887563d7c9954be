//! Per-device locks, so a device is never backed up twice at once (DESIGN.md
//! §3.3): Redis for fleets shared by several nodes, in process otherwise.
//!
//! The key is `{key_prefix}{device_id}` (`backup:device:{id}`, shared with the
//! originating system's pollers), the value a random token, with a TTL; release
//! and extension compare the token first, so a holder whose lock expired can
//! never remove its successor's. Beside it, `{key}:last_success` records the
//! last success so that several schedulers skip a device another node just
//! backed up, and `{key}:published` the hash the device's last successful
//! backup handed over: taken (read and deleted) with the lock and written
//! again at its release, so a holder knows the last hash for certain or not
//! at all (see [`LockGuard::published`]). A lock backend that is down is an
//! error, never "unlocked": callers fail closed.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::RngCore as _;
use tracing::warn;

use crate::id::DeviceId;

mod local;
mod redis;

pub use local::LocalLocker;
pub use redis::RedisLocker;

/// Result type of the lock module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A failed lock operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The lock backend could not be reached or did not answer in time.
    #[error("lock backend unavailable")]
    Unavailable(#[source] anyhow::Error),
    /// Anything else.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// The lock backend, picked once from `lock.url`.
#[derive(Clone, Debug)]
pub enum Locker {
    /// Redis, shared by every node.
    Redis(RedisLocker),
    /// In process (embedded mode).
    Local(LocalLocker),
}

impl Locker {
    /// `local` or a `redis://` URL; keys are `{key_prefix}{device_id}`.
    ///
    /// # Errors
    /// A malformed URL. An unreachable Redis is not an error here (the
    /// backend may come up later); operations then fail with
    /// [`Error::Unavailable`].
    pub fn connect(url: &str, key_prefix: &str) -> Result<Locker> {
        if url == "local" {
            Ok(Locker::Local(LocalLocker::new(key_prefix)))
        } else {
            Ok(Locker::Redis(RedisLocker::connect(url, key_prefix)?))
        }
    }

    /// Takes the device's lock for `ttl` unless someone holds it.
    ///
    /// Returns `None` when the lock is held.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the backend is down.
    pub async fn try_acquire(&self, device: &DeviceId, ttl: Duration) -> Result<Option<LockGuard>> {
        let token = new_token();
        let acquired = match self {
            Locker::Redis(r) => r.try_acquire(device, &token, ttl).await?,
            Locker::Local(l) => l.try_acquire(device, &token, ttl),
        };
        Ok(acquired.map(|published| LockGuard {
            locker: self.clone(),
            device: device.clone(),
            token,
            published,
            released: false,
        }))
    }

    /// When the device was last backed up successfully by any node.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the backend is down.
    pub async fn last_success(&self, device: &DeviceId) -> Result<Option<DateTime<Utc>>> {
        match self {
            Locker::Redis(r) => r.last_success(device).await,
            Locker::Local(l) => Ok(l.last_success(device)),
        }
    }

    /// Checks that the backend answers.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when it does not.
    pub async fn ping(&self) -> Result<()> {
        match self {
            Locker::Redis(r) => r.ping().await,
            Locker::Local(_) => Ok(()),
        }
    }

    /// `redis` or `local`.
    pub fn backend(&self) -> &'static str {
        match self {
            Locker::Redis(_) => "redis",
            Locker::Local(_) => "local",
        }
    }
}

/// A held device lock. Release it with [`LockGuard::release`]; dropping it
/// unreleased only warns, and the lock then lapses at its TTL.
#[derive(Debug)]
pub struct LockGuard {
    locker: Locker,
    device: DeviceId,
    token: String,
    published: Option<String>,
    released: bool,
}

impl LockGuard {
    /// The hash the device's previous backup handed over, when the holder
    /// before this one released its lock after a success (and wrote it).
    /// Taking the lock removed it from the backend: a holder that dies or
    /// fails leaves none, so a value here is never older than the device's
    /// last handed-over backup.
    pub fn published(&self) -> Option<&str> {
        self.published.as_deref()
    }

    /// Extends the lock to `ttl` from now if it is still ours.
    ///
    /// Returns false when the lock expired and was lost.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the backend is down.
    pub async fn extend(&self, ttl: Duration) -> Result<bool> {
        match &self.locker {
            Locker::Redis(r) => r.extend(&self.device, &self.token, ttl).await,
            Locker::Local(l) => Ok(l.extend(&self.device, &self.token, ttl)),
        }
    }

    /// Releases the lock if it is still ours.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the backend is down; the lock then lapses
    /// at its TTL.
    pub async fn release(mut self) -> Result<()> {
        self.released = true;
        match &self.locker {
            Locker::Redis(r) => r.release(&self.device, &self.token).await,
            Locker::Local(l) => {
                l.release(&self.device, &self.token);
                Ok(())
            }
        }
    }

    /// Records a success at `at`, kept for `keep` (at least an interval;
    /// [`Locker::last_success`] reads it), and releases the lock if it is
    /// still ours: on Redis, one round trip for both. `published`, the hash
    /// this backup handed over, is kept as long for the next holder
    /// ([`LockGuard::published`]), only if the lock was still ours.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the backend is down; the success is then
    /// not recorded and the lock lapses at its TTL.
    pub async fn release_after_success(
        mut self,
        at: DateTime<Utc>,
        keep: Duration,
        published: Option<&str>,
    ) -> Result<()> {
        self.released = true;
        match &self.locker {
            Locker::Redis(r) => {
                r.release_after_success(&self.device, &self.token, at, keep, published)
                    .await
            }
            Locker::Local(l) => {
                l.record_success(&self.device, at, keep);
                l.release_after_success(&self.device, &self.token, published, keep);
                Ok(())
            }
        }
    }

    /// The device this lock is for.
    pub fn device(&self) -> &DeviceId {
        &self.device
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if !self.released {
            warn!(device_id = %self.device, "device lock dropped without release; it lapses at its TTL");
        }
    }
}

/// 128 random bits, hex: the lock value only its holder knows.
fn new_token() -> String {
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}
