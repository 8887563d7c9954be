//! The command line: clap definitions and the one-shot subcommands. `main.rs`
//! parses, calls [`run`] and turns the returned [`Exit`] into the process's
//! exit code.

use std::path::{Path, PathBuf};

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Parser, Subcommand};

use crate::config::{ConfigError, Settings};

mod backup;
mod device;
mod docs;
mod history;
mod key;
mod prompt;
mod search;
mod store;
mod token;
mod user;

pub use device::DeviceCmd;
pub use key::KeyCmd;
pub use store::StoreCmd;
pub use user::UserCmd;

/// `cfgsnap --version`: the package version and the git commit it was built from.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("CFGSNAP_GIT_COMMIT"),
    ")"
);

/// cfgsnap: versioned snapshots of network device configurations.
#[derive(Debug, Parser)]
#[command(name = "cfgsnap", version = VERSION, about)]
pub struct Cli {
    /// Configuration file.
    #[arg(long, global = true, default_value = "config.toml")]
    pub config: PathBuf,
    /// What to do.
    #[command(subcommand)]
    pub command: Cmd,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Run the node: API, scheduler, responder, ingester and retention, as
    /// `[roles]` says, until SIGINT/SIGTERM; SIGHUP reloads the device list.
    Serve,
    /// Back up one device once, store it, and print a JSON line describing it.
    Backup {
        /// Id of the device to back up.
        #[arg(long)]
        device: String,
        /// Also write the normalized export to this file (mode 0600).
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// List a device's snapshots, newest first.
    History {
        /// Device id.
        #[arg(long)]
        device: String,
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print a snapshot's normalized export.
    Show {
        /// Snapshot id.
        snapshot_id: i64,
    },
    /// Print the unified diff of a snapshot against its predecessor or another snapshot.
    Diff {
        /// Snapshot id.
        snapshot_id: i64,
        /// Compare against this snapshot of the same device instead.
        #[arg(long)]
        against: Option<i64>,
        /// Print what changed item by item, as JSON, instead of a unified diff.
        #[arg(long)]
        semantic: bool,
    },
    /// Search the newest configuration of every device, or with --history
    /// when matching lines appeared and went.
    Search(search::SearchArgs),
    /// Apply the database migrations and exit.
    Migrate,
    /// Check the configuration and print every problem, or "ok".
    CheckConfig,
    /// Mint a JWT with the configured HS256 secret and print it.
    Token {
        /// The caller's name (`sub` claim).
        #[arg(long, value_parser = token::parse_sub)]
        sub: String,
        /// The caller's tenant (`tenant_id` claim).
        #[arg(long, value_parser = token::parse_tenant)]
        tenant: crate::id::TenantId,
        /// viewer, operator, admin or super_admin.
        #[arg(long, value_parser = token::parse_role)]
        role: crate::api::Role,
        /// How long the token is valid, e.g. `1h`, `30m`, `7d`.
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        ttl: std::time::Duration,
    },
    /// Manage local accounts: add, passwd, disable, enable, delete, list.
    /// Passwords are read from the terminal, or one line of stdin, never argv.
    User {
        /// What to do with accounts.
        #[command(subcommand)]
        command: UserCmd,
    },
    /// Master keys: status, rotate, retire (see README, Operations).
    Key {
        /// What to do with master keys.
        #[command(subcommand)]
        command: KeyCmd,
    },
    /// A device's stored history: move it to another tenant.
    Device {
        /// What to do with a device.
        #[command(subcommand)]
        command: DeviceCmd,
    },
    /// The store itself: backup (SQLite) and verify.
    Store {
        /// What to do with the store.
        #[command(subcommand)]
        command: StoreCmd,
    },
    /// Print shell completions (bash, zsh, fish, elvish, powershell) to
    /// stdout; needs no configuration.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to stdout; needs no configuration.
    Man,
}

/// How a subcommand ended; `main` maps it to the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Exit code 0.
    Ok,
    /// Exit code 1: the operation failed (the reason is on stderr).
    Failed,
    /// Exit code 2: the configuration is invalid.
    ConfigInvalid,
    /// Exit code 2: arguments that parse but do not fit together.
    Usage,
}

impl Exit {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Failed => 1,
            Exit::ConfigInvalid | Exit::Usage => 2,
        }
    }
}

