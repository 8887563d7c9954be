//! Tenants and devices mirrored from the configuration, each device's pinned
//! SSH host key and backup state, and the device queries the API serves.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;

use super::audit::{Action, insert_audit};
use super::db::{Conn, on_conn, on_db};
use super::outbox::{self, Routes};
use super::{Error, Result, Store};
use crate::config::Fleet;
use crate::config::notify::EventKind;

/// Most devices in one statement of the fleet sync: 5 parameters each, well
/// inside both databases' limits on parameters.
const SYNC_CHUNK: usize = 1000;

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

pub(super) const STATE_SELECT: &str = "SELECT d.device_id, d.tenant_id, d.name, d.host, d.port, d.active, \
     d.host_key_fingerprint, d.last_attempt_at, d.last_success_at, d.last_status, \
     d.last_error_kind, d.consecutive_failures, d.next_attempt_at, d.blocked_reason, \
     d.newest_snapshot_id, \
     (SELECT s.sha256_hash FROM snapshot s WHERE s.snapshot_id = d.newest_snapshot_id) \
      AS newest_sha256_hash \
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
        let mut tx = self.db.begin_write().await?;
        refuse_tenant_moves(tx.conn(), fleet).await?;
        upsert_tenants(tx.conn(), fleet, now).await?;
        deactivate_missing(tx.conn(), fleet).await?;
        upsert_devices(tx.conn(), fleet, now).await?;
        tx.commit().await
    }

    /// A tenant's devices with their backup state, by id.
    ///
    /// # Errors
    /// Database failures.
    pub async fn list_devices(&self, tenant_id: &str) -> Result<Vec<DeviceState>> {
        let sql = format!("{STATE_SELECT} WHERE d.tenant_id = $1 ORDER BY d.device_id");
        let rows = on_db!(&self.db, |pool| {
            sqlx::query_as::<_, DeviceState>(sqlx::AssertSqlSafe(sql))
                .bind(tenant_id)
                .fetch_all(pool)
                .await?
        });
        Ok(rows)
    }

    /// One device of a tenant with its backup state.
    ///
    /// # Errors
    /// [`Error::DeviceNotFound`] when the device is not this tenant's.
    pub async fn get_device(&self, tenant_id: &str, device_id: &str) -> Result<DeviceState> {
        let sql = format!("{STATE_SELECT} WHERE d.tenant_id = $1 AND d.device_id = $2");
        let row = on_db!(&self.db, |pool| {
            sqlx::query_as::<_, DeviceState>(sqlx::AssertSqlSafe(sql))
                .bind(tenant_id)
                .bind(device_id)
                .fetch_optional(pool)
                .await?
        });
        row.ok_or(Error::DeviceNotFound)
    }

    /// Pins `fingerprint` for a device that has none yet (first use wins
    /// when two nodes race) and audits it.
    ///
    /// # Errors
    /// [`Error::DeviceNotFound`] for an unknown device.
    pub async fn pin_host_key(&self, device_id: &str, fingerprint: &str) -> Result<()> {
        let mut tx = self.db.begin_write().await?;
        let tenant = device_tenant(tx.conn(), device_id)
            .await?
            .ok_or(Error::DeviceNotFound)?;
        // Whatever the outcome, the next read goes to the store: a node
        // that lost the race learns the winner's key there.
        self.pins.set(device_id, None);
        if pin_if_unset(tx.conn(), device_id, fingerprint).await? {
            let detail = json!({ "fingerprint": fingerprint });
            let action = Action::HostKeyPinned;
            insert_audit(
                tx.conn(),
                Some(&tenant),
                Some(device_id),
                action,
                None,
                &detail,
            )
            .await?;
        }
        tx.commit().await
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
        let mut tx = self.db.begin_write().await?;
        let old = pinned_in_tenant(tx.conn(), tenant_id, device_id)
            .await?
            .ok_or(Error::DeviceNotFound)?;
        clear_pin(tx.conn(), tenant_id, device_id).await?;
        self.pins.set(device_id, None);
        let detail = json!({ "previous_fingerprint": old });
        let action = Action::HostKeyReset;
        insert_audit(
            tx.conn(),
            Some(tenant_id),
            Some(device_id),
            action,
            Some(actor),
            &detail,
        )
        .await?;
        tx.commit().await
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
        let routes = self.outbox.get();
        // Successes, the common case, are written many devices to a
        // statement, unless a target wants `backup.recovered` (which reads
        // each device's failures first); each device's latest success of a
        // run wins, as row by row. Any other attempt of a device is written
        // after its earlier successes.
        let bulk = !routes.wants(EventKind::BackupRecovered);
        let mut successes: Vec<(&str, DateTime<Utc>)> = Vec::new();
        let mut tx = self.db.begin_write().await?;
        for (device_id, at, attempt) in ordered {
            if bulk && matches!(attempt, Attempt::Success) {
                match successes.last_mut() {
                    Some((d, last)) if d == device_id => *last = *at,
                    _ => successes.push((device_id, *at)),
                }
                continue;
            }
            note_successes(tx.conn(), &successes, false).await?;
            successes.clear();
            update_state(tx.conn(), &routes, device_id, *at, attempt).await?;
        }
        note_successes(tx.conn(), &successes, false).await?;
        tx.commit().await
    }
}

