//! PostgreSQL out of reach for 30 s while a poller's pass publishes
//! snapshots: the central node's `/readyz` reports the store, the events
//! wait in JetStream, and once the database is back every snapshot is
//! stored exactly once, without a restart.

use std::time::{Duration, Instant};

use routeros_sim::DeviceSpec;
use sqlx::PgPool;

use super::servers::Relay;
use super::{CENTRAL, POLLER, audit_count, await_devices_stored, snapshot_counts};
use crate::app::{Infra, Stack, spawn_app, spawn_node};
use crate::helpers::{start_simulator, within};

const DEVICES: usize = 40;
/// The outage DESIGN's promise is tested with.
const OUTAGE: Duration = Duration::from_secs(30);

/// Waits (bounded) until `/readyz` answers `status`.
async fn await_readyz(http: &reqwest::Client, base: &str, status: u16) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let resp = http
            .get(format!("{base}/readyz"))
            .send()
            .await
            .expect("readyz");
        if resp.status() == status {
            return resp.json().await.expect("json");
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/readyz never answered {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_30_s_database_outage_during_ingest_loses_nothing_and_stores_nothing_twice() {
    within(Duration::from_secs(240), async {
        // Arrange: the central node reaches PostgreSQL through a relay.
        let infra = Infra::new(Stack::Served).await;
        let relay = Relay::start("127.0.0.1:5432".parse().expect("address")).await;
        let sim = start_simulator(vec![
            DeviceSpec::default()
                .with_latency(Duration::from_millis(200));
            DEVICES
        ])
        .await;
        let direct = infra.store_url.clone();
        let relayed = direct.replace(":5432/", &format!(":{}/", relay.port()));
        let central = spawn_app(&infra.config(&sim, CENTRAL).replace(&direct, &relayed)).await;
        let http = reqwest::Client::new();
        await_readyz(&http, &central.address, 200).await;

        // Act: the database goes away, then a poller's pass runs.
        relay.cut().await;
        let cut = Instant::now();
        let poller = spawn_node(&infra.config(&sim, POLLER)).await;
        let not_ready = await_readyz(&http, &central.address, 503).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while (0..DEVICES).any(|i| sim.exports_served(i) == 0) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the pass did not run"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(OUTAGE.saturating_sub(cut.elapsed())).await;
        relay.restore().await;

        // Assert
        assert!(
            not_ready.to_string().contains("store"),
            "readyz names the store: {not_ready}"
        );
        let pool = PgPool::connect(&direct).await.expect("store pool");
        await_devices_stored(&pool, DEVICES as i64, Duration::from_secs(120)).await;
        await_readyz(&http, &central.address, 200).await;
        poller.stop().await;
        central.stop().await;
        let (rows, _) = snapshot_counts(&pool).await;
        assert_eq!(rows, DEVICES as i64, "no snapshot stored twice");
        let rejected = audit_count(&pool, "snapshot_event_rejected").await;
        assert_eq!(rejected, 0, "no event given up");
        pool.close().await;
        sim.shutdown().await;
        infra.finish().await;
    })
    .await;
}
