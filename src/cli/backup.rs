//! `cfgsnap backup`: one device, once, stored when the store accepts it.

use std::io::Write as _;
use std::path::Path;
use std::sync::Mutex;

use anyhow::Context as _;
use serde_json::json;

use super::Exit;
use crate::backup::executor::SshExecutor;
use crate::backup::pipeline::{self, Pipeline};
use crate::backup::{
    AttemptReport, Error as BackupError, Executor as _, Outcome, SnapshotSink, Trigger,
};
use crate::config::{Fleet, Settings};
use crate::lock::Locker;
use crate::store::Store;
use crate::store::device::Attempt;
use crate::store::snapshot::{Ingested, NewSnapshot};

/// Backs `device_id` up, stores it and prints the JSON line of DESIGN.md §9
/// plus `snapshot_id` and `stored` (false for a duplicate).
pub(super) async fn run(
    settings: &Settings,
    fleet: &Fleet,
    device_id: &str,
    output: Option<&Path>,
) -> anyhow::Result<Exit> {
    let Some(device) = fleet.device(device_id) else {
        eprintln!("error[not_found]: no device {device_id:?} in the configuration");
        return Ok(Exit::Failed);
    };
    let store = Store::connect(&settings.store).await?;
    store.sync_fleet(fleet).await?;
    // Notifications this backup causes are queued like a node's; a serving
    // node with the ingester role delivers them.
    store.set_notify_routes(&settings.notify_config()?);
    let locker = Locker::connect(&settings.lock.url, &settings.lock.key_prefix)?;
    let sink = DirectIngest {
        store: store.clone(),
        poller_id: node_id(settings),
        result: Mutex::new(None),
    };
    let executor = Pipeline::new(
        SshExecutor::new(fleet.limits.clone(), store.clone()),
        locker,
        sink,
        pipeline::lock_ttl(fleet.limits.command_timeout),
    );
    let started = chrono::Utc::now();
    let outcome = match executor.run(device, Trigger::Manual).await {
        Ok(outcome) => outcome,
        Err(e) => {
            let (attempt, kind) = match &e {
                BackupError::LockHeld => (Attempt::Locked, "locked".to_owned()),
                e => (
                    Attempt::Failed {
                        error_kind: e.kind().to_string(),
                        next_attempt_at: None,
                        blocked_reason: None,
                    },
                    e.kind().to_string(),
                ),
            };
            store
                .record_attempt(device.id.as_str(), started, &attempt)
                .await?;
            eprintln!("error[{kind}]: {e}");
            store.close().await;
            return Ok(Exit::Failed);
        }
    };
    let ingested = executor
        .sink()
        .take_result()
        .context("BUG: a successful pipeline run published its snapshot")?;
    store
        .record_attempt(device.id.as_str(), started, &Attempt::Success)
        .await?;
    store.close().await;
    if let Some(path) = output {
        write_private(path, outcome.config_text.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let line = json!({
        "device_id": outcome.device_id,
        "tenant_id": outcome.tenant_id,
        "sha256_hash": outcome.sha256_hash,
        "routeros_version": outcome.routeros_version,
        "bytes": outcome.config_text.len(),
        "lines": outcome.lines(),
        "duration_ms": outcome.duration.as_millis(),
        "warnings": outcome.warnings,
        "snapshot_id": ingested.snapshot_id(),
        "stored": matches!(ingested, Ingested::Created { .. }),
    });
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}").context("writing to stdout")?;
    Ok(Exit::Ok)
}

/// This node's name in snapshot events: `roles.node_id`, else the host
/// name, else `cfgsnap`.
pub(crate) fn node_id(settings: &Settings) -> String {
    settings.roles.node_id.clone().unwrap_or_else(|| {
        std::fs::read_to_string("/etc/hostname")
            .ok()
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "cfgsnap".to_owned())
    })
}

/// The one-shot command's sink: ingests straight into the store (there is
/// no ingester running) and keeps the result for the JSON line.
struct DirectIngest {
    store: Store,
    poller_id: String,
    result: Mutex<Option<Ingested>>,
}

impl DirectIngest {
    fn take_result(&self) -> Option<Ingested> {
        self.result.lock().ok().and_then(|mut r| r.take())
    }
}

impl SnapshotSink for DirectIngest {
    async fn publish(&self, outcome: &Outcome) -> anyhow::Result<()> {
        let snap = NewSnapshot::from_outcome(outcome, Some(self.poller_id.clone()));
        let ingested = self
            .store
            .ingest(&snap)
            .await
            .context("storing the snapshot")?;
        if let Ok(mut r) = self.result.lock() {
            *r = Some(ingested);
        }
        Ok(())
    }

    async fn report(&self, _report: &AttemptReport) {}
}

/// Writes `bytes` to `path`, readable by the owner only: exports hold secrets.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}
