//! History reads (issue #6, item 6): a fresh PostgreSQL database filled in
//! bulk (`INSERT … SELECT generate_series`) with N snapshots across D devices,
//! interleaved as scheduled passes write them, each with its diff row and a
//! change summary, and each device's newest version noted on its row; then
//! a device's newest 50 snapshots and the pages behind them, through the
//! store's history functions and the HTTP API: p50/p99,
//! with the query plans of the two listing queries; over HTTP also the web
//! UI's fleet page (a page of 50 of the 10,000 devices, by name, and the
//! first pages by status and by last change) and device page.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use sqlx::Connection as _;

use cfgsnap::api::Role;
use cfgsnap::config::StoreSettings;
use cfgsnap::id::{DeviceId, TenantId};
use cfgsnap::store::Store;

use crate::machine::{ms, percentile};
use cfgsnap_testkit::ScratchDb;

use crate::node::{Infra, TestNode};
use tempfile::TempDir;

/// Page size of every listing (the API's default).
const PAGE: u32 = 50;
/// Per-request bound of the HTTP calls.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Options of `history`.
#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    /// Snapshots inserted in bulk.
    #[arg(long, default_value_t = 1_000_000)]
    snapshots: u64,
    /// Devices they are spread over (round robin).
    #[arg(long, default_value_t = 10_000)]
    devices: u64,
    /// Devices read (random, seeded); each is listed newest first, then paged back to its end.
    #[arg(long, default_value_t = 1_000)]
    reads: usize,
    /// Also read this many devices through the HTTP API (0: none).
    #[arg(long, default_value_t = 300)]
    http_reads: usize,
    /// PostgreSQL server (trust auth); a scratch database is created and dropped.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
    pg_url: String,
}

/// Latency samples by query kind.
#[derive(Default)]
struct Figures {
    newest: Vec<Duration>,
    older: Vec<Duration>,
    history_newest: Vec<Duration>,
    history_older: Vec<Duration>,
    fleet_page: Vec<Duration>,
    device_page: Vec<Duration>,
    fleet_by_status: Vec<Duration>,
    fleet_by_change: Vec<Duration>,
    rows: usize,
}

impl Figures {
    fn bucket(&mut self, slot: usize) -> &mut Vec<Duration> {
        match slot {
            0 => &mut self.newest,
            1 => &mut self.older,
            2 => &mut self.history_newest,
            3 => &mut self.history_older,
            4 => &mut self.fleet_page,
            5 => &mut self.device_page,
            6 => &mut self.fleet_by_status,
            _ => &mut self.fleet_by_change,
        }
    }

    fn print(&mut self, via: &str) {
        println!("history: {via}: {} rows read", self.rows);
        for (label, samples) in [
            ("newest 50 snapshots", &mut self.newest),
            ("an older page of 50 (before=)", &mut self.older),
            ("config-history newest 50", &mut self.history_newest),
            ("config-history older page", &mut self.history_older),
            (
                "web UI fleet page (50 devices, by name)",
                &mut self.fleet_page,
            ),
            (
                "web UI device page (state and 20 versions)",
                &mut self.device_page,
            ),
            (
                "web UI fleet page sorted by status (first 50)",
                &mut self.fleet_by_status,
            ),
            (
                "web UI fleet page sorted by last change (first 50)",
                &mut self.fleet_by_change,
            ),
        ] {
            if samples.is_empty() {
                continue;
            }
            samples.sort();
            println!(
                "history: {via}: {label}: n={} p50 {} ms, p99 {} ms, max {} ms",
                samples.len(),
                ms(percentile(samples, 50.0)),
                ms(percentile(samples, 99.0)),
                ms(percentile(samples, 100.0)),
            );
        }
    }
}

/// Runs the history-read benchmark.
pub async fn run(args: &HistoryArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.devices > 0 && args.snapshots >= args.devices,
        "need at least one snapshot per device"
    );
    let scratch = crate::scratch_dir()?;
    let db = ScratchDb::create(&args.pg_url).await?;
    let result = measure(args, &db.url(), &scratch).await;
    if let Err(e) = db.drop_now().await {
        eprintln!("warning: {e:#}");
    }
    result
}

