//! `cfgsnap store verify`: every sealed record opens with the keys in force,
//! and every snapshot's text hashes to its id ([`Store::verify`]). Broken
//! records are reported by table, id, device and reason ([`BrokenRecord`]),
//! never with their text. Also the SQLite online copy behind
//! `cfgsnap store backup` ([`Store::backup_to`]).

use std::path::Path;

use anyhow::Context as _;
use serde::Serialize;

use super::crypto::Cipher;
use super::db::{Db, on_db};
use super::sealed::{Filter, SealedRow, SealedTable, fetch_page};
use super::{Error, Result, Store};
use crate::backup::normalize::sha256_hex;
use crate::telemetry::spawn_blocking_with_tracing;

/// A record that cannot be opened, or whose text is not what its row says.
#[derive(Debug, Clone, Serialize)]
pub struct BrokenRecord {
    /// The table holding it.
    pub table: SealedTable,
    /// Its `snapshot_id`.
    pub id: i64,
    /// Its tenant.
    pub tenant_id: String,
    /// Its device.
    pub device_id: String,
    /// The key id it claims to be sealed with.
    pub key_id: String,
    /// Why it is broken (never its text).
    pub reason: String,
}

impl BrokenRecord {
    pub(crate) fn new(row: &SealedRow, reason: String) -> Self {
        Self {
            table: row.table,
            id: row.id,
            tenant_id: row.tenant_id.clone(),
            device_id: row.device_id.clone(),
            key_id: row.sealed.key_id.clone(),
            reason,
        }
    }
}

/// What [`Store::verify`] found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    /// Records checked.
    pub checked: u64,
    /// Records that failed, in table and id order.
    pub broken: Vec<BrokenRecord>,
}

/// Opens `row` with `cipher` and checks what it holds: a snapshot's text
/// must hash to the row's hash, a diff must be text.
pub(crate) fn check_record(cipher: &Cipher, row: &SealedRow) -> std::result::Result<(), String> {
    let bytes = cipher
        .open(&row.tenant_id, &row.aad(), &row.sealed)
        .map_err(|e| e.to_string())?;
    match row.table {
        SealedTable::Snapshot => {
            let text = std::str::from_utf8(&bytes).map_err(|_| "text is not UTF-8".to_owned())?;
            if sha256_hex(text) != row.sha256_hash {
                return Err("text does not hash to the snapshot's sha256_hash".to_owned());
            }
        }
        SealedTable::SnapshotDiff => {
            std::str::from_utf8(&bytes).map_err(|_| "diff is not UTF-8".to_owned())?;
        }
    }
    Ok(())
}

impl Store {
    /// Opens every sealed record, `page` at a time, and checks it; calls
    /// `progress` with the number checked after each page.
    ///
    /// # Errors
    /// Database failures; broken records are in the report, not errors.
    pub async fn verify(&self, page: u32, mut progress: impl FnMut(u64)) -> Result<VerifyReport> {
        let mut report = VerifyReport::default();
        for table in SealedTable::ALL {
            let mut after = 0;
            loop {
                let mut pooled = self.db.acquire().await?;
                let rows = fetch_page(pooled.conn(), table, Filter::All, after, page).await?;
                drop(pooled);
                let Some(last) = rows.last() else {
                    break;
                };
                after = last.id;
                let cipher = self.cipher.cipher();
                let checked = rows.len() as u64;
                let broken = spawn_blocking_with_tracing(move || {
                    rows.iter()
                        .filter_map(|row| {
                            check_record(&cipher, row)
                                .err()
                                .map(|reason| BrokenRecord::new(row, reason))
                        })
                        .collect::<Vec<_>>()
                })
                .await
                .context("checking sealed records")?;
                report.checked += checked;
                report.broken.extend(broken);
                progress(report.checked);
            }
        }
        Ok(report)
    }

    /// Writes a consistent copy of a SQLite store to `path` while it keeps
    /// serving (`VACUUM INTO`, one read transaction); `path` must not exist.
    /// The copy holds sealed records only: the master key is backed up
    /// separately.
    ///
    /// # Errors
    /// [`Error::Unexpected`] on PostgreSQL (use `pg_dump`) or when the copy
    /// cannot be written.
    pub async fn backup_to(&self, path: &Path) -> Result<()> {
        let Db::Sqlite(_) = &self.db else {
            return Err(Error::Unexpected(anyhow::anyhow!(
                "a PostgreSQL store is backed up with pg_dump"
            )));
        };
        let target = path
            .to_str()
            .context("the backup path is not valid UTF-8")?
            .to_owned();
        on_db!(&self.db, |pool| {
            sqlx::query("VACUUM INTO $1")
                .bind(&target)
                .execute(pool)
                .await?;
        });
        Ok(())
    }
}
