//! Retention: deletes snapshots older than `retention_days`, except the
//! newest `keep_min` of each device, with their diffs and changes (by
//! cascade), in small batches so ingest is never blocked for long; audits
//! what it deleted. A diff whose predecessor is deleted stays, so the next
//! snapshot keeps its change summary.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::json;
use tracing::{info, instrument};

use super::audit::{Action, insert_audit};
use super::{Result, Store, on_db};

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
            let deleted = self.retention_batch(cutoff, keep_min).await?;
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
        on_db!(&self.db, pool, d => {
            let mut tx = pool.begin_with(d.begin_write).await?;
            let victims: Vec<(i64, String, String)> = sqlx::query_as(
                "SELECT snapshot_id, tenant_id, device_id FROM ( \
                   SELECT snapshot_id, tenant_id, device_id, collected_at, \
                   ROW_NUMBER() OVER (PARTITION BY device_id ORDER BY snapshot_id DESC) AS rn \
                   FROM snapshot) ranked \
                 WHERE rn > $1 AND collected_at < $2 ORDER BY snapshot_id LIMIT $3",
            )
            .bind(i64::from(keep_min))
            .bind(cutoff)
            .bind(BATCH)
            .fetch_all(&mut *tx)
            .await?;
            let mut per_device: BTreeMap<(String, String), Vec<i64>> = BTreeMap::new();
            for (id, tenant, device) in &victims {
                sqlx::query("DELETE FROM snapshot WHERE snapshot_id = $1")
                    .bind(*id)
                    .execute(&mut *tx)
                    .await?;
                per_device.entry((tenant.clone(), device.clone())).or_default().push(*id);
            }
            for ((tenant, device), ids) in &per_device {
                let detail = json!({ "snapshot_ids": ids, "count": ids.len(), "cutoff": cutoff });
                insert_audit!(&mut *tx, tenant.as_str(), Some(device.as_str()), Action::DeletedRetention, None::<&str>, &detail)?;
            }
            tx.commit().await?;
            Ok(victims.len() as u64)
        })
    }
}
