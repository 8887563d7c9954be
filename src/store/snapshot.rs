//! Snapshots: ingest of a collected export (validate → dedup → stale check →
//! encrypt → insert → diff → changes → audit, in one transaction) and the
//! history queries the API serves.
//!
//! Ingest is idempotent: an event whose hash equals the device's newest
//! snapshot stores nothing, so redelivery is harmless; an event older than the
//! newest snapshot is recorded as stale. The device row is the serialization
//! point (row lock on PostgreSQL, `BEGIN IMMEDIATE` on SQLite), so concurrent
//! ingests for one device never fork its history.

use chrono::{DateTime, Duration as ChronoDuration, SubsecRound, Utc};
use serde::Serialize;
use serde_json::json;
use tracing::instrument;

use super::audit::{Action, insert_audit};
use super::crypto::Sealed;
use super::{Error, Result, Store, on_db};
use crate::backup::changes::{self, Change};
use crate::backup::normalize::sha256_hex;
use crate::backup::{Outcome, Trigger};
use crate::id::{DeviceId, TenantId};
use crate::telemetry::spawn_blocking_with_tracing;

/// A collected export to store: what a snapshot event carries.
#[derive(Clone)]
pub struct NewSnapshot {
    /// Owning tenant.
    pub tenant_id: TenantId,
    /// The device.
    pub device_id: DeviceId,
    /// Lowercase hex SHA-256 of `config_text`.
    pub sha256_hash: String,
    /// When the export was taken.
    pub collected_at: DateTime<Utc>,
    /// What started the backup.
    pub trigger: Trigger,
    /// RouterOS version, if known.
    pub routeros_version: Option<String>,
    /// The normalized export. Holds device secrets.
    pub config_text: String,
    /// Normalization rules used (DESIGN.md §6).
    pub normalization_version: u32,
    /// Node that collected it.
    pub poller_id: Option<String>,
    /// Non-fatal problems of the collection.
    pub warnings: Vec<String>,
}

impl NewSnapshot {
    /// The snapshot of a successful backup.
    pub fn from_outcome(outcome: &Outcome, poller_id: Option<String>) -> Self {
        Self {
            tenant_id: outcome.tenant_id.clone(),
            device_id: outcome.device_id.clone(),
            sha256_hash: outcome.sha256_hash.clone(),
            collected_at: outcome.collected_at,
            trigger: outcome.trigger,
            routeros_version: outcome.routeros_version.clone(),
            config_text: outcome.config_text.clone(),
            normalization_version: crate::backup::normalize::NORMALIZATION_VERSION,
            poller_id,
            warnings: outcome.warnings.clone(),
        }
    }

    /// Rejects what can never be stored. The hash must be the text's own:
    /// it is the snapshot's identity and the dedup key.
    fn check(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::InvalidSnapshot(m.to_owned()));
        let hex = self.sha256_hash.len() == 64
            && self
                .sha256_hash
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !hex {
            return bad("sha256_hash is not 64 lowercase hex digits");
        }
        if self.config_text.trim().is_empty() {
            return bad("config_text is empty");
        }
        if sha256_hex(&self.config_text) != self.sha256_hash {
            return bad("sha256_hash does not match config_text");
        }
        if self.normalization_version == 0 {
            return bad("normalization_version must be at least 1");
        }
        if self.collected_at > Utc::now() + ChronoDuration::hours(24) {
            return bad("collected_at is more than a day in the future");
        }
        if self.routeros_version.as_ref().is_some_and(|v| v.len() > 64) {
            return bad("routeros_version is longer than 64 characters");
        }
        if self.poller_id.as_ref().is_some_and(|v| v.len() > 128) {
            return bad("poller_id is longer than 128 characters");
        }
        // Stored as TEXT, which cannot hold NUL on PostgreSQL.
        let text_fields = self.routeros_version.iter().chain(&self.poller_id);
        if text_fields.chain(&self.warnings).any(|v| v.contains('\0')) {
            return bad("routeros_version, poller_id or a warning contains a NUL character");
        }
        Ok(())
    }
}

