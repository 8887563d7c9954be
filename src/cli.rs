//! The command line: clap definitions and the one-shot subcommands
//! (`backup`, `check-config`). `main.rs` parses, calls [`run`] and turns the
//! returned [`Exit`] into the process's exit code.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use serde_json::json;

use crate::backup::executor::SshExecutor;
use crate::backup::known_hosts::KnownHosts;
use crate::backup::{Executor as _, Trigger};
use crate::config::{ConfigError, Fleet, Settings};

/// cfgsnap: versioned snapshots of network device configurations.
#[derive(Debug, Parser)]
#[command(name = "cfgsnap", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Cmd,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Back up one device once and print a JSON line describing the snapshot.
    Backup {
        /// Configuration file.
        #[arg(long, default_value = "config.toml")]
        config: PathBuf,
        /// Id of the device to back up.
        #[arg(long)]
        device: String,
        /// Also write the normalized export to this file (mode 0600).
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Check the configuration and print every problem, or "ok".
    CheckConfig {
        /// Configuration file.
        #[arg(long, default_value = "config.toml")]
        config: PathBuf,
    },
}

impl Cmd {
    /// The configuration file the subcommand reads.
    pub fn config_path(&self) -> &Path {
        match self {
            Cmd::Backup { config, .. } | Cmd::CheckConfig { config } => config,
        }
    }
}

/// How a subcommand ended; `main` maps it to the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Exit code 0.
    Ok,
    /// Exit code 1: the backup failed (the kind is on stderr).
    BackupFailed,
    /// Exit code 2: the configuration is invalid.
    ConfigInvalid,
}

impl Exit {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::BackupFailed => 1,
            Exit::ConfigInvalid => 2,
        }
    }
}

/// Prints the configuration problems to stderr.
pub fn report_config_error(path: &Path, e: &ConfigError) {
    eprint!("{}: {e}", path.display());
}

/// Runs `cmd` with already loaded settings.
///
/// # Errors
/// Unexpected failures (I/O on the output file, the known-hosts file).
pub async fn run(cmd: Cmd, settings: Settings) -> anyhow::Result<Exit> {
    let fleet = match settings.validate() {
        Ok(fleet) => fleet,
        Err(e) => {
            report_config_error(cmd.config_path(), &e);
            return Ok(Exit::ConfigInvalid);
        }
    };
    for w in &fleet.warnings {
        tracing::warn!("{w}");
    }
    match cmd {
        Cmd::CheckConfig { .. } => {
            println!("ok");
            Ok(Exit::Ok)
        }
        Cmd::Backup { device, output, .. } => {
            backup_once(&settings, &fleet, &device, output.as_deref()).await
        }
    }
}

async fn backup_once(
    settings: &Settings,
    fleet: &Fleet,
    device_id: &str,
    output: Option<&Path>,
) -> anyhow::Result<Exit> {
    let Some(device) = fleet.device(device_id) else {
        eprintln!("error[not_found]: no device {device_id:?} in the configuration");
        return Ok(Exit::BackupFailed);
    };
    let known_hosts = KnownHosts::open(&settings.backup.known_hosts_file).await?;
    let executor = SshExecutor::new(fleet.limits.clone(), known_hosts);
    let outcome = match executor.run(device, Trigger::Manual).await {
        Ok(outcome) => outcome,
        Err(e) => {
            eprintln!("error[{}]: {e}", e.kind());
            return Ok(Exit::BackupFailed);
        }
    };
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
    });
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}").context("writing to stdout")?;
    Ok(Exit::Ok)
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
