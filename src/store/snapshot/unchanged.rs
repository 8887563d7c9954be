//! Unchanged exports, the common case (issue #21): [`NewestHashes`], this
//! node's memory of each device's newest hash, tells a probable duplicate
//! from a new version before any work is done on it, and
//! [`Store::record_unchanged`] records many duplicates in one transaction
//! (one commit, one fsync on SQLite, for a whole batch).
//!
//! The memory is a hint, never trusted: the batch re-reads each device's
//! newest snapshot inside its transaction, so an entry left stale by another
//! node's ingest, by retention, a device move or a deleted database only
//! sends that event down the full path ([`Store::ingest`]); a version is
//! never lost to it. It is loaded at start-up ([`Store::load_newest_hashes`])
//! and updated by every ingest of this node.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use chrono::SubsecRound;
use tracing::instrument;

use super::new::{Ingested, NewSnapshot};
use super::{audit_skipped, sql};
use crate::store::audit::Action;
use crate::store::db::on_db;
use crate::store::{Error, Result, Store, outbox};

/// Device id → the hash of its newest snapshot, as this node last saw it.
#[derive(Default)]
pub struct NewestHashes {
    map: Mutex<HashMap<String, String>>,
}

impl std::fmt::Debug for NewestHashes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewestHashes")
            .field("devices", &self.lock().len())
            .finish()
    }
}

impl NewestHashes {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, String>> {
        // Every update is one insert or remove: a poisoned map is whole.
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether `sha256_hash` is the newest hash this node saw for the device.
    pub fn matches(&self, device_id: &str, sha256_hash: &str) -> bool {
        self.lock()
            .get(device_id)
            .is_some_and(|h| h.as_str() == sha256_hash)
    }

    /// Records `sha256_hash` as the device's newest.
    pub(crate) fn remember(&self, device_id: &str, sha256_hash: &str) {
        let mut map = self.lock();
        match map.get_mut(device_id) {
            Some(h) if h.as_str() == sha256_hash => {}
            Some(h) => sha256_hash.clone_into(h),
            None => {
                map.insert(device_id.to_owned(), sha256_hash.to_owned());
            }
        }
    }

    /// Forgets what is known of a device (its history changed under it).
    pub(crate) fn forget(&self, device_id: &str) {
        self.lock().remove(device_id);
    }

    /// Forgets every device.
    pub(crate) fn clear(&self) {
        self.lock().clear();
    }
}

impl Store {
    /// Whether a snapshot of the device with this hash is probably
    /// unchanged: the hash is the newest this node saw for the device.
    /// Cheap (no I/O); the answer is a hint for routing the event to
    /// [`Store::record_unchanged`].
    pub fn is_probably_unchanged(&self, device_id: &str, sha256_hash: &str) -> bool {
        self.newest.matches(device_id, sha256_hash)
    }

    /// Fills this node's memory of each device's newest hash from the store
    /// (start-up of an ingester). Returns the number of devices.
    ///
    /// # Errors
    /// Database failures; the memory is left as it was.
    pub async fn load_newest_hashes(&self) -> Result<usize> {
        // The newest snapshot per device through `snapshot_device_idx`
        // (device_id, snapshot_id).
        let rows: Vec<(String, String)> = on_db!(&self.db, |pool| {
            sqlx::query_as(
                "SELECT s.device_id, s.sha256_hash FROM snapshot s \
                 JOIN (SELECT device_id, MAX(snapshot_id) AS snapshot_id \
                       FROM snapshot GROUP BY device_id) m \
                 ON m.snapshot_id = s.snapshot_id",
            )
            .fetch_all(pool)
            .await?
        });
        self.newest.clear();
        for (device, hash) in &rows {
            self.newest.remember(device, hash);
        }
        Ok(rows.len())
    }

    /// Records snapshots that are probably unchanged, in one transaction:
    /// for each whose hash is the device's newest snapshot's (re-read here),
    /// what [`Store::ingest`] records for a duplicate (the device's success,
    /// a `backup.recovered` notification when due, the audit event
    /// `config_snapshot_skipped_duplicate`). Returns, in the order given,
    /// `Some(Duplicate)` for those, and `None` for the others, which must go
    /// through [`Store::ingest`] (a new version, a stale or invalid event).
    ///
    /// # Errors
    /// Database failures; then nothing of the batch is recorded.
    #[instrument(name = "store.record_unchanged", skip_all, fields(events = snaps.len()))]
    pub async fn record_unchanged(&self, snaps: &[&NewSnapshot]) -> Result<Vec<Option<Ingested>>> {
        // Row locks in device order (PostgreSQL), like the attempt batches,
        // so the two never wait on each other in a cycle; stable, so one
        // device's events keep their order.
        let mut order: Vec<usize> = (0..snaps.len()).collect();
        order.sort_by_key(|&i| snaps[i].device_id.as_str());
        let results = super::super::retry_conflicts("recording unchanged snapshots", || {
            self.record_unchanged_ordered(snaps, &order)
        })
        .await?;
        for (snap, result) in snaps.iter().zip(&results) {
            if result.is_some() {
                self.newest
                    .remember(snap.device_id.as_str(), &snap.sha256_hash);
            }
        }
        Ok(results)
    }

    async fn record_unchanged_ordered(
        &self,
        snaps: &[&NewSnapshot],
        order: &[usize],
    ) -> Result<Vec<Option<Ingested>>> {
        let routes = self.outbox.get();
        let mut results = vec![None; snaps.len()];
        let mut tx = self.db.begin_write().await?;
        for &i in order {
            let snap = snaps[i];
            // An event that can never be stored is the full path's to reject.
            if snap.check().is_err() {
                continue;
            }
            match sql::lock_device(tx.conn(), snap).await {
                Ok(()) => {}
                Err(Error::InvalidSnapshot(_)) => continue,
                Err(e) => return Err(e),
            }
            let device = snap.device_id.as_str();
            let Some(newest) = sql::read_newest(tx.conn(), device).await? else {
                continue;
            };
            if newest.sha256_hash != snap.sha256_hash {
                continue;
            }
            let collected_at = snap.collected_at.trunc_subsecs(6);
            outbox::before_success(tx.conn(), &routes, device, Some(collected_at)).await?;
            sql::note_success(tx.conn(), device, collected_at).await?;
            let action = Action::SnapshotSkippedDuplicate;
            audit_skipped(tx.conn(), snap, collected_at, &newest, action).await?;
            results[i] = Some(Ingested::Duplicate {
                snapshot_id: newest.snapshot_id,
            });
        }
        tx.commit().await?;
        Ok(results)
    }
}
