//! Resolution of `[notify]` and `[[notifications]]` into a
//! [`NotifyConfig`], every problem collected with its key path (kinds,
//! events, URLs, globs, addresses, secrets from env or file; never a secret
//! value). The secret readers mirror `config/resolve.rs`'s; this file never
//! imports it, so `resolve.rs` calls [`Settings::notify_config`] without a
//! cycle.

use std::path::Path;

use secrecy::{ExposeSecret as _, SecretString};

use super::{
    ChatService, EmailEndpoint, Endpoint, EventKind, NotificationSettings, NotifyConfig,
    SecretBytes, SmtpTls, Target, decode_whsec, options,
};
use crate::config::{ConfigError, Settings};

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
        status_only: t.status_only,
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
            p.push(format!(
                "{key}.kind: required (webhook, slack, teams, discord, email)"
            ));
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

fn webhook_keys(
    t: &NotificationSettings,
    key: &str,
    p: &mut Vec<String>,
) -> Option<Vec<SecretBytes>> {
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
    let (tls, ca_pem) = smtp_tls(t, key, p);
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
        ca_pem,
    })
}

/// The transport security of an email target and the extra CAs it trusts.
fn smtp_tls(
    t: &NotificationSettings,
    key: &str,
    p: &mut Vec<String>,
) -> (SmtpTls, Option<Vec<u8>>) {
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
    let Some(path) = &t.smtp_ca_file else {
        return (tls, None);
    };
    if tls == SmtpTls::None {
        p.push(format!(
            "{key}.smtp_ca_file: needs smtp_tls = \"starttls\" or \"tls\""
        ));
        return (tls, None);
    }
    let pem = match std::fs::read(path) {
        Ok(pem) => pem,
        Err(e) => {
            p.push(format!("{key}.smtp_ca_file: {}: {e}", path.display()));
            return (tls, None);
        }
    };
    // A file without a CERTIFICATE block (empty, or a key by mistake)
    // parses as no certificate at all: refuse it too.
    const BEGIN: &[u8] = b"-----BEGIN CERTIFICATE-----";
    let parsed = lettre::transport::smtp::client::Certificate::from_pem(&pem);
    if parsed.is_err() || !pem.windows(BEGIN.len()).any(|w| w == BEGIN) {
        p.push(format!(
            "{key}.smtp_ca_file: {} holds no PEM certificate",
            path.display()
        ));
        return (tls, None);
    }
    (tls, Some(pem))
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
