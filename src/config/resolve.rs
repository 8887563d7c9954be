//! Cross-field validation of [`Settings`] and resolution into a [`Fleet`]:
//! ids checked, references followed, secrets read from their `*_env` /
//! `*_file` sources. Every problem is collected; none stops the others.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use secrecy::SecretString;

use super::{ConfigError, CredentialSettings, DeviceSettings, Settings};
use crate::backup::{Auth, Command, Credentials, Device, Limits};
use crate::id::{DeviceId, TenantId};

/// A tenant from `[[tenants]]`.
#[derive(Debug, Clone)]
pub struct Tenant {
    /// Validated id.
    pub id: TenantId,
    /// Display name (the id when unset).
    pub name: String,
}

/// What the configuration asks to back up, ready to use.
#[derive(Debug, Clone)]
pub struct Fleet {
    /// All tenants.
    pub tenants: Vec<Tenant>,
    /// All devices, enabled or not, in file order.
    pub devices: Vec<Device>,
    /// Collection limits from `[backup]`.
    pub limits: Limits,
    /// Non-fatal remarks, e.g. an inline password.
    pub warnings: Vec<String>,
}

impl Fleet {
    /// The device with this id, if configured.
    pub fn device(&self, id: &str) -> Option<&Device> {
        self.devices.iter().find(|d| d.id.as_str() == id)
    }
}

#[derive(Default)]
struct Problems {
    list: Vec<String>,
    warnings: Vec<String>,
}

impl Problems {
    fn push(&mut self, key: impl AsRef<str>, message: impl AsRef<str>) {
        self.list
            .push(format!("{}: {}", key.as_ref(), message.as_ref()));
    }
}

impl Settings {
    /// Checks every cross-field rule and resolves secrets.
    ///
    /// # Errors
    /// [`ConfigError`] listing every problem, each with its key path. Secret
    /// values never appear in it.
    pub fn validate(&self) -> Result<Fleet, ConfigError> {
        let mut p = Problems::default();
        self.check_server(&mut p);
        let limits = self.check_backup(&mut p);
        self.check_urls(&mut p);
        let tenants = self.check_tenants(&mut p);
        let credentials = self.check_credentials(&mut p);
        let devices = self.check_devices(&mut p, &tenants, &credentials);
        if let Err(e) = self.notify_config() {
            p.list.extend(e.problems);
        }
        if p.list.is_empty() {
            Ok(Fleet {
                tenants,
                devices,
                limits,
                warnings: p.warnings,
            })
        } else {
            Err(ConfigError { problems: p.list })
        }
    }

    fn check_server(&self, p: &mut Problems) {
        p.list.extend(self.server_problems());
    }

    /// Problems of `[server]`, which `main` needs before anything else
    /// runs: [`Settings::load`] refuses them too.
    pub(super) fn server_problems(&self) -> Vec<String> {
        let mut p = Problems::default();
        if self.server.worker_threads > super::MAX_WORKER_THREADS {
            p.push(
                "server.worker_threads",
                format!(
                    "must be at most {} (0 means one per CPU core)",
                    super::MAX_WORKER_THREADS
                ),
            );
        }
        p.list
    }

    fn check_backup(&self, p: &mut Problems) -> Limits {
        let b = &self.backup;
        for (key, value) in [
            ("interval", b.interval),
            ("connect_timeout", b.connect_timeout),
            ("command_timeout", b.command_timeout),
            ("job_timelimit", b.job_timelimit),
        ] {
            if value.is_zero() {
                p.push(format!("backup.{key}"), "must be greater than zero");
            }
        }
        if b.job_timelimit < b.connect_timeout + b.command_timeout {
            p.push(
                "backup.job_timelimit",
                "must be at least connect_timeout + command_timeout",
            );
        }
        if b.max_concurrent == 0 {
            p.push("backup.max_concurrent", "must be at least 1");
        }
        if !(1024..=1 << 30).contains(&b.max_config_bytes) {
            p.push(
                "backup.max_config_bytes",
                "must be between 1024 and 1073741824",
            );
        }
        let command = match b.command.trim() {
            "" => {
                p.push("backup.command", "must not be empty (use \"auto\")");
                Command::Auto {
                    hide_sensitive: b.hide_sensitive,
                }
            }
            "auto" => Command::Auto {
                hide_sensitive: b.hide_sensitive,
            },
            fixed => Command::Fixed(fixed.to_owned()),
        };
        Limits {
            connect_timeout: b.connect_timeout,
            command_timeout: b.command_timeout,
            job_timelimit: b.job_timelimit,
            max_config_bytes: b.max_config_bytes,
            command,
        }
    }

