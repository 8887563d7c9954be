//! Tenants and devices mirrored from the configuration, each device's pinned
//! SSH host key and backup state, and the device queries the API serves.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;

use super::audit::{Action, insert_audit};
use super::{Error, Result, Store, on_db};
use crate::config::Fleet;

/// A device with its backup state, as listed.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, PartialEq, Eq)]
pub struct DeviceState {
    /// Device id.
    pub device_id: String,
    /// Tenant.
    pub tenant_id: String,
    /// Display name.
    pub name: String,
    /// Host.
    pub host: String,
    /// SSH port.
    pub port: i32,
    /// False once removed from the configuration (history kept).
    pub active: bool,
    /// Pinned `SHA256:` host key fingerprint.
    pub host_key_fingerprint: Option<String>,
    /// Last backup attempt.
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// Last successful backup.
    pub last_success_at: Option<DateTime<Utc>>,
    /// `success`, `failed` or `locked`.
    pub last_status: Option<String>,
    /// `error_kind` of the last failure.
    pub last_error_kind: Option<String>,
    /// Failures since the last success.
    pub consecutive_failures: i32,
    /// Earliest next scheduled attempt after a failure (backoff).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// Why scheduled retries stopped (`auth_failed`, `hostkey_mismatch`).
    pub blocked_reason: Option<String>,
    /// Newest snapshot id.
    pub newest_snapshot_id: Option<i64>,
    /// Newest snapshot hash.
    pub newest_sha256_hash: Option<String>,
}

/// How a backup attempt ended, for the device's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// A snapshot was collected.
    Success,
    /// Another backup held the lock.
    Locked,
    /// The backup failed.
    Failed {
        /// The `error_kind`.
        error_kind: String,
        /// When the scheduler may try again.
        next_attempt_at: Option<DateTime<Utc>>,
        /// Set for failures that stop scheduled retries.
        blocked_reason: Option<String>,
    },
}

/// The device-state `UPDATE` of one attempt, on `$executor`.
macro_rules! update_state {
    ($executor:expr, $device:expr, $at:expr, $attempt:expr) => {
        match $attempt {
            Attempt::Success => sqlx::query(
                "UPDATE device SET last_attempt_at = $2, last_success_at = $2, last_status = 'success', \
                 last_error_kind = NULL, consecutive_failures = 0, next_attempt_at = NULL, \
                 blocked_reason = NULL, updated_at = $2 WHERE device_id = $1",
            )
            .bind($device)
            .bind($at)
            .execute($executor)
            .await,
            Attempt::Locked => sqlx::query(
                "UPDATE device SET last_attempt_at = $2, last_status = 'locked', updated_at = $2 WHERE device_id = $1",
            )
            .bind($device)
            .bind($at)
            .execute($executor)
            .await,
            Attempt::Failed { error_kind, next_attempt_at, blocked_reason } => sqlx::query(
                "UPDATE device SET last_attempt_at = $2, last_status = 'failed', last_error_kind = $3, \
                 consecutive_failures = consecutive_failures + 1, next_attempt_at = $4, \
                 blocked_reason = COALESCE($5, blocked_reason), updated_at = $2 WHERE device_id = $1",
            )
            .bind($device)
            .bind($at)
            .bind(error_kind.as_str())
            .bind(*next_attempt_at)
            .bind(blocked_reason.as_deref())
            .execute($executor)
            .await,
        }
    };
}

const STATE_SELECT: &str = "SELECT d.device_id, d.tenant_id, d.name, d.host, d.port, d.active, \
     d.host_key_fingerprint, d.last_attempt_at, d.last_success_at, d.last_status, d.last_error_kind, \
     d.consecutive_failures, d.next_attempt_at, d.blocked_reason, \
     (SELECT s.snapshot_id FROM snapshot s WHERE s.device_id = d.device_id ORDER BY s.snapshot_id DESC LIMIT 1) AS newest_snapshot_id, \
     (SELECT s.sha256_hash FROM snapshot s WHERE s.device_id = d.device_id ORDER BY s.snapshot_id DESC LIMIT 1) AS newest_sha256_hash \
     FROM device d";

impl Store {
    /// Mirrors the configured tenants and devices: upserts them, and marks
    /// devices no longer configured inactive (their history stays). Runs
    /// again when PostgreSQL aborts it for a deadlock with another node's
    /// writes (up to 3 times in all).
    ///
    /// # Errors
    /// Database failures; nothing is changed then.
    pub async fn sync_fleet(&self, fleet: &Fleet) -> Result<()> {
        super::retry_conflicts("mirroring the fleet", || self.sync_fleet_once(fleet)).await
    }