/// What ingest did with a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Ingested {
    /// A new version was stored.
    Created {
        /// The new snapshot's id.
        snapshot_id: i64,
        /// Lines added against the previous snapshot (all lines for the first).
        lines_added: u32,
        /// Lines removed against the previous snapshot.
        lines_removed: u32,
    },
    /// Same hash as the newest snapshot: nothing stored.
    Duplicate {
        /// The existing newest snapshot.
        snapshot_id: i64,
    },
    /// Older than the newest snapshot: recorded, not stored.
    Stale {
        /// The newest snapshot, which is younger.
        newest_snapshot_id: i64,
    },
}

impl Ingested {
    /// The snapshot the event corresponds to, if stored or already there.
    pub fn snapshot_id(&self) -> Option<i64> {
        match self {
            Ingested::Created { snapshot_id, .. } | Ingested::Duplicate { snapshot_id } => {
                Some(*snapshot_id)
            }
            Ingested::Stale { .. } => None,
        }
    }
}

/// The newest snapshot's identity: enough to decide duplicate or stale
/// without reading its (large) content.
#[derive(sqlx::FromRow)]
struct NewestRow {
    snapshot_id: i64,
    sha256_hash: String,
    collected_at: DateTime<Utc>,
}

/// Additional data binding a sealed export to its device and hash.
pub(crate) fn content_aad(device_id: &str, sha256_hash: &str) -> Vec<u8> {
    format!("cfgsnap:snapshot:v1:{device_id}:{sha256_hash}").into_bytes()
}

/// Additional data binding a sealed diff to its snapshot.
pub(crate) fn diff_aad(device_id: &str, snapshot_id: i64) -> Vec<u8> {
    format!("cfgsnap:diff:v1:{device_id}:{snapshot_id}").into_bytes()
}

/// The computed parts of a new version, prepared before the insert.
struct Prepared {
    content: Sealed,
    diff_text: Option<String>,
    lines_added: u32,
    lines_removed: u32,
    changes: Vec<Change>,
    size_bytes: i64,
    line_count: i64,
}

/// Records a stored (or duplicate) snapshot as the device's latest
/// success, unless an attempt after it is already recorded: the event is the
/// durable proof of a backup whose attempt report may have been lost (a node
/// killed between publishing and reporting, a best-effort report dropped).
macro_rules! note_success {
    ($executor:expr, $device:expr, $at:expr) => {
        sqlx::query(
            "UPDATE device SET last_attempt_at = $2, last_success_at = $2, last_status = 'success', \
             last_error_kind = NULL, consecutive_failures = 0, next_attempt_at = NULL, \
             blocked_reason = NULL, updated_at = $2 \
             WHERE device_id = $1 AND (last_attempt_at IS NULL OR last_attempt_at < $2)",
        )
        .bind($device)
        .bind($at)
        .execute($executor)
        .await
        .map(|_| ())
        .map_err($crate::store::Error::from)
    };
}