async fn measure(args: &HistoryArgs, url: &str, scratch: &TempDir) -> anyhow::Result<()> {
    let settings = StoreSettings {
        url: url.to_owned(),
        encryption_key_file: Some(scratch.path().join("master.key")),
        ..StoreSettings::default()
    };
    let store = Store::connect(&settings).await?;
    let tenant = TenantId::parse("bench")?;
    let mut ids: Vec<DeviceId> = (0..args.devices)
        .map(|i| DeviceId::parse(&format!("bench-{i}")))
        .collect::<Result<_, _>>()?;
    // One device with a real, decryptable snapshot: the newest of the store,
    // which start-up opens to check the master key.
    let real = DeviceId::parse("bench-real")?;
    ids.push(real.clone());
    let started = Instant::now();
    store
        .sync_fleet(&crate::ingest::fleet(&tenant, &ids))
        .await?;
    println!(
        "history: {} devices mirrored through sync_fleet in {:.2}s",
        args.devices,
        started.elapsed().as_secs_f64()
    );
    let mut conn = sqlx::PgConnection::connect(url).await?;
    fill(&mut conn, args).await?;
    let text = crate::corpus::export(1_000, 0);
    store
        .ingest(&crate::ingest::event(&tenant, &real, &text))
        .await?;
    explain(
        &mut conn,
        &format!("bench-{}", args.devices / 2),
        args.devices,
    )
    .await?;
    let mut rng = StdRng::seed_from_u64(6);
    let mut store_figures = Figures::default();
    for _ in 0..args.reads {
        let device = format!("bench-{}", rng.gen_range(0..args.devices));
        read_via_store(&store, &device, &mut store_figures).await?;
    }
    store_figures.print("store");
    store.close().await;
    if args.http_reads > 0 {
        let mut http_figures = read_via_http(args, url, scratch, &mut rng).await?;
        http_figures.print("http api");
    }
    Ok(())
}

