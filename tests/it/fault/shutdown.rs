//! SIGTERM to `cfgsnap serve` with 100 backups in flight, three of them on
//! devices that hang: the node exits 0 within its shutdown timeout, the
//! backups that could finish are all stored, the hanging ones are cancelled,
//! and no device lock is left behind.

use std::time::{Duration, Instant};

use routeros_sim::{DeviceSpec, Fault};
use sqlx::PgPool;

use super::servers::{ServeProcess, signal};
use super::{await_devices_stored, lock_ttls, snapshot_counts};
use crate::app::{Infra, Stack, spawn_node};
use crate::helpers::{start_simulator, within};

const FINISHING: usize = 97;
const HANGING: usize = 3;
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(8);
const REDIS: &str = "redis://127.0.0.1:6379";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_100_backups_in_flight_stops_within_the_timeout_and_releases_every_lock() {
    within(Duration::from_secs(180), async {
        // Arrange: 97 devices answering in 3 s and 3 that never answer (a
        // 60 s command timeout would keep them for a minute).
        let mut specs = vec![DeviceSpec::default().with_latency(Duration::from_secs(3)); FINISHING];
        specs.extend(vec![
            DeviceSpec::default().with_fault(Fault::HangAfterExec);
            HANGING
        ]);
        let sim = start_simulator(specs).await;
        let infra = Infra::new(Stack::Served).await;
        let toml = infra
            .config(&sim, "")
            .replace("shutdown_timeout = \"5s\"", "shutdown_timeout = \"8s\"")
            .replace("max_concurrent = 8", "max_concurrent = 100")
            .replace("command_timeout = \"5s\"", "command_timeout = \"60s\"")
            .replace("job_timelimit = \"20s\"", "job_timelimit = \"120s\"");
        let config = infra.dir.path().join("config.toml");
        std::fs::write(&config, &toml).expect("config");
        let prefix = format!("t{}:backup:device:", infra.tag);
        let mut node = ServeProcess::start(
            crate::helpers::CFGSNAP,
            &config,
            infra.dir.path().join("serve.log"),
            true,
        )
        .await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while lock_ttls(REDIS, &prefix).await.len() < FINISHING + HANGING {
            assert!(
                tokio::time::Instant::now() < deadline,
                "100 backups never ran at once"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        // Act
        let sent = Instant::now();
        signal(&node.child, "TERM");
        let status = tokio::time::timeout(Duration::from_secs(60), node.child.wait())
            .await
            .expect("the node exits")
            .expect("wait");
        let took = sent.elapsed();

        // Assert
        assert!(status.success(), "exit status {status:?}");
        assert!(
            took < SHUTDOWN_TIMEOUT + Duration::from_secs(5),
            "stopped after {took:?}, timeout {SHUTDOWN_TIMEOUT:?}"
        );
        assert_eq!(
            lock_ttls(REDIS, &prefix).await,
            [0i64; 0],
            "every lock released"
        );
        // What finished was published: an ingester stores all of it, once.
        let pool = PgPool::connect(&infra.store_url).await.expect("store pool");
        let ingester = spawn_node(&format!(
            "{toml}[roles]\napi = false\nscheduler = false\nresponder = false\nretention = false\n"
        ))
        .await;
        await_devices_stored(&pool, FINISHING as i64, Duration::from_secs(60)).await;
        ingester.stop().await;
        assert_eq!(
            snapshot_counts(&pool).await,
            (FINISHING as i64, FINISHING as i64)
        );
        for i in 0..FINISHING {
            assert_eq!(sim.exports_served(i), 1, "dev-{i} exported once");
        }
        pool.close().await;
        sim.shutdown().await;
        infra.finish().await;
    })
    .await;
}
