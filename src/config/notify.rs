//! `[notify]` and `[[notifications]]` (DESIGN.md §14): the settings as
//! written, and their resolution into [`NotifyConfig`] with every problem
//! collected (kinds, events, URLs, globs, secrets from env or file). The
//! secret readers mirror `resolve.rs`'s; resolution here never imports it,
//! so `resolve.rs` can call [`Settings::notify_config`] without a cycle.

use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;

use super::{ConfigError, Settings};

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

fn options(s: &NotifySettings) -> NotifyOptions {
    NotifyOptions {
        allow_hosts: s.allow_hosts.iter().map(|h| h.to_lowercase()).collect(),
        concurrency: s.concurrency,
        timeout: s.timeout,
        retry_initial: s.retry_initial,
        retry_max: s.retry_max,
        retry_for: s.retry_for,
        poll_interval: s.poll_interval,
        stale_after: s.stale_after,
        base_url: s.base_url.as_ref().map(|u| u.trim_end_matches('/').to_owned()),
        max_diff_bytes: s.max_diff_bytes,
    }
}

impl Settings {
    /// Resolves `[notify]` and `[[notifications]]`, reading their secrets.
    ///
    /// # Errors
    /// [`ConfigError`] with every problem of these sections (never a
    /// secret value).
    pub fn notify_config(&self) -> Result<NotifyConfig, ConfigError> {
        let mut problems = Vec::new();
        let config = resolve(self, &mut problems);
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError { problems })
        }
    }
}

fn resolve(settings: &Settings, p: &mut Vec<String>) -> NotifyConfig {
    let n = &settings.notify;
    if n.concurrency == 0 || n.concurrency > 1024 {
        p.push("notify.concurrency: must be between 1 and 1024".to_owned());
    }
    if n.timeout.is_zero() || n.poll_interval.is_zero() || n.retry_initial.is_zero() {
        p.push("notify: timeout, poll_interval and retry_initial must be above zero".to_owned());
    }
    if let Some(base) = &n.base_url
        && !(base.starts_with("https://") || base.starts_with("http://"))
    {
        p.push("notify.base_url: must start with https:// or http://".to_owned());
    }
    let mut targets = Vec::new();
    for (i, t) in settings.notifications.iter().enumerate() {
        let key = format!("notifications[{i}]");
        if settings.notifications[..i].iter().any(|o| o.name == t.name) {
            p.push(format!("{key}.name: \"{}\" is used twice", t.name));
        }
        if let Some(target) = resolve_target(t, &key, p) {
            targets.push(target);
        }
    }
    NotifyConfig {
        options: options(n),
        targets,
    }
}

fn resolve_target(t: &NotificationSettings, key: &str, p: &mut Vec<String>) -> Option<Target> {
    let before = p.len();
    if t.name.is_empty() || t.name.len() > 64 || t.name.chars().any(char::is_control) {
        p.push(format!("{key}.name: must be 1-64 printable characters"));
    }
    if t.events.is_empty() {
        p.push(format!("{key}.events: name at least one event"));
    }
    let mut events = Vec::new();
    for e in &t.events {
        match EventKind::parse(e) {
            Some(k) => events.push(k),
            None => p.push(format!(
                "{key}.events: unknown event \"{e}\" (known: config.changed, backup.failed, \
                 backup.recovered, hostkey.mismatch, backup.stale)"
            )),
        }
    }
    if t.after_failures == 0 {
        p.push(format!("{key}.after_failures: must be at least 1"));
    }
    let devices = globs(&t.devices, &format!("{key}.devices"), p);
    let components = globs(&t.components, &format!("{key}.components"), p);
    let endpoint = endpoint(t, key, p);
    if p.len() > before {
        return None;
    }
    Some(Target {
        name: t.name.clone(),
        events,
        tenants: t.tenants.clone(),
        devices,
        components,
        include_diff: t.include_diff,
        include_secrets: t.include_secrets,
        after_failures: t.after_failures,
        endpoint: endpoint?,
    })
}

fn globs(list: &[String], key: &str, p: &mut Vec<String>) -> Vec<glob::Pattern> {
    let mut out = Vec::new();
    for g in list {
        match glob::Pattern::new(g) {
            Ok(pattern) => out.push(pattern),
            Err(e) => p.push(format!("{key}: \"{g}\" is not a glob: {}", e.msg)),
        }
    }
    out
}

