//! `cfgsnap store backup --to FILE` and `cfgsnap store verify`: a
//! consistent copy of a SQLite store taken while it serves, and a check
//! that every sealed record opens and hashes to its id. A PostgreSQL store
//! is backed up with `pg_dump`. Neither prints record text.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Subcommand;

use super::Exit;
use crate::config::Settings;
use crate::store::Store;

/// Records checked per round trip by `store verify`.
const VERIFY_PAGE: u32 = 500;

/// Backing up and checking the store.
#[derive(Debug, Subcommand)]
pub enum StoreCmd {
    /// Write a consistent copy of a SQLite store to a new file, while it
    /// serves. The master key is not in it: back the key up separately.
    Backup {
        /// The file to create; it must not exist.
        #[arg(long)]
        to: PathBuf,
    },
    /// Open every sealed record and check it hashes to its id; list the
    /// broken ones and exit non-zero when there are any.
    Verify,
}

/// Runs a `store` subcommand.
pub(super) async fn run(settings: &Settings, cmd: StoreCmd) -> anyhow::Result<Exit> {
    match cmd {
        StoreCmd::Backup { to } => backup(settings, &to).await,
        StoreCmd::Verify => verify(settings).await,
    }
}

async fn backup(settings: &Settings, to: &Path) -> anyhow::Result<Exit> {
    let url = &settings.store.url;
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        eprintln!(
            "error[usage]: this store is PostgreSQL: back it up with pg_dump, e.g. \
             `pg_dump --format=custom --file=cfgsnap.dump DATABASE`, and restore it with \
             pg_restore into an empty database (see README, Operations)"
        );
        return Ok(Exit::Usage);
    }
    if let Err(problem) = check_target(to) {
        eprintln!("error[usage]: {}: {problem}", to.display());
        return Ok(Exit::Usage);
    }
    let store = Store::open(&settings.store).await?;
    let partial = partial_path(to);
    std::fs::remove_file(&partial).ok();
    let copied = store.backup_to(&partial).await;
    store.close().await;
    copied?;
    set_private(&partial)?;
    std::fs::rename(&partial, to)
        .with_context(|| format!("renaming the backup to {}", to.display()))?;
    if let Some(dir) = to.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("syncing {}", dir.display()))?;
    }
    println!(
        "ok: store copied to {}; it holds sealed records only: back up the master key \
         file separately",
        to.display()
    );
    Ok(Exit::Ok)
}

/// Why `to` cannot be a new backup file, if it cannot.
fn check_target(to: &Path) -> Result<(), &'static str> {
    if to.exists() {
        return Err("exists already; choose a new file name");
    }
    match to.parent() {
        Some(dir) if !dir.as_os_str().is_empty() && !dir.is_dir() => {
            Err("its directory does not exist")
        }
        _ if to.file_name().is_none() => Err("is not a file name"),
        _ => Ok(()),
    }
}

/// Where the copy is written before it is renamed into place, so a
/// crash never leaves a partial file under the final name.
fn partial_path(to: &Path) -> PathBuf {
    let mut name = to.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    to.with_file_name(name)
}

fn set_private(path: &Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("restricting {}", path.display()))?;
    }
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("syncing {}", path.display()))
}

async fn verify(settings: &Settings) -> anyhow::Result<Exit> {
    let store = Store::open(&settings.store).await?;
    let report = store.verify(VERIFY_PAGE, |_| {}).await;
    store.close().await;
    let report = report?;
    for b in &report.broken {
        eprintln!(
            "error[broken_record]: {} {} (tenant {}, device {}, key {}): {}",
            b.table.as_str(),
            b.id,
            b.tenant_id,
            b.device_id,
            b.key_id,
            b.reason
        );
    }
    if report.broken.is_empty() {
        println!(
            "ok: {} records checked; every one opens and matches",
            report.checked
        );
        Ok(Exit::Ok)
    } else {
        println!(
            "failed: {} of {} records are broken",
            report.broken.len(),
            report.checked
        );
        Ok(Exit::Failed)
    }
}
