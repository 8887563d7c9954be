//! The simulator in its own process, so that the bench process's CPU and
//! memory figures are cfgsnap's alone. `cfgsnap-bench sim-child` runs it;
//! [`SimProcess::start`] spawns it and waits for its `ready` line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

use routeros_sim::{self as sim, DeviceSpec, Export, HostKeyKind};

/// Options of the (hidden) `sim-child` subcommand.
#[derive(Debug, Clone, clap::Args)]
pub struct SimArgs {
    /// Address of device 0; device i listens on port + i.
    #[arg(long)]
    pub listen: SocketAddr,
    /// Number of devices.
    #[arg(long)]
    pub devices: usize,
    /// Lines of each generated config.
    #[arg(long, default_value_t = 1_000)]
    pub lines: usize,
    /// Every k-th device presents an RSA host key (0: none).
    #[arg(long, default_value_t = 0)]
    pub rsa_every: usize,
    /// Delay before each command's output, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// OpenSSH public key file accepted for `admin`.
    #[arg(long)]
    pub authorized_key: PathBuf,
    /// Exit after this many seconds even if the parent is still there.
    #[arg(long, default_value_t = 3_600)]
    pub max_lifetime_secs: u64,
}

/// Runs the simulator until stdin closes (the parent is gone) or the lifetime ends.
pub async fn run(args: SimArgs) -> anyhow::Result<()> {
    let keys = sim::read_authorized_keys(&args.authorized_key)?;
    let specs = (0..args.devices)
        .map(|i| {
            let kind = if args.rsa_every > 0 && i % args.rsa_every == args.rsa_every - 1 {
                HostKeyKind::Rsa
            } else {
                HostKeyKind::Ed25519
            };
            let mut spec = DeviceSpec::default()
                .with_credentials("admin", None)
                .with_export(Export::Generated { lines: args.lines })
                .with_host_key(kind)
                .with_latency(Duration::from_millis(args.latency_ms));
            for k in &keys {
                spec = spec.with_authorized_key(k.clone());
            }
            spec
        })
        .collect();
    let started = Instant::now();
    let simulator = sim::start(args.listen, specs).await?;
    println!("ready {:.1}", started.elapsed().as_secs_f64());
    // tokio's `io-std` feature is off: read stdin on a blocking thread.
    let stdin_closed = tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink)
    });
    tokio::select! {
        _ = stdin_closed => {}
        () = tokio::time::sleep(Duration::from_secs(args.max_lifetime_secs)) => {}
    }
    simulator.shutdown().await;
    Ok(())
}

/// A running `sim-child` process; killed on drop.
pub struct SimProcess {
    child: Child,
    pid: String,
}

impl SimProcess {
    /// Spawns `sim-child` with `args` and waits until its devices listen.
    pub async fn start(args: &SimArgs) -> anyhow::Result<SimProcess> {
        let exe = std::env::current_exe()?;
        let mut child = Command::new(exe)
            .arg("sim-child")
            .arg("--listen")
            .arg(args.listen.to_string())
            .arg("--devices")
            .arg(args.devices.to_string())
            .arg("--lines")
            .arg(args.lines.to_string())
            .arg("--rsa-every")
            .arg(args.rsa_every.to_string())
            .arg("--latency-ms")
            .arg(args.latency_ms.to_string())
            .arg("--authorized-key")
            .arg(&args.authorized_key)
            .env("RUST_LOG", "error")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("spawning the simulator process")?;
        let pid = child.id().map(|p| p.to_string()).unwrap_or_default();
        let stdout = child.stdout.take().context("simulator stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let line = lines
            .next_line()
            .await?
            .context("simulator exited before ready")?;
        let secs = line
            .strip_prefix("ready ")
            .context("unexpected simulator output")?;
        eprintln!(
            "simulator: {} devices ready after {secs} s (pid {pid})",
            args.devices
        );
        Ok(SimProcess { child, pid })
    }

    /// The process id, for `/proc` figures.
    pub fn pid(&self) -> &str {
        &self.pid
    }

    /// Closes its stdin and waits for it to exit.
    pub async fn stop(mut self) {
        drop(self.child.stdin.take());
        if tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .is_err()
        {
            eprintln!("warning: simulator did not exit; killing it");
            if let Err(e) = self.child.kill().await {
                eprintln!("warning: killing the simulator: {e}");
            }
        }
    }
}
