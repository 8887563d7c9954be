//! The web UI's diff page (issue #17): two versions of L lines with a
//! fraction changed, stored in SQLite, served by a node with the API role;
//! the page in both views, as a viewer (masked) and as an admin, timed from
//! the client on loopback (an upper bound of the server time) with the size
//! of the HTML it answers; and, in process, the viewer's share of it:
//! masking both texts together (`redact_pair`).

use std::time::{Duration, Instant};

use cfgsnap::api::Role;
use cfgsnap::backup::redact;
use cfgsnap::config::StoreSettings;
use cfgsnap::id::{DeviceId, TenantId};
use cfgsnap::store::Store;

use crate::corpus;
use crate::ingest::{event, fleet};
use crate::machine::{ms, percentile};
use crate::node::{Infra, TestNode};

/// Per-request bound of the HTTP calls.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Options of `ui-diff`.
#[derive(Debug, clap::Args)]
pub struct UiDiffArgs {
    /// Lines of each version.
    #[arg(long, default_value_t = 100_000)]
    lines: usize,
    /// Share of `add` lines changed between the two.
    #[arg(long, default_value_t = 0.01)]
    changed: f64,
    /// Timed requests per view and role.
    #[arg(long, default_value_t = 20)]
    repeats: usize,
}

/// Runs the diff-page benchmark.
pub async fn run(args: &UiDiffArgs) -> anyhow::Result<()> {
    let scratch = crate::scratch_dir()?;
    let url = format!("sqlite://{}", scratch.path().join("bench.db").display());
    let key = scratch.path().join("master.key");
    let settings = StoreSettings {
        url: url.clone(),
        encryption_key_file: Some(key.clone()),
        ..StoreSettings::default()
    };
    let tenant = TenantId::parse("bench")?;
    let device = DeviceId::parse("bench-0")?;
    let store = Store::connect(&settings).await?;
    store
        .sync_fleet(&fleet(&tenant, std::slice::from_ref(&device)))
        .await?;
    let older = corpus::export(args.lines, 7);
    let newer = corpus::mutate(&older, args.changed, 8);
    store.ingest(&event(&tenant, &device, &older)).await?;
    store.ingest(&event(&tenant, &device, &newer)).await?;
    let ids = store
        .list_snapshots(tenant.as_str(), device.as_str(), 2, None)
        .await?;
    store.close().await;
    let [to, from] = [ids[0].id, ids[1].id];
    println!(
        "ui-diff: two versions of {} lines ({:.1} MB each), {:.0} % of rules changed",
        args.lines,
        older.len() as f64 / 1e6,
        args.changed * 100.0
    );

    let mut masking = Vec::with_capacity(args.repeats);
    for _ in 0..args.repeats {
        let started = Instant::now();
        std::hint::black_box(redact::redact_pair(&older, &newer));
        masking.push(started.elapsed());
    }
    masking.sort();
    println!(
        "ui-diff: masking both texts in process (redact_pair): p50 {}, p99 {} (n = {})",
        ms(percentile(&masking, 50.0)),
        ms(percentile(&masking, 99.0)),
        masking.len()
    );

    let infra = Infra::on_store(&url, &key)?;
    let client_key = crate::collect::client_key(&scratch)?;
    let roles =
        "api = true\nscheduler = false\nresponder = false\ningester = false\nretention = false";
    let devices = [(device.to_string(), 22)];
    let node =
        TestNode::try_start(&crate::node::config(&infra, roles, &devices, &client_key)).await?;
    let http = crate::node::http_client(REQUEST_TIMEOUT)?;
    let result = async {
        for (who, role) in [("viewer", Role::Viewer), ("admin", Role::Admin)] {
            let token = infra.token("bench", "bench", role);
            for view in ["unified", "split"] {
                let path =
                    format!("/ui/t/bench/devices/bench-0/diff?from={from}&to={to}&view={view}");
                let mut samples = Vec::with_capacity(args.repeats);
                let mut size = 0;
                // One untimed request first: the node's first connection.
                for round in 0..=args.repeats {
                    let started = Instant::now();
                    let r = http
                        .get(format!("{}{path}", node.address))
                        .bearer_auth(&token)
                        .send()
                        .await?;
                    let status = r.status();
                    let body = r.bytes().await?;
                    let took = started.elapsed();
                    anyhow::ensure!(status == 200, "GET {path}: http {status}");
                    size = body.len();
                    if round > 0 {
                        samples.push(took);
                    }
                }
                samples.sort();
                println!(
                    "ui-diff: {who}, {view}: p50 {}, p99 {}, max {} (n = {}), HTML {:.0} KB",
                    ms(percentile(&samples, 50.0)),
                    ms(percentile(&samples, 99.0)),
                    ms(samples.last().copied().unwrap_or_default()),
                    samples.len(),
                    size as f64 / 1024.0
                );
            }
        }
        Ok::<_, anyhow::Error>(())
    }
    .await;
    node.try_stop().await?;
    result
}