/// Inserts the snapshots, their diffs and change summaries in bulk, with
/// explicit ids so that device `i % devices` gets ids `i + 1`, increasing
/// with `collected_at` as ingest guarantees; then `ANALYZE`.
async fn fill(conn: &mut sqlx::PgConnection, args: &HistoryArgs) -> anyhow::Result<()> {
    let (n, d) = (args.snapshots as i64, args.devices as i64);
    let steps: [(&str, &'static str); 3] = [
        (
            "snapshot",
            "INSERT INTO snapshot (snapshot_id, tenant_id, device_id, sha256_hash, collected_at, trigger, \
             routeros_version, size_bytes, line_count, normalization_version, warnings, poller_id, key_id, nonce, content) \
             OVERRIDING SYSTEM VALUE \
             SELECT g + 1, 'bench', 'bench-' || (g % $2), md5(g::text) || md5((g + 1)::text), \
             timestamptz '2026-01-01 00:00:00+00' + g * interval '1 second', 'scheduled', '7.16', \
             100000, 1000, 1, '[]', 'bench', 'bench-key', decode(md5(g::text), 'hex'), \
             decode(repeat(md5(g::text), 4), 'hex') \
             FROM generate_series(0::bigint, $1 - 1) g",
        ),
        (
            "snapshot_diff",
            "INSERT INTO snapshot_diff (snapshot_id, previous_snapshot_id, tenant_id, lines_added, lines_removed, key_id, nonce, content) \
             SELECT g + 1, g + 1 - $2, 'bench', 1 + g % 7, g % 3, 'bench-key', decode(md5(g::text), 'hex'), \
             decode(repeat(md5(g::text), 8), 'hex') \
             FROM generate_series($2, $1 - 1) g",
        ),
        (
            "config_change",
            "INSERT INTO config_change (snapshot_id, tenant_id, component, summary, lines_added, lines_removed) \
             SELECT g + 1, 'bench', 'ip/firewall/filter', 'Added ' || (1 + g % 7) || ' firewall filter rules', \
             1 + g % 7, g % 3 \
             FROM generate_series($2, $1 - 1) g",
        ),
    ];
    for (label, sql) in steps {
        let started = Instant::now();
        sqlx::query(sql).bind(n).bind(d).execute(&mut *conn).await?;
        println!(
            "history: bulk {label}: {:.1}s",
            started.elapsed().as_secs_f64()
        );
    }
    // What ingest keeps beside each device: its newest version.
    let started = Instant::now();
    sqlx::query(
        "UPDATE device d SET newest_snapshot_id = m.newest \
         FROM (SELECT device_id, MAX(snapshot_id) AS newest FROM snapshot GROUP BY device_id) m \
         WHERE m.device_id = d.device_id",
    )
    .execute(&mut *conn)
    .await?;
    println!(
        "history: bulk device newest_snapshot_id: {:.1}s",
        started.elapsed().as_secs_f64()
    );
    // Ingest after this gets ids above the bulk ones.
    sqlx::query("SELECT setval(pg_get_serial_sequence('snapshot', 'snapshot_id'), $1)")
        .bind(n)
        .execute(&mut *conn)
        .await?;
    let started = Instant::now();
    sqlx::query("ANALYZE").execute(&mut *conn).await?;
    let size: String =
        sqlx::query_scalar("SELECT pg_size_pretty(pg_database_size(current_database()))")
            .fetch_one(&mut *conn)
            .await?;
    println!(
        "history: {n} snapshots over {d} devices ({} per device), ANALYZE {:.1}s, database {size}",
        n / d,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The store's `config_history` queries, as it sends them ($1 tenant,
/// $2 device, then a bound and the limit, or the page's id range).
const HISTORY_QUERIES: [(&str, &str); 3] = [
    (
        "config_history entries",
        "SELECT s.snapshot_id, s.collected_at, CAST(d.lines_added AS BIGINT), CAST(d.lines_removed AS BIGINT) \
         FROM snapshot s JOIN snapshot_diff d ON d.snapshot_id = s.snapshot_id \
         WHERE s.tenant_id = $1 AND s.device_id = $2 AND s.snapshot_id < $3 \
         ORDER BY s.snapshot_id DESC LIMIT $4",
    ),
    (
        "config_history changes (range on c, before the fix)",
        "SELECT c.snapshot_id, c.component, c.summary FROM config_change c \
         JOIN snapshot s ON s.snapshot_id = c.snapshot_id \
         WHERE s.tenant_id = $1 AND s.device_id = $2 AND c.snapshot_id BETWEEN $3 AND $4 \
         ORDER BY c.config_change_id",
    ),
    (
        "config_history changes (range on s, as the store runs it)",
        "SELECT c.snapshot_id, c.component, c.summary FROM config_change c \
         JOIN snapshot s ON s.snapshot_id = c.snapshot_id \
         WHERE s.tenant_id = $1 AND s.device_id = $2 AND s.snapshot_id BETWEEN $3 AND $4 \
         ORDER BY c.config_change_id",
    ),
];

/// Prints the generic plans (with timing) of the history queries for one
/// device's newest page: the plans PostgreSQL uses for a prepared statement
/// after its fifth run, which is what the store's pooled statements get.
async fn explain(conn: &mut sqlx::PgConnection, device: &str, devices: u64) -> anyhow::Result<()> {
    let newest: i64 =
        sqlx::query_scalar("SELECT max(snapshot_id) FROM snapshot WHERE device_id = $1")
            .bind(device)
            .fetch_one(&mut *conn)
            .await?;
    // Ids of one device are `devices` apart: the page's oldest id is 49 strides back.
    let oldest = newest - i64::from(PAGE - 1) * i64::try_from(devices)?;
    sqlx::query("SET plan_cache_mode = force_generic_plan")
        .execute(&mut *conn)
        .await?;
    for (i, (label, sql)) in HISTORY_QUERIES.iter().enumerate() {
        let prepare = format!("PREPARE bench_q{i}(text, text, bigint, bigint) AS {sql}");
        // Simple protocol: `$n` here are PREPARE's own parameters.
        sqlx::raw_sql(sqlx::AssertSqlSafe(prepare))
            .execute(&mut *conn)
            .await?;
        let args = if i == 0 {
            format!("'bench', '{device}', {}, {PAGE}", i64::MAX)
        } else {
            format!("'bench', '{device}', {oldest}, {newest}")
        };
        let plan: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) EXECUTE bench_q{i}({args})"
        )))
        .fetch_all(&mut *conn)
        .await
        .with_context(|| format!("explaining {label}"))?;
        println!("history: generic plan of {label} ({device}):");
        for line in plan {
            println!("history:   {line}");
        }
    }
    sqlx::query("RESET plan_cache_mode")
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Lists `device` newest first, then pages back to its first snapshot;
/// the same for its change timeline.
async fn read_via_store(store: &Store, device: &str, f: &mut Figures) -> anyhow::Result<()> {
    let mut before = None;
    // Bounded: a device has at most snapshots / devices + 1 pages.
    for page in 0..10_000 {
        let started = Instant::now();
        let rows = store.list_snapshots("bench", device, PAGE, before).await?;
        let took = started.elapsed();
        f.bucket(usize::from(page > 0)).push(took);
        f.rows += rows.len();
        match rows.last() {
            Some(last) if rows.len() == PAGE as usize => before = Some(last.id),
            _ => break,
        }
    }
    let mut before = None;
    for page in 0..10_000 {
        let started = Instant::now();
        let entries = store.config_history("bench", device, PAGE, before).await?;
        let took = started.elapsed();
        f.bucket(2 + usize::from(page > 0)).push(took);
        f.rows += entries.len();
        match entries.last() {
            Some(last) if entries.len() == PAGE as usize => before = Some(last.snapshot_id),
            _ => break,
        }
    }
    Ok(())
}

