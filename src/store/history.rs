//! Read side of snapshots, always scoped to a tenant and device: newest-first
//! listings with cursor pagination, one snapshot's metadata and decrypted
//! content, diffs (stored or computed on demand; semantic ones in
//! `history_semantic.rs`) and the change timeline.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tracing::instrument;

use super::crypto::Sealed;
use super::db::{Conn, on_conn, on_db};
use super::record::{content_aad, diff_aad, diff_label};
use super::{Error, Result, Store};
use crate::backup::{Trigger, changes, redact};
use crate::telemetry::spawn_blocking_with_tracing;

pub use super::MAX_PAGE;

#[path = "history_semantic.rs"]
mod semantic;

/// Whether text read from the store shows the secrets it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secrets {
    /// As stored.
    Shown,
    /// Masked by `backup::redact` (DESIGN.md §12).
    Masked,
}

/// One snapshot's metadata.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, PartialEq, Eq)]
pub struct SnapshotMeta {
    /// Snapshot id.
    #[sqlx(rename = "snapshot_id")]
    pub id: i64,
    /// Tenant.
    pub tenant_id: String,
    /// Device.
    pub device_id: String,
    /// Identity of the normalized export.
    pub sha256_hash: String,
    /// When it was collected.
    pub collected_at: DateTime<Utc>,
    /// What started the backup.
    #[sqlx(try_from = "String")]
    pub trigger: Trigger,
    /// RouterOS version, if known.
    pub routeros_version: Option<String>,
    /// Bytes of the normalized export.
    pub size_bytes: i64,
    /// Lines of the normalized export.
    pub line_count: i64,
    /// Normalization rules used.
    pub normalization_version: i32,
    /// Lines added against the previous snapshot; `None` for the first.
    pub lines_added: Option<i64>,
    /// Lines removed against the previous snapshot; `None` for the first.
    pub lines_removed: Option<i64>,
    /// The previous snapshot, if it still exists.
    pub previous_snapshot_id: Option<i64>,
    /// Differs from its predecessor only in status comments (DESIGN.md
    /// §16); false for versions stored before the mark existed.
    pub status_only: bool,
    /// JSON array of collection warnings.
    #[serde(skip)]
    pub warnings: String,
}

impl SnapshotMeta {
    /// The collection warnings.
    pub fn warning_list(&self) -> Vec<String> {
        serde_json::from_str(&self.warnings).unwrap_or_default()
    }
}

/// One entry of the change timeline.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct HistoryEntry {
    /// The changed snapshot.
    pub snapshot_id: i64,
    /// When it was collected.
    pub collected_at: DateTime<Utc>,
    /// Lines added against its predecessor.
    pub lines_added: i64,
    /// Lines removed against its predecessor.
    pub lines_removed: i64,
    /// Differs from its predecessor only in status comments.
    pub status_only: bool,
    /// Per-component summaries.
    pub changes: Vec<ChangeSummary>,
}

/// A component's change in a snapshot.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, sqlx::FromRow)]
pub struct ChangeSummary {
    /// `ip/firewall/filter`.
    pub component: String,
    /// `Added 2 firewall filter rules`.
    pub summary: String,
    /// Logical lines added in the component.
    pub lines_added: i64,
    /// Logical lines removed in the component.
    pub lines_removed: i64,
    #[serde(skip)]
    pub(crate) snapshot_id: i64,
}

// Line counts are INTEGER (int4 on PostgreSQL) in the schema and i64 here:
// the casts make PostgreSQL return int8, which sqlx decodes as i64 (SQLite's
// INTEGER is 64-bit already).
pub(super) const META_COLUMNS: &str = "s.snapshot_id, s.tenant_id, s.device_id, s.sha256_hash, \
     s.collected_at, s.trigger, s.routeros_version, s.size_bytes, s.line_count, \
     s.normalization_version, CAST(d.lines_added AS BIGINT) AS lines_added, \
     CAST(d.lines_removed AS BIGINT) AS lines_removed, \
     d.previous_snapshot_id AS previous_snapshot_id, s.status_only, s.warnings";

#[derive(sqlx::FromRow)]
struct SealedRow {
    sha256_hash: String,
    key_id: String,
    nonce: Vec<u8>,
    content: Vec<u8>,
}

