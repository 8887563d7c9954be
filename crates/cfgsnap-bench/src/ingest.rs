//! Ingest rate (issue #6, item 4): snapshot events straight into
//! `Store::ingest`, one at a time as the local ingest loop takes them, or in
//! `--lanes` side by side as the NATS ingester does, on SQLite or
//! PostgreSQL; 1,000-line configs, a set share of them changed. With
//! `--webhook`, every changed event also queues a webhook delivery in its
//! transaction, and the dispatcher delivers them meanwhile.

use std::time::{Duration, Instant};

use chrono::Utc;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};

use cfgsnap::backup::normalize::{NORMALIZATION_VERSION, sha256_hex};
use cfgsnap::backup::{Command, Limits, Trigger};
use cfgsnap::config::{Fleet, StoreSettings, Tenant};
use cfgsnap::id::{DeviceId, TenantId};
use cfgsnap::store::Store;
use cfgsnap::store::snapshot::{Ingested, NewSnapshot};

use crate::corpus;
use crate::machine::{ms, percentile};
use cfgsnap_testkit::ScratchDb;
use tempfile::TempDir;

/// Where the store lives.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Backend {
    /// A fresh SQLite file in a scratch directory.
    Sqlite,
    /// A fresh database on `--pg-url`'s server, dropped afterwards.
    Postgres,
}

/// Options of `ingest`.
#[derive(Debug, clap::Args)]
pub struct IngestArgs {
    /// Store backend.
    #[arg(long, value_enum, default_value = "sqlite")]
    store: Backend,
    /// Events measured (after one warm-up snapshot per device).
    #[arg(long, default_value_t = 20_000)]
    events: usize,
    /// Devices the events are spread over (round robin).
    #[arg(long, default_value_t = 100)]
    devices: usize,
    /// Lines per config.
    #[arg(long, default_value_t = 1_000)]
    lines: usize,
    /// Share of events that carry a changed config (the rest are duplicates).
    #[arg(long, default_value_t = 0.2)]
    changed: f64,
    /// Server of the scratch PostgreSQL database (trust auth).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
    pg_url: String,
    /// Events stored at once, as the NATS ingester's lanes do (each device
    /// in one lane); with more than one, the rate is over wall time.
    #[arg(long, default_value_t = 1)]
    lanes: usize,
    /// Route `config.changed` to one webhook target, delivered to a local
    /// receiver by the dispatcher while the events are ingested.
    #[arg(long)]
    webhook: bool,
}

/// Runs the ingest benchmark.
pub async fn run(args: &IngestArgs) -> anyhow::Result<()> {
    let scratch = crate::scratch_dir()?;
    match args.store {
        Backend::Sqlite => {
            let url = format!("sqlite://{}", scratch.path().join("bench.db").display());
            measure(args, &url, &scratch).await
        }
        Backend::Postgres => {
            let db = ScratchDb::create(&args.pg_url).await?;
            let result = measure(args, &db.url(), &scratch).await;
            if let Err(e) = db.drop_now().await {
                eprintln!("warning: {e:#}");
            }
            result
        }
    }
}

