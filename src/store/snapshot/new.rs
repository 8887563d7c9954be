//! What ingest takes and returns: a [`NewSnapshot`] (with the checks that
//! reject an event that can never be stored) and the [`Ingested`] outcome.
//! No SQL.

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use serde::Serialize;

use crate::backup::normalize::{NORMALIZATION_VERSION, sha256_hex};
use crate::backup::{Outcome, Trigger};
use crate::id::{DeviceId, TenantId};
use crate::store::{Error, Result};

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
            normalization_version: NORMALIZATION_VERSION,
            poller_id,
            warnings: outcome.warnings.clone(),
        }
    }

    /// Rejects what can never be stored. The hash must be the text's own:
    /// it is the snapshot's identity and the dedup key.
    pub(super) fn check(&self) -> Result<()> {
        self.check_fields()?;
        if self.config_text.trim().is_empty() {
            return Err(Error::InvalidSnapshot("config_text is empty".to_owned()));
        }
        if sha256_hex(&self.config_text) != self.sha256_hash {
            return Err(Error::InvalidSnapshot(
                "sha256_hash does not match config_text".to_owned(),
            ));
        }
        Ok(())
    }

    /// [`NewSnapshot::check`] without looking at the text: enough for an
    /// event recorded as a duplicate, which stores nothing of its text (its
    /// hash is the stored newest version's, whatever the text says), and
    /// for an unchanged claim, which has none.
    pub(super) fn check_fields(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::InvalidSnapshot(m.to_owned()));
        let hex = self.sha256_hash.len() == 64
            && self
                .sha256_hash
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !hex {
            return bad("sha256_hash is not 64 lowercase hex digits");
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
