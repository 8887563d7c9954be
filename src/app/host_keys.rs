//! Node-level adapters: where this node pins host keys (the store, or a
//! file on a poller without one), and an executor wrapper that records
//! backup metrics.

use crate::backup::known_hosts::KnownHosts;
use crate::backup::{Device, Error, Executor, HostKeys, Outcome, Result, Trigger};
use crate::id::DeviceId;
use crate::metrics::Metrics;
use crate::store::Store;

/// Pinned host keys: in the store on a node that has one, else in the
/// `backup.known_hosts_file` of a remote poller.
#[derive(Clone)]
pub enum HostKeyStore {
    /// The central store.
    Store(Store),
    /// A local JSON file.
    File(KnownHosts),
}

impl HostKeys for HostKeyStore {
    async fn pinned(&self, device: &DeviceId) -> anyhow::Result<Option<String>> {
        match self {
            HostKeyStore::Store(s) => s.pinned(device).await,
            HostKeyStore::File(f) => f.pinned(device).await,
        }
    }

    async fn pinned_fresh(&self, device: &DeviceId) -> anyhow::Result<Option<String>> {
        match self {
            HostKeyStore::Store(s) => s.pinned_fresh(device).await,
            HostKeyStore::File(f) => f.pinned_fresh(device).await,
        }
    }

    async fn pin(&self, device: &DeviceId, fingerprint: &str) -> anyhow::Result<()> {
        match self {
            HostKeyStore::Store(s) => HostKeys::pin(s, device, fingerprint).await,
            HostKeyStore::File(f) => HostKeys::pin(f, device, fingerprint).await,
        }
    }
}

/// Records backups in flight, their results and durations.
pub struct Metered<E> {
    inner: E,
    metrics: Metrics,
}

impl<E> Metered<E> {
    /// Wraps `inner`.
    pub fn new(inner: E, metrics: Metrics) -> Self {
        Self { inner, metrics }
    }
}

impl<E: Executor> Executor for Metered<E> {
    async fn run(&self, device: &Device, trigger: Trigger) -> Result<Outcome> {
        let guard = self.metrics.backup_started();
        let result = self.inner.run(device, trigger).await;
        let label = match &result {
            Ok(outcome) => {
                if outcome.recorded {
                    self.metrics.unchanged_confirmed();
                }
                "success"
            }
            Err(Error::LockHeld) => "locked",
            Err(e) => e.kind().as_str(),
        };
        self.metrics.backup_finished(label, guard.elapsed());
        result
    }
}
