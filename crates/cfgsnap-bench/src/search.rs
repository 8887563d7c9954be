//! Search (DESIGN.md §15): `scope=current` over D devices with L-line
//! configurations, without and with the cache, next to `grep -F` on the
//! same plaintext as the floor (CPU per scanned MB); then `scope=history`
//! over D × V stored versions, which must answer within the deadline with
//! `partial` and a cursor that moves on.
//!
//! The store is SQLite in a scratch directory. Versions for the history
//! case are two real ingests per device, then copies of those sealed rows
//! made in bulk with SQL (a copy decrypts: its record is bound to the
//! device and hash, which it keeps), alternating, so every version differs
//! from the one before.

use std::time::{Duration, Instant};

use chrono::Utc;
use sqlx::sqlite::SqlitePoolOptions;

use cfgsnap::config::{SearchSettings, StoreSettings};
use cfgsnap::id::{DeviceId, TenantId};
use cfgsnap::search::{Query, Request, Scope, Searcher};
use cfgsnap::store::Store;
use cfgsnap::store::history::Secrets;

use crate::corpus;
use crate::ingest::{event, fleet};
use crate::machine::{cpu_time, ms};

/// The line planted in one device of every `PLANT_EVERY`.
const NEEDLE: &str = "add address=203.0.113.7 secret=bench service=login";
const PLANT_EVERY: usize = 100;

/// Options of `search`.
#[derive(Debug, clap::Args)]
pub struct SearchArgs {
    /// Devices, each with one configuration (current case).
    #[arg(long, default_value_t = 10_000)]
    devices: usize,
    /// Lines per configuration (current case).
    #[arg(long, default_value_t = 1_000)]
    lines: usize,
    /// `real`: configurations cut from the real exports in `--corpus` (their
    /// line lengths, about 55 bytes a line); `synthetic`: generated firewall
    /// rules of about 100 bytes a line.
    #[arg(long, default_value = "real")]
    shape: String,
    /// Directory of `.rsc` exports for `--shape real`.
    #[arg(long, default_value = "../shared/corpus/routeros")]
    corpus: std::path::PathBuf,
    /// Timed searches per case.
    #[arg(long, default_value_t = 5)]
    repeats: usize,
    /// Versions per device for the history case (0: skip it).
    #[arg(long, default_value_t = 100)]
    versions: usize,
    /// Lines per configuration in the history case.
    #[arg(long, default_value_t = 100)]
    history_lines: usize,
    /// The `[search] deadline` of the history case.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    deadline: Duration,
}

/// Runs the search benchmark.
pub async fn run(args: &SearchArgs) -> anyhow::Result<()> {
    let scratch = crate::scratch_dir()?;
    let url = format!("sqlite://{}", scratch.path().join("bench.db").display());
    let settings = StoreSettings {
        url: url.clone(),
        encryption_key_file: Some(scratch.path().join("master.key")),
        ..StoreSettings::default()
    };
    let store = Store::connect(&settings).await?;
    let tenant = TenantId::parse("bench")?;
    let ids: Vec<DeviceId> = (0..args.devices)
        .map(|i| DeviceId::parse(&format!("bench-{i:05}")))
        .collect::<Result<_, _>>()?;
    store.sync_fleet(&fleet(&tenant, &ids)).await?;

    let real = match args.shape.as_str() {
        "real" => Some(corpus::real_lines(&args.corpus)?),
        "synthetic" => None,
        other => anyhow::bail!("unknown --shape {other:?}: real or synthetic"),
    };
    let texts = seed(&store, &tenant, &ids, args.lines, real.as_deref()).await?;
    let megabytes = texts.iter().map(String::len).sum::<usize>() as f64 / 1e6;
    current(&store, args, megabytes).await?;
    grep_floor(&scratch, &texts, megabytes)?;
    drop(texts);
    if args.versions > 0 {
        history(&store, &url, &tenant, &ids, args).await?;
    }
    store.close().await;
    Ok(())
}

