//! The `routeros-sim` command line: its flags ([`Args`]) and the device specs
//! they describe. The binary and tests that start the simulator as the demo
//! does share it; starting and stopping stay with the caller.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::{DeviceSpec, Export, Fault, HostKeyKind, Scenario};

/// Simulated MikroTik RouterOS devices over SSH (exec channel only).
#[derive(Debug, Parser)]
#[command(name = "routeros-sim", version)]
pub struct Args {
    /// Address of the first device; device i listens on port + i (port 0: OS-chosen ports).
    #[arg(long, default_value = "127.0.0.1:2222")]
    pub listen: SocketAddr,
    /// Serve this export file (its header is re-stamped); default: generated configs.
    #[arg(long, value_name = "FILE")]
    pub export: Option<PathBuf>,
    /// User name accepted by every device.
    #[arg(long, default_value = "admin")]
    pub username: String,
    /// Password accepted by every device.
    #[arg(
        long,
        default_value = "admin",
        env = "ROUTEROS_SIM_PASSWORD",
        hide_env_values = true
    )]
    pub password: String,
    /// RouterOS version (default: the --export file's header, else 7.16).
    #[arg(long, value_name = "VERSION")]
    pub routeros_version: Option<String>,
    /// Delay before each command's output, in milliseconds.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub latency_ms: u64,
    /// Number of devices.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub devices: u16,
    /// Lines of each generated config (without --export).
    #[arg(long, value_name = "N", default_value_t = 200)]
    pub lines: usize,
    /// TOML file of per-device overrides ([[device]] index = …).
    #[arg(long, value_name = "FILE")]
    pub scenario: Option<PathBuf>,
    /// OpenSSH public key file(s) accepted for the user (repeatable).
    #[arg(long, value_name = "FILE")]
    pub authorized_key: Vec<PathBuf>,
    /// Host key type of v7 devices (v6 devices always use RSA).
    #[arg(long, value_name = "TYPE", default_value = "ed25519")]
    pub host_key_type: HostKeyKind,
    /// Change one line of the config every K exports.
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u32).range(1..))]
    pub change_every: Option<u32>,
    /// Fault for every device: auth-failure, host-key-change, hang,
    /// slow-drip[:CHUNK[:EVERY_MS]], disconnect, huge[:BYTES], garbage, error[:TEXT].
    #[arg(long, value_name = "NAME")]
    pub fault: Option<Fault>,
}

impl Args {
    /// Parses `argv` (program name first), as the binary does.
    ///
    /// # Errors
    /// Unknown or malformed flags, with clap's usage message.
    pub fn try_from_argv<I, T>(argv: I) -> Result<Args, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        Args::try_parse_from(argv)
    }

    /// The device specs described by the flags and the scenario file.
    ///
    /// # Errors
    /// An export, key or scenario file that cannot be read or applied.
    pub fn specs(&self) -> crate::Result<Vec<DeviceSpec>> {
        let mut base = DeviceSpec::default()
            .with_credentials(&self.username, Some(&self.password))
            .with_latency(Duration::from_millis(self.latency_ms))
            .with_host_key(self.host_key_type)
            .with_export(Export::Generated { lines: self.lines });
        base.change_every = self.change_every;
        base.fault.clone_from(&self.fault);
        for path in &self.authorized_key {
            base.authorized_keys
                .extend(crate::read_authorized_keys(path)?);
        }
        if let Some(path) = &self.export {
            base.export = Export::from_file(path)?;
        }
        let from_file = match &base.export {
            Export::Text(text) => crate::version_from_header(text),
            Export::Generated { .. } => None,
        };
        if let Some(version) = self.routeros_version.clone().or(from_file) {
            base.routeros_version = version;
        }
        let mut specs = vec![base; usize::from(self.devices)];
        if let Some(path) = &self.scenario {
            Scenario::load(path)?.apply(&mut specs)?;
        }
        Ok(specs)
    }
}
