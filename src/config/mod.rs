//! The `config.toml` settings tree and its loader (DESIGN.md §8).
//!
//! [`Settings::load`] layers `config.toml`, an optional file at `$CFGSNAP_CONFIG`
//! and `CFGSNAP__SECTION__KEY` environment variables; [`Settings::validate`]
//! then checks every cross-field rule, resolves secrets and returns the
//! [`Fleet`] to back up, or every problem found at once. Unknown keys are
//! errors, collected with the others rather than stopping at the first.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

use crate::account::Role;

pub mod notify;
mod resolve;
mod search;

pub use resolve::{Fleet, Tenant};
pub use search::{MAX_DEADLINE as MAX_SEARCH_DEADLINE, SearchSettings};

/// The whole configuration, one field per `config.toml` section.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// `[server]`: the HTTP listener.
    pub server: ServerSettings,
    /// `[roles]`: which modules this process runs.
    pub roles: RoleSettings,
    /// `[auth]`: JWT verification, sessions, rate limits, who sees secrets.
    pub auth: AuthSettings,
    /// `[ui]`: the session cookie.
    pub ui: UiSettings,
    /// `[store]`: where snapshots live.
    pub store: StoreSettings,
    /// `[bus]`: trigger request-reply and snapshot events.
    pub bus: BusSettings,
    /// `[lock]`: per-device locks.
    pub lock: LockSettings,
    /// `[backup]`: collection limits and schedule.
    pub backup: BackupSettings,
    /// `[log]`: log level and format.
    pub log: LogSettings,
    /// `[search]`: the deadline and cache of searches.
    pub search: SearchSettings,
    /// `[notify]`: delivery of notifications.
    pub notify: notify::NotifySettings,
    /// `[[notifications]]`: where notifications go.
    pub notifications: Vec<notify::NotificationSettings>,
    /// `[[credentials]]`: named logins devices refer to.
    pub credentials: Vec<CredentialSettings>,
    /// `[[tenants]]`: the tenants.
    pub tenants: Vec<TenantSettings>,
    /// `[[devices]]`: the devices to back up.
    pub devices: Vec<DeviceSettings>,
}

/// `[server]`.
#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct ServerSettings {
    /// Address of the HTTP API; port 0 picks a free port.
    pub listen: SocketAddr,
    /// How long in-flight requests and backups may take to finish on
    /// shutdown; backups still running then are cancelled (locks released).
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// Threads of the async runtime (SSH sessions, scheduler, bus, ingest,
    /// database clients); `0` is one per CPU core. CPU-heavy work (large
    /// exports, compression, encryption, diffs, search) runs on a separate
    /// pool and the HTTP API on its own threads, so one is the default:
    /// more only add hand-offs between threads (see [`crate::app::runtime`]).
    pub worker_threads: usize,
}

/// The most `server.worker_threads` may ask for.
pub const MAX_WORKER_THREADS: usize = 1024;

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            shutdown_timeout: Duration::from_secs(30),
            worker_threads: 1,
        }
    }
}

/// `[roles]`: all on by default (one process does everything).
#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct RoleSettings {
    /// Serve the HTTP API.
    pub api: bool,
    /// Run the backup scheduler.
    pub scheduler: bool,
    /// Answer trigger requests.
    pub responder: bool,
    /// Store snapshot events.
    pub ingester: bool,
    /// Delete old snapshots.
    pub retention: bool,
    /// This node's name in snapshot events (`poller_id`); the host name when unset.
    pub node_id: Option<String>,
    /// The fleet partition this node's responder serves, for pollers at
    /// sites with fleets of their own: responders join the queue group
    /// `{bus.queue_group}.{partition}` and stay silent about devices outside
    /// their fleet. Unset: the one shared partition (pollers sharing a fleet).
    pub partition: Option<String>,
}

impl Default for RoleSettings {
    fn default() -> Self {
        Self {
            api: true,
            scheduler: true,
            responder: true,
            ingester: true,
            retention: true,
            node_id: None,
            partition: None,
        }
    }
}