/// Ingests one configuration per device (the needle in every 100th).
async fn seed(
    store: &Store,
    tenant: &TenantId,
    ids: &[DeviceId],
    lines: usize,
    real: Option<&[String]>,
) -> anyhow::Result<Vec<String>> {
    let started = Instant::now();
    let mut texts = Vec::with_capacity(ids.len());
    for (i, id) in ids.iter().enumerate() {
        let mut text = match real {
            Some(real) => corpus::real_export(real, lines, i as u64),
            None => corpus::export(lines, i as u64),
        };
        if i % PLANT_EVERY == 0 {
            text.push_str("/radius\n");
            text.push_str(NEEDLE);
            text.push('\n');
        }
        store.ingest(&event(tenant, id, &text)).await?;
        texts.push(text);
    }
    println!(
        "search: seeded {} devices × {lines} lines ({} shape) in {:.1} s",
        ids.len(),
        if real.is_some() { "real" } else { "synthetic" },
        started.elapsed().as_secs_f64()
    );
    Ok(texts)
}

fn request(scope: Scope) -> Request {
    Request {
        q: "203.0.113.7".into(),
        scope,
        limit: Some(1000),
        ..Request::default()
    }
}

/// `scope=current` over every device, cold (no cache) and warm (cache).
async fn current(store: &Store, args: &SearchArgs, megabytes: f64) -> anyhow::Result<()> {
    let query = Query::parse(&request(Scope::Current))?;
    let expected = args.devices.div_ceil(PLANT_EVERY);
    let off = SearchSettings {
        deadline: Duration::from_secs(300),
        cache_bytes: 0,
    };
    let on = SearchSettings {
        cache_bytes: (megabytes * 3e6) as u64,
        ..off.clone()
    };
    for (label, settings) in [("no cache", off), ("cache on", on)] {
        let searcher = Searcher::new(store.clone(), &settings);
        if settings.cache_bytes > 0 {
            searcher.search("bench", &query, Secrets::Shown).await?;
        }
        for (who, secrets) in [("admin", Secrets::Shown), ("viewer", Secrets::Masked)] {
            if settings.cache_bytes > 0 && secrets == Secrets::Masked {
                // The masked copies are made once, by the first viewer.
                searcher.search("bench", &query, secrets).await?;
            }
            let mut times = Vec::new();
            let cpu_before = cpu_time("self");
            for _ in 0..args.repeats {
                let started = Instant::now();
                let page = searcher.search("bench", &query, secrets).await?;
                times.push(started.elapsed());
                anyhow::ensure!(!page.partial, "the current search ran out of time");
                anyhow::ensure!(page.items.len() == expected, "hits: {}", page.items.len());
            }
            let cpu = (cpu_time("self") - cpu_before).as_secs_f64() / args.repeats as f64;
            times.sort();
            println!(
                "search: current, {} devices, {label}, {who}: median {} ms, min {} ms; CPU {:.0} ms = {:.2} ms per scanned MB ({megabytes:.0} MB)",
                args.devices,
                ms(times[times.len() / 2]),
                ms(times[0]),
                cpu * 1000.0,
                cpu * 1000.0 / megabytes,
            );
        }
    }
    Ok(())
}

/// `grep -F -c` over the same plaintext, one file: the floor.
fn grep_floor(scratch: &tempfile::TempDir, texts: &[String], megabytes: f64) -> anyhow::Result<()> {
    let path = scratch.path().join("plain.rsc");
    std::fs::write(&path, texts.concat())?;
    let stat = || std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let before = crate::machine::children_cpu_time_of_stat_line(&stat());
    let started = Instant::now();
    let out = std::process::Command::new("grep")
        .args(["-F", "-c", "203.0.113.7"])
        .arg(&path)
        .output()?;
    let wall = started.elapsed();
    let cpu = crate::machine::children_cpu_time_of_stat_line(&stat()) - before;
    std::fs::remove_file(&path)?;
    println!(
        "search: grep -F -c on the same {megabytes:.0} MB (page cache warm): {} ms wall, CPU {:.0} ms = {:.2} ms per MB; {} matching lines",
        ms(wall),
        cpu.as_secs_f64() * 1000.0,
        cpu.as_secs_f64() * 1000.0 / megabytes,
        String::from_utf8_lossy(&out.stdout).trim()
    );
    Ok(())
}

