//! `[notify]` and `[[notifications]]` (DESIGN.md §14): the settings as
//! written and what they resolve to ([`NotifyConfig`]: targets with their
//! filters, endpoints and secrets). Resolution, with every problem
//! collected, is in `resolve` ([`Settings::notify_config`](super::Settings::notify_config)).

use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

mod resolve;
#[cfg(test)]
mod tests;

/// `[notify]`: how notifications are delivered.
#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct NotifySettings {
    /// Hosts a target may name although they resolve to loopback, private,
    /// link-local or metadata addresses (host names or IP literals).
    pub allow_hosts: Vec<String>,
    /// Deliveries in flight at once per node.
    pub concurrency: usize,
    /// Time limit of one delivery (connect, send, answer).
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// First retry delay; it doubles per attempt (with jitter) up to `retry_max`.
    #[serde(with = "humantime_serde")]
    pub retry_initial: Duration,
    /// Longest delay between two attempts.
    #[serde(with = "humantime_serde")]
    pub retry_max: Duration,
    /// How long a notification is retried before it is `failed` (audited).
    #[serde(with = "humantime_serde")]
    pub retry_for: Duration,
    /// How often the dispatcher looks for due notifications.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// `backup.stale` after this long without a success; unset: three times
    /// the device's interval.
    #[serde(with = "humantime_serde")]
    pub stale_after: Option<Duration>,
    /// Public base URL of the web UI, for the links in notifications
    /// (`{base_url}/ui/t/{tenant}/devices/{device}`); no link when unset.
    pub base_url: Option<String>,
    /// Largest diff a notification carries (`include_diff`); a longer one is
    /// cut at a line boundary and marked as truncated.
    pub max_diff_bytes: usize,
}

impl Default for NotifySettings {
    fn default() -> Self {
        Self {
            allow_hosts: Vec::new(),
            concurrency: 16,
            timeout: Duration::from_secs(15),
            retry_initial: Duration::from_secs(5),
            retry_max: Duration::from_secs(3600),
            retry_for: Duration::from_secs(24 * 3600),
            poll_interval: Duration::from_secs(1),
            stale_after: None,
            base_url: None,
            max_diff_bytes: 64 * 1024,
        }
    }
}

/// One `[[notifications]]` target as written.
#[derive(Debug, Deserialize)]
pub struct NotificationSettings {
    /// Unique name, used in logs, audit events and the outbox.
    #[serde(default)]
    pub name: String,
    /// `webhook`, `slack`, `teams`, `discord` or `email`.
    #[serde(default)]
    pub kind: String,
    /// Event types this target receives (see [`EventKind`]).
    #[serde(default)]
    pub events: Vec<String>,
    /// Only these tenants (all when empty).
    #[serde(default)]
    pub tenants: Vec<String>,
    /// Only devices whose id matches one of these globs (all when empty).
    #[serde(default)]
    pub devices: Vec<String>,
    /// `config.changed` only when a changed component matches one of these
    /// globs, e.g. `ip/firewall/*` (all when empty).
    #[serde(default)]
    pub components: Vec<String>,
    /// Also send `config.changed` for a version that differs from its
    /// predecessor only in status comments (`# inactive time`, `# managed by
    /// CAPsMAN`, …); off: such versions notify nobody.
    #[serde(default)]
    pub status_only: bool,
    /// Attach the unified diff (redacted unless `include_secrets`).
    #[serde(default)]
    pub include_diff: bool,
    /// Let device secrets through in the diff. Off: they read `********`.
    #[serde(default)]
    pub include_secrets: bool,
    /// `backup.failed` after this many consecutive failures, once per streak.
    #[serde(default = "default_after_failures")]
    pub after_failures: u32,
    /// Endpoint of the HTTP kinds.
    pub url: Option<String>,
    /// Environment variable holding the endpoint (chat webhook URLs carry a token).
    pub url_env: Option<String>,
    /// Environment variable with the signing secret(s) of a `webhook`
    /// (`whsec_…`, several separated by spaces while rotating).
    pub secret_env: Option<String>,
    /// File with the signing secret(s) of a `webhook`.
    pub secret_file: Option<PathBuf>,
    /// `email`: recipients.
    #[serde(default)]
    pub to: Vec<String>,
    /// `email`: sender.
    pub from: Option<String>,
    /// `email`: SMTP server.
    pub smtp_host: Option<String>,
    /// `email`: SMTP port (587 for starttls, 465 for tls, 25 for none).
    pub smtp_port: Option<u16>,
    /// `email`: `starttls` (default), `tls` or `none`.
    pub smtp_tls: Option<String>,
    /// `email`: login name.
    pub smtp_username: Option<String>,
    /// `email`: environment variable with the password.
    pub smtp_password_env: Option<String>,
    /// `email`: file with the password.
    pub smtp_password_file: Option<PathBuf>,
    /// `email`: PEM file of CA certificates trusted besides the public
    /// roots, for a mail server whose certificate a private CA signed.
    pub smtp_ca_file: Option<PathBuf>,
}

fn default_after_failures() -> u32 {
    3
}

/// An event type a target can receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A new configuration version differs from the previous one.
    ConfigChanged,
    /// `after_failures` consecutive failed backups (once per streak).
    BackupFailed,
    /// A success after a streak that was notified as failed.
    BackupRecovered,
    /// The device presented another host key than the pinned one.
    HostkeyMismatch,
    /// No success for `stale_after`.
    BackupStale,
}

