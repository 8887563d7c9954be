//! NATS restarted while a scheduled pass over 200 devices runs: triggers
//! during the outage answer `503` at once, the node reconnects by itself,
//! and afterwards every device's snapshot is stored exactly once.

use std::time::{Duration, Instant};

use routeros_sim::DeviceSpec;
use sqlx::PgPool;

use super::servers::NatsServer;
use super::{audit_count, await_devices_stored, snapshot_counts};
use crate::app::{Infra, Stack, spawn_app};
use crate::helpers::{start_simulator, within};

const DEVICES: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_restart_during_a_pass_loses_no_snapshot_and_stores_none_twice() {
    within(Duration::from_secs(240), async {
        // Arrange: 200 devices at 300 ms each, 8 at a time: a pass of ~8 s.
        let mut nats = NatsServer::start().await;
        let infra = Infra::new(Stack::Served).await;
        let sim = start_simulator(vec![
            DeviceSpec::default()
                .with_latency(Duration::from_millis(300));
            DEVICES
        ])
        .await;
        let toml = infra
            .config(&sim, "")
            .replace("nats://127.0.0.1:4222", &nats.url())
            .replace("trigger_timeout = \"10s\"", "trigger_timeout = \"60s\"");
        let app = spawn_app(&toml).await;
        let pool = PgPool::connect(&infra.store_url).await.expect("store pool");
        await_devices_stored(&pool, 20, Duration::from_secs(60)).await;

        // Act: restart NATS in the middle of the pass; once the node has
        // seen the connection go, a trigger is asked.
        nats.stop().await;
        let http = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while http
            .get(format!("{}/readyz", app.address))
            .send()
            .await
            .expect("readyz")
            .status()
            != 503
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "/readyz never saw NATS go"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let asked = Instant::now();
        let during = app.trigger("dev-0").await;
        let waited = asked.elapsed();
        let during_status = during.status();
        let during_body: serde_json::Value = during.json().await.expect("problem json");
        let (_, stored_at_restart) = snapshot_counts(&pool).await;
        nats.start_again().await;

        // Assert: a quick 503 during the outage, not the 60 s timeout.
        assert_eq!(during_status, 503, "{during_body}");
        assert!(
            waited < Duration::from_secs(10),
            "the trigger took {waited:?} with NATS down"
        );
        assert!(
            stored_at_restart < DEVICES as i64,
            "the restart must fall inside the pass"
        );
        // Every device lands, once, without a restart of the node.
        await_devices_stored(&pool, DEVICES as i64, Duration::from_secs(150)).await;
        let after = app.trigger("dev-1").await;
        assert_eq!(
            after.status(),
            201,
            "triggers work again after reconnecting"
        );
        app.stop().await;
        let (rows, devices) = snapshot_counts(&pool).await;
        assert_eq!(devices, DEVICES as i64);
        // dev-1's trigger may store a second version only if its config
        // changed, and the simulator's default config does not change.
        assert_eq!(rows, DEVICES as i64, "no snapshot stored twice");
        let created = audit_count(&pool, "config_snapshot_created").await;
        assert_eq!(created, DEVICES as i64);
        let rejected = audit_count(&pool, "snapshot_event_rejected").await;
        assert_eq!(rejected, 0, "no event given up");
        pool.close().await;
        sim.shutdown().await;
        infra.finish().await;
    })
    .await;
}
