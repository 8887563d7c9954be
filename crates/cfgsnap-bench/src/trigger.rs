//! Trigger latency (issue #6, item 3): `POST …/config-snapshot/trigger` on
//! N distinct zero-latency simulated devices at once, end to end over HTTP,
//! against a node built with `App::build` on the embedded and the served
//! stack; next to a bare collector run (the executor alone, as `collect`
//! does) over the same devices, whose latency the overhead is measured from.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use cfgsnap::api::Role;
use cfgsnap::backup::executor::SshExecutor;
use cfgsnap::backup::known_hosts::KnownHosts;
use cfgsnap::backup::{Device, Executor as _, Trigger};

use crate::collect::{client_key, devices, limits};
use crate::machine::{cpu_time, ms, percentile};
use crate::node::{Infra, Stack, TestNode};
use crate::sim_child::{SimArgs, SimProcess};
use tempfile::TempDir;

/// Per-request bound: far above any expected latency, so a stuck call ends the run.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Options of `trigger`.
#[derive(Debug, clap::Args)]
pub struct TriggerArgs {
    /// Devices, each triggered once per round, all at once.
    #[arg(long, default_value_t = 200)]
    devices: usize,
    /// Measured rounds (after one warm-up round that pins the host keys).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Also this many triggers one at a time (0: none), against as many
    /// one-at-a-time collector runs: the overhead without CPU contention.
    #[arg(long, default_value_t = 100)]
    sequential: usize,
    /// Lines of each generated config.
    #[arg(long, default_value_t = 1_000)]
    lines: usize,
    /// Stacks to measure (comma separated).
    #[arg(
        long,
        value_parser = crate::node::parse_stack,
        value_delimiter = ',',
        default_value = "embedded,served"
    )]
    stack: Vec<Stack>,
    /// Port of device 0 (devices use consecutive ports).
    #[arg(long, default_value_t = 28_000)]
    base_port: u16,
    /// PostgreSQL server of the served stack (trust auth).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
    pg_url: String,
}

/// Latencies of one kind of call, with the failures by kind.
#[derive(Default)]
struct Samples {
    ok: Vec<Duration>,
    failed: BTreeMap<String, usize>,
    cpu: Duration,
}

impl Samples {
    fn add(&mut self, other: Samples) {
        self.ok.extend(other.ok);
        for (k, v) in other.failed {
            *self.failed.entry(k).or_insert(0) += v;
        }
        self.cpu += other.cpu;
    }

    fn quantiles(&mut self) -> [Duration; 3] {
        self.ok.sort();
        [
            percentile(&self.ok, 50.0),
            percentile(&self.ok, 99.0),
            self.ok.last().copied().unwrap_or_default(),
        ]
    }

    /// Prints p50/p99/max, and the overhead over `base` when given.
    fn print(&mut self, label: &str, base: Option<[Duration; 3]>) {
        let q = self.quantiles();
        let cpu_per = self.cpu.as_secs_f64() * 1000.0 / self.ok.len().max(1) as f64;
        println!(
            "trigger: {label}: n={} failed={:?} p50 {} ms, p99 {} ms, max {} ms, bench process CPU {cpu_per:.3} ms/call",
            self.ok.len(),
            self.failed,
            ms(q[0]),
            ms(q[1]),
            ms(q[2]),
        );
        if let Some(b) = base {
            let over = |i: usize| (q[i].as_secs_f64() - b[i].as_secs_f64()) * 1000.0;
            println!(
                "trigger: {label}: overhead over the bare collector: p50 {:+.3} ms, p99 {:+.3} ms (target < 10), max {:+.3} ms",
                over(0),
                over(1),
                over(2)
            );
        }
    }
}

/// Runs the trigger-latency benchmark.
pub async fn run(args: &TriggerArgs) -> anyhow::Result<()> {
    let scratch = crate::scratch_dir()?;
    let key = client_key(&scratch)?;
    let sim = SimProcess::start(&SimArgs {
        listen: SocketAddr::from(([127, 0, 0, 1], args.base_port)),
        devices: args.devices,
        lines: args.lines,
        rsa_every: 0,
        latency_ms: 0,
        authorized_key: key.with_extension("pub"),
        max_lifetime_secs: 3_600,
    })
    .await?;
    let fleet = devices(args.devices, args.base_port, &key)?;
    println!(
        "trigger: {} devices, {} lines, zero latency, {} measured rounds of {} concurrent calls, {} sequential",
        args.devices, args.lines, args.rounds, args.devices, args.sequential
    );
    let (mut bare, mut bare_seq) = bare_collector(args, &fleet, &scratch).await?;
    let base = bare.quantiles();
    bare.print("bare collector, concurrent", None);
    let base_seq = bare_seq.quantiles();
    if args.sequential > 0 {
        bare_seq.print("bare collector, sequential", None);
    }
    for &stack in &args.stack {
        let infra = Infra::try_new(stack, &args.pg_url).await?;
        let result = on_node(args, &infra, &fleet, &key).await;
        infra.finish().await;
        let (mut concurrent, mut sequential) = result?;
        concurrent.print(&format!("{stack:?} node, concurrent"), Some(base));
        if args.sequential > 0 {
            sequential.print(&format!("{stack:?} node, sequential"), Some(base_seq));
        }
    }
    sim.stop().await;
    Ok(())
}

