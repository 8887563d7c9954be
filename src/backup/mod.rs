//! Backup domain: the device to back up, the trigger, the outcome, the errors
//! (each with its DESIGN.md §3.1 `error_kind`) and the [`Executor`] trait that
//! the scheduler, the trigger responder and the CLI share.
//!
//! Submodules: `ssh` (russh client), `normalize` and `validate` (pure),
//! `changes` (unified diffs and change summaries), `redact` (masking secrets
//! in export text, pure), `semantic` (the item-by-item RouterOS diff,
//! pure), `known_hosts` (pinned host keys), `executor` (the
//! SSH implementation), `pipeline` (lock → collect → publish → unlock),
//! `scheduler` (when to run).

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::id::{DeviceId, TenantId};

pub mod changes;
pub mod executor;
pub mod known_hosts;
pub mod normalize;
pub mod pipeline;
pub mod redact;
pub mod scheduler;
pub mod semantic;
pub mod ssh;
pub mod validate;

/// Result type of the backup module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What started a backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// The scheduler's tick.
    Scheduled,
    /// A request on the trigger subject (HTTP or a plain NATS client).
    Manual,
}

impl Trigger {
    /// Every trigger, for parsing a stored name.
    pub const ALL: [Trigger; 2] = [Trigger::Scheduled, Trigger::Manual];

    /// The name in JSON and in the store, e.g. `scheduled`.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Scheduled => "scheduled",
            Trigger::Manual => "manual",
        }
    }
}

/// How to log in to a device. Secrets stay wrapped until the SSH call.
#[derive(Clone)]
pub enum Auth {
    /// Password authentication.
    Password(SecretString),
    /// Public-key authentication with an OpenSSH/PKCS#8/PKCS#1 private key file.
    Key {
        /// Path of the private key file.
        path: PathBuf,
        /// Passphrase of an encrypted key.
        passphrase: Option<SecretString>,
    },
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::Password(_) => f.write_str("Password(<redacted>)"),
            Auth::Key { path, passphrase } => f
                .debug_struct("Key")
                .field("path", path)
                .field("passphrase", &passphrase.as_ref().map(|_| "<redacted>"))
                .finish(),
        }
    }
}

/// A named set of login credentials (`[[credentials]]`).
#[derive(Debug, Clone)]
pub struct Credentials {
    /// The `name` devices refer to.
    pub name: String,
    /// SSH user name.
    pub username: String,
    /// Password or key.
    pub auth: Auth,
}

/// One device to back up, resolved from the configuration.
#[derive(Debug, Clone)]
pub struct Device {
    /// Unique id (DESIGN.md §2).
    pub id: DeviceId,
    /// Owning tenant.
    pub tenant: TenantId,
    /// Human name, used in download file names.
    pub name: String,
    /// Host name or address.
    pub host: String,
    /// SSH port.
    pub port: u16,
    /// Login.
    pub credentials: Credentials,
    /// Per-device interval overriding `[backup].interval`.
    pub interval: Option<Duration>,
    /// Disabled devices are never scheduled.
    pub enabled: bool,
}

/// The export command to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Probe the version, then `/export show-sensitive` on v7 and `/export` on
    /// v6 (or `/export hide-sensitive` on both when `hide_sensitive`).
    Auto {
        /// Ask the device to hide secrets.
        hide_sensitive: bool,
    },
    /// A fixed command string.
    Fixed(String),
}

/// Limits and behaviour of one collection, from `[backup]`.
#[derive(Debug, Clone)]
pub struct Limits {
    /// TCP connect plus SSH handshake.
    pub connect_timeout: Duration,
    /// One command's run, from exec to the channel's close.
    pub command_timeout: Duration,
    /// Hard limit of the whole job.
    pub job_timelimit: Duration,
    /// Byte cap of the export's stdout.
    pub max_config_bytes: usize,
    /// What to run.
    pub command: Command,
}

/// A successful collection: the normalized export and its identity.
#[derive(Clone)]
pub struct Outcome {
    /// The device backed up.
    pub device_id: DeviceId,
    /// Its tenant.
    pub tenant_id: TenantId,
    /// Lowercase hex SHA-256 of `config_text`.
    pub sha256_hash: String,
    /// The normalized export. Holds device secrets: never log it.
    pub config_text: String,
    /// RouterOS version from the export header (or the probe).
    pub routeros_version: Option<String>,
    /// When the export finished.
    pub collected_at: DateTime<Utc>,
    /// Non-fatal problems, e.g. `partial export: #error exporting /ip socks`.
    pub warnings: Vec<String>,
    /// What started the run.
    pub trigger: Trigger,
    /// Bytes of raw export received.
    pub raw_bytes: usize,
    /// Wall time of the run.
    pub duration: Duration,
    /// `SHA256:…` fingerprint of the device's host key.
    pub host_key_fingerprint: String,
    /// The store recorded this backup already (an unchanged export it
    /// confirmed without its text, [`SnapshotSink::confirm_unchanged`]):
    /// a success report would record nothing more, so none is sent.
    pub recorded: bool,
}