impl Store {
    /// Stores `snap` unless it duplicates or predates the device's newest
    /// snapshot; see the module docs.
    ///
    /// # Errors
    /// [`Error::InvalidSnapshot`] for an event that can never be stored,
    /// [`Error::Unavailable`] when retrying may help.
    #[instrument(name = "store.ingest", skip_all, fields(device_id = %snap.device_id))]
    pub async fn ingest(&self, snap: &NewSnapshot) -> Result<Ingested> {
        snap.check()?;
        // Both backends keep microseconds; truncating here makes the stored
        // value and the one compared against identical on both.
        let collected_at = snap.collected_at.trunc_subsecs(6);
        let device = snap.device_id.as_str();
        on_db!(&self.db, pool, d => {
            let mut tx = pool.begin_with(d.begin_write).await?;
            let lock_sql = format!(
                "SELECT tenant_id FROM device WHERE device_id = $1{}",
                d.for_update
            );
            let owner: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(lock_sql))
                .bind(device)
                .fetch_optional(&mut *tx)
                .await?;
            match owner {
                None => return Err(Error::InvalidSnapshot(format!("unknown device {device}"))),
                Some(t) if t != snap.tenant_id.as_str() => {
                    return Err(Error::InvalidSnapshot(format!(
                        "device {device} does not belong to tenant {}",
                        snap.tenant_id
                    )));
                }
                Some(_) => {}
            }
            // A statement of its own, after the lock: under PostgreSQL's READ
            // COMMITTED a statement that waited for the row lock keeps its
            // starting snapshot for every other table, so reading the newest
            // snapshot in the locking statement (one round trip fewer) misses
            // a concurrent ingest's commit and forks the history.
            let newest: Option<NewestRow> = sqlx::query_as(
                "SELECT snapshot_id, sha256_hash, collected_at \
                 FROM snapshot WHERE device_id = $1 ORDER BY snapshot_id DESC LIMIT 1",
            )
            .bind(device)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(n) = &newest {
                let skipped = if n.sha256_hash == snap.sha256_hash {
                    Some((Action::SnapshotSkippedDuplicate, Ingested::Duplicate { snapshot_id: n.snapshot_id }))
                } else if collected_at < n.collected_at {
                    Some((Action::SnapshotStale, Ingested::Stale { newest_snapshot_id: n.snapshot_id }))
                } else {
                    None
                };
                if let Some((action, result)) = skipped {
                    if matches!(result, Ingested::Duplicate { .. }) {
                        note_success!(&mut *tx, device, collected_at)?;
                    }
                    let detail = json!({
                        "sha256_hash": snap.sha256_hash,
                        "collected_at": collected_at,
                        "newest_snapshot_id": n.snapshot_id,
                        "trigger": snap.trigger,
                    });
                    insert_audit!(&mut *tx, snap.tenant_id.as_str(), Some(device), action, None::<&str>, &detail)?;
                    tx.commit().await?;
                    return Ok(result);
                }
            }
            // Only a new version needs its predecessor's content (for the diff).
            let previous = match &newest {
                Some(n) => {
                    let (key_id, nonce, ciphertext): (String, Vec<u8>, Vec<u8>) = sqlx::query_as(
                        "SELECT key_id, nonce, content FROM snapshot WHERE snapshot_id = $1",
                    )
                    .bind(n.snapshot_id)
                    .fetch_one(&mut *tx)
                    .await?;
                    Some((n.sha256_hash.clone(), Sealed { key_id, nonce, ciphertext }))
                }
                None => None,
            };
            let prepared = self.prepare(snap, previous).await?;
            let snapshot_id: i64 = sqlx::query_scalar(
                "INSERT INTO snapshot (tenant_id, device_id, sha256_hash, collected_at, trigger, \
                 routeros_version, size_bytes, line_count, normalization_version, warnings, poller_id, \
                 key_id, nonce, content) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING snapshot_id",
            )
            .bind(snap.tenant_id.as_str())
            .bind(device)
            .bind(&snap.sha256_hash)
            .bind(collected_at)
            .bind(trigger_str(snap.trigger))
            .bind(snap.routeros_version.as_deref())
            .bind(prepared.size_bytes)
            .bind(prepared.line_count)
            .bind(i32::try_from(snap.normalization_version).unwrap_or(i32::MAX))
            .bind(serde_json::to_string(&snap.warnings).unwrap_or_else(|_| "[]".into()))
            .bind(snap.poller_id.as_deref())
            .bind(&prepared.content.key_id)
            .bind(&prepared.content.nonce)
            .bind(&prepared.content.ciphertext)
            .fetch_one(&mut *tx)
            .await?;
            if let (Some(prev), Some(text)) = (&newest, &prepared.diff_text) {
                let sealed = self.cipher.seal(
                    snap.tenant_id.as_str(),
                    &diff_aad(device, snapshot_id),
                    text.as_bytes(),
                )?;
                sqlx::query(
                    "INSERT INTO snapshot_diff (snapshot_id, previous_snapshot_id, tenant_id, \
                     lines_added, lines_removed, key_id, nonce, content) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(snapshot_id)
                .bind(prev.snapshot_id)
                .bind(snap.tenant_id.as_str())
                .bind(i64::from(prepared.lines_added))
                .bind(i64::from(prepared.lines_removed))
                .bind(&sealed.key_id)
                .bind(&sealed.nonce)
                .bind(&sealed.ciphertext)
                .execute(&mut *tx)
                .await?;
                for c in &prepared.changes {
                    sqlx::query(
                        "INSERT INTO config_change (snapshot_id, tenant_id, component, summary, \
                         lines_added, lines_removed) VALUES ($1, $2, $3, $4, $5, $6)",
                    )
                    .bind(snapshot_id)
                    .bind(snap.tenant_id.as_str())
                    .bind(&c.component)
                    .bind(&c.summary)
                    .bind(i64::from(c.lines_added))
                    .bind(i64::from(c.lines_removed))
                    .execute(&mut *tx)
                    .await?;
                }
                let detail = json!({
                    "snapshot_id": snapshot_id,
                    "previous_snapshot_id": prev.snapshot_id,
                    "lines_added": prepared.lines_added,
                    "lines_removed": prepared.lines_removed,
                    "changes": prepared.changes.iter().map(|c| &c.summary).collect::<Vec<_>>(),
                });
                insert_audit!(&mut *tx, snap.tenant_id.as_str(), Some(device), Action::DiffGenerated, None::<&str>, &detail)?;
            }
            let detail = json!({
                "snapshot_id": snapshot_id,
                "sha256_hash": snap.sha256_hash,
                "collected_at": collected_at,
                "trigger": snap.trigger,
                "size_bytes": prepared.size_bytes,
                "poller_id": snap.poller_id,
                "warnings": snap.warnings.len(),
            });
            insert_audit!(&mut *tx, snap.tenant_id.as_str(), Some(device), Action::SnapshotCreated, None::<&str>, &detail)?;
            note_success!(&mut *tx, device, collected_at)?;
            tx.commit().await?;
            Ok(Ingested::Created {
                snapshot_id,
                lines_added: prepared.lines_added,
                lines_removed: prepared.lines_removed,
            })
        })
    }