impl Store {
    /// A device's snapshots, newest first: at most `limit` (capped at
    /// [`MAX_PAGE`]) with ids below `before` when given.
    ///
    /// # Errors
    /// Database failures.
    #[instrument(name = "store.list_snapshots", skip_all, fields(device_id = %device_id))]
    pub async fn list_snapshots(
        &self,
        tenant_id: &str,
        device_id: &str,
        limit: u32,
        before: Option<i64>,
    ) -> Result<Vec<SnapshotMeta>> {
        let sql = format!(
            "SELECT {META_COLUMNS} FROM snapshot s \
             LEFT JOIN snapshot_diff d ON d.snapshot_id = s.snapshot_id \
             WHERE s.tenant_id = $1 AND s.device_id = $2 AND s.snapshot_id < $3 \
             ORDER BY s.snapshot_id DESC LIMIT $4"
        );
        let rows = on_db!(&self.db, |pool| {
            sqlx::query_as::<_, SnapshotMeta>(sqlx::AssertSqlSafe(sql))
                .bind(tenant_id)
                .bind(device_id)
                .bind(before.unwrap_or(i64::MAX))
                .bind(i64::from(limit.clamp(1, MAX_PAGE)))
                .fetch_all(pool)
                .await?
        });
        Ok(rows)
    }

    /// One snapshot's metadata.
    ///
    /// # Errors
    /// [`Error::SnapshotNotFound`] when the snapshot is not this tenant's
    /// and device's.
    pub async fn get_snapshot(
        &self,
        tenant_id: &str,
        device_id: &str,
        snapshot_id: i64,
    ) -> Result<SnapshotMeta> {
        let sql = format!(
            "SELECT {META_COLUMNS} FROM snapshot s \
             LEFT JOIN snapshot_diff d ON d.snapshot_id = s.snapshot_id \
             WHERE s.tenant_id = $1 AND s.device_id = $2 AND s.snapshot_id = $3"
        );
        let row = on_db!(&self.db, |pool| {
            sqlx::query_as::<_, SnapshotMeta>(sqlx::AssertSqlSafe(sql))
                .bind(tenant_id)
                .bind(device_id)
                .bind(snapshot_id)
                .fetch_optional(pool)
                .await?
        });
        row.ok_or(Error::SnapshotNotFound)
    }

    /// The newest snapshot's metadata of a device, if any.
    ///
    /// # Errors
    /// Database failures.
    pub async fn newest_snapshot(
        &self,
        tenant_id: &str,
        device_id: &str,
    ) -> Result<Option<SnapshotMeta>> {
        Ok(self
            .list_snapshots(tenant_id, device_id, 1, None)
            .await?
            .into_iter()
            .next())
    }

    /// The decrypted normalized export of a snapshot.
    ///
    /// # Errors
    /// [`Error::SnapshotNotFound`], or [`Error::Crypto`] when the record
    /// cannot be decrypted with the configured keys.
    #[instrument(name = "store.snapshot_content", skip_all, fields(device_id = %device_id))]
    pub async fn snapshot_content(
        &self,
        tenant_id: &str,
        device_id: &str,
        snapshot_id: i64,
    ) -> Result<String> {
        let row = self
            .sealed_content(tenant_id, device_id, snapshot_id)
            .await?;
        self.open_content(tenant_id, device_id, row).await
    }

    async fn sealed_content(
        &self,
        tenant_id: &str,
        device_id: &str,
        snapshot_id: i64,
    ) -> Result<SealedRow> {
        let row = on_db!(&self.db, |pool| {
            sqlx::query_as::<_, SealedRow>(
                "SELECT sha256_hash, key_id, nonce, content FROM snapshot \
                 WHERE tenant_id = $1 AND device_id = $2 AND snapshot_id = $3",
            )
            .bind(tenant_id)
            .bind(device_id)
            .bind(snapshot_id)
            .fetch_optional(pool)
            .await?
        });
        row.ok_or(Error::SnapshotNotFound)
    }

    async fn open_content(
        &self,
        tenant_id: &str,
        device_id: &str,
        row: SealedRow,
    ) -> Result<String> {
        let cipher = self.cipher.clone();
        let (tenant, device) = (tenant_id.to_owned(), device_id.to_owned());
        spawn_blocking_with_tracing(move || {
            let sealed = Sealed {
                key_id: row.key_id,
                nonce: row.nonce,
                ciphertext: row.content,
            };
            let bytes = cipher.open(&tenant, &content_aad(&device, &row.sha256_hash), &sealed)?;
            String::from_utf8(bytes)
                .map_err(|_| Error::Unexpected(anyhow::anyhow!("stored snapshot is not UTF-8")))
        })
        .await
        .map_err(|e| Error::Unexpected(anyhow::Error::new(e).context("decrypting a snapshot")))?
    }

