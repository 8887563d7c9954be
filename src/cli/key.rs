//! `cfgsnap key status|rotate|retire`: the master keys of the store. Keys
//! live in the key file's directory (`master.key` is current, previous keys
//! are kept as `master.key.<key id>` until retired); a running node picks a
//! replaced key file up at its next read or write. Prints key ids and
//! counts, never key material.

use std::path::Path;
use std::time::Duration;

use clap::Subcommand;
use serde_json::json;

use super::Exit;
use crate::config::Settings;
use crate::store::Store;
use crate::store::audit::Action;
use crate::store::crypto::{self, is_key_id};
use crate::store::rekey::KeyUsage;
use crate::store::verify::BrokenRecord;

/// Passes over the store before a rotation gives up on records a running
/// node keeps writing under an old key (it learns of the new key at its
/// next write, so a second pass normally finds nothing).
const MAX_PASSES: u32 = 10;

/// What to do with master keys.
#[derive(Debug, Subcommand)]
pub enum KeyCmd {
    /// List the key ids in force and in use, and how many records each seals.
    Status,
    /// Make a new master key current and re-seal every stored record with
    /// it; run it again to resume after an interruption.
    Rotate {
        /// Records re-sealed per transaction.
        #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        batch_size: u32,
        /// Pause between batches, e.g. `50ms`, to spare a busy database.
        #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
        pause: Duration,
    },
    /// Delete a previous key file once no record is sealed with it.
    Retire {
        /// The key id (16 hex digits, as `key status` shows it).
        #[arg(value_parser = parse_key_id)]
        key_id: String,
    },
}

/// Parses a key id argument.
fn parse_key_id(s: &str) -> Result<String, String> {
    if is_key_id(s) {
        Ok(s.to_owned())
    } else {
        Err("a key id is 16 lowercase hex digits, as `cfgsnap key status` shows".to_owned())
    }
}

/// Runs a `key` subcommand.
pub(super) async fn run(settings: &Settings, cmd: KeyCmd) -> anyhow::Result<Exit> {
    let key_file = settings.store.encryption_key_file.as_deref();
    if !matches!(cmd, KeyCmd::Status)
        && (key_file.is_none() || settings.store.encryption_key_env.is_some())
    {
        eprintln!(
            "error[usage]: rotating and retiring keys needs store.encryption_key_file (and no \
             store.encryption_key_env): previous keys are kept beside the key file"
        );
        return Ok(Exit::Usage);
    }
    let store = Store::open(&settings.store).await?;
    let exit = match (cmd, key_file) {
        (KeyCmd::Status, _) => status(&store).await,
        (KeyCmd::Rotate { batch_size, pause }, Some(path)) => {
            rotate(&store, path, batch_size, pause).await
        }
        (KeyCmd::Retire { key_id }, Some(path)) => retire(&store, path, &key_id).await,
        _ => anyhow::bail!("BUG: key file checked above"),
    };
    store.close().await;
    exit
}

async fn status(store: &Store) -> anyhow::Result<Exit> {
    let usage = store.key_usage().await?;
    print_usage(&usage);
    Ok(report_unknown(&usage))
}

fn print_usage(usage: &[KeyUsage]) {
    println!("{:<16}  {:>9}  STATE", "KEY ID", "RECORDS");
    for u in usage {
        let state = match (u.current, u.known) {
            (true, _) => "current",
            (false, true) => "previous",
            (false, false) => "UNKNOWN: no key file has this id",
        };
        println!("{:<16}  {:>9}  {state}", u.key_id, u.records);
    }
}

/// Reports records under key ids no key file has; `Exit::Failed` when any.
fn report_unknown(usage: &[KeyUsage]) -> Exit {
    let unknown: Vec<&KeyUsage> = usage.iter().filter(|u| !u.known).collect();
    for u in &unknown {
        eprintln!(
            "error[unknown_key]: {} records are sealed with key id {}, which no key file has; \
             restore that key file beside the current one (as <key file>.{})",
            u.records, u.key_id, u.key_id
        );
    }
    if unknown.is_empty() {
        Exit::Ok
    } else {
        Exit::Failed
    }
}

