//! The statements of ingest, each on a connection of the caller's
//! transaction: lock the device, read the newest snapshot and its sealed
//! content, insert the snapshot (and mark it the device's newest), its diff
//! and its changes, note the success.
//! No decisions: `snapshot/mod.rs` sequences them.

use chrono::{DateTime, Utc};

use super::new::NewSnapshot;
use super::prepare::Prepared;
use crate::backup::changes::Change;
use crate::store::crypto::Sealed;
use crate::store::db::{Conn, on_conn};
use crate::store::{Error, Result};

/// The newest snapshot's identity: enough to decide duplicate or stale
/// without reading its (large) content.
#[derive(sqlx::FromRow)]
pub(super) struct NewestRow {
    pub(super) snapshot_id: i64,
    pub(super) sha256_hash: String,
    pub(super) collected_at: DateTime<Utc>,
}

/// Locks the device's row (PostgreSQL; SQLite's write transaction holds
/// the lock already) and checks that the device is the snapshot tenant's.
pub(super) async fn lock_device(conn: Conn<'_>, snap: &NewSnapshot) -> Result<()> {
    let device = snap.device_id.as_str();
    let sql = format!(
        "SELECT tenant_id FROM device WHERE device_id = $1{}",
        conn.for_update()
    );
    let owner: Option<String> = on_conn!(conn, |c| {
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(device)
            .fetch_optional(c)
            .await?
    });
    match owner {
        None => Err(Error::InvalidSnapshot(format!("unknown device {device}"))),
        Some(t) if t != snap.tenant_id.as_str() => Err(Error::InvalidSnapshot(format!(
            "device {device} does not belong to tenant {}",
            snap.tenant_id
        ))),
        Some(_) => Ok(()),
    }
}

/// The device's newest snapshot, if any.
pub(super) async fn read_newest(conn: Conn<'_>, device_id: &str) -> Result<Option<NewestRow>> {
    let newest = on_conn!(conn, |c| {
        sqlx::query_as(
            "SELECT snapshot_id, sha256_hash, collected_at \
             FROM snapshot WHERE device_id = $1 ORDER BY snapshot_id DESC LIMIT 1",
        )
        .bind(device_id)
        .fetch_optional(c)
        .await?
    });
    Ok(newest)
}

/// The sealed content of a snapshot known to exist.
pub(super) async fn read_sealed(conn: Conn<'_>, snapshot_id: i64) -> Result<Sealed> {
    let (key_id, nonce, ciphertext): (String, Vec<u8>, Vec<u8>) = on_conn!(conn, |c| {
        sqlx::query_as("SELECT key_id, nonce, content FROM snapshot WHERE snapshot_id = $1")
            .bind(snapshot_id)
            .fetch_one(c)
            .await?
    });
    Ok(Sealed {
        key_id,
        nonce,
        ciphertext,
    })
}

/// Inserts the new version; returns its id.
pub(super) async fn insert_snapshot(
    conn: Conn<'_>,
    snap: &NewSnapshot,
    collected_at: DateTime<Utc>,
    prepared: &Prepared,
) -> Result<i64> {
    let warnings = serde_json::to_string(&snap.warnings).unwrap_or_else(|_| "[]".into());
    let normalization_version = i32::try_from(snap.normalization_version).unwrap_or(i32::MAX);
    let id = on_conn!(conn, |c| {
        sqlx::query_scalar(
            "INSERT INTO snapshot (tenant_id, device_id, sha256_hash, collected_at, trigger, \
             routeros_version, size_bytes, line_count, normalization_version, warnings, \
             poller_id, key_id, nonce, content, status_only) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
             RETURNING snapshot_id",
        )
        .bind(snap.tenant_id.as_str())
        .bind(snap.device_id.as_str())
        .bind(&snap.sha256_hash)
        .bind(collected_at)
        .bind(snap.trigger.as_str())
        .bind(snap.routeros_version.as_deref())
        .bind(prepared.size_bytes)
        .bind(prepared.line_count)
        .bind(normalization_version)
        .bind(&warnings)
        .bind(snap.poller_id.as_deref())
        .bind(&prepared.content.key_id)
        .bind(&prepared.content.nonce)
        .bind(&prepared.content.ciphertext)
        .bind(prepared.status_only)
        .fetch_one(c)
        .await?
    });
    Ok(id)
}

/// Makes `snapshot_id`, just inserted, the device's newest version (the
/// key of the fleet's order by last change).
pub(super) async fn set_newest(conn: Conn<'_>, device_id: &str, snapshot_id: i64) -> Result<()> {
    on_conn!(conn, |c| {
        sqlx::query("UPDATE device SET newest_snapshot_id = $2 WHERE device_id = $1")
            .bind(device_id)
            .bind(snapshot_id)
            .execute(c)
            .await?;
    });
    Ok(())
}

/// Inserts the sealed diff of `snapshot_id` against `previous_id`.
pub(super) async fn insert_diff(
    conn: Conn<'_>,
    tenant_id: &str,
    snapshot_id: i64,
    previous_id: i64,
    prepared: &Prepared,
    sealed: &Sealed,
) -> Result<()> {
    on_conn!(conn, |c| {
        sqlx::query(
            "INSERT INTO snapshot_diff (snapshot_id, previous_snapshot_id, tenant_id, \
             lines_added, lines_removed, key_id, nonce, content) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(snapshot_id)
        .bind(previous_id)
        .bind(tenant_id)
        .bind(i64::from(prepared.lines_added))
        .bind(i64::from(prepared.lines_removed))
        .bind(&sealed.key_id)
        .bind(&sealed.nonce)
        .bind(&sealed.ciphertext)
        .execute(c)
        .await?;
    });
    Ok(())
}

/// Inserts the per-component changes of `snapshot_id`, in order.
pub(super) async fn insert_changes(
    mut conn: Conn<'_>,
    tenant_id: &str,
    snapshot_id: i64,
    changes: &[Change],
) -> Result<()> {
    for change in changes {
        on_conn!(conn.reborrow(), |c| {
            sqlx::query(
                "INSERT INTO config_change (snapshot_id, tenant_id, component, summary, \
                 lines_added, lines_removed) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(snapshot_id)
            .bind(tenant_id)
            .bind(&change.component)
            .bind(&change.summary)
            .bind(i64::from(change.lines_added))
            .bind(i64::from(change.lines_removed))
            .execute(c)
            .await?;
        });
    }
    Ok(())
}

/// Records a stored (or duplicate) snapshot as the device's latest
/// success, unless an attempt after it is already recorded: the event is the
/// durable proof of a backup whose attempt report may have been lost (a node
/// killed between publishing and reporting, a best-effort report dropped).
pub(super) async fn note_success(conn: Conn<'_>, device_id: &str, at: DateTime<Utc>) -> Result<()> {
    on_conn!(conn, |c| {
        sqlx::query(
            "UPDATE device SET last_attempt_at = $2, last_success_at = $2, \
             last_status = 'success', last_error_kind = NULL, consecutive_failures = 0, \
             next_attempt_at = NULL, blocked_reason = NULL, updated_at = $2 \
             WHERE device_id = $1 AND (last_attempt_at IS NULL OR last_attempt_at < $2)",
        )
        .bind(device_id)
        .bind(at)
        .execute(c)
        .await?;
    });
    Ok(())
}
