//! RouterOS simulator: an SSH server (russh) that plays one or more MikroTik devices.
//!
//! Owns the per-device behaviour (`DeviceSpec`, `Fault`), the export text and the
//! listeners; it depends on nothing of cfgsnap. Entry points: [`start`] returns a
//! running [`Simulator`]; [`Scenario`] reads per-device overrides from TOML.

pub mod cli;
mod command;
mod device;
mod export;
mod fault;
mod generate;
mod host_key;
mod lines;
mod menu;
mod scenario;
mod server;
mod simulator;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

pub use export::version_from_header;
pub use fault::Fault;
pub use scenario::{DeviceOverride, Scenario};
pub use simulator::{Simulator, start};

/// Errors from loading simulator inputs (export files, keys, scenario files, fault names).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An export file could not be read.
    #[error("reading export file {path}")]
    ExportFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// An export file is not UTF-8 text.
    #[error("export file {path} is not UTF-8 text")]
    ExportNotUtf8 {
        /// The file.
        path: PathBuf,
    },
    /// An authorized-keys file could not be read or holds an invalid key.
    #[error("authorized key file {path}: {message}")]
    AuthorizedKey {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the line number.
        message: String,
    },
    /// A scenario file could not be read, parsed or applied.
    #[error("scenario {origin}: {message}")]
    Scenario {
        /// The file (or `<inline>`).
        origin: String,
        /// What is wrong, with the location when known.
        message: String,
    },
    /// A fault name (CLI `--fault` or scenario `fault`) is not recognised.
    #[error("invalid fault {input:?}: {reason}")]
    Fault {
        /// The text given.
        input: String,
        /// Why it was refused.
        reason: String,
    },
}

/// Result type of the simulator's loaders.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where a device's `/export` text comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Export {
    /// A real export (e.g. read from a `.rsc` file); its header line is re-stamped on
    /// every export and everything else is served as is, with CRLF line endings, whatever
    /// the export flags (`terse`, `hide-sensitive`, …).
    Text(String),
    /// A realistic configuration of about `lines` lines, the same for the same device
    /// index every time.
    Generated {
        /// Approximate number of physical lines, header included.
        lines: usize,
    },
}

impl Export {
    /// Reads an export file (LF or CRLF line endings).
    ///
    /// # Errors
    /// [`Error::ExportFile`] when the file cannot be read, [`Error::ExportNotUtf8`]
    /// when it is not UTF-8.
    pub fn from_file(path: &Path) -> Result<Export> {
        let bytes = std::fs::read(path).map_err(|source| Error::ExportFile {
            path: path.to_owned(),
            source,
        })?;
        let text = String::from_utf8(bytes).map_err(|_| Error::ExportNotUtf8 {
            path: path.to_owned(),
        })?;
        Ok(Export::Text(text))
    }
}

/// The kind of host key a device presents.
///
/// RouterOS v6 devices (version `5.x`/`6.x`) always present an RSA key, whatever is
/// chosen here, because they offer only `ssh-rsa`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HostKeyKind {
    /// An Ed25519 key derived from the device index.
    #[default]
    Ed25519,
    /// A 2048-bit RSA key generated from a seed derived from the device index.
    Rsa,
}

impl FromStr for HostKeyKind {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "ed25519" => Ok(HostKeyKind::Ed25519),
            "rsa" => Ok(HostKeyKind::Rsa),
            other => Err(format!("unknown host key type {other:?} (ed25519, rsa)")),
        }
    }
}