/// Parses argv as `Cli::parse` does, but without exiting and without
/// echoing a stray positional argument: it may be a password typed where
/// none belongs (`cfgsnap user add NAME … PASSWORD`). Flags are echoed.
///
/// # Errors
/// The exit code after clap's message (or `--help`/`--version`) went to the
/// terminal.
pub fn parse() -> Result<Cli, u8> {
    let e = match Cli::try_parse() {
        Ok(cli) => return Ok(cli),
        Err(e) => e,
    };
    let code = u8::try_from(e.exit_code()).unwrap_or(2);
    let stray = match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(arg)) => !arg.starts_with('-'),
        _ => false,
    };
    if e.kind() == ErrorKind::UnknownArgument && stray {
        eprintln!(
            "error: unexpected argument (not shown: it may be a secret; \
             passwords are read from the terminal or stdin, never the command line)\n\n\
             For more information, try '--help'."
        );
    } else {
        // Nothing is left to report to when stderr itself fails.
        e.print().unwrap_or_default();
    }
    Err(code)
}

/// Runs the commands that need no configuration (`completions`, `man`);
/// `None` for every other command.
///
/// # Errors
/// Writing to stdout failed.
pub fn run_without_config(cli: &Cli) -> Option<std::io::Result<Exit>> {
    match &cli.command {
        Cmd::Completions { shell } => Some(docs::completions(*shell)),
        Cmd::Man => Some(docs::man()),
        _ => None,
    }
}

/// Prints the configuration problems to stderr.
pub fn report_config_error(path: &Path, e: &ConfigError) {
    eprint!("{}: {e}", path.display());
}

/// Runs `cmd` with already loaded settings.
///
/// # Errors
/// Unexpected failures (I/O on an output file, an unreachable store).
pub async fn run(cli: Cli, settings: Settings) -> anyhow::Result<Exit> {
    let fleet = match settings.validate() {
        Ok(fleet) => fleet,
        Err(e) => {
            report_config_error(&cli.config, &e);
            return Ok(Exit::ConfigInvalid);
        }
    };
    // Warnings about the configuration (an inline password) are for the
    // server, which `App::build` warns for, and for `check-config`, whose
    // job is to report them; a one-shot command such as `token` would
    // repeat them on every run.
    if matches!(cli.command, Cmd::CheckConfig) {
        for w in &fleet.warnings {
            tracing::warn!("{w}");
        }
    }
    match cli.command {
        Cmd::Serve => anyhow::bail!("BUG: `serve` is run by main, which owns the signals"),
        Cmd::Completions { .. } | Cmd::Man => {
            anyhow::bail!("BUG: `completions` and `man` run before the configuration is loaded")
        }
        Cmd::CheckConfig => {
            println!("ok");
            Ok(Exit::Ok)
        }
        Cmd::Migrate => {
            let store = crate::store::Store::connect(&settings.store).await?;
            store.sync_fleet(&fleet).await?;
            store.close().await;
            println!("ok");
            Ok(Exit::Ok)
        }
        Cmd::Backup { device, output } => {
            backup::run(&settings, &fleet, &device, output.as_deref()).await
        }
        Cmd::History {
            device,
            limit,
            json,
        } => history::list(&settings, &fleet, &device, limit, json).await,
        Cmd::Show { snapshot_id } => history::show(&settings, snapshot_id).await,
        Cmd::Search(args) => search::run(&settings, &fleet, args).await,
        Cmd::Diff {
            snapshot_id,
            against,
            semantic,
        } => history::diff(&settings, snapshot_id, against, semantic).await,
        Cmd::Token {
            sub,
            tenant,
            role,
            ttl,
        } => Ok(token::mint(&settings, &sub, &tenant, role, ttl)),
        Cmd::User { command } => user::run(&settings, &fleet, command).await,
        Cmd::Key { command } => key::run(&settings, command).await,
        Cmd::Device { command } => device::run(&settings, &fleet, command).await,
        Cmd::Store { command } => store::run(&settings, command).await,
    }
}