async fn measure(args: &IngestArgs, url: &str, scratch: &TempDir) -> anyhow::Result<()> {
    let settings = StoreSettings {
        url: url.to_owned(),
        encryption_key_file: Some(scratch.path().join("master.key")),
        ..StoreSettings::default()
    };
    let store = Store::connect(&settings).await?;
    let tenant = TenantId::parse("bench")?;
    let ids: Vec<DeviceId> = (0..args.devices)
        .map(|i| DeviceId::parse(&format!("bench-{i}")))
        .collect::<Result<_, _>>()?;
    store.sync_fleet(&fleet(&tenant, &ids)).await?;
    let mut texts: Vec<String> = (0..args.devices)
        .map(|i| corpus::export(args.lines, i as u64))
        .collect();
    for (id, text) in ids.iter().zip(&texts) {
        store.ingest(&event(&tenant, id, text)).await?;
    }
    let delivering = if args.webhook {
        Some(crate::notify::Delivering::start(&store, scratch.path(), 64).await?)
    } else {
        None
    };
    let lanes = args.lanes.clamp(1, args.devices.max(1));
    let cpu_before = crate::machine::cpu_time("self");
    let started = Instant::now();
    let mut runs = tokio::task::JoinSet::new();
    for lane in 0..lanes {
        // Lane `lane` owns the devices d with d % lanes == lane.
        let own: Vec<(DeviceId, String)> = ids
            .iter()
            .zip(texts.iter_mut())
            .enumerate()
            .filter(|(d, _)| d % lanes == lane)
            .map(|(_, (id, text))| (id.clone(), std::mem::take(text)))
            .collect();
        let events = args.events / lanes + usize::from(lane < args.events % lanes);
        let (store, tenant, changed) = (store.clone(), tenant.clone(), args.changed);
        runs.spawn(
            async move { run_lane(&store, &tenant, own, events, changed, lane as u64).await },
        );
    }
    let mut tally = Tally::default();
    while let Some(done) = runs.join_next().await {
        tally.add(done??);
    }
    let wall = started.elapsed();
    let Tally {
        mut samples,
        stored,
        duplicate,
        other,
    } = tally;
    let cpu = crate::machine::cpu_time("self") - cpu_before;
    let total: Duration = samples.iter().sum();
    samples.sort_unstable();
    let (rate, basis) = if lanes == 1 {
        (
            args.events as f64 / total.as_secs_f64(),
            "time inside ingest only",
        )
    } else {
        (
            args.events as f64 / wall.as_secs_f64(),
            "wall time, event generation included",
        )
    };
    println!(
        "ingest: store={} events={} devices={} lines={} changed={:.0}% lanes={lanes} webhook={}: {rate:.0} events/s ({basis}), stored={stored} duplicate={duplicate} other={other}",
        store.backend(),
        args.events,
        args.devices,
        args.lines,
        args.changed * 100.0,
        args.webhook,
    );
    println!(
        "ingest: latency p50={} ms p99={} ms max={} ms; bench process CPU {:.3} ms/event (includes event generation)",
        ms(percentile(&samples, 50.0)),
        ms(percentile(&samples, 99.0)),
        ms(percentile(&samples, 100.0)),
        cpu.as_secs_f64() * 1000.0 / args.events as f64
    );
    if let Some(delivering) = delivering {
        let (pending, _) = store.pending_notifications().await?;
        println!(
            "ingest: webhook target on: {} delivered during the run, {pending} still queued at its end",
            delivering.received()
        );
        delivering.stop().await;
    }
    store.close().await;
    Ok(())
}

/// What the lanes measured.
#[derive(Default)]
struct Tally {
    samples: Vec<Duration>,
    stored: u64,
    duplicate: u64,
    other: u64,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.samples.extend(other.samples);
        self.stored += other.stored;
        self.duplicate += other.duplicate;
        self.other += other.other;
    }
}

/// Ingests `events` events over `devices` (round robin), one at a time,
/// changing a share `changed` of them; times each `Store::ingest`.
async fn run_lane(
    store: &Store,
    tenant: &TenantId,
    mut devices: Vec<(DeviceId, String)>,
    events: usize,
    changed: f64,
    seed: u64,
) -> anyhow::Result<Tally> {
    let mut rng = StdRng::seed_from_u64(42 + seed);
    let mut tally = Tally {
        samples: Vec::with_capacity(events),
        ..Tally::default()
    };
    for n in 0..events {
        let d = n % devices.len();
        let (id, text) = &mut devices[d];
        if rng.gen_bool(changed) {
            // A few lines of ~1,000; retry the rare mutation that changed none.
            for attempt in 0..10u64 {
                let mutated = corpus::mutate(text, 0.003, (n as u64) << 8 | seed << 4 | attempt);
                if mutated != *text {
                    *text = mutated;
                    break;
                }
            }
        }
        let snap = event(tenant, id, text);
        let t = Instant::now();
        match store.ingest(&snap).await? {
            Ingested::Created { .. } => tally.stored += 1,
            Ingested::Duplicate { .. } => tally.duplicate += 1,
            Ingested::Stale { .. } => tally.other += 1,
        }
        tally.samples.push(t.elapsed());
    }
    Ok(tally)
}

/// A scheduled snapshot event of `text` for `device`, collected now.
pub fn event(tenant: &TenantId, device: &DeviceId, text: &str) -> NewSnapshot {
    NewSnapshot {
        tenant_id: tenant.clone(),
        device_id: device.clone(),
        sha256_hash: sha256_hex(text),
        collected_at: Utc::now(),
        trigger: Trigger::Scheduled,
        routeros_version: Some("7.16".to_owned()),
        config_text: text.to_owned(),
        normalization_version: NORMALIZATION_VERSION,
        poller_id: Some("bench".to_owned()),
        warnings: Vec::new(),
    }
}

/// A fleet of `ids` in one tenant (only ids and tenant matter to the store).
pub fn fleet(tenant: &TenantId, ids: &[DeviceId]) -> Fleet {
    let devices = ids
        .iter()
        .map(|id| crate::collect::device(id.clone(), tenant.clone(), 0, None))
        .collect();
    Fleet {
        tenants: vec![Tenant {
            id: tenant.clone(),
            name: "bench".to_owned(),
        }],
        devices,
        limits: Limits {
            connect_timeout: Duration::from_secs(30),
            command_timeout: Duration::from_secs(30),
            job_timelimit: Duration::from_secs(60),
            max_config_bytes: 16 << 20,
            command: Command::Fixed("/export show-sensitive".to_owned()),
        },
        warnings: Vec::new(),
    }
}