    async fn sync_fleet_once(&self, fleet: &Fleet) -> Result<()> {
        let now = Utc::now();
        on_db!(&self.db, pool, d => {
            let mut tx = pool.begin_with(d.begin_write).await?;
            // A device's snapshots are encrypted with its tenant's key and
            // carry its tenant: moving a device with history to another
            // tenant would strand that history, so it is refused.
            let owners: Vec<(String, String)> = sqlx::query_as(
                "SELECT d.device_id, d.tenant_id FROM device d \
                 WHERE EXISTS (SELECT 1 FROM snapshot s WHERE s.device_id = d.device_id)",
            )
            .fetch_all(&mut *tx)
            .await?;
            for dev in &fleet.devices {
                if let Some((_, old)) = owners
                    .iter()
                    .find(|(id, t)| id == dev.id.as_str() && t != dev.tenant.as_str())
                {
                    return Err(Error::Unexpected(anyhow::anyhow!(
                        "device {} has snapshots in tenant {old}; it cannot move to tenant {} (give it a new id instead)",
                        dev.id,
                        dev.tenant
                    )));
                }
            }
            for t in &fleet.tenants {
                sqlx::query(
                    "INSERT INTO tenant (tenant_id, name, created_at, updated_at) VALUES ($1, $2, $3, $3) \
                     ON CONFLICT (tenant_id) DO UPDATE SET name = excluded.name, updated_at = excluded.updated_at",
                )
                .bind(t.id.as_str())
                .bind(&t.name)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query("UPDATE device SET active = FALSE").execute(&mut *tx).await?;
            for dev in &fleet.devices {
                sqlx::query(
                    "INSERT INTO device (device_id, tenant_id, name, host, port, active, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, TRUE, $6, $6) \
                     ON CONFLICT (device_id) DO UPDATE SET tenant_id = excluded.tenant_id, name = excluded.name, \
                     host = excluded.host, port = excluded.port, active = TRUE, updated_at = excluded.updated_at",
                )
                .bind(dev.id.as_str())
                .bind(dev.tenant.as_str())
                .bind(&dev.name)
                .bind(&dev.host)
                .bind(i32::from(dev.port))
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// A tenant's devices with their backup state, by id.
    ///
    /// # Errors
    /// Database failures.
    pub async fn list_devices(&self, tenant_id: &str) -> Result<Vec<DeviceState>> {
        let sql = format!("{STATE_SELECT} WHERE d.tenant_id = $1 ORDER BY d.device_id");
        let rows = on_db!(&self.db, pool, _d => {
            sqlx::query_as::<_, DeviceState>(sqlx::AssertSqlSafe(sql)).bind(tenant_id).fetch_all(pool).await?
        });
        Ok(rows)
    }

    /// One device of a tenant with its backup state.
    ///
    /// # Errors
    /// [`Error::DeviceNotFound`] when the device is not this tenant's.
    pub async fn get_device(&self, tenant_id: &str, device_id: &str) -> Result<DeviceState> {
        let sql = format!("{STATE_SELECT} WHERE d.tenant_id = $1 AND d.device_id = $2");
        let row = on_db!(&self.db, pool, _d => {
            sqlx::query_as::<_, DeviceState>(sqlx::AssertSqlSafe(sql))
                .bind(tenant_id)
                .bind(device_id)
                .fetch_optional(pool)
                .await?
        });
        row.ok_or(Error::DeviceNotFound)
    }

    /// The pinned host key fingerprint of a device, if any.
    ///
    /// # Errors
    /// Database failures.
    pub async fn pinned_host_key(&self, device_id: &str) -> Result<Option<String>> {
        let fp = on_db!(&self.db, pool, _d => {
            sqlx::query_scalar::<_, Option<String>>("SELECT host_key_fingerprint FROM device WHERE device_id = $1")
                .bind(device_id)
                .fetch_optional(pool)
                .await?
        });
        Ok(fp.flatten())
    }

    /// Pins `fingerprint` for a device that has none yet (first use wins
    /// when two nodes race) and audits it.
    ///
    /// # Errors
    /// [`Error::DeviceNotFound`] for an unknown device.
    pub async fn pin_host_key(&self, device_id: &str, fingerprint: &str) -> Result<()> {
        on_db!(&self.db, pool, d => {
            let mut tx = pool.begin_with(d.begin_write).await?;
            let tenant: Option<String> = sqlx::query_scalar("SELECT tenant_id FROM device WHERE device_id = $1")
                .bind(device_id)
                .fetch_optional(&mut *tx)
                .await?;
            let tenant = tenant.ok_or(Error::DeviceNotFound)?;
            let pinned = sqlx::query(
                "UPDATE device SET host_key_fingerprint = $2, host_key_pinned_at = $3 \
                 WHERE device_id = $1 AND host_key_fingerprint IS NULL",
            )
            .bind(device_id)
            .bind(fingerprint)
            .bind(Utc::now())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if pinned == 1 {
                let detail = json!({ "fingerprint": fingerprint });
                insert_audit!(&mut *tx, tenant.as_str(), Some(device_id), Action::HostKeyPinned, None::<&str>, &detail)?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Forgets a device's pinned key and lifts a host-key block (an admin's
    /// reset), audited with the actor.
    ///
    /// # Errors
    /// [`Error::DeviceNotFound`] when the device is not this tenant's.
    pub async fn reset_host_key(
        &self,
        tenant_id: &str,
        device_id: &str,
        actor: &str,
    ) -> Result<()> {
        on_db!(&self.db, pool, d => {
            let mut tx = pool.begin_with(d.begin_write).await?;
            let old: Option<Option<String>> = sqlx::query_scalar(
                "SELECT host_key_fingerprint FROM device WHERE tenant_id = $1 AND device_id = $2",
            )
            .bind(tenant_id)
            .bind(device_id)
            .fetch_optional(&mut *tx)
            .await?;
            let old = old.ok_or(Error::DeviceNotFound)?;
            sqlx::query(
                "UPDATE device SET host_key_fingerprint = NULL, host_key_pinned_at = NULL, \
                 blocked_reason = CASE WHEN blocked_reason = 'hostkey_mismatch' THEN NULL ELSE blocked_reason END, \
                 updated_at = $3 WHERE tenant_id = $1 AND device_id = $2",
            )
            .bind(tenant_id)
            .bind(device_id)
            .bind(Utc::now())
            .execute(&mut *tx)
            .await?;
            let detail = json!({ "previous_fingerprint": old });
            insert_audit!(&mut *tx, tenant_id, Some(device_id), Action::HostKeyReset, Some(actor), &detail)?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Records how a backup attempt ended in the device's state.
    ///
    /// # Errors
    /// Database failures.
    pub async fn record_attempt(
        &self,
        device_id: &str,
        at: DateTime<Utc>,
        attempt: &Attempt,
    ) -> Result<()> {
        self.record_attempts(&[(device_id, at, attempt)]).await
    }

    /// Records several attempts, in one transaction: a node receiving
    /// reports of a whole pass commits (and flushes) once per batch, not
    /// once per device. Rows are updated in device order (each device's
    /// attempts in the order given), so batches of two nodes never wait for
    /// each other's row locks in a cycle; a batch aborted by PostgreSQL for
    /// a deadlock with a fleet sync runs again. An unknown device is skipped.
    ///
    /// # Errors
    /// Database failures; then none of the batch is recorded.
    pub async fn record_attempts(
        &self,
        attempts: &[(&str, DateTime<Utc>, &Attempt)],
    ) -> Result<()> {
        let mut ordered = attempts.to_vec();
        // Stable: one device's attempts keep their order.
        ordered.sort_by_key(|(device_id, _, _)| *device_id);
        super::retry_conflicts("recording attempts", || self.record_ordered(&ordered)).await
    }

    async fn record_ordered(&self, ordered: &[(&str, DateTime<Utc>, &Attempt)]) -> Result<()> {
        on_db!(&self.db, pool, d => {
            let mut tx = pool.begin_with(d.begin_write).await?;
            for (device_id, at, attempt) in ordered {
                update_state!(&mut *tx, *device_id, *at, *attempt)?;
            }
            tx.commit().await?;
        });
        Ok(())
    }
}

impl crate::backup::HostKeys for Store {
    async fn pinned(&self, device: &crate::id::DeviceId) -> anyhow::Result<Option<String>> {
        Ok(self.pinned_host_key(device.as_str()).await?)
    }

    async fn pin(&self, device: &crate::id::DeviceId, fingerprint: &str) -> anyhow::Result<()> {
        Ok(self.pin_host_key(device.as_str(), fingerprint).await?)
    }
}