/// The same reads through a node serving the API on this database (API
/// role only, the devices configured so that they are active).
async fn read_via_http(
    args: &HistoryArgs,
    url: &str,
    scratch: &TempDir,
    rng: &mut StdRng,
) -> anyhow::Result<Figures> {
    let infra = Infra::on_store(url, &scratch.path().join("master.key"))?;
    let mut devices: Vec<(String, u16)> = (0..args.devices)
        .map(|i| (format!("bench-{i}"), 22))
        .collect();
    devices.push(("bench-real".to_owned(), 22));
    let key = crate::collect::client_key(scratch)?;
    let roles =
        "api = true\nscheduler = false\nresponder = false\ningester = false\nretention = false";
    let node = TestNode::try_start(&crate::node::config(&infra, roles, &devices, &key)).await?;
    let token = infra.token("bench", "bench", Role::Viewer);
    let http = crate::node::http_client(REQUEST_TIMEOUT)?;
    let mut f = Figures::default();
    let result = async {
        for _ in 0..args.http_reads {
            let device = format!("bench-{}", rng.gen_range(0..args.devices));
            // The web UI's fleet page after this device (a keyset page of 50
            // by name) and the device's page, server-rendered HTML.
            for (path, slot) in [
                (format!("/ui/t/bench/devices?after={device}"), 4),
                (format!("/ui/t/bench/devices/{device}"), 5),
                ("/ui/t/bench/devices?sort=status".to_owned(), 6),
                ("/ui/t/bench/devices?sort=last_change".to_owned(), 7),
            ] {
                let started = Instant::now();
                let r = http
                    .get(format!("{}{path}", node.address))
                    .bearer_auth(&token)
                    .send()
                    .await?;
                let status = r.status();
                r.bytes().await?;
                let took = started.elapsed();
                anyhow::ensure!(status == 200, "GET {path}: http {status}");
                f.bucket(slot).push(took);
            }
            for (kind, newest, older) in [("config-snapshots", 0, 1), ("config-history", 2, 3)] {
                let mut before: Option<i64> = None;
                for page in 0..10_000 {
                    let path = match before {
                        None => format!("/api/tenants/bench/devices/{device}/{kind}?limit={PAGE}"),
                        Some(b) => format!(
                            "/api/tenants/bench/devices/{device}/{kind}?limit={PAGE}&before={b}"
                        ),
                    };
                    let started = Instant::now();
                    let url = format!("{}{path}", node.address);
                    let r = http.get(url).bearer_auth(&token).send().await?;
                    let status = r.status();
                    let body = r.bytes().await?;
                    let took = started.elapsed();
                    anyhow::ensure!(status == 200, "GET {kind}: http {status}");
                    let body: serde_json::Value = serde_json::from_slice(&body)?;
                    f.rows += body["items"].as_array().map_or(0, Vec::len);
                    f.bucket(if page == 0 { newest } else { older }).push(took);
                    match body["next_before"].as_i64() {
                        Some(b) => before = Some(b),
                        None => break,
                    }
                }
            }
        }
        Ok::<_, anyhow::Error>(())
    }
    .await;
    node.try_stop().await?;
    result.map(|()| f)
}