fn endpoint(t: &NotificationSettings, key: &str, p: &mut Vec<String>) -> Option<Endpoint> {
    let http = matches!(t.kind.as_str(), "webhook" | "slack" | "teams" | "discord");
    if http && !t.to.is_empty() || !http && (t.url.is_some() || t.url_env.is_some()) {
        p.push(format!(
            "{key}: url/url_env belong to the HTTP kinds, to/from/smtp_* to email"
        ));
    }
    if t.kind != "webhook" && (t.secret_env.is_some() || t.secret_file.is_some()) {
        p.push(format!(
            "{key}: secret_env/secret_file are for kind = \"webhook\""
        ));
    }
    let service = match t.kind.as_str() {
        "slack" => Some(ChatService::Slack),
        "teams" => Some(ChatService::Teams),
        "discord" => Some(ChatService::Discord),
        _ => None,
    };
    if let Some(service) = service {
        let url = url(t, key, p)?;
        return Some(Endpoint::Chat { service, url });
    }
    match t.kind.as_str() {
        "webhook" => {
            let url = url(t, key, p);
            let keys = webhook_keys(t, key, p);
            Some(Endpoint::Webhook {
                url: url?,
                keys: keys?,
            })
        }
        "email" => email(t, key, p).map(Endpoint::Email),
        "" => {
            p.push(format!("{key}.kind: required (webhook, slack, teams, discord, email)"));
            None
        }
        other => {
            p.push(format!(
                "{key}.kind: unknown kind \"{other}\" (webhook, slack, teams, discord, email)"
            ));
            None
        }
    }
}

fn url(t: &NotificationSettings, key: &str, p: &mut Vec<String>) -> Option<SecretString> {
    let value = match (&t.url, &t.url_env) {
        (Some(u), None) => SecretString::from(u.clone()),
        (None, Some(var)) => from_env(var, &format!("{key}.url_env"), p)?,
        _ => {
            p.push(format!("{key}: set exactly one of url and url_env"));
            return None;
        }
    };
    match reqwest::Url::parse(value.expose_secret()) {
        Ok(u) if matches!(u.scheme(), "https" | "http") && u.host_str().is_some() => Some(value),
        // The parse error and the scheme never echo the URL: it may hold a token.
        Ok(_) => {
            p.push(format!("{key}.url: must be an http(s) URL with a host"));
            None
        }
        Err(e) => {
            p.push(format!("{key}.url: not a URL ({e})"));
            None
        }
    }
}

fn webhook_keys(t: &NotificationSettings, key: &str, p: &mut Vec<String>) -> Option<Vec<SecretBytes>> {
    let text = match (&t.secret_env, &t.secret_file) {
        (Some(var), None) => from_env(var, &format!("{key}.secret_env"), p)?,
        (None, Some(path)) => from_file(path, &format!("{key}.secret_file"), p)?,
        _ => {
            p.push(format!(
                "{key}: a webhook needs exactly one of secret_env and secret_file"
            ));
            return None;
        }
    };
    let mut keys = Vec::new();
    for (n, s) in text.expose_secret().split_whitespace().enumerate() {
        match decode_whsec(s) {
            Some(k) => keys.push(SecretBytes(k)),
            None => {
                p.push(format!(
                    "{key}: signing secret #{} is not whsec_ followed by base64 of 24-64 bytes",
                    n + 1
                ));
                return None;
            }
        }
    }
    Some(keys)
}

fn email(t: &NotificationSettings, key: &str, p: &mut Vec<String>) -> Option<EmailEndpoint> {
    let before = p.len();
    if t.to.is_empty() {
        p.push(format!("{key}.to: name at least one recipient"));
    }
    for a in t.to.iter().chain(&t.from) {
        if a.parse::<lettre::Address>().is_err() {
            p.push(format!("{key}: \"{a}\" is not an email address"));
        }
    }
    if t.from.is_none() {
        p.push(format!("{key}.from: required for email"));
    }
    if t.smtp_host.as_deref().is_none_or(str::is_empty) {
        p.push(format!("{key}.smtp_host: required for email"));
    }
    let tls = match t.smtp_tls.as_deref().unwrap_or("starttls") {
        "starttls" => SmtpTls::StartTls,
        "tls" => SmtpTls::Tls,
        "none" => SmtpTls::None,
        other => {
            p.push(format!(
                "{key}.smtp_tls: \"{other}\" is not starttls, tls or none"
            ));
            SmtpTls::StartTls
        }
    };
    let password = match (&t.smtp_password_env, &t.smtp_password_file) {
        (Some(var), None) => from_env(var, &format!("{key}.smtp_password_env"), p),
        (None, Some(path)) => from_file(path, &format!("{key}.smtp_password_file"), p),
        (None, None) => None,
        (Some(_), Some(_)) => {
            p.push(format!(
                "{key}: set at most one of smtp_password_env and smtp_password_file"
            ));
            None
        }
    };
    let login = match (&t.smtp_username, password) {
        (Some(user), Some(pw)) => Some((user.clone(), pw)),
        (None, None) => None,
        _ if p.len() > before => None,
        _ => {
            p.push(format!(
                "{key}: smtp_username and an smtp password go together"
            ));
            None
        }
    };
    if p.len() > before {
        return None;
    }
    let port = t.smtp_port.unwrap_or(match tls {
        SmtpTls::StartTls => 587,
        SmtpTls::Tls => 465,
        SmtpTls::None => 25,
    });
    Some(EmailEndpoint {
        to: t.to.clone(),
        from: t.from.clone()?,
        host: t.smtp_host.clone()?,
        port,
        tls,
        login,
    })
}

