//! `kill -9` of `cfgsnap serve` in the middle of a scheduled pass, then a
//! restart on the same NATS, Redis and PostgreSQL: no lock outlives its TTL,
//! no snapshot is stored twice or half-written, the pass resumes, and every
//! device's backup state is right.

use std::time::Duration;

use cfgsnap::backup::normalize::sha256_hex;
use routeros_sim::DeviceSpec;
use sqlx::PgPool;

use super::servers::ServeProcess;
use super::{await_devices_stored, lock_ttls, snapshot_counts};
use crate::app::{Infra, Stack, TestApp};
use crate::helpers::{start_simulator, within};

const DEVICES: usize = 24;
const REDIS: &str = "redis://127.0.0.1:6379";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_pass_then_restart_leaves_no_stale_lock_duplicate_or_torn_snapshot() {
    within(Duration::from_secs(240), async {
        // Arrange: 24 devices at 1.5 s each, 8 at a time: a pass of ~5 s;
        // command_timeout 2 s, so a lock's TTL is 32 s.
        let infra = Infra::new(Stack::Served).await;
        let sim = start_simulator(vec![
            DeviceSpec::default()
                .with_latency(Duration::from_millis(1500));
            DEVICES
        ])
        .await;
        let config = infra.dir.path().join("config.toml");
        let toml = infra
            .config(&sim, "")
            .replace("command_timeout = \"5s\"", "command_timeout = \"2s\"");
        std::fs::write(&config, toml).expect("config");
        let prefix = format!("t{}:backup:device:", infra.tag);
        let pool = PgPool::connect(&infra.store_url).await.expect("store pool");
        let node = ServeProcess::start(
            crate::helpers::CFGSNAP,
            &config,
            infra.dir.path().join("first.log"),
            true,
        )
        .await;
        await_devices_stored(&pool, 4, Duration::from_secs(60)).await;
        // Backups are in flight: some devices are locked.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while lock_ttls(REDIS, &prefix).await.is_empty() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no backup in flight"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        // Act
        node.kill().await;
        let (_, stored_at_kill) = snapshot_counts(&pool).await;
        let ttls = lock_ttls(REDIS, &prefix).await;
        let node = ServeProcess::start(
            crate::helpers::CFGSNAP,
            &config,
            infra.dir.path().join("second.log"),
            true,
        )
        .await;

        // Assert: the dead node's locks all lapse within their TTL.
        assert!(
            stored_at_kill < DEVICES as i64,
            "the kill fell inside the pass"
        );
        assert!(
            ttls.iter().all(|&ttl| ttl > 0 && ttl <= 32_000),
            "every lock left behind expires within command_timeout + 30 s: {ttls:?}"
        );
        // The restarted node backs up every device, each once.
        await_devices_stored(&pool, DEVICES as i64, Duration::from_secs(150)).await;
        let app = TestApp::attach(node.port.expect("api"));
        let devices = app.devices().await;
        assert_eq!(devices.len(), DEVICES);
        for d in &devices {
            let id = d["device_id"].as_str().expect("id");
            assert_eq!(d["last_status"], "success", "{id}: {d}");
            assert!(d["last_success_at"].is_string(), "{id}: {d}");
            assert_eq!(d["consecutive_failures"], 0, "{id}");
            // Every stored snapshot reads back whole: its content hashes
            // to its identity.
            let sid = d["newest_snapshot_id"].as_i64().expect("snapshot id");
            let (status, text) = app.content(id, sid).await;
            assert_eq!(status, 200, "{id}");
            assert_eq!(
                Some(sha256_hex(&text).as_str()),
                d["newest_sha256_hash"].as_str(),
                "{id}: content matches its hash"
            );
        }
        let (rows, _) = snapshot_counts(&pool).await;
        assert_eq!(rows, DEVICES as i64, "no snapshot stored twice");
        node.kill().await;
        pool.close().await;
        sim.shutdown().await;
        infra.finish().await;
    })
    .await;
}
