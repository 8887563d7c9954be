//! In-process locks with the same semantics as the Redis ones: token, TTL,
//! compare-and-delete, compare-and-expire. Time is tokio's, so tests can run
//! on a paused clock.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

use crate::id::DeviceId;

/// The embedded lock table.
#[derive(Clone, Debug)]
pub struct LocalLocker {
    prefix: String,
    inner: Arc<Mutex<Tables>>,
}

#[derive(Debug, Default)]
struct Tables {
    locks: HashMap<String, (String, Instant)>,
    successes: HashMap<String, (DateTime<Utc>, Instant)>,
    /// The hash each device's last successful backup handed over.
    published: HashMap<String, (String, Instant)>,
}

impl LocalLocker {
    /// An empty table; keys are `{prefix}{device_id}` as with Redis.
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
            inner: Arc::default(),
        }
    }

    fn tables(&self) -> MutexGuard<'_, Tables> {
        // A panic while holding this mutex cannot leave the maps inconsistent
        // (every update is a single insert or remove), so poisoning is ignored.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn key(&self, device: &DeviceId) -> String {
        format!("{}{device}", self.prefix)
    }

    /// `None` when the lock is held; else the lock is ours, with the
    /// published hash its previous holder left (taken out of the table).
    pub(super) fn try_acquire(
        &self,
        device: &DeviceId,
        token: &str,
        ttl: Duration,
    ) -> Option<Option<String>> {
        let now = Instant::now();
        let key = self.key(device);
        let mut t = self.tables();
        match t.locks.get(&key) {
            Some((_, expiry)) if *expiry > now => None,
            _ => {
                let published = t
                    .published
                    .remove(&key)
                    .filter(|(_, expiry)| *expiry > now)
                    .map(|(hash, _)| hash);
                t.locks.insert(key, (token.to_owned(), now + ttl));
                Some(published)
            }
        }
    }

    pub(super) fn extend(&self, device: &DeviceId, token: &str, ttl: Duration) -> bool {
        let now = Instant::now();
        let mut t = self.tables();
        match t.locks.get_mut(&self.key(device)) {
            Some((held, expiry)) if held == token && *expiry > now => {
                *expiry = now + ttl;
                true
            }
            _ => false,
        }
    }

    pub(super) fn release(&self, device: &DeviceId, token: &str) {
        let key = self.key(device);
        let mut t = self.tables();
        if t.locks.get(&key).is_some_and(|(held, _)| held == token) {
            t.locks.remove(&key);
        }
    }

    /// Releases the lock if it is still ours, keeping `published` for the
    /// next holder only then.
    pub(super) fn release_after_success(
        &self,
        device: &DeviceId,
        token: &str,
        published: Option<&str>,
        keep: Duration,
    ) {
        let key = self.key(device);
        let mut t = self.tables();
        if t.locks.get(&key).is_some_and(|(held, _)| held == token) {
            t.locks.remove(&key);
            if let Some(hash) = published {
                t.published
                    .insert(key, (hash.to_owned(), Instant::now() + keep));
            }
        }
    }

    pub(super) fn last_success(&self, device: &DeviceId) -> Option<DateTime<Utc>> {
        let t = self.tables();
        t.successes
            .get(&self.key(device))
            .filter(|(_, expiry)| *expiry > Instant::now())
            .map(|(at, _)| *at)
    }

    pub(super) fn record_success(&self, device: &DeviceId, at: DateTime<Utc>, keep: Duration) {
        let key = self.key(device);
        self.tables()
            .successes
            .insert(key, (at, Instant::now() + keep));
    }
}