fn from_env(var: &str, key: &str, p: &mut Vec<String>) -> Option<SecretString> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => Some(SecretString::from(v.trim().to_owned())),
        Ok(_) => {
            p.push(format!("{key}: environment variable {var} is empty"));
            None
        }
        Err(_) => {
            p.push(format!(
                "{key}: environment variable {var} is not set (or not UTF-8)"
            ));
            None
        }
    }
}

/// Largest secret file read, as for the other `*_file` secrets.
const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

fn from_file(path: &Path, key: &str, p: &mut Vec<String>) -> Option<SecretString> {
    use std::io::Read as _;
    let mut text = String::new();
    let read = std::fs::File::open(path)
        .and_then(|f| f.take(MAX_SECRET_FILE_BYTES + 1).read_to_string(&mut text));
    match read {
        // The io::Error names the failure, never the content.
        Err(e) => p.push(format!("{key}: {}: {e}", path.display())),
        Ok(n) if n as u64 > MAX_SECRET_FILE_BYTES => {
            p.push(format!("{key}: {} is larger than 64 KiB", path.display()));
        }
        Ok(_) if text.trim().is_empty() => p.push(format!("{key}: {} is empty", path.display())),
        Ok(_) => return Some(SecretString::from(text.trim().to_owned())),
    }
    None
}

/// The key bytes of a Standard Webhooks secret, `whsec_` followed by the
/// base64 of 24 to 64 random bytes; `None` for anything else.
pub fn decode_whsec(secret: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let b64 = secret.strip_prefix("whsec_")?;
    let key = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    (24..=64).contains(&key.len()).then_some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_notification_settings_report_every_problem_at_once() {
        let toml = r#"
[notify]
concurrency = 0

[[notifications]]
name = "a"
kind = "pager"
events = ["config.changed", "config.exploded"]
devices = ["[unclosed"]
colour = "red"

[[notifications]]
name = "a"
kind = "webhook"
url = "ftp://hooks.example/x"
events = ["backup.failed"]
after_failures = 0

[[notifications]]
name = "mail"
kind = "email"
events = []
to = ["not-an-address"]
smtp_tls = "sometimes"
"#;
        let err = Settings::from_toml(toml).expect_err("invalid");
        let text = err.to_string();
        for expected in [
            "notifications[0].colour: unknown key",
            "notify.concurrency",
            "notifications[0].kind: unknown kind \"pager\"",
            "unknown event \"config.exploded\"",
            "notifications[0].devices: \"[unclosed\" is not a glob",
            "notifications[1].name: \"a\" is used twice",
            "notifications[1].url: must be an http(s) URL",
            "notifications[1]: a webhook needs exactly one of secret_env and secret_file",
            "notifications[1].after_failures",
            "notifications[2].events: name at least one event",
            "\"not-an-address\" is not an email address",
            "notifications[2].from: required",
            "notifications[2].smtp_host: required",
            "notifications[2].smtp_tls: \"sometimes\"",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
        }
    }

    #[test]
    fn valid_targets_resolve_with_their_secrets() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("whsec");
        let old = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let new = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
        std::fs::write(&path, format!("{old} {new}\n")).expect("write");
        let toml = format!(
            r#"
[notify]
allow_hosts = ["Hooks.Internal"]
[[notifications]]
name = "hook"
kind = "webhook"
url = "https://hooks.example/x"
events = ["config.changed"]
secret_file = "{}"
devices = ["edge-*"]
[[notifications]]
name = "chat"
kind = "teams"
url = "https://example.webhook.office.com/x"
events = ["backup.failed"]
"#,
            path.display()
        );
        let config = Settings::from_toml(&toml)
            .expect("parses")
            .notify_config()
            .expect("valid");
        assert_eq!(config.options.allow_hosts, ["hooks.internal"]);
        let Endpoint::Webhook { keys, .. } = &config.targets[0].endpoint else {
            panic!("a webhook");
        };
        assert_eq!(keys.len(), 2, "both secrets while rotating");
        assert!(!format!("{config:?}").contains("MfKQ9r8G"), "no secret in Debug");
        assert!(config.targets[0].devices[0].matches("edge-7"));
        assert_eq!(config.targets[1].after_failures, 3);
    }
}