impl EventKind {
    /// Every event type.
    pub const ALL: [EventKind; 5] = [
        EventKind::ConfigChanged,
        EventKind::BackupFailed,
        EventKind::BackupRecovered,
        EventKind::HostkeyMismatch,
        EventKind::BackupStale,
    ];

    /// The name in configuration and payloads, e.g. `config.changed`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::ConfigChanged => "config.changed",
            EventKind::BackupFailed => "backup.failed",
            EventKind::BackupRecovered => "backup.recovered",
            EventKind::HostkeyMismatch => "hostkey.mismatch",
            EventKind::BackupStale => "backup.stale",
        }
    }

    /// The event type of a name.
    pub fn parse(name: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// How an email target reaches its SMTP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (required).
    StartTls,
    /// TLS from the first byte (SMTPS).
    Tls,
    /// No encryption (a relay on the same host).
    None,
}

/// Where a target delivers.
#[derive(Debug, Clone)]
pub enum Endpoint {
    /// `webhook`: signed JSON (Standard Webhooks).
    Webhook {
        /// Endpoint URL.
        url: SecretString,
        /// Signing keys (decoded `whsec_`), one signature each.
        keys: Vec<SecretBytes>,
    },
    /// `slack`, `teams`, `discord`: the service's incoming-webhook JSON.
    Chat {
        /// Which service's format.
        service: ChatService,
        /// Incoming-webhook URL (holds the service's token).
        url: SecretString,
    },
    /// `email` over SMTP.
    Email(EmailEndpoint),
}

/// The chat services with incoming webhooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatService {
    /// Slack (`text` with mrkdwn links).
    Slack,
    /// Microsoft Teams (an Adaptive Card message).
    Teams,
    /// Discord (`content`).
    Discord,
}

/// An email target's server and addresses.
#[derive(Debug, Clone)]
pub struct EmailEndpoint {
    /// Recipients.
    pub to: Vec<String>,
    /// Sender.
    pub from: String,
    /// SMTP server.
    pub host: String,
    /// SMTP port.
    pub port: u16,
    /// Transport security.
    pub tls: SmtpTls,
    /// Login and password, when the server wants one.
    pub login: Option<(String, SecretString)>,
    /// PEM certificates of extra trusted CAs (`smtp_ca_file`), checked to
    /// parse at load.
    pub ca_pem: Option<Vec<u8>>,
}

/// Key bytes that never reach `Debug` output.
#[derive(Clone)]
pub struct SecretBytes(pub Vec<u8>);

impl std::fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBytes([REDACTED])")
    }
}

/// A resolved `[[notifications]]` target.
#[derive(Debug, Clone)]
pub struct Target {
    /// Unique name.
    pub name: String,
    /// Event types it receives.
    pub events: Vec<EventKind>,
    /// Tenant filter (empty: all).
    pub tenants: Vec<String>,
    /// Device-id globs (empty: all).
    pub devices: Vec<glob::Pattern>,
    /// Component globs for `config.changed` (empty: all).
    pub components: Vec<glob::Pattern>,
    /// Also `config.changed` for status-only versions.
    pub status_only: bool,
    /// Attach the diff.
    pub include_diff: bool,
    /// Leave secrets in the diff.
    pub include_secrets: bool,
    /// Failures before `backup.failed`.
    pub after_failures: u32,
    /// Where it delivers.
    pub endpoint: Endpoint,
}

/// `[notify]` and the targets, resolved.
#[derive(Debug, Clone, Default)]
pub struct NotifyConfig {
    /// Delivery settings.
    pub options: NotifyOptions,
    /// The targets, in file order.
    pub targets: Vec<Target>,
}

/// `[notify]` after validation.
#[derive(Debug, Clone)]
pub struct NotifyOptions {
    /// See [`NotifySettings::allow_hosts`] (lower-case).
    pub allow_hosts: Vec<String>,
    /// See [`NotifySettings::concurrency`].
    pub concurrency: usize,
    /// See [`NotifySettings::timeout`].
    pub timeout: Duration,
    /// See [`NotifySettings::retry_initial`].
    pub retry_initial: Duration,
    /// See [`NotifySettings::retry_max`].
    pub retry_max: Duration,
    /// See [`NotifySettings::retry_for`].
    pub retry_for: Duration,
    /// See [`NotifySettings::poll_interval`].
    pub poll_interval: Duration,
    /// See [`NotifySettings::stale_after`].
    pub stale_after: Option<Duration>,
    /// See [`NotifySettings::base_url`] (no trailing `/`).
    pub base_url: Option<String>,
    /// See [`NotifySettings::max_diff_bytes`].
    pub max_diff_bytes: usize,
}

impl Default for NotifyOptions {
    fn default() -> Self {
        options(&NotifySettings::default())
    }
}

pub(super) fn options(s: &NotifySettings) -> NotifyOptions {
    NotifyOptions {
        allow_hosts: s.allow_hosts.iter().map(|h| h.to_lowercase()).collect(),
        concurrency: s.concurrency,
        timeout: s.timeout,
        retry_initial: s.retry_initial,
        retry_max: s.retry_max,
        retry_for: s.retry_for,
        poll_interval: s.poll_interval,
        stale_after: s.stale_after,
        base_url: s
            .base_url
            .as_ref()
            .map(|u| u.trim_end_matches('/').to_owned()),
        max_diff_bytes: s.max_diff_bytes,
    }
}

/// The key bytes of a Standard Webhooks secret, `whsec_` followed by the
/// base64 of 24 to 64 random bytes; `None` for anything else.
pub fn decode_whsec(secret: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let b64 = secret.strip_prefix("whsec_")?;
    let key = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    (24..=64).contains(&key.len()).then_some(key)
}