/// Refuses a fleet that moves a device with history to another tenant: its
/// snapshots are encrypted with its tenant's key and carry its tenant, so
/// the move would strand that history. `cfgsnap device move` re-seals the
/// history first ([`Store::move_device`]); then the fleet agrees with the
/// store and passes.
async fn refuse_tenant_moves(conn: Conn<'_>, fleet: &Fleet) -> Result<()> {
    let owners: Vec<(String, String)> = on_conn!(conn, |c| {
        sqlx::query_as(
            "SELECT d.device_id, d.tenant_id FROM device d \
             WHERE EXISTS (SELECT 1 FROM snapshot s WHERE s.device_id = d.device_id)",
        )
        .fetch_all(c)
        .await?
    });
    let owners: HashMap<&str, &str> = owners
        .iter()
        .map(|(device, tenant)| (device.as_str(), tenant.as_str()))
        .collect();
    for dev in &fleet.devices {
        if let Some(old) = owners
            .get(dev.id.as_str())
            .filter(|t| **t != dev.tenant.as_str())
        {
            return Err(Error::Unexpected(anyhow::anyhow!(
                "device {} has snapshots in tenant {old}; move its history first with \
                 `cfgsnap device move {} --to {}`, or give it a new id",
                dev.id,
                dev.id,
                dev.tenant
            )));
        }
    }
    Ok(())
}

async fn upsert_tenants(mut conn: Conn<'_>, fleet: &Fleet, now: DateTime<Utc>) -> Result<()> {
    for t in &fleet.tenants {
        on_conn!(conn.reborrow(), |c| {
            sqlx::query(
                "INSERT INTO tenant (tenant_id, name, created_at, updated_at) \
                 VALUES ($1, $2, $3, $3) \
                 ON CONFLICT (tenant_id) DO UPDATE SET name = excluded.name, \
                 updated_at = excluded.updated_at",
            )
            .bind(t.id.as_str())
            .bind(&t.name)
            .bind(now)
            .execute(c)
            .await?;
        });
    }
    Ok(())
}

/// Marks inactive the devices the fleet no longer lists (one read of the
/// active ones; usually nothing to write).
async fn deactivate_missing(mut conn: Conn<'_>, fleet: &Fleet) -> Result<()> {
    let active: Vec<String> = on_conn!(conn.reborrow(), |c| {
        sqlx::query_scalar("SELECT device_id FROM device WHERE active")
            .fetch_all(c)
            .await?
    });
    let listed: HashSet<&str> = fleet.devices.iter().map(|d| d.id.as_str()).collect();
    let gone: Vec<&str> = active
        .iter()
        .map(String::as_str)
        .filter(|id| !listed.contains(id))
        .collect();
    for chunk in gone.chunks(SYNC_CHUNK) {
        let sql = format!(
            "UPDATE device SET active = FALSE WHERE device_id IN {}",
            conn.value_rows(1, chunk.len())
        );
        on_conn!(conn.reborrow(), |c| {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for id in chunk {
                query = query.bind(*id);
            }
            query.execute(c).await?;
        });
    }
    Ok(())
}

