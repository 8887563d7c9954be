//! `routeros-sim`: a thin CLI over `cfgsnap::sim` that plays MikroTik RouterOS devices
//! over SSH for demos, manual tests and benchmarks.
//!
//! Builds one `DeviceSpec` per `--devices`, applies `--scenario`, starts the simulator,
//! prints one line per device (address and host-key fingerprint) and runs until
//! Ctrl-C or SIGTERM. Logs go to stderr (`RUST_LOG`, default `info`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use tracing_subscriber::EnvFilter;

use cfgsnap::sim::{self, DeviceSpec, Export, Fault, HostKeyKind, Scenario};

/// Simulated MikroTik RouterOS devices over SSH (exec channel only).
#[derive(Debug, Parser)]
#[command(name = "routeros-sim", version)]
struct Cli {
    /// Address of the first device; device i listens on port + i (port 0: OS-chosen ports).
    #[arg(long, default_value = "127.0.0.1:2222")]
    listen: SocketAddr,
    /// Serve this export file (its header is re-stamped); default: generated configs.
    #[arg(long, value_name = "FILE")]
    export: Option<PathBuf>,
    /// User name accepted by every device.
    #[arg(long, default_value = "admin")]
    username: String,
    /// Password accepted by every device.
    #[arg(
        long,
        default_value = "admin",
        env = "ROUTEROS_SIM_PASSWORD",
        hide_env_values = true
    )]
    password: String,
    /// RouterOS version (default: the --export file's header, else 7.16).
    #[arg(long, value_name = "VERSION")]
    routeros_version: Option<String>,
    /// Delay before each command's output, in milliseconds.
    #[arg(long, value_name = "N", default_value_t = 0)]
    latency_ms: u64,
    /// Number of devices.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    devices: u16,
    /// Lines of each generated config (without --export).
    #[arg(long, value_name = "N", default_value_t = 200)]
    lines: usize,
    /// TOML file of per-device overrides ([[device]] index = …).
    #[arg(long, value_name = "FILE")]
    scenario: Option<PathBuf>,
    /// OpenSSH public key file(s) accepted for the user (repeatable).
    #[arg(long, value_name = "FILE")]
    authorized_key: Vec<PathBuf>,
    /// Host key type of v7 devices (v6 devices always use RSA).
    #[arg(long, value_name = "TYPE", default_value = "ed25519")]
    host_key_type: HostKeyKind,
    /// Change one line of the config every K exports.
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u32).range(1..))]
    change_every: Option<u32>,
    /// Fault for every device: auth-failure, host-key-change, hang,
    /// slow-drip[:CHUNK[:EVERY_MS]], disconnect, huge[:BYTES], garbage, error[:TEXT].
    #[arg(long, value_name = "NAME")]
    fault: Option<Fault>,
}

impl Cli {
    /// The device specs described by the flags and the scenario file.
    fn specs(&self) -> anyhow::Result<Vec<DeviceSpec>> {
        let mut base = DeviceSpec::default()
            .with_credentials(&self.username, Some(&self.password))
            .with_latency(Duration::from_millis(self.latency_ms))
            .with_host_key(self.host_key_type)
            .with_export(Export::Generated { lines: self.lines });
        base.change_every = self.change_every;
        base.fault.clone_from(&self.fault);
        for path in &self.authorized_key {
            base.authorized_keys
                .extend(sim::read_authorized_keys(path)?);
        }
        if let Some(path) = &self.export {
            base.export = Export::from_file(path)?;
        }
        let from_file = match &base.export {
            Export::Text(text) => sim::version_from_header(text),
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let specs = cli.specs()?;
    let versions: Vec<String> = specs.iter().map(|s| s.routeros_version.clone()).collect();
    let simulator = sim::start(cli.listen, specs)
        .await
        .with_context(|| format!("starting the simulator on {}", cli.listen))?;
    for (i, addr) in simulator.addrs().iter().enumerate() {
        println!(
            "device={i} addr={addr} host_key={} version={}",
            simulator.host_key_fingerprint(i),
            versions[i]
        );
    }
    tracing::info!(
        devices = versions.len(),
        "routeros-sim running; Ctrl-C to stop"
    );
    wait_for_stop().await?;
    tracing::info!("stopping");
    simulator.shutdown().await;
    Ok(())
}

/// Waits for Ctrl-C (SIGINT) or SIGTERM.
async fn wait_for_stop() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result.context("waiting for Ctrl-C")?,
        _ = term.recv() => {}
    }
    Ok(())
}
