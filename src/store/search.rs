//! What search (`crate::search`) reads: the newest snapshot id of every
//! device of a tenant, sealed versions by id or per device in order, and
//! opening them in memory. Nothing here writes plaintext anywhere.

use chrono::{DateTime, Utc};

use super::crypto::{Keyring, Sealed};
use super::db::on_db;
use super::record::content_aad;
use super::{Error, Result, Store};

/// One stored version, still sealed.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SealedVersion {
    /// Device.
    pub device_id: String,
    /// Snapshot.
    pub snapshot_id: i64,
    /// When it was collected.
    pub collected_at: DateTime<Utc>,
    /// Its hash (bound into the record).
    pub sha256_hash: String,
    /// Whether a stored diff against a predecessor exists (for a device's
    /// oldest remaining version: its predecessor was deleted by retention).
    pub has_diff: bool,
    key_id: String,
    nonce: Vec<u8>,
    content: Vec<u8>,
}

impl SealedVersion {
    /// Bytes of the sealed record (what a cache of the plaintext may weigh).
    pub fn sealed_len(&self) -> usize {
        self.content.len()
    }
}

/// Opens sealed versions of one store, on any thread (the blocking pool).
#[derive(Clone)]
pub struct Opener(Keyring);

impl Opener {
    /// The normalized export of `version`, a record of `tenant_id`.
    ///
    /// # Errors
    /// [`Error::Crypto`] when it cannot be decrypted with the configured
    /// keys; [`Error::Unexpected`] when it is not UTF-8.
    pub fn open(&self, tenant_id: &str, version: &SealedVersion) -> Result<String> {
        let sealed = Sealed {
            key_id: version.key_id.clone(),
            nonce: version.nonce.clone(),
            ciphertext: version.content.clone(),
        };
        let aad = content_aad(&version.device_id, &version.sha256_hash);
        let bytes = self.0.open(tenant_id, &aad, &sealed)?;
        String::from_utf8(bytes)
            .map_err(|_| Error::Unexpected(anyhow::anyhow!("stored snapshot is not UTF-8")))
    }
}

const VERSION_COLUMNS: &str = "s.device_id, s.snapshot_id, s.collected_at, s.sha256_hash, \
     (d.snapshot_id IS NOT NULL) AS has_diff, s.key_id, s.nonce, s.content";

impl Store {
    /// What opens this store's sealed versions.
    pub fn opener(&self) -> Opener {
        Opener(self.cipher.clone())
    }

    /// `(device_id, newest snapshot id)` of every device of the tenant that
    /// has a snapshot, by device id.
    ///
    /// # Errors
    /// Database failures.
    pub async fn newest_snapshot_ids(&self, tenant_id: &str) -> Result<Vec<(String, i64)>> {
        let rows = on_db!(&self.db, |pool| {
            sqlx::query_as::<_, (String, Option<i64>)>(
                "SELECT dv.device_id, (SELECT MAX(s.snapshot_id) FROM snapshot s \
                   WHERE s.device_id = dv.device_id AND s.tenant_id = $1) \
                 FROM device dv WHERE dv.tenant_id = $1 ORDER BY dv.device_id",
            )
            .bind(tenant_id)
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .filter_map(|(device, id)| Some((device, id?)))
            .collect())
    }

    /// The tenant's sealed versions with these ids (others are left out).
    ///
    /// # Errors
    /// Database failures.
    pub async fn sealed_versions(
        &self,
        tenant_id: &str,
        ids: &[i64],
    ) -> Result<Vec<SealedVersion>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = on_db!(&self.db, |pool| {
            let mut query = sqlx::QueryBuilder::new(format!(
                "SELECT {VERSION_COLUMNS} FROM snapshot s \
                 LEFT JOIN snapshot_diff d ON d.snapshot_id = s.snapshot_id \
                 WHERE s.tenant_id = "
            ));
            query.push_bind(tenant_id).push(" AND s.snapshot_id IN (");
            let mut list = query.separated(", ");
            for id in ids {
                list.push_bind(*id);
            }
            query.push(")");
            query
                .build_query_as::<SealedVersion>()
                .fetch_all(pool)
                .await?
        });
        Ok(rows)
    }

    /// A device's versions oldest first, after snapshot `after`, at most
    /// `limit`.
    ///
    /// # Errors
    /// Database failures.
    pub async fn device_versions(
        &self,
        tenant_id: &str,
        device_id: &str,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Vec<SealedVersion>> {
        let sql = format!(
            "SELECT {VERSION_COLUMNS} FROM snapshot s \
             LEFT JOIN snapshot_diff d ON d.snapshot_id = s.snapshot_id \
             WHERE s.tenant_id = $1 AND s.device_id = $2 AND s.snapshot_id > $3 \
             ORDER BY s.snapshot_id LIMIT $4"
        );
        let rows = on_db!(&self.db, |pool| {
            sqlx::query_as::<_, SealedVersion>(sqlx::AssertSqlSafe(sql.clone()))
                .bind(tenant_id)
                .bind(device_id)
                .bind(after.unwrap_or(0))
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?
        });
        Ok(rows)
    }

    /// The stored diff of `snapshot_id` against its predecessor, decrypted.
    ///
    /// # Errors
    /// As [`Store::snapshot_diff`].
    pub async fn stored_diff_text(
        &self,
        tenant_id: &str,
        device_id: &str,
        snapshot_id: i64,
    ) -> Result<Option<String>> {
        self.stored_diff(tenant_id, device_id, snapshot_id).await
    }
}