/// Inserts the fleet's new devices and updates the ones whose name,
/// address or tenant changed (or that come back), [`SYNC_CHUNK`] to a
/// statement; rows that did not change are not written.
async fn upsert_devices(mut conn: Conn<'_>, fleet: &Fleet, now: DateTime<Utc>) -> Result<()> {
    for chunk in fleet.devices.chunks(SYNC_CHUNK) {
        let sql = format!(
            "WITH v (device_id, tenant_id, name, host, port, at) AS (VALUES {}) \
             INSERT INTO device (device_id, tenant_id, name, host, port, active, \
             created_at, updated_at) \
             SELECT device_id, tenant_id, name, host, port, TRUE, at, at FROM v WHERE TRUE \
             ON CONFLICT (device_id) DO UPDATE SET tenant_id = excluded.tenant_id, \
             name = excluded.name, host = excluded.host, port = excluded.port, \
             active = TRUE, updated_at = excluded.updated_at \
             WHERE device.tenant_id <> excluded.tenant_id OR device.name <> excluded.name \
             OR device.host <> excluded.host OR device.port <> excluded.port \
             OR NOT device.active",
            conn.value_rows(chunk.len(), 6)
        );
        on_conn!(conn.reborrow(), |c| {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for dev in chunk {
                query = query
                    .bind(dev.id.as_str())
                    .bind(dev.tenant.as_str())
                    .bind(&dev.name)
                    .bind(&dev.host)
                    .bind(i32::from(dev.port))
                    .bind(now);
            }
            query.execute(c).await?;
        });
    }
    Ok(())
}

/// The tenant of a device, `None` for an unknown device.
async fn device_tenant(conn: Conn<'_>, device_id: &str) -> Result<Option<String>> {
    let tenant = on_conn!(conn, |c| {
        sqlx::query_scalar("SELECT tenant_id FROM device WHERE device_id = $1")
            .bind(device_id)
            .fetch_optional(c)
            .await?
    });
    Ok(tenant)
}

/// Pins `fingerprint` unless a key is pinned already; whether it did.
async fn pin_if_unset(conn: Conn<'_>, device_id: &str, fingerprint: &str) -> Result<bool> {
    let pinned = on_conn!(conn, |c| {
        sqlx::query(
            "UPDATE device SET host_key_fingerprint = $2, host_key_pinned_at = $3 \
             WHERE device_id = $1 AND host_key_fingerprint IS NULL",
        )
        .bind(device_id)
        .bind(fingerprint)
        .bind(Utc::now())
        .execute(c)
        .await?
        .rows_affected()
    });
    Ok(pinned == 1)
}

/// The pinned fingerprint of a tenant's device (`Some(None)` when none is
/// pinned), `None` when the device is not the tenant's.
async fn pinned_in_tenant(
    conn: Conn<'_>,
    tenant_id: &str,
    device_id: &str,
) -> Result<Option<Option<String>>> {
    let pinned = on_conn!(conn, |c| {
        sqlx::query_scalar(
            "SELECT host_key_fingerprint FROM device WHERE tenant_id = $1 AND device_id = $2",
        )
        .bind(tenant_id)
        .bind(device_id)
        .fetch_optional(c)
        .await?
    });
    Ok(pinned)
}

/// Forgets the pinned key and lifts a block for a host-key mismatch.
async fn clear_pin(conn: Conn<'_>, tenant_id: &str, device_id: &str) -> Result<()> {
    on_conn!(conn, |c| {
        sqlx::query(
            "UPDATE device SET host_key_fingerprint = NULL, host_key_pinned_at = NULL, \
             blocked_reason = CASE WHEN blocked_reason = 'hostkey_mismatch' THEN NULL \
             ELSE blocked_reason END, updated_at = $3 \
             WHERE tenant_id = $1 AND device_id = $2",
        )
        .bind(tenant_id)
        .bind(device_id)
        .bind(Utc::now())
        .execute(c)
        .await?;
    });
    Ok(())
}