impl Outcome {
    /// Number of lines of the normalized export.
    pub fn lines(&self) -> usize {
        self.config_text.lines().count()
    }
}

impl fmt::Debug for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outcome")
            .field("device_id", &self.device_id)
            .field("tenant_id", &self.tenant_id)
            .field("sha256_hash", &self.sha256_hash)
            .field(
                "config_text",
                &format_args!("<{} bytes>", self.config_text.len()),
            )
            .field("routeros_version", &self.routeros_version)
            .field("collected_at", &self.collected_at)
            .field("warnings", &self.warnings)
            .field("trigger", &self.trigger)
            .finish_non_exhaustive()
    }
}

/// The machine-readable failure kinds of DESIGN.md §3.1 (`error_kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Unknown device.
    NotFound,
    /// Malformed request.
    BadRequest,
    /// The device refused the credentials.
    AuthFailed,
    /// The host key differs from the pinned one.
    HostkeyMismatch,
    /// Connection refused, no route, reset during the handshake.
    Unreachable,
    /// A connect, command or job timeout expired.
    Timeout,
    /// The device answered with a RouterOS error or a failing exit status.
    CommandFailed,
    /// Empty, non-UTF-8 or not an export.
    InvalidOutput,
    /// Over `max_config_bytes`.
    TooLarge,
    /// The snapshot did not reach the bus.
    PublishFailed,
    /// The lock backend is down.
    LockUnavailable,
    /// Anything else.
    Internal,
}

impl ErrorKind {
    /// The wire name, e.g. `auth_failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::BadRequest => "bad_request",
            ErrorKind::AuthFailed => "auth_failed",
            ErrorKind::HostkeyMismatch => "hostkey_mismatch",
            ErrorKind::Unreachable => "unreachable",
            ErrorKind::Timeout => "timeout",
            ErrorKind::CommandFailed => "command_failed",
            ErrorKind::InvalidOutput => "invalid_output",
            ErrorKind::TooLarge => "too_large",
            ErrorKind::PublishFailed => "publish_failed",
            ErrorKind::LockUnavailable => "lock_unavailable",
            ErrorKind::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed backup. Messages never contain secrets or config text.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The device id is not configured.
    #[error("unknown device {0}")]
    DeviceNotFound(String),
    /// The request was malformed.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The device refused the credentials.
    #[error("authentication rejected for user {username:?}")]
    AuthRejected {
        /// The user name offered.
        username: String,
    },
    /// The device presented another host key than the pinned one.
    #[error("host key mismatch: pinned {pinned}, device presented {presented}")]
    HostKeyMismatch {
        /// Fingerprint pinned on first use.
        pinned: String,
        /// Fingerprint seen now.
        presented: String,
    },
    /// The device could not be reached or dropped the connection.
    #[error("device unreachable: {reason}")]
    DeviceUnreachable {
        /// What failed, e.g. `connection refused`.
        reason: String,
        /// The underlying error.
        #[source]
        source: Option<anyhow::Error>,
    },
    /// A time limit expired.
    #[error("{stage} timed out after {}", humantime::format_duration(*.after))]
    TimedOut {
        /// `connect`, `command` or `job`.
        stage: &'static str,
        /// The limit that expired.
        after: Duration,
    },
    /// The device answered with an error instead of an export.
    #[error("command failed: {0}")]
    CommandFailed(String),
    /// The output is not a usable export.
    #[error("invalid output: {0}")]
    InvalidOutput(String),
    /// The export is larger than `max_config_bytes`.
    #[error("export larger than the {limit}-byte cap")]
    TooLarge {
        /// The configured cap.
        limit: usize,
    },
    /// Another backup of the device is in progress.
    #[error("backup already in progress")]
    LockHeld,
    /// The lock backend could not be reached.
    #[error("lock backend unavailable")]
    LockUnavailable(#[source] anyhow::Error),
    /// The snapshot could not be published.
    #[error("publishing the snapshot failed")]
    PublishFailed(#[source] anyhow::Error),
    /// The node shut down before the backup finished; its lock was released.
    #[error("backup cancelled: the node is shutting down")]
    Cancelled,
    /// Anything the caller cannot act on.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl Error {
    /// The DESIGN.md §3.1 `error_kind` of this failure. [`Error::LockHeld`] is
    /// not a failure on the wire (status `locked`); it maps to `internal` only
    /// if someone asks.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::DeviceNotFound(_) => ErrorKind::NotFound,
            Error::BadRequest(_) => ErrorKind::BadRequest,
            Error::AuthRejected { .. } => ErrorKind::AuthFailed,
            Error::HostKeyMismatch { .. } => ErrorKind::HostkeyMismatch,
            Error::DeviceUnreachable { .. } => ErrorKind::Unreachable,
            Error::TimedOut { .. } => ErrorKind::Timeout,
            Error::CommandFailed(_) => ErrorKind::CommandFailed,
            Error::InvalidOutput(_) => ErrorKind::InvalidOutput,
            Error::TooLarge { .. } => ErrorKind::TooLarge,
            Error::LockUnavailable(_) => ErrorKind::LockUnavailable,
            Error::PublishFailed(_) => ErrorKind::PublishFailed,
            Error::LockHeld | Error::Cancelled | Error::Unexpected(_) => ErrorKind::Internal,
        }
    }
}