/// `[auth]`.
#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct AuthSettings {
    /// Environment variable holding the HS256 secret.
    pub jwt_secret_env: Option<String>,
    /// File holding the HS256 secret.
    pub jwt_secret_file: Option<PathBuf>,
    /// PEM public key for RS256/EdDSA tokens.
    pub jwt_public_key_file: Option<PathBuf>,
    /// Required `iss` claim, when set.
    pub issuer: Option<String>,
    /// Required `aud` claim, when set.
    pub audience: Option<String>,
    /// Manual triggers allowed per caller and minute.
    pub trigger_rate_per_minute: u32,
    /// A session unused this long ends.
    #[serde(with = "humantime_serde")]
    pub session_idle_timeout: Duration,
    /// A session ends this long after sign-in, used or not.
    #[serde(with = "humantime_serde")]
    pub session_absolute_timeout: Duration,
    /// Lifetime of the access tokens sign-in returns (they also end with
    /// their session).
    #[serde(with = "humantime_serde")]
    pub access_token_ttl: Duration,
    /// Sign-in attempts allowed per user name and minute.
    pub login_attempts_per_minute: u32,
    /// Sign-in attempts allowed per client address and minute.
    pub login_attempts_per_address_per_minute: u32,
    /// The lowest role that sees configurations with their secrets.
    pub reveal_secrets_role: Role,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            jwt_secret_env: None,
            jwt_secret_file: None,
            jwt_public_key_file: None,
            issuer: None,
            audience: None,
            trigger_rate_per_minute: 10,
            session_idle_timeout: Duration::from_secs(60 * 60),
            session_absolute_timeout: Duration::from_secs(12 * 60 * 60),
            access_token_ttl: Duration::from_secs(15 * 60),
            login_attempts_per_minute: 5,
            login_attempts_per_address_per_minute: 30,
            reveal_secrets_role: Role::Admin,
        }
    }
}

/// `[ui]`: the browser side of sign-in.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct UiSettings {
    /// Send the session cookie without `Secure`, for plain-HTTP demos only.
    pub insecure_cookies: bool,
}

/// `[store]`.
#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct StoreSettings {
    /// `sqlite://…` or `postgres://…`.
    pub url: String,
    /// Environment variable holding the base64 32-byte master key.
    pub encryption_key_env: Option<String>,
    /// File holding the base64 32-byte master key.
    pub encryption_key_file: Option<PathBuf>,
    /// Snapshots older than this many days are deleted…
    pub retention_days: u32,
    /// …except the newest `keep_min` of each device.
    pub keep_min: u32,
    /// How often the retention task runs.
    #[serde(with = "humantime_serde")]
    pub retention_interval: Duration,
}

impl Default for StoreSettings {
    fn default() -> Self {
        Self {
            url: "sqlite://data/cfgsnap.db".into(),
            encryption_key_env: None,
            encryption_key_file: None,
            retention_days: 90,
            keep_min: 10,
            retention_interval: Duration::from_secs(3600),
        }
    }
}

/// `[bus]`. The subject, stream and durable names default to the contract
/// names of DESIGN.md §3; tests override them to isolate themselves.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct BusSettings {
    /// `local` (in process) or `nats://…`.
    pub url: String,
    /// How long an HTTP trigger waits for the responder's reply.
    #[serde(with = "humantime_serde")]
    pub trigger_timeout: Duration,
    /// Request-reply subject of manual triggers.
    pub trigger_subject: String,
    /// Queue group of the trigger responders.
    pub queue_group: String,
    /// Snapshot events go to `{snapshot_subject}.create.{tenant}.{device}`.
    pub snapshot_subject: String,
    /// JetStream stream cfgsnap creates for snapshot events
    /// (`{snapshot_subject}.>`) when no stream captures those subjects;
    /// when one does, cfgsnap uses it as it is and never changes it.
    pub stream: String,
    /// Durable pull consumer of the ingesters.
    pub durable: String,
    /// JetStream object store bucket for configs too large for one message.
    pub object_bucket: String,
    /// Deliveries of one event before it is given up (and audited).
    pub max_deliver: i64,
    /// How long an ingester may hold an event before it is redelivered.
    #[serde(with = "humantime_serde")]
    pub ack_wait: Duration,
    /// Subject prefix of attempt reports and host-key resets between nodes.
    pub control_subject: String,
}