    fn check_urls(&self, p: &mut Problems) {
        let checks: [(&str, &str, &[&str]); 3] = [
            (
                "store.url",
                &self.store.url,
                &["sqlite:", "postgres://", "postgresql://"],
            ),
            ("bus.url", &self.bus.url, &["local", "nats://", "tls://"]),
            (
                "lock.url",
                &self.lock.url,
                &["local", "redis://", "rediss://"],
            ),
        ];
        for (key, url, schemes) in checks {
            if !schemes.iter().any(|s| url.starts_with(s)) {
                p.push(
                    key,
                    format!("must start with one of {}", schemes.join(", ")),
                );
            }
        }
        self.check_auth(p);
        self.check_partition(p);
        let deadline = self.search.deadline;
        if deadline.is_zero() || deadline > super::MAX_SEARCH_DEADLINE {
            p.push("search.deadline", "must be longer than 0s and at most 5m");
        }
    }

    fn check_partition(&self, p: &mut Problems) {
        let Some(partition) = &self.roles.partition else {
            return;
        };
        let ok = (1..=64).contains(&partition.len())
            && partition
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !ok {
            p.push(
                "roles.partition",
                "must be 1 to 64 of A-Z, a-z, 0-9, '_' and '-'",
            );
        }
    }

    fn check_auth(&self, p: &mut Problems) {
        let a = &self.auth;
        let counts = [
            ("auth.trigger_rate_per_minute", a.trigger_rate_per_minute),
            (
                "auth.login_attempts_per_minute",
                a.login_attempts_per_minute,
            ),
            (
                "auth.login_attempts_per_address_per_minute",
                a.login_attempts_per_address_per_minute,
            ),
        ];
        for (key, n) in counts {
            if n == 0 {
                p.push(key, "must be at least 1");
            }
        }
        let times = [
            ("auth.session_idle_timeout", a.session_idle_timeout),
            ("auth.session_absolute_timeout", a.session_absolute_timeout),
            ("auth.access_token_ttl", a.access_token_ttl),
        ];
        for (key, d) in times {
            if d.is_zero() {
                p.push(key, "must be longer than 0s");
            }
        }
    }

    fn check_tenants(&self, p: &mut Problems) -> Vec<Tenant> {
        let mut seen = HashSet::new();
        let mut tenants = Vec::new();
        for (i, t) in self.tenants.iter().enumerate() {
            let key = format!("tenants[{i}].id");
            match TenantId::parse(&t.id) {
                Err(e) => p.push(key, format!("{:?} {e}", t.id)),
                Ok(id) if !seen.insert(id.clone()) => {
                    p.push(key, format!("duplicate tenant id {:?}", t.id))
                }
                Ok(id) => tenants.push(Tenant {
                    name: t.name.clone().unwrap_or_else(|| id.to_string()),
                    id,
                }),
            }
        }
        tenants
    }

    fn check_credentials(&self, p: &mut Problems) -> HashMap<String, Credentials> {
        let mut out = HashMap::new();
        for (i, c) in self.credentials.iter().enumerate() {
            let key = format!("credentials[{i}]");
            if c.name.trim().is_empty() {
                p.push(format!("{key}.name"), "must not be empty");
                continue;
            }
            if out.contains_key(&c.name) {
                p.push(
                    format!("{key}.name"),
                    format!("duplicate credentials {:?}", c.name),
                );
                continue;
            }
            if c.username.is_empty() {
                p.push(format!("{key}.username"), "must not be empty");
            }
            if let Some(auth) = resolve_auth(c, &key, p) {
                out.insert(
                    c.name.clone(),
                    Credentials {
                        name: c.name.clone(),
                        username: c.username.clone(),
                        auth,
                    },
                );
            }
        }
        out
    }

    fn check_devices(
        &self,
        p: &mut Problems,
        tenants: &[Tenant],
        credentials: &HashMap<String, Credentials>,
    ) -> Vec<Device> {
        let known_tenants: HashSet<&str> = tenants.iter().map(|t| t.id.as_str()).collect();
        let mut seen = HashSet::new();
        let mut devices = Vec::new();
        for (i, d) in self.devices.iter().enumerate() {
            let key = format!("devices[{i}]");
            let id = match DeviceId::parse(&d.id) {
                Err(e) => {
                    p.push(format!("{key}.id"), format!("{:?} {e}", d.id));
                    None
                }
                Ok(id) if !seen.insert(id.clone()) => {
                    p.push(
                        format!("{key}.id"),
                        format!("duplicate device id {:?}", d.id),
                    );
                    None
                }
                Ok(id) => Some(id),
            };
            let tenant = check_device_tenant(d, &key, &known_tenants, p);
            check_device_endpoint(d, &key, p);
            let creds = credentials.get(&d.credentials);
            if creds.is_none() && !self.credentials.iter().any(|c| c.name == d.credentials) {
                p.push(
                    format!("{key}.credentials"),
                    format!("no [[credentials]] named {:?}", d.credentials),
                );
            }
            if let (Some(id), Some(tenant), Some(creds)) = (id, tenant, creds) {
                devices.push(Device {
                    name: d.name.clone().unwrap_or_else(|| id.to_string()),
                    id,
                    tenant,
                    host: d.host.clone(),
                    port: d.port,
                    credentials: creds.clone(),
                    interval: d.interval,
                    enabled: d.enabled,
                });
            }
        }
        devices
    }
}