    /// The unified diff of `snapshot_id` against `against`, or against its
    /// predecessor when `None` (the stored diff when there is one; an empty
    /// predecessor for the device's first snapshot).
    ///
    /// # Errors
    /// [`Error::SnapshotNotFound`] when either snapshot is not this tenant's
    /// and device's.
    #[instrument(name = "store.snapshot_diff", skip_all, fields(device_id = %device_id))]
    pub async fn snapshot_diff(
        &self,
        tenant_id: &str,
        device_id: &str,
        snapshot_id: i64,
        against: Option<i64>,
    ) -> Result<String> {
        let ids = (snapshot_id, against);
        self.diff_as(tenant_id, device_id, ids, Secrets::Shown)
            .await
    }

    /// [`Store::snapshot_diff`] with the secrets of both sides as `secrets`
    /// says: masked ones are computed from masked texts (`backup::redact`),
    /// so a changed secret still shows as changed, without its values.
    ///
    /// # Errors
    /// As [`Store::snapshot_diff`].
    pub async fn diff_as(
        &self,
        tenant_id: &str,
        device_id: &str,
        (snapshot_id, against): (i64, Option<i64>),
        secrets: Secrets,
    ) -> Result<String> {
        let new = self
            .sealed_content(tenant_id, device_id, snapshot_id)
            .await?;
        let against = match against {
            Some(id) => Some(id),
            None => {
                if secrets == Secrets::Shown
                    && let Some(text) = self.stored_diff(tenant_id, device_id, snapshot_id).await?
                {
                    return Ok(text);
                }
                self.previous_id(tenant_id, device_id, snapshot_id).await?
            }
        };
        let (old_text, old_label) = match against {
            Some(id) => {
                let old = self.sealed_content(tenant_id, device_id, id).await?;
                let label = diff_label(device_id, &old.sha256_hash);
                (self.open_content(tenant_id, device_id, old).await?, label)
            }
            None => (String::new(), "/dev/null".to_owned()),
        };
        let new_label = diff_label(device_id, &new.sha256_hash);
        let new_text = self.open_content(tenant_id, device_id, new).await?;
        let deadline = self.diff_deadline;
        spawn_blocking_with_tracing(move || {
            let (old_text, new_text) = match secrets {
                Secrets::Shown => (old_text, new_text),
                Secrets::Masked => redact::redact_pair(&old_text, &new_text),
            };
            changes::diff(&old_text, &new_text, &old_label, &new_label, deadline).text
        })
        .await
        .map_err(|e| Error::Unexpected(anyhow::Error::new(e).context("computing a diff")))
    }

    pub(super) async fn stored_diff(
        &self,
        tenant_id: &str,
        device_id: &str,
        snapshot_id: i64,
    ) -> Result<Option<String>> {
        let row = on_db!(&self.db, |pool| {
            sqlx::query_as::<_, (String, Vec<u8>, Vec<u8>)>(
                "SELECT key_id, nonce, content FROM snapshot_diff \
                 WHERE tenant_id = $1 AND snapshot_id = $2",
            )
            .bind(tenant_id)
            .bind(snapshot_id)
            .fetch_optional(pool)
            .await?
        });
        let Some((key_id, nonce, ciphertext)) = row else {
            return Ok(None);
        };
        let cipher = self.cipher.clone();
        let (tenant, device) = (tenant_id.to_owned(), device_id.to_owned());
        spawn_blocking_with_tracing(move || {
            let sealed = Sealed {
                key_id,
                nonce,
                ciphertext,
            };
            let bytes = cipher.open(&tenant, &diff_aad(&device, snapshot_id), &sealed)?;
            String::from_utf8(bytes)
                .map(Some)
                .map_err(|_| Error::Unexpected(anyhow::anyhow!("stored diff is not UTF-8")))
        })
        .await
        .map_err(|e| Error::Unexpected(anyhow::Error::new(e).context("decrypting a diff")))?
    }

    async fn previous_id(
        &self,
        tenant_id: &str,
        device_id: &str,
        snapshot_id: i64,
    ) -> Result<Option<i64>> {
        let id = on_db!(&self.db, |pool| {
            sqlx::query_scalar::<_, i64>(
                "SELECT snapshot_id FROM snapshot WHERE tenant_id = $1 AND device_id = $2 \
                 AND snapshot_id < $3 ORDER BY snapshot_id DESC LIMIT 1",
            )
            .bind(tenant_id)
            .bind(device_id)
            .bind(snapshot_id)
            .fetch_optional(pool)
            .await?
        });
        Ok(id)
    }