impl Default for BusSettings {
    fn default() -> Self {
        Self {
            url: "local".into(),
            trigger_timeout: Duration::from_secs(90),
            trigger_subject: "config.backup.trigger".into(),
            queue_group: "cfgsnap-responders".into(),
            snapshot_subject: "config.snapshot".into(),
            stream: "CONFIG_SNAPSHOTS".into(),
            durable: "cfgsnap-ingest".into(),
            object_bucket: "CONFIG_SNAPSHOT_OBJECTS".into(),
            max_deliver: 10,
            ack_wait: Duration::from_secs(60),
            control_subject: "cfgsnap.control".into(),
        }
    }
}

/// `[lock]`.
#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct LockSettings {
    /// `local` (in process) or `redis://…`.
    pub url: String,
    /// Lock keys are `{key_prefix}{device_id}` (the contract: `backup:device:`).
    pub key_prefix: String,
}

impl Default for LockSettings {
    fn default() -> Self {
        Self {
            url: "local".into(),
            key_prefix: "backup:device:".into(),
        }
    }
}

/// `[backup]`.
#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct BackupSettings {
    /// Time between scheduled backups of a device.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Random delay before a device's first scheduled run.
    #[serde(with = "humantime_serde")]
    pub jitter: Duration,
    /// Backups running at once on this node.
    pub max_concurrent: usize,
    /// TCP connect, SSH handshake and login.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// One command, from exec to the end of its output.
    #[serde(with = "humantime_serde")]
    pub command_timeout: Duration,
    /// Hard limit of a whole backup job.
    #[serde(with = "humantime_serde")]
    pub job_timelimit: Duration,
    /// Largest export accepted, in bytes.
    pub max_config_bytes: usize,
    /// `auto` (version probe, then the right `/export`) or a fixed command.
    pub command: String,
    /// Ask the device to hide secrets (`/export hide-sensitive`).
    pub hide_sensitive: bool,
    /// File where host keys are pinned on first use.
    pub known_hosts_file: PathBuf,
}

impl Default for BackupSettings {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(6 * 3600),
            jitter: Duration::from_secs(5 * 60),
            max_concurrent: 64,
            connect_timeout: Duration::from_secs(10),
            command_timeout: Duration::from_secs(60),
            job_timelimit: Duration::from_secs(5 * 60),
            max_config_bytes: 32 * 1024 * 1024,
            command: "auto".into(),
            hide_sensitive: false,
            known_hosts_file: PathBuf::from("data/known_hosts.json"),
        }
    }
}

/// `[log]`.
#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct LogSettings {
    /// Filter used when `RUST_LOG` is unset, e.g. `info` or `cfgsnap=debug`.
    pub level: String,
    /// `text` or `json`.
    pub format: LogFormat,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `[[credentials]]`: exactly one of the password or key sources.
#[derive(Debug, Deserialize)]
pub struct CredentialSettings {
    /// Name devices refer to.
    pub name: String,
    /// SSH user name.
    pub username: String,
    /// Environment variable holding the password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// File holding the password (trailing newline ignored).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Inline password: for demos only, warned about.
    #[serde(default)]
    pub password: Option<SecretString>,
    /// Private key file (OpenSSH, PKCS#8 or PKCS#1).
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Environment variable holding the key's passphrase.
    #[serde(default)]
    pub key_passphrase_env: Option<String>,
    /// File holding the key's passphrase.
    #[serde(default)]
    pub key_passphrase_file: Option<PathBuf>,
}

/// `[[tenants]]`.
#[derive(Debug, Deserialize)]
pub struct TenantSettings {
    /// Tenant id (DESIGN.md §2).
    pub id: String,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
}

/// `[[devices]]`.
#[derive(Debug, Deserialize)]
pub struct DeviceSettings {
    /// Device id, unique across tenants (DESIGN.md §2).
    pub id: String,
    /// Owning tenant's id.
    pub tenant: String,
    /// Display name (defaults to the id).
    #[serde(default)]
    pub name: Option<String>,
    /// Host name or address.
    pub host: String,
    /// SSH port.
    #[serde(default = "default_ssh_port")]
    pub port: u16,
    /// Name of a `[[credentials]]` entry.
    pub credentials: String,
    /// Overrides `[backup].interval`.
    #[serde(default, with = "humantime_serde")]
    pub interval: Option<Duration>,
    /// Disabled devices are never scheduled.
    #[serde(default = "default_true")]
    pub enabled: bool,
}