    /// Seals the new text and, against the previous version, computes the
    /// diff and change summaries, off the async threads.
    async fn prepare(
        &self,
        snap: &NewSnapshot,
        previous: Option<(String, Sealed)>,
    ) -> Result<Prepared> {
        let tenant = snap.tenant_id.to_string();
        let device = snap.device_id.to_string();
        let text = snap.config_text.clone();
        let hash = snap.sha256_hash.clone();
        let cipher = self.cipher.clone();
        let deadline = self.diff_deadline;
        spawn_blocking_with_tracing(move || -> Result<Prepared> {
            let content = cipher.seal(&tenant, &content_aad(&device, &hash), text.as_bytes())?;
            let line_count = i64::try_from(text.lines().count()).unwrap_or(i64::MAX);
            let size_bytes = i64::try_from(text.len()).unwrap_or(i64::MAX);
            let Some((prev_hash, sealed)) = previous else {
                return Ok(Prepared {
                    content,
                    diff_text: None,
                    lines_added: u32::try_from(line_count).unwrap_or(u32::MAX),
                    lines_removed: 0,
                    changes: Vec::new(),
                    size_bytes,
                    line_count,
                });
            };
            let old = cipher.open(&tenant, &content_aad(&device, &prev_hash), &sealed)?;
            let old = String::from_utf8(old)
                .map_err(|_| Error::Unexpected(anyhow::anyhow!("stored snapshot is not UTF-8")))?;
            let diff = changes::diff(
                &old,
                &text,
                &diff_label(&device, &prev_hash),
                &diff_label(&device, &hash),
                deadline,
            );
            let summary = changes::summarize(&old, &text, deadline);
            Ok(Prepared {
                content,
                diff_text: Some(diff.text),
                lines_added: diff.lines_added,
                lines_removed: diff.lines_removed,
                changes: summary,
                size_bytes,
                line_count,
            })
        })
        .await
        .map_err(|e| Error::Unexpected(anyhow::Error::new(e).context("preparing a snapshot")))?
    }
}

/// `r1@3f0c1d2e4b5a`: a diff header naming the device and the short hash.
pub(crate) fn diff_label(device_id: &str, sha256_hash: &str) -> String {
    format!(
        "{device_id}@{}",
        sha256_hash.get(..12).unwrap_or(sha256_hash)
    )
}

/// The stored name of a trigger.
pub(crate) fn trigger_str(t: Trigger) -> &'static str {
    match t {
        Trigger::Scheduled => "scheduled",
        Trigger::Manual => "manual",
    }
}
