//! Retention: deletes snapshots older than `retention_days`, except the
//! newest `keep_min` of each device, with their diffs and changes (by
//! cascade), in small batches so ingest is never blocked for long; audits
//! what it deleted, and sets each touched device's newest version again. A
//! diff whose predecessor is deleted stays, so the next
//! snapshot keeps its change summary.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde_json::json;
use tracing::{info, instrument};

use super::audit::{Action, insert_audit};
use super::db::{Conn, on_conn};
use super::{Result, Store};

/// Snapshots deleted per transaction.
pub const BATCH: i64 = 500;

impl Store {
    /// Applies retention once, as of `now`; returns how many snapshots it deleted.
    ///
    /// # Errors
    /// Database failures; batches already committed stay deleted.
    #[instrument(name = "store.retention", skip_all)]
    pub async fn apply_retention(
        &self,
        now: DateTime<Utc>,
        retention_days: u32,
        keep_min: u32,
    ) -> Result<u64> {
        let cutoff = now - chrono::Duration::days(i64::from(retention_days));
        let mut total = 0u64;
        loop {
            // It locks device rows, so a fleet sync (every row, in table
            // order) can meet it: PostgreSQL then aborts one, run again.
            let deleted = super::retry_conflicts("applying retention", || {
                self.retention_batch(cutoff, keep_min)
            })
            .await?;
            total += deleted;
            if deleted < u64::try_from(BATCH).unwrap_or(u64::MAX) {
                break;
            }
        }
        if total > 0 {
            info!(deleted = total, "retention deleted old snapshots");
        }
        Ok(total)
    }

    async fn retention_batch(&self, cutoff: DateTime<Utc>, keep_min: u32) -> Result<u64> {
        let mut tx = self.db.begin_write().await?;
        let victims = select_victims(tx.conn(), cutoff, keep_min).await?;
        let mut per_device: BTreeMap<(String, String), Vec<i64>> = BTreeMap::new();
        for (id, tenant, device) in &victims {
            let key = (tenant.clone(), device.clone());
            per_device.entry(key).or_default().push(*id);
        }
        // Device rows before snapshot rows, the order ingest takes them in
        // (an ingest holding the device may be about to reference the
        // snapshot deleted here as its predecessor), and in device order,
        // like the batches of unchanged snapshots and of attempts, so none
        // waits on another in a cycle; the newest version read after the
        // lock sees every ingest committed before it.
        let devices: BTreeSet<&str> = victims.iter().map(|(_, _, d)| d.as_str()).collect();
        for device in devices {
            lock_device(tx.conn(), device).await?;
        }
        for (id, _, _) in &victims {
            delete_snapshot(tx.conn(), *id).await?;
        }
        for ((tenant, device), ids) in &per_device {
            recompute_newest(tx.conn(), device).await?;
            let detail = json!({ "snapshot_ids": ids, "count": ids.len(), "cutoff": cutoff });
            let action = Action::DeletedRetention;
            insert_audit(tx.conn(), Some(tenant), Some(device), action, None, &detail).await?;
        }
        tx.commit().await?;
        // With keep_min = 0 a device's newest snapshot may go: forget what
        // this node knows of the devices touched (the hint is checked in
        // any case, this only spares the batch a miss).
        for (_, device) in per_device.keys() {
            self.newest.forget(device);
        }
        Ok(victims.len() as u64)
    }
}

/// The next batch of snapshots past retention: older than `cutoff` and not
/// among the newest `keep_min` of their device, oldest first.
async fn select_victims(
    conn: Conn<'_>,
    cutoff: DateTime<Utc>,
    keep_min: u32,
) -> Result<Vec<(i64, String, String)>> {
    let victims = on_conn!(conn, |c| {
        sqlx::query_as(
            "SELECT snapshot_id, tenant_id, device_id FROM ( \
               SELECT snapshot_id, tenant_id, device_id, collected_at, \
               ROW_NUMBER() OVER (PARTITION BY device_id ORDER BY snapshot_id DESC) AS rn \
               FROM snapshot) ranked \
             WHERE rn > $1 AND collected_at < $2 ORDER BY snapshot_id LIMIT $3",
        )
        .bind(i64::from(keep_min))
        .bind(cutoff)
        .bind(BATCH)
        .fetch_all(c)
        .await?
    });
    Ok(victims)
}

/// Deletes one snapshot; its diff and changes go with it (cascade).
async fn delete_snapshot(conn: Conn<'_>, snapshot_id: i64) -> Result<()> {
    on_conn!(conn, |c| {
        sqlx::query("DELETE FROM snapshot WHERE snapshot_id = $1")
            .bind(snapshot_id)
            .execute(c)
            .await?;
    });
    Ok(())
}

/// Locks the device's row (PostgreSQL; SQLite's write transaction holds
/// the lock already).
async fn lock_device(conn: Conn<'_>, device_id: &str) -> Result<()> {
    let sql = format!(
        "SELECT device_id FROM device WHERE device_id = $1{}",
        conn.for_update()
    );
    on_conn!(conn, |c| {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(device_id)
            .fetch_optional(c)
            .await?;
    });
    Ok(())
}

/// Sets the device's newest version again from its snapshots, after
/// deletions (with `keep_min = 0` the newest may have gone; NULL when none
/// is left).
async fn recompute_newest(conn: Conn<'_>, device_id: &str) -> Result<()> {
    on_conn!(conn, |c| {
        sqlx::query(
            "UPDATE device SET newest_snapshot_id = \
             (SELECT MAX(s.snapshot_id) FROM snapshot s WHERE s.device_id = $1) \
             WHERE device_id = $1",
        )
        .bind(device_id)
        .execute(c)
        .await?;
    });
    Ok(())
}