/// A successful backup of each device (`at` for each), in one statement:
/// the device state of [`Attempt::Success`]. With `only_newer`, a device
/// whose last attempt is not older than its `at` is left as it is.
pub(crate) async fn note_successes(
    conn: Conn<'_>,
    successes: &[(&str, DateTime<Utc>)],
    only_newer: bool,
) -> Result<()> {
    if successes.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "WITH v (device_id, at) AS (VALUES {}) \
         UPDATE device SET last_attempt_at = v.at, last_success_at = v.at, \
         last_status = 'success', last_error_kind = NULL, consecutive_failures = 0, \
         next_attempt_at = NULL, blocked_reason = NULL, updated_at = v.at \
         FROM v WHERE device.device_id = v.device_id{}",
        conn.value_rows(successes.len(), 2),
        if only_newer {
            " AND (device.last_attempt_at IS NULL OR device.last_attempt_at < v.at)"
        } else {
            ""
        }
    );
    on_conn!(conn, |c| {
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (device, at) in successes {
            query = query.bind(*device).bind(*at);
        }
        query.execute(c).await?;
    });
    Ok(())
}

/// The device-state `UPDATE` of one attempt, after queueing the
/// notifications it causes. A failure or a held lock older than the
/// device's last recorded attempt changes nothing: reports and events take
/// separate ways to the store (on the embedded bus a success comes only
/// with its event), so a later success may be recorded first. One as old
/// as it still counts (repeated reports of one instant, as tests make).
async fn update_state(
    mut conn: Conn<'_>,
    routes: &Routes,
    device_id: &str,
    at: DateTime<Utc>,
    attempt: &Attempt,
) -> Result<()> {
    match attempt {
        Attempt::Success => {
            outbox::before_success(conn.reborrow(), routes, device_id, None).await?
        }
        Attempt::Failed { error_kind, .. } => {
            outbox::before_failure(conn.reborrow(), routes, device_id, error_kind).await?;
        }
        Attempt::Locked => {}
    }
    match attempt {
        Attempt::Success => on_conn!(conn, |c| {
            sqlx::query(
                "UPDATE device SET last_attempt_at = $2, last_success_at = $2, \
                 last_status = 'success', last_error_kind = NULL, consecutive_failures = 0, \
                 next_attempt_at = NULL, blocked_reason = NULL, updated_at = $2 \
                 WHERE device_id = $1",
            )
            .bind(device_id)
            .bind(at)
            .execute(c)
            .await?;
        }),
        Attempt::Locked => on_conn!(conn, |c| {
            sqlx::query(
                "UPDATE device SET last_attempt_at = $2, last_status = 'locked', \
                 updated_at = $2 WHERE device_id = $1 \
                 AND (last_attempt_at IS NULL OR last_attempt_at <= $2)",
            )
            .bind(device_id)
            .bind(at)
            .execute(c)
            .await?;
        }),
        Attempt::Failed {
            error_kind,
            next_attempt_at,
            blocked_reason,
        } => on_conn!(conn, |c| {
            sqlx::query(
                "UPDATE device SET last_attempt_at = $2, last_status = 'failed', \
                 last_error_kind = $3, consecutive_failures = consecutive_failures + 1, \
                 next_attempt_at = $4, blocked_reason = COALESCE($5, blocked_reason), \
                 updated_at = $2 WHERE device_id = $1 \
                 AND (last_attempt_at IS NULL OR last_attempt_at <= $2)",
            )
            .bind(device_id)
            .bind(at)
            .bind(error_kind.as_str())
            .bind(*next_attempt_at)
            .bind(blocked_reason.as_deref())
            .execute(c)
            .await?;
        }),
    }
    Ok(())
}