/// `scope=history` over devices × versions: deadline, partial, cursor.
async fn history(
    store: &Store,
    url: &str,
    tenant: &TenantId,
    ids: &[DeviceId],
    args: &SearchArgs,
) -> anyhow::Result<()> {
    let started = Instant::now();
    // Two real versions per device; the needle comes and goes in one
    // device of every 10 × PLANT_EVERY, so the page never fills and the
    // search runs into its deadline.
    let first_a = first_id_after(url).await? + 1;
    for (i, id) in ids.iter().enumerate() {
        let text = corpus::export(args.history_lines, (i as u64) << 20);
        store.ingest(&event(tenant, id, &text)).await?;
    }
    let first_b = first_id_after(url).await? + 1;
    for (i, id) in ids.iter().enumerate() {
        let mut text = corpus::export(args.history_lines, (i as u64) << 20);
        text.push_str("/system note\nset note=b\n");
        if i % (10 * PLANT_EVERY) == 0 {
            text.push_str(&format!("/radius\n{NEEDLE}\n"));
        }
        store.ingest(&event(tenant, id, &text)).await?;
    }
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await?;
    let n = ids.len() as i64;
    for k in 2..args.versions {
        let from = if k % 2 == 0 { first_a } else { first_b };
        sqlx::query(
            "INSERT INTO snapshot (tenant_id, device_id, sha256_hash, collected_at, trigger, \
             routeros_version, size_bytes, line_count, normalization_version, warnings, poller_id, \
             key_id, nonce, content) \
             SELECT tenant_id, device_id, sha256_hash, $1, trigger, routeros_version, size_bytes, \
             line_count, normalization_version, warnings, poller_id, key_id, nonce, content \
             FROM snapshot WHERE snapshot_id BETWEEN $2 AND $3 ORDER BY snapshot_id",
        )
        .bind(Utc::now())
        .bind(from)
        .bind(from + n - 1)
        .execute(&pool)
        .await?;
    }
    pool.close().await;
    let total = ids.len() * args.versions.max(2);
    println!(
        "search: history store: {} devices × {} versions = {total} snapshots of {} lines, made in {:.0} s",
        ids.len(),
        args.versions.max(2),
        args.history_lines,
        started.elapsed().as_secs_f64()
    );
    let settings = SearchSettings {
        deadline: args.deadline,
        cache_bytes: 0,
    };
    let searcher = Searcher::new(store.clone(), &settings);
    let mut request = request(Scope::History);
    for page_no in 1..=2 {
        let cpu_before = cpu_time("self");
        let started = Instant::now();
        let page = searcher
            .search(tenant.as_str(), &Query::parse(&request)?, Secrets::Shown)
            .await?;
        let wall = started.elapsed();
        let cpu = cpu_time("self") - cpu_before;
        let lives = page.items.len();
        let stopped_at = match &page.next_cursor {
            Some(c) => cfgsnap::search::query::Cursor::decode(c)?.d,
            None => "-".to_owned(),
        };
        println!(
            "search: history page {page_no} (deadline {}): answered in {} ms, partial={}, {lives} line lives, the cursor continues at device {stopped_at}; CPU {:.1} s",
            humantime::format_duration(args.deadline),
            ms(wall),
            page.partial,
            cpu.as_secs_f64()
        );
        match page.next_cursor {
            Some(c) => request.cursor = Some(c),
            None => break,
        }
    }
    Ok(())
}

/// The highest snapshot id so far (0 when empty).
async fn first_id_after(url: &str) -> anyhow::Result<i64> {
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await?;
    let id: Option<i64> = sqlx::query_scalar("SELECT MAX(snapshot_id) FROM snapshot")
        .fetch_one(&pool)
        .await?;
    pool.close().await;
    Ok(id.unwrap_or(0))
}
