//! `cfgsnap history`, `show` and `diff` (unified, or `--semantic` JSON):
//! read the store from the shell.
//! Operators' tools: they see every tenant.

use std::io::Write as _;

use anyhow::Context as _;

use super::Exit;
use crate::config::{Fleet, Settings};
use crate::store::history::Secrets;
use crate::store::{self, Store};

/// Prints a device's snapshots, newest first, as a table or JSON lines.
pub(super) async fn list(
    settings: &Settings,
    fleet: &Fleet,
    device_id: &str,
    limit: u32,
    json: bool,
) -> anyhow::Result<Exit> {
    let Some(device) = fleet.device(device_id) else {
        eprintln!("error[not_found]: no device {device_id:?} in the configuration");
        return Ok(Exit::Failed);
    };
    let store = Store::connect(&settings.store).await?;
    let rows = store
        .list_snapshots(device.tenant.as_str(), device_id, limit, None)
        .await?;
    store.close().await;
    let mut out = std::io::stdout().lock();
    if !json {
        writeln!(
            out,
            "{:>8}  {:<25}  {:<9}  {:<12}  {:>9}  {:>7}  {:>7}",
            "ID", "COLLECTED", "TRIGGER", "SHA256", "BYTES", "+LINES", "-LINES"
        )?;
    }
    for s in rows {
        if json {
            writeln!(out, "{}", serde_json::to_string(&s)?)?;
        } else {
            writeln!(
                out,
                "{:>8}  {:<25}  {:<9}  {:<12}  {:>9}  {:>7}  {:>7}",
                s.id,
                s.collected_at.format("%Y-%m-%dT%H:%M:%SZ"),
                s.trigger.as_str(),
                s.sha256_hash.get(..12).unwrap_or(&s.sha256_hash),
                s.size_bytes,
                s.lines_added.map_or("-".into(), |n| n.to_string()),
                s.lines_removed.map_or("-".into(), |n| n.to_string()),
            )?;
        }
    }
    Ok(Exit::Ok)
}

/// Prints a snapshot's normalized export.
pub(super) async fn show(settings: &Settings, snapshot_id: i64) -> anyhow::Result<Exit> {
    let store = Store::connect(&settings.store).await?;
    let result = async {
        let (tenant, device) = store.snapshot_owner(snapshot_id).await?;
        store.snapshot_content(&tenant, &device, snapshot_id).await
    }
    .await;
    store.close().await;
    print_or_fail(result, snapshot_id)
}

/// Prints the unified diff of a snapshot, or with `semantic` the changed
/// items as pretty JSON (DESIGN.md §16, secrets shown like the unified diff).
pub(super) async fn diff(
    settings: &Settings,
    snapshot_id: i64,
    against: Option<i64>,
    semantic: bool,
) -> anyhow::Result<Exit> {
    let store = Store::connect(&settings.store).await?;
    let result = async {
        let (tenant, device) = store.snapshot_owner(snapshot_id).await?;
        if !semantic {
            return store
                .snapshot_diff(&tenant, &device, snapshot_id, against)
                .await;
        }
        let ids = (snapshot_id, against);
        let diff = store
            .semantic_diff_as(&tenant, &device, ids, Secrets::Shown)
            .await?;
        let json = serde_json::to_string_pretty(&diff)
            .map_err(|e| store::Error::Unexpected(anyhow::Error::new(e)))?;
        Ok(json + "\n")
    }
    .await;
    store.close().await;
    print_or_fail(result, snapshot_id)
}

fn print_or_fail(result: store::Result<String>, snapshot_id: i64) -> anyhow::Result<Exit> {
    match result {
        Ok(text) => {
            std::io::stdout()
                .lock()
                .write_all(text.as_bytes())
                .context("writing to stdout")?;
            Ok(Exit::Ok)
        }
        Err(store::Error::SnapshotNotFound) => {
            eprintln!(
                "error[not_found]: no snapshot {snapshot_id} (or --against names another device's)"
            );
            Ok(Exit::Failed)
        }
        Err(e) => Err(e.into()),
    }
}