async fn rotate(store: &Store, path: &Path, batch: u32, pause: Duration) -> anyhow::Result<Exit> {
    start_or_resume(store, path).await?;
    let current = store.current_key_id();
    let (total, failed) = reseal_all(store, batch, pause).await?;
    for f in &failed {
        eprintln!(
            "error[broken_record]: {} {} (device {}, key {}) cannot be re-sealed: {}",
            f.table.as_str(),
            f.id,
            f.device_id,
            f.key_id,
            f.reason
        );
    }
    let detail = json!({ "key_id": current, "resealed": total, "failed": failed.len() });
    let actor = super::user::actor();
    store
        .audit_best_effort(None, None, Action::MasterKeyRotated, Some(&actor), &detail)
        .await;
    let after = store.key_usage().await?;
    print_usage(&after);
    let left: i64 = after.iter().filter(|u| !u.current).map(|u| u.records).sum();
    if report_unknown(&after) == Exit::Ok && failed.is_empty() && left == 0 {
        println!("ok: {total} records re-sealed; every record is sealed with key {current}");
        Ok(Exit::Ok)
    } else {
        eprintln!("error[incomplete]: {left} records are not sealed with key {current}");
        Ok(Exit::Failed)
    }
}

/// Resumes an interrupted rotation (records still sealed with a previous
/// key in force), or else makes a new key current.
async fn start_or_resume(store: &Store, path: &Path) -> anyhow::Result<()> {
    let pending: i64 = store
        .key_usage()
        .await?
        .iter()
        .filter(|u| u.known && !u.current)
        .map(|u| u.records)
        .sum();
    if pending > 0 {
        eprintln!("resuming: {pending} records are still sealed with previous keys");
        return Ok(());
    }
    let (old, new) = crypto::rotate_key_file(path)?;
    eprintln!(
        "new master key {}; the previous key {} is kept in {} until retired",
        new.key_id(),
        old.key_id(),
        crypto::previous_key_path(path, &old.key_id()).display()
    );
    Ok(())
}

/// Re-seals in passes until one finds nothing to do (records a running node
/// wrote under the old key before it saw the new one are caught by the
/// next pass); returns the total and the last pass's failures.
async fn reseal_all(
    store: &Store,
    batch: u32,
    pause: Duration,
) -> anyhow::Result<(u64, Vec<BrokenRecord>)> {
    let mut total = 0;
    let mut failed = Vec::new();
    for _ in 0..MAX_PASSES {
        let pass = store
            .reseal_pass(batch, pause, |n| {
                eprintln!("re-sealed {} records", total + n)
            })
            .await?;
        total += pass.resealed;
        failed = pass.failed;
        if pass.resealed == 0 {
            break;
        }
    }
    Ok((total, failed))
}

async fn retire(store: &Store, path: &Path, key_id: &str) -> anyhow::Result<Exit> {
    if store.current_key_id() == key_id {
        eprintln!("error[usage]: {key_id} is the current key; rotate first");
        return Ok(Exit::Usage);
    }
    let usage = store.key_usage().await?;
    if let Some(u) = usage.iter().find(|u| u.key_id == key_id && u.records > 0) {
        eprintln!(
            "error[in_use]: key {key_id} still seals {} records; run `cfgsnap key rotate` \
             until it reports none",
            u.records
        );
        return Ok(Exit::Failed);
    }
    if !crypto::retire_key_file(path, key_id)? {
        eprintln!(
            "error[not_found]: no key file {}",
            crypto::previous_key_path(path, key_id).display()
        );
        return Ok(Exit::Failed);
    }
    let detail = json!({ "key_id": key_id });
    store
        .audit_best_effort(
            None,
            None,
            Action::MasterKeyRetired,
            Some(&super::user::actor()),
            &detail,
        )
        .await;
    println!("ok: key {key_id} retired; no record used it");
    Ok(Exit::Ok)
}
