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

use chrono::{DateTime, SubsecRound, Utc};
use tracing::instrument;

use super::new::{Ingested, NewSnapshot};
use super::skipped_audit_detail;
use crate::store::audit::Action;
use crate::store::db::{Conn, on_conn, on_db};
use crate::store::device::note_successes;
use crate::store::{Result, Store, outbox};

/// Device id → the hash of its newest snapshot, as this node last saw it.
#[derive(Default)]
pub struct NewestHashes {
    map: Mutex<HashMap<String, String>>,
    /// Woken when an entry changes (see `Store::wait_until_listed`).
    pub(super) changed: tokio::sync::Notify,
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
            Some(h) if h.as_str() == sha256_hash => return,
            Some(h) => sha256_hash.clone_into(h),
            None => {
                map.insert(device_id.to_owned(), sha256_hash.to_owned());
            }
        }
        drop(map);
        self.changed.notify_waiters();
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
        // The newest snapshot per device as its row names it: one lookup
        // per device, whatever the length of its history.
        let rows: Vec<(String, String)> = on_db!(&self.db, |pool| {
            sqlx::query_as(
                "SELECT d.device_id, s.sha256_hash FROM device d \
                 JOIN snapshot s ON s.snapshot_id = d.newest_snapshot_id",
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
        // An event that can never be stored is the full path's to reject.
        let valid: Vec<usize> = order
            .iter()
            .copied()
            .filter(|&i| snaps[i].check_fields().is_ok())
            .collect();
        if valid.is_empty() {
            return Ok(results);
        }
        let mut devices: Vec<&str> = valid.iter().map(|&i| snaps[i].device_id.as_str()).collect();
        devices.dedup();
        let mut tx = self.db.begin_write().await?;
        let rows = read_devices(tx.conn(), &devices).await?;
        // A device's success is noted once, at its latest collection; a
        // recovery notification is queued once, before it.
        let mut successes: Vec<(&str, DateTime<Utc>)> = Vec::new();
        let mut audits = Vec::new();
        for i in valid {
            let snap = snaps[i];
            let device = snap.device_id.as_str();
            let Some(row) = rows.iter().find(|r| r.device_id == device) else {
                continue;
            };
            let same = row.tenant_id == snap.tenant_id.as_str()
                && row.sha256_hash.as_deref() == Some(snap.sha256_hash.as_str());
            let Some(newest_id) = row.snapshot_id.filter(|_| same) else {
                continue;
            };
            let collected_at = snap.collected_at.trunc_subsecs(6);
            match successes.iter_mut().find(|(d, _)| *d == device) {
                Some((_, at)) => *at = (*at).max(collected_at),
                None => {
                    if row.consecutive_failures > 0 {
                        outbox::before_success(tx.conn(), &routes, device, Some(collected_at))
                            .await?;
                    }
                    successes.push((device, collected_at));
                }
            }
            audits.push(skipped_detail(snap, collected_at, newest_id));
            results[i] = Some(Ingested::Duplicate {
                snapshot_id: newest_id,
            });
        }
        note_successes(tx.conn(), &successes, true).await?;
        insert_skipped(tx.conn(), &audits).await?;
        tx.commit().await?;
        Ok(results)
    }
}

/// What the batch needs of a device: its owner, failure count and newest
/// snapshot (`None`s without one).
#[derive(sqlx::FromRow)]
struct DeviceRow {
    device_id: String,
    tenant_id: String,
    consecutive_failures: i32,
    snapshot_id: Option<i64>,
    sha256_hash: Option<String>,
}

/// The devices' rows with their newest snapshots, in one statement (rows
/// locked in device order on PostgreSQL; SQLite's write transaction holds
/// the lock already). Unknown devices are missing.
async fn read_devices(conn: Conn<'_>, devices: &[&str]) -> Result<Vec<DeviceRow>> {
    let sql = format!(
        "SELECT d.device_id, d.tenant_id, d.consecutive_failures, \
         s.snapshot_id, s.sha256_hash FROM device d \
         LEFT JOIN snapshot s ON s.snapshot_id = d.newest_snapshot_id \
         WHERE d.device_id IN {} ORDER BY d.device_id{}",
        conn.value_rows(1, devices.len()),
        match conn {
            Conn::Postgres(_) => " FOR UPDATE OF d",
            Conn::Sqlite(_) => "",
        }
    );
    Ok(on_conn!(conn, |c| {
        let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql));
        for device in devices {
            query = query.bind(*device);
        }
        query.fetch_all(c).await?
    }))
}

/// The audit row of one skipped duplicate: tenant, device, detail.
struct Skipped {
    tenant_id: String,
    device_id: String,
    detail: String,
}

fn skipped_detail(snap: &NewSnapshot, collected_at: DateTime<Utc>, newest_id: i64) -> Skipped {
    Skipped {
        tenant_id: snap.tenant_id.to_string(),
        device_id: snap.device_id.to_string(),
        detail: skipped_audit_detail(snap, collected_at, newest_id).to_string(),
    }
}

/// The `config_snapshot_skipped_duplicate` audit rows, in one statement.
async fn insert_skipped(conn: Conn<'_>, rows: &[Skipped]) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "INSERT INTO audit_event (tenant_id, device_id, action, detail, created_at) VALUES {}",
        conn.value_rows(rows.len(), 5)
    );
    let action = Action::SnapshotSkippedDuplicate.as_str();
    let now = Utc::now();
    on_conn!(conn, |c| {
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for row in rows {
            query = query
                .bind(row.tenant_id.as_str())
                .bind(row.device_id.as_str())
                .bind(action)
                .bind(row.detail.as_str())
                .bind(now);
        }
        query.execute(c).await?;
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt as _;

    use super::NewestHashes;

    #[test]
    fn a_new_newest_hash_wakes_the_waiters_and_the_same_one_does_not() {
        // Arrange
        let hashes = NewestHashes::default();
        let first = hashes.changed.notified();
        tokio::pin!(first);
        first.as_mut().enable();

        // Act + Assert
        hashes.remember("r1", "a");
        assert!(first.now_or_never().is_some(), "a new device's hash wakes");
        let again = hashes.changed.notified();
        tokio::pin!(again);
        again.as_mut().enable();
        hashes.remember("r1", "a");
        assert!(
            again.as_mut().now_or_never().is_none(),
            "the same hash again does not"
        );
        hashes.remember("r1", "b");
        assert!(again.now_or_never().is_some(), "a changed hash wakes");
    }
}
