//! Moving a device and its history to another tenant
//! ([`Store::move_device`]): every sealed record of the device is opened
//! with the old tenant's key and sealed with the new tenant's, its rows,
//! change summaries and notifications carry the new tenant (see
//! `outbox::moved` for which notifications), and the move is audited, all
//! in one transaction. Afterwards the configuration may name the new tenant.

use anyhow::Context as _;
use chrono::Utc;
use serde::Serialize;
use serde_json::json;

use super::audit::{Action, insert_audit};
use super::crypto::{Cipher, Sealed};
use super::db::{Conn, on_conn};
use super::outbox::retag_moved_device;
use super::sealed::{Filter, SealedRow, SealedTable, fetch_page, replace_sealed};
use super::{Error, Result, Store};
use crate::telemetry::spawn_blocking_with_tracing;

/// Records re-sealed per round trip while moving a device.
const MOVE_PAGE: u32 = 200;

/// What [`Store::move_device`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceMove {
    /// The device.
    pub device_id: String,
    /// Its tenant before.
    pub from: String,
    /// Its tenant now.
    pub to: String,
    /// Sealed records (snapshots and diffs) re-sealed for the new tenant.
    pub records: u64,
    /// Pending notifications given up because their target does not
    /// receive the new tenant.
    pub notifications_given_up: u64,
}

impl Store {
    /// Moves `device_id` and its history to tenant `to` (created with
    /// `to_name` when the store does not have it yet), audited as
    /// `device_moved` by `actor`. Moving a device to its own tenant changes
    /// nothing.
    ///
    /// # Errors
    /// [`Error::DeviceNotFound`] for a device the store does not know, and
    /// [`Error::Unexpected`] naming the record when one cannot be opened
    /// (nothing moves then).
    pub async fn move_device(
        &self,
        device_id: &str,
        to: &str,
        to_name: &str,
        actor: &str,
    ) -> Result<DeviceMove> {
        let mut tx = self.db.begin_write().await?;
        let from = lock_tenant_of(tx.conn(), device_id).await?;
        let mut moved = DeviceMove {
            device_id: device_id.to_owned(),
            from: from.clone(),
            to: to.to_owned(),
            records: 0,
            notifications_given_up: 0,
        };
        if from == to {
            return Ok(moved);
        }
        ensure_tenant(tx.conn(), to, to_name).await?;
        let cipher = self.cipher.cipher();
        for table in SealedTable::ALL {
            let mut after = 0;
            loop {
                let rows = fetch_page(
                    tx.conn(),
                    table,
                    Filter::Device(device_id),
                    after,
                    MOVE_PAGE,
                )
                .await?;
                let Some(last) = rows.last() else {
                    break;
                };
                after = last.id;
                for (row, new) in reseal_for(&cipher, rows, to).await? {
                    replace_sealed(tx.conn(), &row, to, &new).await?;
                    moved.records += 1;
                }
            }
        }
        retag_device(tx.conn(), device_id, to).await?;
        let routes = self.outbox.get();
        moved.notifications_given_up =
            retag_moved_device(tx.conn(), &routes, device_id, to).await?;
        let detail = json!({
            "from": from,
            "to": to,
            "records": moved.records,
            "notifications_given_up": moved.notifications_given_up,
        });
        insert_audit(
            tx.conn(),
            Some(to),
            Some(device_id),
            Action::DeviceMoved,
            Some(actor),
            &detail,
        )
        .await?;
        tx.commit().await?;
        // The device's events now carry the other tenant: re-learnt from
        // its next ingest (the hint is checked in any case).
        self.newest.forget(device_id);
        Ok(moved)
    }
}

/// Opens each row with its tenant's key and seals it for `to`, off the
/// async threads; the first record that cannot be opened stops the move.
async fn reseal_for(
    cipher: &Cipher,
    rows: Vec<SealedRow>,
    to: &str,
) -> Result<Vec<(SealedRow, Sealed)>> {
    let (cipher, to) = (cipher.clone(), to.to_owned());
    spawn_blocking_with_tracing(move || {
        rows.into_iter()
            .map(|row| {
                let aad = row.aad();
                let text = cipher
                    .open(&row.tenant_id, &aad, &row.sealed)
                    .map_err(|e| {
                        Error::Unexpected(anyhow::anyhow!(
                            "{} {} of device {} cannot be opened ({e}); nothing was moved \
                         (run cfgsnap store verify)",
                            row.table.as_str(),
                            row.id,
                            row.device_id
                        ))
                    })?;
                let new = cipher.seal(&to, &aad, &text)?;
                Ok((row, new))
            })
            .collect()
    })
    .await
    .context("re-sealing a device's records")?
}

/// The device's tenant, its row locked for the move.
async fn lock_tenant_of(conn: Conn<'_>, device_id: &str) -> Result<String> {
    let sql = format!(
        "SELECT tenant_id FROM device WHERE device_id = $1{}",
        conn.for_update()
    );
    let tenant: Option<String> = on_conn!(conn, |c| {
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(device_id)
            .fetch_optional(c)
            .await?
    });
    tenant.ok_or(Error::DeviceNotFound)
}

/// Creates tenant `id` unless the store has it.
async fn ensure_tenant(conn: Conn<'_>, id: &str, name: &str) -> Result<()> {
    on_conn!(conn, |c| {
        sqlx::query(
            "INSERT INTO tenant (tenant_id, name, created_at, updated_at) \
             VALUES ($1, $2, $3, $3) ON CONFLICT (tenant_id) DO NOTHING",
        )
        .bind(id)
        .bind(name)
        .bind(Utc::now())
        .execute(c)
        .await?;
    });
    Ok(())
}

/// Gives the device row and its change summaries the new tenant (the
/// sealed rows got it with their new seal).
async fn retag_device(mut conn: Conn<'_>, device_id: &str, to: &str) -> Result<()> {
    on_conn!(conn.reborrow(), |c| {
        sqlx::query(
            "UPDATE config_change SET tenant_id = $1 WHERE snapshot_id IN \
             (SELECT snapshot_id FROM snapshot WHERE device_id = $2)",
        )
        .bind(to)
        .bind(device_id)
        .execute(c)
        .await?;
    });
    on_conn!(conn, |c| {
        sqlx::query("UPDATE device SET tenant_id = $1, updated_at = $2 WHERE device_id = $3")
            .bind(to)
            .bind(Utc::now())
            .bind(device_id)
            .execute(c)
            .await?;
    });
    Ok(())
}
