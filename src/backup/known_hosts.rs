//! Host keys pinned on first use, kept in a small JSON file
//! (`backup.known_hosts_file`, `{"device_id": "SHA256:…"}`).
//!
//! The executor asks [`KnownHosts::get`] before connecting and calls
//! [`KnownHosts::pin`] after the first successful login. Writes go to a
//! temporary file that is renamed over the old one, so a crash never leaves a
//! half-written file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use tokio::sync::Mutex;

use super::HostKeys;
use crate::id::DeviceId;

/// The pinned host keys of all devices, shared by all executors.
#[derive(Clone)]
pub struct KnownHosts {
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    path: PathBuf,
    pins: BTreeMap<String, String>,
}

impl KnownHosts {
    /// Opens the file at `path`; a missing file is an empty set.
    ///
    /// # Errors
    /// When the file exists but cannot be read or is not the expected JSON.
    pub async fn open(path: &Path) -> anyhow::Result<Self> {
        let pins = match tokio::fs::read(path).await {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("parsing known hosts file {}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("reading known hosts file {}", path.display()));
            }
        };
        Ok(Self {
            inner: Arc::new(Mutex::new(Inner {
                path: path.to_owned(),
                pins,
            })),
        })
    }

    /// The fingerprint pinned for `device`, if any.
    pub async fn get(&self, device: &DeviceId) -> Option<String> {
        self.inner.lock().await.pins.get(device.as_str()).cloned()
    }

    /// Pins `fingerprint` for `device` and persists the file.
    ///
    /// # Errors
    /// When the file cannot be written; the pin is then not kept in memory either.
    pub async fn pin(&self, device: &DeviceId, fingerprint: &str) -> anyhow::Result<()> {
        let mut inner = self.inner.lock().await;
        let previous = inner
            .pins
            .insert(device.to_string(), fingerprint.to_owned());
        if let Err(e) = persist(&inner.path, &inner.pins).await {
            match previous {
                Some(p) => inner.pins.insert(device.to_string(), p),
                None => inner.pins.remove(device.as_str()),
            };
            return Err(e);
        }
        Ok(())
    }

    /// Forgets the pinned key of `device` (an admin's host-key reset).
    ///
    /// # Errors
    /// When the file cannot be written.
    pub async fn forget(&self, device: &DeviceId) -> anyhow::Result<()> {
        let mut inner = self.inner.lock().await;
        if inner.pins.remove(device.as_str()).is_some() {
            persist(&inner.path, &inner.pins).await?;
        }
        Ok(())
    }
}

impl HostKeys for KnownHosts {
    async fn pinned(&self, device: &DeviceId) -> anyhow::Result<Option<String>> {
        Ok(self.get(device).await)
    }

    async fn pin(&self, device: &DeviceId, fingerprint: &str) -> anyhow::Result<()> {
        if self.get(device).await.is_none() {
            KnownHosts::pin(self, device, fingerprint).await?;
        }
        Ok(())
    }
}

async fn persist(path: &Path, pins: &BTreeMap<String, String>) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        tokio::fs::create_dir_all(dir)
            .await
            .with_context(|| format!("creating {}", dir.display()))?;
    }
    let body = serde_json::to_vec_pretty(pins).context("encoding known hosts")?;
    let tmp = path.with_extension("json.tmp");
    tokio::fs::write(&tmp, body)
        .await
        .with_context(|| format!("writing {}", tmp.display()))?;
    tokio::fs::rename(&tmp, path)
        .await
        .with_context(|| format!("replacing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_pin_survives_reopening_and_forget_removes_it() {
        // Arrange
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub/known_hosts.json");
        let id = DeviceId::parse("r1").expect("id");
        let hosts = KnownHosts::open(&path).await.expect("open");
        assert_eq!(hosts.get(&id).await, None);

        // Act
        hosts.pin(&id, "SHA256:abc").await.expect("pin");
        let reopened = KnownHosts::open(&path).await.expect("reopen");

        // Assert
        assert_eq!(reopened.get(&id).await.as_deref(), Some("SHA256:abc"));
        reopened.forget(&id).await.expect("forget");
        let again = KnownHosts::open(&path).await.expect("reopen");
        assert_eq!(again.get(&id).await, None);
    }

    #[tokio::test]
    async fn a_corrupt_file_is_an_error_not_an_empty_set() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("known_hosts.json");
        std::fs::write(&path, b"{not json").expect("write");
        assert!(KnownHosts::open(&path).await.is_err());
    }
}
