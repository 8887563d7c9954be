//! Collection cost and throughput (issue #6, item 1): N simulated devices
//! backed up once through `SshExecutor` at a given concurrency, then the same
//! devices through OpenSSH's `ssh` under `xargs -P` (the scripted baseline).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use cfgsnap::backup::executor::SshExecutor;
use cfgsnap::backup::known_hosts::KnownHosts;
use cfgsnap::backup::{Auth, Command, Credentials, Device, Executor as _, Limits, Trigger};
use cfgsnap::id::{DeviceId, TenantId};

use crate::machine::{cpu_time, peak_rss_mib};
use crate::sim_child::{SimArgs, SimProcess};
use tempfile::TempDir;

/// The command both cfgsnap and the baseline run (one exec per device).
pub const EXPORT: &str = "/export show-sensitive";

/// Options of `collect`.
#[derive(Debug, clap::Args)]
pub struct CollectArgs {
    /// Number of simulated devices.
    #[arg(long, default_value_t = 2_000)]
    devices: usize,
    /// Concurrency levels to measure (comma separated).
    #[arg(long, value_delimiter = ',', default_value = "64,256")]
    concurrency: Vec<usize>,
    /// Lines of each generated config.
    #[arg(long, default_value_t = 1_000)]
    lines: usize,
    /// Every k-th device presents an RSA host key (0: none).
    #[arg(long, default_value_t = 2)]
    rsa_every: usize,
    /// Port of device 0 (devices use consecutive ports).
    #[arg(long, default_value_t = 26_000)]
    base_port: u16,
    /// Also run OpenSSH's `ssh` under `xargs -P` at each concurrency.
    #[arg(long)]
    baseline_ssh: bool,
}

/// A device on 127.0.0.1:`port` logging in with `key` (or nothing, for the store).
pub fn device(id: DeviceId, tenant: TenantId, port: u16, key: Option<&Path>) -> Device {
    Device {
        name: id.to_string(),
        id,
        tenant,
        host: "127.0.0.1".to_owned(),
        port,
        credentials: Credentials {
            name: "bench".to_owned(),
            username: "admin".to_owned(),
            auth: Auth::Key {
                path: key.map_or_else(PathBuf::new, Path::to_owned),
                passphrase: None,
            },
        },
        interval: None,
        enabled: true,
    }
}

/// Limits with generous timeouts and the single export command.
pub fn limits() -> Limits {
    Limits {
        connect_timeout: Duration::from_secs(60),
        command_timeout: Duration::from_secs(60),
        job_timelimit: Duration::from_secs(120),
        max_config_bytes: 16 << 20,
        command: Command::Fixed(EXPORT.to_owned()),
    }
}

/// Generates an Ed25519 client key pair with `ssh-keygen`; returns the private key path.
pub fn client_key(scratch: &TempDir) -> anyhow::Result<PathBuf> {
    let key = scratch.path().join("id_ed25519");
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "cfgsnap-bench", "-f"])
        .arg(&key)
        .status()
        .context("running ssh-keygen")?;
    anyhow::ensure!(status.success(), "ssh-keygen failed");
    Ok(key)
}

/// `n` devices on consecutive ports from `base_port`.
pub fn devices(n: usize, base_port: u16, key: &Path) -> anyhow::Result<Vec<Device>> {
    let tenant = TenantId::parse("bench")?;
    (0..n)
        .map(|i| {
            let port = u16::try_from(usize::from(base_port) + i)?;
            Ok(device(
                DeviceId::parse(&format!("bench-{i}"))?,
                tenant.clone(),
                port,
                Some(key),
            ))
        })
        .collect()
}

/// Runs the collection benchmark.
pub async fn run(args: &CollectArgs) -> anyhow::Result<()> {
    let scratch = crate::scratch_dir()?;
    let key = client_key(&scratch)?;
    let sim_args = SimArgs {
        listen: SocketAddr::from(([127, 0, 0, 1], args.base_port)),
        devices: args.devices,
        lines: args.lines,
        rsa_every: args.rsa_every,
        latency_ms: 0,
        authorized_key: key.with_extension("pub"),
        max_lifetime_secs: 3_600,
    };
    let sim = SimProcess::start(&sim_args).await?;
    let devices = devices(args.devices, args.base_port, &key)?;
    println!(
        "collect: {} devices, {} lines, rsa host key on every {}th device (0: none), command {EXPORT:?}",
        args.devices, args.lines, args.rsa_every
    );
    for (round, &c) in args.concurrency.iter().enumerate() {
        // A fresh pin file per concurrency level: pass 1 pins (first use), pass 2 is pinned.
        let known =
            KnownHosts::open(&scratch.path().join(format!("known_hosts_{round}.json"))).await?;
        let executor = Arc::new(SshExecutor::new(limits(), known));
        let first = pass(&executor, &devices, c, sim.pid()).await;
        first.print("cfgsnap first use (pins)", c);
        let second = pass(&executor, &devices, c, sim.pid()).await;
        second.print("cfgsnap pinned", c);
        if args.baseline_ssh {
            let base = baseline(
                &key,
                args.base_port,
                args.devices,
                c,
                sim.pid(),
                scratch.path(),
            )?;
            base.print("openssh ssh|xargs -P", c);
            println!(
                "collect: concurrency={c}: throughput ratio cfgsnap(pinned)/openssh = {:.2}x",
                second.per_second() / base.per_second()
            );
        }
    }
    println!(
        "collect: bench process peak RSS {:.1} MiB",
        peak_rss_mib("self")
    );
    sim.stop().await;
    Ok(())
}