    /// The change timeline: snapshots that differ from their predecessor,
    /// newest first, with their per-component summaries.
    ///
    /// # Errors
    /// Database failures.
    pub async fn config_history(
        &self,
        tenant_id: &str,
        device_id: &str,
        limit: u32,
        before: Option<i64>,
    ) -> Result<Vec<HistoryEntry>> {
        let mut pooled = self.db.acquire().await?;
        let (before, limit) = (before.unwrap_or(i64::MAX), limit.clamp(1, MAX_PAGE));
        let entries = changed_snapshots(pooled.conn(), tenant_id, device_id, before, limit).await?;
        let oldest = entries.last().map_or(i64::MAX, |e| e.0);
        let newest = entries.first().map_or(i64::MIN, |e| e.0);
        let changes = changes_in(pooled.conn(), tenant_id, device_id, oldest, newest).await?;
        Ok(entries
            .into_iter()
            .map(
                |(snapshot_id, collected_at, lines_added, lines_removed, status_only)| {
                    HistoryEntry {
                        snapshot_id,
                        collected_at,
                        lines_added,
                        lines_removed,
                        status_only,
                        changes: changes
                            .iter()
                            .filter(|c| c.snapshot_id == snapshot_id)
                            .cloned()
                            .collect(),
                    }
                },
            )
            .collect())
    }
}

impl Store {
    /// The tenant and device of a snapshot, for operators' tools that are
    /// given a bare snapshot id (the CLI). Not for tenant-scoped callers.
    ///
    /// # Errors
    /// [`Error::SnapshotNotFound`].
    pub async fn snapshot_owner(&self, snapshot_id: i64) -> Result<(String, String)> {
        let row = on_db!(&self.db, |pool| {
            sqlx::query_as::<_, (String, String)>(
                "SELECT tenant_id, device_id FROM snapshot WHERE snapshot_id = $1",
            )
            .bind(snapshot_id)
            .fetch_optional(pool)
            .await?
        });
        row.ok_or(Error::SnapshotNotFound)
    }
}

/// The snapshots of a page (ids below `before`, at most `limit`) that
/// differ from their predecessor, newest first, with their line counts.
async fn changed_snapshots(
    conn: Conn<'_>,
    tenant_id: &str,
    device_id: &str,
    before: i64,
    limit: u32,
) -> Result<Vec<(i64, DateTime<Utc>, i64, i64, bool)>> {
    let rows = on_conn!(conn, |c| {
        sqlx::query_as(
            "SELECT s.snapshot_id, s.collected_at, CAST(d.lines_added AS BIGINT), \
             CAST(d.lines_removed AS BIGINT), s.status_only \
             FROM snapshot s JOIN snapshot_diff d ON d.snapshot_id = s.snapshot_id \
             WHERE s.tenant_id = $1 AND s.device_id = $2 AND s.snapshot_id < $3 \
             ORDER BY s.snapshot_id DESC LIMIT $4",
        )
        .bind(tenant_id)
        .bind(device_id)
        .bind(before)
        .bind(i64::from(limit))
        .fetch_all(c)
        .await?
    });
    Ok(rows)
}

/// The per-component changes of a device's snapshots with ids in
/// `oldest..=newest`, in the order they were recorded.
async fn changes_in(
    conn: Conn<'_>,
    tenant_id: &str,
    device_id: &str,
    oldest: i64,
    newest: i64,
) -> Result<Vec<ChangeSummary>> {
    // The id range is on `s`, next to the device: the index on
    // (device_id, snapshot_id) then bounds the scan to this page
    // even in PostgreSQL's generic plan (a prepared statement after
    // five runs). On `c.snapshot_id` the generic plan guessed 0.5 %
    // of config_change for the range and scanned every change in it,
    // all devices' (~110 ms at a million snapshots).
    let rows = on_conn!(conn, |c| {
        sqlx::query_as::<_, ChangeSummary>(
            "SELECT c.snapshot_id, c.component, c.summary, \
             CAST(c.lines_added AS BIGINT) AS lines_added, \
             CAST(c.lines_removed AS BIGINT) AS lines_removed \
             FROM config_change c JOIN snapshot s ON s.snapshot_id = c.snapshot_id \
             WHERE s.tenant_id = $1 AND s.device_id = $2 AND s.snapshot_id BETWEEN $3 AND $4 \
             ORDER BY c.config_change_id",
        )
        .bind(tenant_id)
        .bind(device_id)
        .bind(oldest)
        .bind(newest)
        .fetch_all(c)
        .await?
    });
    Ok(rows)
}
