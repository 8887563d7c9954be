//! Snapshot ingest: validate → lock the device → dedup and stale check →
//! encrypt and diff → insert snapshot, diff, changes → audit, in one
//! transaction ([`Store::ingest`]), with the notifications it causes
//! (`outbox`). The read side is in `history`.
//!
//! Ingest is idempotent: an event whose hash equals the device's newest
//! snapshot stores nothing, so redelivery is harmless; an event older than the
//! newest snapshot is recorded as stale. The device row is the serialization
//! point (row lock on PostgreSQL, `BEGIN IMMEDIATE` on SQLite), so concurrent
//! ingests for one device never fork its history. Layout: `new` (the input
//! and the outcome), `prepare` (the CPU work), `sql` (the statements),
//! `unchanged` (the memory of each device's newest hash and the batched
//! recording of duplicates, the common case).

use chrono::{DateTime, SubsecRound, Utc};
use serde_json::json;
use tracing::instrument;

use super::audit::{Action, insert_audit};
use super::db::{Conn, Tx};
use super::outbox;
use super::record::diff_aad;
use super::{Result, Store};

mod new;
mod prepare;
mod sql;
mod unchanged;
mod visible;

pub use new::{Ingested, NewSnapshot};
pub use unchanged::NewestHashes;

use prepare::Prepared;
use sql::NewestRow;

impl Store {
    /// Stores `snap` unless it duplicates or predates the device's newest
    /// snapshot; see the module docs.
    ///
    /// # Errors
    /// [`Error::InvalidSnapshot`](super::Error::InvalidSnapshot) for an
    /// event that can never be stored,
    /// [`Error::Unavailable`](super::Error::Unavailable) when retrying may
    /// help.
    #[instrument(name = "store.ingest", skip_all, fields(device_id = %snap.device_id))]
    pub async fn ingest(&self, snap: &NewSnapshot) -> Result<Ingested> {
        let (ingested, newest_hash) = self.ingest_inner(snap).await?;
        self.newest.remember(snap.device_id.as_str(), &newest_hash);
        Ok(ingested)
    }

    /// [`Store::ingest`], and the device's newest hash once committed.
    async fn ingest_inner(&self, snap: &NewSnapshot) -> Result<(Ingested, String)> {
        snap.check()?;
        // Both backends keep microseconds; truncating here makes the stored
        // value and the one compared against identical on both.
        let collected_at = snap.collected_at.trunc_subsecs(6);
        let device = snap.device_id.as_str();
        let routes = self.outbox.get();
        let mut tx = self.db.begin_write().await?;
        sql::lock_device(tx.conn(), snap).await?;
        // A statement of its own, after the lock: under PostgreSQL's READ
        // COMMITTED a statement that waited for the row lock keeps its
        // starting snapshot for every other table, so reading the newest
        // snapshot in the locking statement (one round trip fewer) misses
        // a concurrent ingest's commit and forks the history.
        let newest = sql::read_newest(tx.conn(), device).await?;
        if let Some(n) = &newest
            && let Some((action, result)) = skip(snap, collected_at, n)
        {
            if matches!(result, Ingested::Duplicate { .. }) {
                outbox::before_success(tx.conn(), &routes, device, Some(collected_at)).await?;
                sql::note_success(tx.conn(), device, collected_at).await?;
            }
            audit_skipped(tx.conn(), snap, collected_at, n, action).await?;
            tx.commit().await?;
            return Ok((result, n.sha256_hash.clone()));
        }
        // Only a new version needs its predecessor's content (for the diff).
        let previous = match &newest {
            Some(n) => Some((
                n.sha256_hash.clone(),
                sql::read_sealed(tx.conn(), n.snapshot_id).await?,
            )),
            None => None,
        };
        let prepared = self.prepare(snap, previous).await?;
        let snapshot_id = sql::insert_snapshot(tx.conn(), snap, collected_at, &prepared).await?;
        sql::set_newest(tx.conn(), device, snapshot_id).await?;
        if let Some(prev) = &newest {
            self.store_diff(&mut tx, snap, snapshot_id, prev.snapshot_id, &prepared)
                .await?;
            let changed = outbox::Changed {
                device_id: device,
                snapshot_id,
                previous_snapshot_id: prev.snapshot_id,
                sha256_hash: &snap.sha256_hash,
                lines_added: prepared.lines_added,
                lines_removed: prepared.lines_removed,
                changes: &prepared.changes,
                status_only: prepared.status_only,
            };
            outbox::config_changed(tx.conn(), &routes, &changed).await?;
        }
        audit_created(tx.conn(), snap, collected_at, snapshot_id, &prepared).await?;
        outbox::before_success(tx.conn(), &routes, device, Some(collected_at)).await?;
        sql::note_success(tx.conn(), device, collected_at).await?;
        tx.commit().await?;
        let created = Ingested::Created {
            snapshot_id,
            lines_added: prepared.lines_added,
            lines_removed: prepared.lines_removed,
        };
        Ok((created, snap.sha256_hash.clone()))
    }
}

