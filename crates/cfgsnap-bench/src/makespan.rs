//! Fleet makespan (issue #6, item 2): one scheduled pass over N devices whose
//! export takes a fixed latency, through `Scheduler::spawn` with
//! `max_concurrent`, against the ideal `N × latency / concurrency`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use cfgsnap::backup::executor::SshExecutor;
use cfgsnap::backup::known_hosts::KnownHosts;
use cfgsnap::backup::scheduler::{Scheduler, SchedulerSettings, WallClock};
use cfgsnap::backup::{AttemptReport, AttemptStatus, Device, Outcome, SnapshotSink};
use cfgsnap::lock::Locker;

use crate::collect::{client_key, devices, limits};
use crate::machine::{cpu_time, fd_limit, open_fds, peak_rss_mib, rss_mib};

use crate::sim_child::{SimArgs, SimProcess};

/// Options of `makespan`.
#[derive(Debug, clap::Args)]
pub struct MakespanArgs {
    /// Number of simulated devices.
    #[arg(long, default_value_t = 10_000)]
    devices: usize,
    /// Export latency of every device.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "2s")]
    latency: Duration,
    /// `max_concurrent` of the scheduler.
    #[arg(long, default_value_t = 1_000)]
    concurrency: usize,
    /// Lines of each generated config.
    #[arg(long, default_value_t = 1_000)]
    lines: usize,
    /// Port of device 0 (devices use consecutive ports).
    #[arg(long, default_value_t = 7_000)]
    base_port: u16,
}

/// How often the pass's open descriptors are counted. Walking
/// `/proc/self/fd` (a thousand entries mid-pass) costs this process CPU that
/// would count as cfgsnap's; the count reaches its plateau within the first
/// second of a pass and holds it until the end.
const FD_SAMPLE_EVERY: Duration = Duration::from_millis(500);

/// Counts reports; publishing drops the outcome. `done` is notified once
/// `expected` reports are in (not on every report: the waiter samples
/// `/proc`, which at one wake per backup cost as much CPU as the backups).
#[derive(Default)]
struct CountingSink {
    expected: usize,
    reports: AtomicUsize,
    successes: AtomicUsize,
    done: Notify,
}

impl SnapshotSink for CountingSink {
    async fn publish(&self, _outcome: &Outcome) -> anyhow::Result<()> {
        Ok(())
    }

    async fn report(&self, report: &AttemptReport) {
        if report.status == AttemptStatus::Success {
            self.successes.fetch_add(1, Ordering::SeqCst);
        }
        if self.reports.fetch_add(1, Ordering::SeqCst) + 1 >= self.expected {
            self.done.notify_one();
        }
    }
}

/// Runs the makespan benchmark.
pub async fn run(args: &MakespanArgs) -> anyhow::Result<()> {
    let scratch = crate::scratch_dir()?;
    let key = client_key(&scratch)?;
    let sim = SimProcess::start(&SimArgs {
        listen: SocketAddr::from(([127, 0, 0, 1], args.base_port)),
        devices: args.devices,
        lines: args.lines,
        rsa_every: 0,
        latency_ms: u64::try_from(args.latency.as_millis())?,
        authorized_key: key.with_extension("pub"),
        max_lifetime_secs: 3_600,
    })
    .await?;
    let fleet = devices(args.devices, args.base_port, &key)?;
    let known = KnownHosts::open(&scratch.path().join("known_hosts.json")).await?;
    let executor = Arc::new(SshExecutor::new(limits(), known.clone()));
    // The same pin file twice: the first pass pins every host key, the second finds them.
    for label in ["first use (pins)", "pinned"] {
        let sim_cpu = cpu_time(sim.pid());
        scheduled_pass(args, &executor, fleet.clone(), label).await?;
        let sim_cpu = cpu_time(sim.pid()) - sim_cpu;
        println!(
            "makespan: {label}: simulator process CPU {:.2}s ({:.3} ms/backup): the devices' half, on the same cores",
            sim_cpu.as_secs_f64(),
            sim_cpu.as_secs_f64() * 1000.0 / args.devices.max(1) as f64
        );
        println!(
            "makespan: {label}: known hosts file written {} times so far",
            known.file_writes()
        );
        println!(
            "makespan: simulator process peak RSS {:.1} MiB, open fds {}",
            peak_rss_mib(sim.pid()),
            open_fds(sim.pid())
        );
    }
    sim.stop().await;
    Ok(())
}

/// One scheduled pass over `fleet`; prints its figures.
async fn scheduled_pass(
    args: &MakespanArgs,
    executor: &Arc<SshExecutor<KnownHosts>>,
    fleet: Vec<Device>,
    label: &str,
) -> anyhow::Result<()> {
    // Resets this process's peak RSS (VmHWM), so each pass reports its own.
    if let Err(e) = std::fs::write("/proc/self/clear_refs", "5") {
        eprintln!("warning: cannot reset the peak RSS: {e}");
    }
    let sink = Arc::new(CountingSink {
        expected: args.devices,
        ..CountingSink::default()
    });
    let (token, tracker) = (CancellationToken::new(), TaskTracker::new());
    let settings = SchedulerSettings {
        interval: Duration::from_secs(86_400),
        jitter: Duration::ZERO,
        max_concurrent: args.concurrency,
        poller_id: "bench".to_owned(),
        clock: WallClock::system(),
    };
    let ideal = args
        .latency
        .mul_f64(args.devices as f64 / args.concurrency as f64);
    let bound = ideal * 10 + Duration::from_secs(60);
    let (rss0, cpu0, started) = (rss_mib("self"), cpu_time("self"), Instant::now());
    let _handle = Scheduler::spawn(
        executor.clone(),
        sink.clone(),
        Locker::connect("local", "bench")?,
        fleet,
        settings,
        token.clone(),
        &tracker,
    );
    let mut peak_fds = 0;
    while sink.reports.load(Ordering::SeqCst) < args.devices && started.elapsed() < bound {
        peak_fds = peak_fds.max(open_fds("self"));
        tokio::select! {
            () = sink.done.notified() => {}
            () = tokio::time::sleep(FD_SAMPLE_EVERY) => {}
        }
    }
    let wall = started.elapsed();
    let cpu = cpu_time("self") - cpu0;
    token.cancel();
    tracker.close();
    tracker.wait().await;
    let ok = sink.successes.load(Ordering::SeqCst);
    println!(
        "makespan: {label}: devices={} latency={:?} max_concurrent={} lines={}: wall {:.2}s, ideal {:.2}s, ratio {:.3} (target <= 1.15), ok={ok} reports={}",
        args.devices,
        args.latency,
        args.concurrency,
        args.lines,
        wall.as_secs_f64(),
        ideal.as_secs_f64(),
        wall.as_secs_f64() / ideal.as_secs_f64(),
        sink.reports.load(Ordering::SeqCst)
    );
    println!(
        "makespan: {label}: bench process peak RSS {:.1} MiB (RSS before the pass {rss0:.1} MiB, target < 256), peak open fds {peak_fds} (soft limit {}), CPU {:.2}s ({:.3} ms/backup)",
        peak_rss_mib("self"),
        fd_limit(),
        cpu.as_secs_f64(),
        cpu.as_secs_f64() * 1000.0 / ok.max(1) as f64,
    );
    Ok(())
}