/// How one simulated device behaves.
///
/// `Default` is RouterOS 7.16, user `admin` with password `admin`, a generated export of
/// 200 lines, an Ed25519 host key, no latency and no fault. The `with_*` methods build
/// on it.
#[derive(Clone)]
pub struct DeviceSpec {
    /// The only user name accepted.
    pub username: String,
    /// The accepted password; `None` disables password authentication.
    pub password: Option<String>,
    /// Public keys accepted for `username`.
    pub authorized_keys: Vec<russh::keys::PublicKey>,
    /// The version reported by the probe and written in the export header, e.g. `7.16`
    /// or `6.49.10`. `5.x`/`6.x` select v6 behaviour (old SSH algorithms, no
    /// `show-sensitive`).
    pub routeros_version: String,
    /// The export text.
    pub export: Export,
    /// The host key kind (v6 devices always use RSA).
    pub host_key: HostKeyKind,
    /// Delay before each command's output.
    pub latency: Duration,
    /// A misbehaviour, if any.
    pub fault: Option<Fault>,
    /// `Some(k)`: exports number k, 2k, 3k, … (counting from 1) each change one line.
    /// `Some(0)` is treated as `None`.
    pub change_every: Option<u32>,
}

impl Default for DeviceSpec {
    fn default() -> Self {
        DeviceSpec {
            username: "admin".to_owned(),
            password: Some("admin".to_owned()),
            authorized_keys: Vec::new(),
            routeros_version: "7.16".to_owned(),
            export: Export::Generated { lines: 200 },
            host_key: HostKeyKind::Ed25519,
            latency: Duration::ZERO,
            fault: None,
            change_every: None,
        }
    }
}

impl fmt::Debug for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let export = match &self.export {
            Export::Text(text) => format!("Text({} bytes)", text.len()),
            Export::Generated { lines } => format!("Generated {{ lines: {lines} }}"),
        };
        f.debug_struct("DeviceSpec")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("authorized_keys", &self.authorized_keys.len())
            .field("routeros_version", &self.routeros_version)
            .field("export", &export)
            .field("host_key", &self.host_key)
            .field("latency", &self.latency)
            .field("fault", &self.fault)
            .field("change_every", &self.change_every)
            .finish()
    }
}

impl DeviceSpec {
    /// Sets the user name and password (`None`: key authentication only).
    pub fn with_credentials(mut self, username: &str, password: Option<&str>) -> Self {
        self.username = username.to_owned();
        self.password = password.map(str::to_owned);
        self
    }

    /// Adds an accepted public key.
    pub fn with_authorized_key(mut self, key: russh::keys::PublicKey) -> Self {
        self.authorized_keys.push(key);
        self
    }

    /// Sets the RouterOS version.
    pub fn with_version(mut self, version: &str) -> Self {
        self.routeros_version = version.to_owned();
        self
    }

    /// Sets the export source.
    pub fn with_export(mut self, export: Export) -> Self {
        self.export = export;
        self
    }

    /// Sets the host key kind.
    pub fn with_host_key(mut self, kind: HostKeyKind) -> Self {
        self.host_key = kind;
        self
    }

    /// Sets the delay before each command's output.
    pub fn with_latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// Sets a fault.
    pub fn with_fault(mut self, fault: Fault) -> Self {
        self.fault = Some(fault);
        self
    }

    /// Makes every k-th export change one line.
    pub fn with_change_every(mut self, k: u32) -> Self {
        self.change_every = Some(k);
        self
    }
}

/// Reads OpenSSH public keys (`authorized_keys` format, one per line; blank lines and
/// `#` comments skipped).
///
/// # Errors
/// [`Error::AuthorizedKey`] when the file cannot be read, holds an invalid line or no key.
pub fn read_authorized_keys(path: &Path) -> Result<Vec<russh::keys::PublicKey>> {
    let bad = |message: String| Error::AuthorizedKey {
        path: path.to_owned(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let mut keys = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let key = russh::keys::PublicKey::from_openssh(line)
            .map_err(|e| bad(format!("line {}: {e}", n + 1)))?;
        keys.push(key);
    }
    if keys.is_empty() {
        return Err(bad("no public key found".to_owned()));
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_of_device_spec_hides_the_password() {
        let spec = DeviceSpec::default().with_credentials("u", Some("s3cret"));
        assert!(!format!("{spec:?}").contains("s3cret"));
    }
}
