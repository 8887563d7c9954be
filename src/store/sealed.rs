//! Every sealed record of the store, whatever its table: the list of tables
//! that hold sealed columns ([`SealedTable`]), reading them in pages by id
//! ([`fetch_page`]) and replacing a record's sealed columns only if nobody
//! changed it since it was read ([`replace_sealed`]). Key rotation, device
//! moves and `store verify` go through here, so a new sealed table is added
//! in one place.

use serde::Serialize;

use super::Result;
use super::crypto::Sealed;
use super::db::{Conn, on_conn};
use super::record::{content_aad, diff_aad};

/// A table whose rows hold a sealed record (`key_id`, `nonce`, `content`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SealedTable {
    /// `snapshot.content`: a normalized export.
    Snapshot,
    /// `snapshot_diff.content`: a diff against the previous version.
    SnapshotDiff,
}

impl SealedTable {
    /// Every table holding sealed records.
    pub const ALL: [SealedTable; 2] = [SealedTable::Snapshot, SealedTable::SnapshotDiff];

    /// The table's name.
    pub fn as_str(self) -> &'static str {
        match self {
            SealedTable::Snapshot => "snapshot",
            SealedTable::SnapshotDiff => "snapshot_diff",
        }
    }

    /// `FROM …` with the table as `x` and its snapshot as `s`.
    fn joined(self) -> &'static str {
        match self {
            SealedTable::Snapshot => "snapshot x JOIN snapshot s ON s.snapshot_id = x.snapshot_id",
            SealedTable::SnapshotDiff => {
                "snapshot_diff x JOIN snapshot s ON s.snapshot_id = x.snapshot_id"
            }
        }
    }
}

/// Which records of a table a page holds.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Filter<'a> {
    /// Every record.
    All,
    /// Records sealed with this key id.
    KeyId(&'a str),
    /// Records of this device.
    Device(&'a str),
}

/// One sealed record and what binds it to its row.
#[derive(Debug, Clone)]
pub(crate) struct SealedRow {
    pub(crate) table: SealedTable,
    /// The row's `snapshot_id` (both tables are keyed by it).
    pub(crate) id: i64,
    pub(crate) tenant_id: String,
    pub(crate) device_id: String,
    /// The snapshot's hash: the content's identity.
    pub(crate) sha256_hash: String,
    pub(crate) sealed: Sealed,
}

impl SealedRow {
    /// The additional data the record was sealed with.
    pub(crate) fn aad(&self) -> Vec<u8> {
        match self.table {
            SealedTable::Snapshot => content_aad(&self.device_id, &self.sha256_hash),
            SealedTable::SnapshotDiff => diff_aad(&self.device_id, self.id),
        }
    }
}

type RawRow = (i64, String, String, String, String, Vec<u8>, Vec<u8>);

/// Up to `limit` records of `table` matching `filter` with ids above
/// `after`, by id.
pub(crate) async fn fetch_page(
    conn: Conn<'_>,
    table: SealedTable,
    filter: Filter<'_>,
    after: i64,
    limit: u32,
) -> Result<Vec<SealedRow>> {
    // Key ids are never empty, so `<> ''` selects every record.
    let (condition, value) = match filter {
        Filter::All => ("x.key_id <> $1", ""),
        Filter::KeyId(id) => ("x.key_id = $1", id),
        Filter::Device(id) => ("s.device_id = $1", id),
    };
    let sql = format!(
        "SELECT x.snapshot_id, x.tenant_id, s.device_id, s.sha256_hash, x.key_id, x.nonce, \
         x.content FROM {} WHERE {condition} AND x.snapshot_id > $2 \
         ORDER BY x.snapshot_id LIMIT $3",
        table.joined()
    );
    let rows: Vec<RawRow> = on_conn!(conn, |c| {
        sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(value)
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(c)
            .await?
    });
    Ok(rows
        .into_iter()
        .map(
            |(id, tenant_id, device_id, sha256_hash, key_id, nonce, ciphertext)| SealedRow {
                table,
                id,
                tenant_id,
                device_id,
                sha256_hash,
                sealed: Sealed {
                    key_id,
                    nonce,
                    ciphertext,
                },
            },
        )
        .collect())
}

/// Replaces `row`'s sealed columns with `new`, sealed for `tenant_id`,
/// unless the record changed since it was read (its nonce is new with
/// every seal); returns whether it was replaced.
pub(crate) async fn replace_sealed(
    conn: Conn<'_>,
    row: &SealedRow,
    tenant_id: &str,
    new: &Sealed,
) -> Result<bool> {
    let sql = format!(
        "UPDATE {} SET key_id = $1, nonce = $2, content = $3, tenant_id = $4 \
         WHERE snapshot_id = $5 AND nonce = $6",
        row.table.as_str()
    );
    let done = on_conn!(conn, |c| {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&new.key_id)
            .bind(&new.nonce)
            .bind(&new.ciphertext)
            .bind(tenant_id)
            .bind(row.id)
            .bind(&row.sealed.nonce)
            .execute(c)
            .await?
            .rows_affected()
    });
    Ok(done == 1)
}

/// How many records each key id seals, over every sealed table.
pub(crate) async fn count_by_key(mut conn: Conn<'_>) -> Result<Vec<(String, i64)>> {
    let mut counts: Vec<(String, i64)> = Vec::new();
    for table in SealedTable::ALL {
        let sql = format!(
            "SELECT key_id, COUNT(*) FROM {} GROUP BY key_id",
            table.as_str()
        );
        let rows: Vec<(String, i64)> = on_conn!(conn.reborrow(), |c| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .fetch_all(c)
                .await?
        });
        for (key_id, n) in rows {
            match counts.iter_mut().find(|(k, _)| *k == key_id) {
                Some((_, total)) => *total += n,
                None => counts.push((key_id, n)),
            }
        }
    }
    counts.sort();
    Ok(counts)
}