impl Store {
    /// Stores the sealed diff against the previous version, its
    /// per-component changes and their audit event, when there is a diff.
    async fn store_diff(
        &self,
        tx: &mut Tx,
        snap: &NewSnapshot,
        snapshot_id: i64,
        previous_id: i64,
        prepared: &Prepared,
    ) -> Result<()> {
        let Some(text) = &prepared.diff_text else {
            return Ok(());
        };
        let tenant = snap.tenant_id.as_str();
        let aad = diff_aad(snap.device_id.as_str(), snapshot_id);
        let sealed = self.cipher.seal(tenant, &aad, text.as_bytes())?;
        sql::insert_diff(
            tx.conn(),
            tenant,
            snapshot_id,
            previous_id,
            prepared,
            &sealed,
        )
        .await?;
        sql::insert_changes(tx.conn(), tenant, snapshot_id, &prepared.changes).await?;
        audit_diff(tx.conn(), snap, snapshot_id, previous_id, prepared).await
    }
}

/// Whether the event duplicates or predates the newest snapshot, and the
/// audit action and outcome if so.
fn skip(
    snap: &NewSnapshot,
    collected_at: DateTime<Utc>,
    newest: &NewestRow,
) -> Option<(Action, Ingested)> {
    let snapshot_id = newest.snapshot_id;
    if newest.sha256_hash == snap.sha256_hash {
        Some((
            Action::SnapshotSkippedDuplicate,
            Ingested::Duplicate { snapshot_id },
        ))
    } else if collected_at < newest.collected_at {
        Some((
            Action::SnapshotStale,
            Ingested::Stale {
                newest_snapshot_id: snapshot_id,
            },
        ))
    } else {
        None
    }
}

async fn audit_skipped(
    conn: Conn<'_>,
    snap: &NewSnapshot,
    collected_at: DateTime<Utc>,
    newest: &NewestRow,
    action: Action,
) -> Result<()> {
    let detail = skipped_audit_detail(snap, collected_at, newest.snapshot_id);
    let (tenant, device) = (snap.tenant_id.as_str(), Some(snap.device_id.as_str()));
    insert_audit(conn, Some(tenant), device, action, None, &detail).await
}

/// The detail of a skipped (duplicate or stale) snapshot's audit event.
fn skipped_audit_detail(
    snap: &NewSnapshot,
    collected_at: DateTime<Utc>,
    newest_snapshot_id: i64,
) -> serde_json::Value {
    json!({
        "sha256_hash": snap.sha256_hash,
        "collected_at": collected_at,
        "newest_snapshot_id": newest_snapshot_id,
        "trigger": snap.trigger,
    })
}

async fn audit_diff(
    conn: Conn<'_>,
    snap: &NewSnapshot,
    snapshot_id: i64,
    previous_id: i64,
    prepared: &Prepared,
) -> Result<()> {
    let detail = json!({
        "snapshot_id": snapshot_id,
        "previous_snapshot_id": previous_id,
        "lines_added": prepared.lines_added,
        "lines_removed": prepared.lines_removed,
        "changes": prepared.changes.iter().map(|c| &c.summary).collect::<Vec<_>>(),
    });
    let (tenant, device) = (snap.tenant_id.as_str(), Some(snap.device_id.as_str()));
    insert_audit(
        conn,
        Some(tenant),
        device,
        Action::DiffGenerated,
        None,
        &detail,
    )
    .await
}

async fn audit_created(
    conn: Conn<'_>,
    snap: &NewSnapshot,
    collected_at: DateTime<Utc>,
    snapshot_id: i64,
    prepared: &Prepared,
) -> Result<()> {
    let detail = json!({
        "snapshot_id": snapshot_id,
        "sha256_hash": snap.sha256_hash,
        "collected_at": collected_at,
        "trigger": snap.trigger,
        "size_bytes": prepared.size_bytes,
        "poller_id": snap.poller_id,
        "warnings": snap.warnings.len(),
    });
    let (tenant, device) = (snap.tenant_id.as_str(), Some(snap.device_id.as_str()));
    insert_audit(
        conn,
        Some(tenant),
        device,
        Action::SnapshotCreated,
        None,
        &detail,
    )
    .await
}