/// The executor alone: a warm-up round (pins), the measured rounds, then
/// the sequential calls.
async fn bare_collector(
    args: &TriggerArgs,
    fleet: &[Device],
    scratch: &TempDir,
) -> anyhow::Result<(Samples, Samples)> {
    let known = KnownHosts::open(&scratch.path().join("known_hosts.json")).await?;
    let executor = Arc::new(SshExecutor::new(limits(), known));
    let call = |d: Device| {
        let executor = executor.clone();
        async move {
            executor
                .run(&d, Trigger::Manual)
                .await
                .map(|_| ())
                .map_err(|e| e.kind().as_str().to_owned())
        }
    };
    concurrent_round(fleet, &call).await;
    let mut all = Samples::default();
    for _ in 0..args.rounds {
        all.add(concurrent_round(fleet, &call).await);
    }
    let seq = sequential_calls(fleet, args.sequential, &call).await;
    Ok((all, seq))
}

/// A node on `infra` (API, responder, ingester; no scheduler): a warm-up
/// round, the measured rounds, the sequential calls.
async fn on_node(
    args: &TriggerArgs,
    infra: &Infra,
    fleet: &[Device],
    key: &std::path::Path,
) -> anyhow::Result<(Samples, Samples)> {
    let ids: Vec<(String, u16)> = fleet.iter().map(|d| (d.id.to_string(), d.port)).collect();
    let roles =
        "api = true\nscheduler = false\nresponder = true\ningester = true\nretention = false";
    let node = TestNode::try_start(&crate::node::config(infra, roles, &ids, key)).await?;
    let token = infra.token("bench", "bench", Role::Operator);
    let http = crate::node::http_client(REQUEST_TIMEOUT)?;
    let base = node.address.clone();
    let call = |d: Device| {
        let (token, http) = (token.clone(), http.clone());
        let url = format!(
            "{base}/api/tenants/bench/devices/{}/config-snapshot/trigger",
            d.id
        );
        async move {
            match http.post(url).bearer_auth(token).send().await {
                Ok(r) if r.status() == 201 => r
                    .bytes()
                    .await
                    .map(|_| ())
                    .map_err(|_| "transport".to_owned()),
                Ok(r) => Err(format!("http {}", r.status().as_u16())),
                Err(_) => Err("transport".to_owned()),
            }
        }
    };
    // Each 201 published one snapshot event, which the ingester stores after
    // the response; every phase starts once the previous one's are stored.
    let mut published = concurrent_round(fleet, &call).await.ok.len();
    await_ingested(&http, &base, published).await?;
    let mut all = Samples::default();
    for _ in 0..args.rounds {
        let round = concurrent_round(fleet, &call).await;
        published += round.ok.len();
        all.add(round);
        await_ingested(&http, &base, published).await?;
    }
    let seq = sequential_calls(fleet, args.sequential, &call).await;
    node.try_stop().await?;
    Ok((all, seq))
}

/// Waits until the node's ingester has handled `events` snapshot events
/// (`cfgsnap_ingest_total` over every final result), so that a measured phase
/// does not share the cores with the previous phase's ingest.
async fn await_ingested(http: &reqwest::Client, base: &str, events: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    loop {
        let text = http
            .get(format!("{base}/metrics"))
            .send()
            .await?
            .text()
            .await?;
        let handled: usize = text
            .lines()
            .filter(|l| l.starts_with("cfgsnap_ingest_total{") && !l.contains("\"retry\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<usize>().ok())
            .sum();
        if handled >= events {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the ingester handled {handled} of {events} snapshot events within {REQUEST_TIMEOUT:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One call per device, all at once; the latency of each from the common start.
async fn concurrent_round<F, Fut>(fleet: &[Device], call: &F) -> Samples
where
    F: Fn(Device) -> Fut,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let (cpu0, started) = (cpu_time("self"), Instant::now());
    let mut set = JoinSet::new();
    for d in fleet {
        let fut = call(d.clone());
        set.spawn(async move { fut.await.map(|()| started.elapsed()) });
    }
    let mut samples = Samples::default();
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok(Ok(latency)) => samples.ok.push(latency),
            Ok(Err(kind)) => *samples.failed.entry(kind).or_insert(0) += 1,
            Err(_) => *samples.failed.entry("panic".to_owned()).or_insert(0) += 1,
        }
    }
    samples.cpu = cpu_time("self") - cpu0;
    samples
}

/// `n` calls one after the other, cycling through the devices.
async fn sequential_calls<F, Fut>(fleet: &[Device], n: usize, call: &F) -> Samples
where
    F: Fn(Device) -> Fut,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let cpu0 = cpu_time("self");
    let mut samples = Samples::default();
    for d in fleet.iter().cycle().take(n) {
        let started = Instant::now();
        match call(d.clone()).await {
            Ok(()) => samples.ok.push(started.elapsed()),
            Err(kind) => *samples.failed.entry(kind).or_insert(0) += 1,
        }
    }
    samples.cpu = cpu_time("self") - cpu0;
    samples
}
