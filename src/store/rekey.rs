//! Master key rotation over the stored records: how many records each key id
//! seals ([`Store::key_usage`]) and one pass that re-seals, batch by batch,
//! every record under a previous key with the current one
//! ([`Store::reseal_pass`]). Each batch commits on its own and each record
//! carries its key id, so a pass killed at any point is resumed by running
//! it again. Records under a key id no configured key has are counted and
//! reported, never skipped silently.

use std::time::Duration;

use anyhow::Context as _;
use serde::Serialize;

use super::crypto::{Cipher, Sealed};
use super::sealed::{Filter, SealedRow, SealedTable, count_by_key, fetch_page, replace_sealed};
use super::verify::BrokenRecord;
use super::{Result, Store};
use crate::telemetry::spawn_blocking_with_tracing;

/// How many records one key id seals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyUsage {
    /// The key id.
    pub key_id: String,
    /// Records (snapshots and diffs) sealed with it.
    pub records: i64,
    /// Whether it is the key new records are sealed with.
    pub current: bool,
    /// Whether a configured key file has this id (false: the records cannot be opened).
    pub known: bool,
}

/// What one [`Store::reseal_pass`] did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ResealPass {
    /// Records re-sealed with the current key.
    pub resealed: u64,
    /// Records under a previous key that could not be opened.
    pub failed: Vec<BrokenRecord>,
}

impl Store {
    /// The key id new records are sealed with (after picking up a replaced
    /// key file).
    pub fn current_key_id(&self) -> String {
        self.cipher.current_key_id()
    }

    /// The ids of every key in force, the current one first.
    pub fn key_ids(&self) -> Vec<String> {
        self.cipher.cipher().key_ids()
    }

    /// Every key id in force or used by a record, with the number of
    /// records it seals; the current key first, then by id.
    ///
    /// # Errors
    /// Database failures.
    pub async fn key_usage(&self) -> Result<Vec<KeyUsage>> {
        let ids = self.key_ids();
        let mut pooled = self.db.acquire().await?;
        let counts = count_by_key(pooled.conn()).await?;
        let mut usage: Vec<KeyUsage> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| KeyUsage {
                key_id: id.clone(),
                records: counts.iter().find(|(k, _)| k == id).map_or(0, |(_, n)| *n),
                current: i == 0,
                known: true,
            })
            .collect();
        for (key_id, records) in counts {
            if !ids.contains(&key_id) {
                usage.push(KeyUsage {
                    key_id,
                    records,
                    current: false,
                    known: false,
                });
            }
        }
        usage[1..].sort_by(|a, b| a.key_id.cmp(&b.key_id));
        Ok(usage)
    }

    /// Re-seals every record sealed under a previous key in force with the
    /// current key, `batch` records per transaction, sleeping `pause`
    /// between batches (to go easy on a busy database); calls `progress`
    /// with the running total after each batch. Records a running node
    /// changed meanwhile are left to the next pass.
    ///
    /// # Errors
    /// Database failures; what was committed before stays re-sealed.
    pub async fn reseal_pass(
        &self,
        batch: u32,
        pause: Duration,
        mut progress: impl FnMut(u64),
    ) -> Result<ResealPass> {
        let cipher = self.cipher.cipher();
        let mut pass = ResealPass::default();
        for old in cipher.key_ids().into_iter().skip(1) {
            for table in SealedTable::ALL {
                let mut after = 0;
                loop {
                    let mut pooled = self.db.acquire().await?;
                    let rows =
                        fetch_page(pooled.conn(), table, Filter::KeyId(&old), after, batch).await?;
                    drop(pooled);
                    let Some(last) = rows.last() else {
                        break;
                    };
                    after = last.id;
                    let (done, failed) = self.reseal_rows(&cipher, rows).await?;
                    pass.resealed += done;
                    pass.failed.extend(failed);
                    progress(pass.resealed);
                    if !pause.is_zero() {
                        tokio::time::sleep(pause).await;
                    }
                }
            }
        }
        Ok(pass)
    }

    /// Opens and re-seals `rows` off the async threads, then replaces them
    /// in one transaction.
    async fn reseal_rows(
        &self,
        cipher: &Cipher,
        rows: Vec<SealedRow>,
    ) -> Result<(u64, Vec<BrokenRecord>)> {
        let cipher = cipher.clone();
        let (resealed, failed) = spawn_blocking_with_tracing(move || {
            let mut resealed: Vec<(SealedRow, Sealed)> = Vec::with_capacity(rows.len());
            let mut failed = Vec::new();
            for row in rows {
                let aad = row.aad();
                match cipher
                    .open(&row.tenant_id, &aad, &row.sealed)
                    .and_then(|text| cipher.seal(&row.tenant_id, &aad, &text))
                {
                    Ok(new) => resealed.push((row, new)),
                    Err(e) => failed.push(BrokenRecord::new(&row, e.to_string())),
                }
            }
            (resealed, failed)
        })
        .await
        .context("re-sealing records")?;
        let mut tx = self.db.begin_write().await?;
        let mut done = 0;
        for (row, new) in &resealed {
            if replace_sealed(tx.conn(), row, &row.tenant_id, new).await? {
                done += 1;
            }
        }
        tx.commit().await?;
        Ok((done, failed))
    }
}