fn default_ssh_port() -> u16 {
    22
}

fn default_true() -> bool {
    true
}

/// Every problem found in a configuration, each with its key path.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    /// One line per problem, e.g. `devices[2].credentials: unknown credentials "core"`.
    pub problems: Vec<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} problem(s) in the configuration:",
            self.problems.len()
        )?;
        for p in &self.problems {
            writeln!(f, "  - {p}")?;
        }
        Ok(())
    }
}

impl ConfigError {
    fn one(problem: String) -> Self {
        Self {
            problems: vec![problem],
        }
    }
}

impl Settings {
    /// Loads `path`, then the file named by `$CFGSNAP_CONFIG` if set, then
    /// `CFGSNAP__SECTION__KEY` environment variables, each layer overriding
    /// the one before.
    ///
    /// # Errors
    /// [`ConfigError`] listing unreadable files, syntax errors, unknown keys
    /// and values of the wrong type, each with its key path.
    pub fn load(path: &Path) -> Result<Settings, ConfigError> {
        let mut builder = ::config::Config::builder()
            .add_source(::config::File::from(path).format(::config::FileFormat::Toml));
        if let Some(extra) = std::env::var_os("CFGSNAP_CONFIG") {
            builder = builder.add_source(
                ::config::File::from(PathBuf::from(extra)).format(::config::FileFormat::Toml),
            );
        }
        let layered = builder
            .add_source(
                ::config::Environment::with_prefix("CFGSNAP")
                    .prefix_separator("__")
                    .separator("__")
                    .try_parsing(true),
            )
            .build()
            .map_err(|e| ConfigError::one(format!("{}: {e}", path.display())))?;
        Self::from_layered(layered)
    }

    /// Parses settings from TOML text alone (no file, no environment).
    ///
    /// # Errors
    /// As [`Settings::load`].
    pub fn from_toml(text: &str) -> Result<Settings, ConfigError> {
        let layered = ::config::Config::builder()
            .add_source(::config::File::from_str(text, ::config::FileFormat::Toml))
            .build()
            .map_err(|e| ConfigError::one(e.to_string()))?;
        Self::from_layered(layered)
    }

    fn from_layered(layered: ::config::Config) -> Result<Settings, ConfigError> {
        let mut problems = Vec::new();
        let mut on_unknown = |p: serde_ignored::Path<'_>| {
            problems.push(format!("{}: unknown key", render_ignored(&p)));
        };
        let result: Result<Settings, _> = serde_path_to_error::deserialize(
            serde_ignored::Deserializer::new(layered, &mut on_unknown),
        );
        match result {
            // The runtime is sized from `[server]` before anything else
            // validates, so its bounds are checked on load.
            Ok(settings) if problems.is_empty() && settings.server_problems().is_empty() => {
                Ok(settings)
            }
            Ok(settings) => {
                // Unknown keys must not hide the other mistakes: every problem
                // is reported at once (DESIGN.md §8).
                if let Err(e) = settings.validate() {
                    problems.extend(e.problems);
                }
                Err(ConfigError { problems })
            }
            Err(e) => {
                problems.push(format!("{}: {}", render_path(e.path()), e.inner()));
                Err(ConfigError { problems })
            }
        }
    }
}

/// `devices[2].credentials` for a path reported by `serde_ignored`.
fn render_ignored(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path as P;
    match path {
        P::Root => String::new(),
        P::Seq { parent, index } => format!("{}[{index}]", render_ignored(parent)),
        P::Map { parent, key } => join_key(render_ignored(parent), key),
        P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => {
            render_ignored(parent)
        }
    }
}

/// `devices[2].credentials` for a path reported by `serde_path_to_error`.
fn render_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    path.iter().fold(String::new(), |acc, seg| match seg {
        Segment::Seq { index } => format!("{acc}[{index}]"),
        Segment::Map { key } => join_key(acc, key),
        Segment::Enum { variant } => join_key(acc, variant),
        Segment::Unknown => join_key(acc, "?"),
    })
}

fn join_key(parent: String, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod props;