fn check_device_tenant(
    d: &DeviceSettings,
    key: &str,
    known: &HashSet<&str>,
    p: &mut Problems,
) -> Option<TenantId> {
    match TenantId::parse(&d.tenant) {
        Err(e) => {
            p.push(format!("{key}.tenant"), format!("{:?} {e}", d.tenant));
            None
        }
        Ok(t) if !known.contains(t.as_str()) => {
            p.push(
                format!("{key}.tenant"),
                format!("no [[tenants]] with id {:?}", d.tenant),
            );
            None
        }
        Ok(t) => Some(t),
    }
}

fn check_device_endpoint(d: &DeviceSettings, key: &str, p: &mut Problems) {
    if d.host.trim().is_empty() || d.host.chars().any(|c| c.is_whitespace() || c.is_control()) {
        p.push(format!("{key}.host"), "must be a host name or address");
    }
    if d.port == 0 {
        p.push(format!("{key}.port"), "must be between 1 and 65535");
    }
    if d.interval.is_some_and(|i| i.is_zero()) {
        p.push(format!("{key}.interval"), "must be greater than zero");
    }
}

fn resolve_auth(c: &CredentialSettings, key: &str, p: &mut Problems) -> Option<Auth> {
    let sources = [
        c.password_env.is_some(),
        c.password_file.is_some(),
        c.password.is_some(),
        c.key_file.is_some(),
    ];
    match sources.iter().filter(|s| **s).count() {
        1 => {}
        0 => {
            p.push(
                key,
                "needs one of password_env, password_file, password or key_file",
            );
            return None;
        }
        _ => {
            p.push(
                key,
                "give only one of password_env, password_file, password or key_file",
            );
            return None;
        }
    }
    if c.key_file.is_none() && (c.key_passphrase_env.is_some() || c.key_passphrase_file.is_some()) {
        p.push(key, "key_passphrase_env/key_passphrase_file need key_file");
    }
    if let Some(var) = &c.password_env {
        return secret_from_env(var, &format!("{key}.password_env"), p).map(Auth::Password);
    }
    if let Some(path) = &c.password_file {
        return secret_from_file(path, &format!("{key}.password_file"), p).map(Auth::Password);
    }
    if let Some(pw) = &c.password {
        p.warnings.push(format!(
            "{key}.password: inline password in the configuration file; use password_env or password_file outside demos"
        ));
        return Some(Auth::Password(pw.clone()));
    }
    let path = c.key_file.as_ref()?;
    if let Err(e) = std::fs::metadata(path) {
        p.push(
            format!("{key}.key_file"),
            format!("{}: {e}", path.display()),
        );
        return None;
    }
    let passphrase = match (&c.key_passphrase_env, &c.key_passphrase_file) {
        (Some(_), Some(_)) => {
            p.push(
                key,
                "give only one of key_passphrase_env and key_passphrase_file",
            );
            return None;
        }
        (Some(var), None) => Some(secret_from_env(
            var,
            &format!("{key}.key_passphrase_env"),
            p,
        )?),
        (None, Some(f)) => Some(secret_from_file(
            f,
            &format!("{key}.key_passphrase_file"),
            p,
        )?),
        (None, None) => None,
    };
    Some(Auth::Key {
        path: path.clone(),
        passphrase,
    })
}

fn secret_from_env(var: &str, key: &str, p: &mut Problems) -> Option<SecretString> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(SecretString::from(v)),
        Ok(_) => {
            p.push(key, format!("environment variable {var} is empty"));
            None
        }
        Err(_) => {
            p.push(
                key,
                format!("environment variable {var} is not set (or not UTF-8)"),
            );
            None
        }
    }
}

/// Largest secret file read: a secret is short, and a path such as
/// `/dev/zero` must not exhaust memory.
const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

/// Reads at most [`MAX_SECRET_FILE_BYTES`] (+1, to tell a larger file).
fn read_bounded(path: &Path) -> std::io::Result<String> {
    use std::io::Read as _;
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(MAX_SECRET_FILE_BYTES + 1)
        .read_to_string(&mut text)?;
    Ok(text)
}

fn secret_from_file(path: &Path, key: &str, p: &mut Problems) -> Option<SecretString> {
    match read_bounded(path) {
        Ok(v) if v.len() as u64 > MAX_SECRET_FILE_BYTES => {
            p.push(key, format!("{} is larger than 64 KiB", path.display()));
            None
        }
        Ok(v) => {
            let v = v.trim_end_matches(['\r', '\n']);
            if v.is_empty() {
                p.push(key, format!("{} is empty", path.display()));
                None
            } else {
                Some(SecretString::from(v.to_owned()))
            }
        }
        // The io::Error names the failure (not found, permission denied), never the content.
        Err(e) => {
            p.push(key, format!("{}: {e}", path.display()));
            None
        }
    }
}