/// Runs one backup of one device. The scheduler, the trigger responder and the
/// CLI depend on this trait, not on SSH.
pub trait Executor: Send + Sync + 'static {
    /// Collects, validates and normalizes the device's export.
    ///
    /// # Errors
    /// A [`Error`] whose [`Error::kind`] is the reply's `error_kind`.
    fn run(
        &self,
        device: &Device,
        trigger: Trigger,
    ) -> impl Future<Output = Result<Outcome>> + Send;
}

/// Where pinned host keys live: the store on a node with a database, a JSON
/// file ([`known_hosts::KnownHosts`]) on a poller without one. A trait because
/// `backup` must not depend on `store` (the store implements it).
pub trait HostKeys: Send + Sync + 'static {
    /// The fingerprint pinned for `device`, if any.
    fn pinned(
        &self,
        device: &DeviceId,
    ) -> impl Future<Output = anyhow::Result<Option<String>>> + Send;

    /// The fingerprint pinned for `device`, read where it is kept, past any
    /// memory of it: asked before a key that differs from
    /// [`HostKeys::pinned`]'s is called a mismatch.
    fn pinned_fresh(
        &self,
        device: &DeviceId,
    ) -> impl Future<Output = anyhow::Result<Option<String>>> + Send {
        self.pinned(device)
    }

    /// Pins `fingerprint` for `device` unless one is pinned already.
    fn pin(
        &self,
        device: &DeviceId,
        fingerprint: &str,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// Where a collected snapshot goes (the bus, implemented in `bus`), and where
/// attempt results are reported so that the node holding the store can record
/// each device's backup state. A trait because `backup` must not depend on
/// `bus`; `app` hands the implementation in.
pub trait SnapshotSink: Send + Sync + 'static {
    /// Publishes a collected snapshot. Returns once it is durably accepted
    /// (JetStream ack, or the local queue); only then is a backup a success.
    ///
    /// # Errors
    /// When the snapshot could not be handed over; the backup then fails with
    /// `publish_failed`.
    fn publish(&self, outcome: &Outcome) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// For a snapshot whose hash the device's previous backup handed over
    /// already: asks whoever stores snapshots to record it as unchanged
    /// without its text. Returns true once that is recorded (the backup is
    /// then handed over); false when it could not be confirmed for any
    /// reason, and the caller publishes it in full. The default never
    /// confirms.
    fn confirm_unchanged(&self, outcome: &Outcome) -> impl Future<Output = bool> + Send {
        let _ = outcome;
        std::future::ready(false)
    }

    /// Reports how an attempt ended. Best effort: failures are logged by the
    /// implementation, never returned.
    fn report(&self, report: &AttemptReport) -> impl Future<Output = ()> + Send;
}

/// How one backup attempt ended, as reported between nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptReport {
    /// The device.
    pub device_id: DeviceId,
    /// Its tenant.
    pub tenant_id: TenantId,
    /// When the attempt started.
    pub at: DateTime<Utc>,
    /// What started it.
    pub trigger: Trigger,
    /// `success`, `failed` or `locked`.
    pub status: AttemptStatus,
    /// The `error_kind` of a failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<ErrorKind>,
    /// The hash of a success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256_hash: Option<String>,
    /// When the scheduler will try again after a failure (backoff).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// Set when scheduled retries stop (`auth_failed`, `hostkey_mismatch`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked_reason: Option<ErrorKind>,
    /// The node that ran it.
    pub poller_id: String,
}

/// The result of an attempt, as in the trigger reply's `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptStatus {
    /// A snapshot was collected and published.
    Success,
    /// The backup failed.
    Failed,
    /// Another backup of the device held the lock.
    Locked,
}
