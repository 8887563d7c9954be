//! Pinned host keys on a node with a store: the store's column
//! `device.host_key_fingerprint` read through this node's memory of it
//! ([`Pins`]), and [`crate::backup::HostKeys`] for the executor. Pinning and
//! resetting (transactions with their audit rows) are in `device`.

use tracing::warn;

use super::db::on_db;
use super::{Result, Store};

impl Store {
    /// The pinned host key fingerprint of a device, if any: from this
    /// node's memory when it holds one (see [`Pins`]), else from the store.
    ///
    /// # Errors
    /// Database failures.
    pub async fn pinned_host_key(&self, device_id: &str) -> Result<Option<String>> {
        if self.pins.loaded.get().is_none() {
            // Every pin in one read, the first time a key is asked for; if
            // that fails, each device's key is read on its own.
            let loaded = self.pins.loaded.get_or_try_init(|| self.load_pins()).await;
            if let Err(e) = loaded {
                warn!(error.message = %e, "reading the pinned host keys failed; reading them one by one");
            }
        }
        if let Some(fp) = self.pins.get(device_id) {
            return Ok(Some(fp));
        }
        self.pinned_host_key_stored(device_id).await
    }

    async fn load_pins(&self) -> Result<()> {
        let rows: Vec<(String, String)> = on_db!(&self.db, |pool| {
            sqlx::query_as(
                "SELECT device_id, host_key_fingerprint FROM device \
                 WHERE host_key_fingerprint IS NOT NULL",
            )
            .fetch_all(pool)
            .await?
        });
        for (device, fingerprint) in &rows {
            self.pins.set(device, Some(fingerprint));
        }
        Ok(())
    }

    /// The pinned host key fingerprint of a device as the store holds it
    /// (this node's memory is brought in line with it).
    ///
    /// # Errors
    /// Database failures.
    pub async fn pinned_host_key_stored(&self, device_id: &str) -> Result<Option<String>> {
        let fp = on_db!(&self.db, |pool| {
            sqlx::query_scalar::<_, Option<String>>(
                "SELECT host_key_fingerprint FROM device WHERE device_id = $1",
            )
            .bind(device_id)
            .fetch_optional(pool)
            .await?
        });
        let fp = fp.flatten();
        self.pins.set(device_id, fp.as_deref());
        Ok(fp)
    }

    /// Forgets what this node remembers of a device's pinned key (another
    /// node reset it).
    pub fn forget_pinned_host_key(&self, device_id: &str) {
        self.pins.set(device_id, None);
    }
}

/// This node's memory of pinned host keys, so that a backup does not read
/// the store for its device's key: all are read at the first backup. Only
/// pins are remembered (a device
/// without one is read from the store until it has one). A reset on this
/// node forgets at once; a reset on another node is announced on the bus
/// (the node forgets on the notice), and an executor that meets another
/// key than the remembered one reads the store again before it calls it a
/// mismatch ([`crate::backup::HostKeys::pinned_fresh`]), so a stale entry
/// can cost a second connection, never a wrong verdict.
#[derive(Default)]
pub struct Pins {
    map: std::sync::Mutex<std::collections::HashMap<String, String>>,
    /// Set once every pin of the store was read into `map`.
    loaded: tokio::sync::OnceCell<()>,
}

impl std::fmt::Debug for Pins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pins").finish_non_exhaustive()
    }
}

impl Pins {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, String>> {
        // Every update is one insert or remove: a poisoned map is whole.
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(super) fn get(&self, device_id: &str) -> Option<String> {
        self.lock().get(device_id).cloned()
    }

    pub(super) fn set(&self, device_id: &str, fingerprint: Option<&str>) {
        let mut map = self.lock();
        match fingerprint {
            Some(fp) => {
                map.insert(device_id.to_owned(), fp.to_owned());
            }
            None => {
                map.remove(device_id);
            }
        }
    }
}

impl crate::backup::HostKeys for Store {
    async fn pinned(&self, device: &crate::id::DeviceId) -> anyhow::Result<Option<String>> {
        Ok(self.pinned_host_key(device.as_str()).await?)
    }

    async fn pinned_fresh(&self, device: &crate::id::DeviceId) -> anyhow::Result<Option<String>> {
        Ok(self.pinned_host_key_stored(device.as_str()).await?)
    }

    async fn pin(&self, device: &crate::id::DeviceId, fingerprint: &str) -> anyhow::Result<()> {
        Ok(self.pin_host_key(device.as_str(), fingerprint).await?)
    }
}
