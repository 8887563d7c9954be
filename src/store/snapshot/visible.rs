//! Waiting until a collected version is listed ([`Store::wait_until_listed`]):
//! a manual backup's answer waits for its snapshot to be stored, so the
//! history the caller reads next shows it. Ingest is asynchronous (the
//! event goes through the bus); this node's ingests wake the wait at once,
//! another node's are seen by a database check every quarter second.

use std::time::Duration;

use tokio::time::Instant;

use crate::store::Store;

/// How often the database is checked while waiting.
const CHECK_EVERY: Duration = Duration::from_millis(250);

impl Store {
    /// Waits, at most `bound`, until the device's newest snapshot has
    /// `sha256_hash`; returns whether it did. A version stored by this
    /// node's ingester ends the wait at once; one stored by another node
    /// within [`CHECK_EVERY`]. A database error ends it (the caller's answer
    /// does not depend on it).
    pub async fn wait_until_listed(
        &self,
        tenant_id: &str,
        device_id: &str,
        sha256_hash: &str,
        bound: Duration,
    ) -> bool {
        let deadline = Instant::now() + bound;
        loop {
            let changed = self.newest.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.newest.matches(device_id, sha256_hash) {
                return true;
            }
            let next_check = (Instant::now() + CHECK_EVERY).min(deadline);
            tokio::select! {
                () = &mut changed => continue,
                () = tokio::time::sleep_until(next_check) => {}
            }
            match self.newest_snapshot(tenant_id, device_id).await {
                Ok(Some(newest)) if newest.sha256_hash == sha256_hash => return true,
                Ok(_) if Instant::now() < deadline => {}
                Ok(_) | Err(_) => return false,
            }
        }
    }
}