/// Figures of one pass over the fleet.
struct Pass {
    wall: Duration,
    ok: usize,
    failed: BTreeMap<String, usize>,
    client_cpu: Duration,
    sim_cpu: Duration,
}

impl Pass {
    fn per_second(&self) -> f64 {
        self.ok as f64 / self.wall.as_secs_f64()
    }

    fn print(&self, label: &str, c: usize) {
        let n = self.ok.max(1) as f64;
        println!(
            "collect: {label}: concurrency={c} ok={} failed={:?} wall={:.2}s {:.1} backups/s, client CPU {:.3} ms/backup, simulator CPU {:.3} ms/backup",
            self.ok,
            self.failed,
            self.wall.as_secs_f64(),
            self.per_second(),
            self.client_cpu.as_secs_f64() * 1000.0 / n,
            self.sim_cpu.as_secs_f64() * 1000.0 / n
        );
    }
}

async fn pass(
    executor: &Arc<SshExecutor<KnownHosts>>,
    devices: &[Device],
    concurrency: usize,
    sim_pid: &str,
) -> Pass {
    let (cpu0, sim0, started) = (cpu_time("self"), cpu_time(sim_pid), Instant::now());
    let permits = Arc::new(Semaphore::new(concurrency));
    let mut set = JoinSet::new();
    for d in devices {
        let (executor, permits, d) = (executor.clone(), permits.clone(), d.clone());
        set.spawn(async move {
            let _permit = permits
                .acquire_owned()
                .await
                .expect("BUG: semaphore never closed");
            executor.run(&d, Trigger::Manual).await.map(|o| o.raw_bytes)
        });
    }
    let (mut ok, mut failed) = (0, BTreeMap::new());
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok(Ok(_)) => ok += 1,
            Ok(Err(e)) => *failed.entry(e.kind().as_str().to_owned()).or_insert(0) += 1,
            Err(_) => *failed.entry("panic".to_owned()).or_insert(0) += 1,
        }
    }
    Pass {
        wall: started.elapsed(),
        ok,
        failed,
        client_cpu: cpu_time("self") - cpu0,
        sim_cpu: cpu_time(sim_pid) - sim0,
    }
}

/// Backs the same devices up with `ssh` under `xargs -P`, as a user would script it.
fn baseline(
    key: &Path,
    base_port: u16,
    n: usize,
    concurrency: usize,
    sim_pid: &str,
    dir: &Path,
) -> anyhow::Result<Pass> {
    let last = usize::from(base_port) + n - 1;
    let script = format!(
        "seq {base_port} {last} | xargs -P {concurrency} -I{{}} ssh -F /dev/null -p {{}} -i {} \
         -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
         -o LogLevel=ERROR -o ConnectTimeout=60 admin@127.0.0.1 '{EXPORT}' >/dev/null; \
         echo \"rc=$?\"; cat /proc/$$/stat",
        key.display()
    );
    let (sim0, started) = (cpu_time(sim_pid), Instant::now());
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .output()
        .context("running the ssh baseline")?;
    let wall = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let rc = stdout
        .lines()
        .find_map(|l| l.strip_prefix("rc="))
        .unwrap_or("?")
        .to_owned();
    let stat = stdout.lines().last().unwrap_or_default();
    let mut failed = BTreeMap::new();
    if rc != "0" {
        // xargs says only that some invocation failed (123), not how many.
        failed.insert(format!("xargs rc={rc}"), 1);
    }
    Ok(Pass {
        wall,
        ok: n,
        failed,
        client_cpu: crate::machine::children_cpu_time_of_stat_line(stat),
        sim_cpu: cpu_time(sim_pid) - sim0,
    })
}
