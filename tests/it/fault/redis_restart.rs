//! Redis restarted under a running node: triggers answer `503`
//! `lock_unavailable` while it is down, scheduled runs pause (fail closed:
//! no device is backed up without its lock) and resume by themselves, and
//! no device stays locked afterwards.

use std::time::Duration;

use routeros_sim::{DeviceSpec, Simulator};

use super::lock_ttls;
use super::servers::RedisServer;
use crate::app::{Infra, Stack, spawn_app};
use crate::helpers::{start_simulator, within};

const DEVICES: usize = 4;

fn exports(sim: &Simulator) -> Vec<u64> {
    (0..DEVICES).map(|i| sim.exports_served(i)).collect()
}

/// Waits (bounded) until every device exported more than in `before`.
async fn await_more_exports(sim: &Simulator, before: &[u64], what: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while exports(sim)
        .iter()
        .zip(before)
        .any(|(now, then)| now <= then)
    {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_pauses_backups_fails_triggers_closed_and_recovers_by_itself() {
    within(Duration::from_secs(180), async {
        // Arrange: a 2 s interval, so scheduled runs come due during the outage.
        let mut redis = RedisServer::start().await;
        let infra = Infra::new(Stack::Served).await;
        let sim = start_simulator(vec![DeviceSpec::default(); DEVICES]).await;
        let toml = infra
            .config(&sim, "")
            .replace("redis://127.0.0.1:6379", &redis.url())
            .replace("interval = \"1h\"", "interval = \"2s\"");
        let app = spawn_app(&toml).await;
        await_more_exports(&sim, &[1; DEVICES], "two scheduled runs per device").await;

        // Act: Redis goes away.
        redis.stop().await;
        let during = app.trigger("dev-0").await;
        let status = during.status();
        let body: serde_json::Value = during.json().await.expect("problem json");
        // A run that held its lock before the stop may still finish; after
        // that, nothing is collected for as long as the outage lasts.
        let settled = exports(&sim);
        tokio::time::sleep(Duration::from_secs(5)).await;
        let paused = exports(&sim);
        redis.start_again().await;

        // Assert
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["code"], "lock_unavailable", "{body}");
        assert!(
            paused.iter().zip(&settled).all(|(p, s)| p <= &(s + 1)),
            "no scheduled backup without a lock: {settled:?} then {paused:?}"
        );
        await_more_exports(&sim, &paused, "scheduled runs resume after the restart").await;
        app.stop().await;
        // No lock was ever left without its TTL.
        for ttl in lock_ttls(&redis.url(), &format!("t{}:backup:device:", infra.tag)).await {
            assert!(ttl > 0, "a device is left locked without a TTL ({ttl})");
        }
        sim.shutdown().await;
        infra.finish().await;
    })
    .await;
}
