//! SIGTERM to `cfgsnap serve` while a backend is down: with NATS, Redis or
//! PostgreSQL gone, the process still exits within `shutdown_timeout` + 5 s.
//! With NATS down, backups collected during the outage cannot be handed
//! over: the exit code is non-zero and an error line names those devices.
//! With Redis or PostgreSQL down nothing collected is lost: exit 0.

use std::time::{Duration, Instant};

use routeros_sim::DeviceSpec;

use super::servers::{NatsServer, RedisServer, Relay, ServeProcess, signal};
use super::{CENTRAL, POLLER, await_log};
use crate::app::{Infra, Stack};
use crate::helpers::{start_simulator, within};

const DEVICES: usize = 6;
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(4);
/// What the issue promises beyond the timeout.
const BOUND: Duration = Duration::from_secs(5);

/// A node's configuration on `infra` with `roles`, 1 s interval, backups of
/// `latency` each and a 4 s shutdown timeout.
fn config(infra: &Infra, sim: &routeros_sim::Simulator, roles: &str) -> String {
    infra
        .config(sim, roles)
        .replace("shutdown_timeout = \"5s\"", "shutdown_timeout = \"4s\"")
        .replace("interval = \"1h\"", "interval = \"1s\"")
}

/// Sends SIGTERM, waits for the exit; returns its status and how long it took.
async fn terminate(node: &mut ServeProcess) -> (std::process::ExitStatus, Duration) {
    let sent = Instant::now();
    signal(&node.child, "TERM");
    let status = tokio::time::timeout(Duration::from_secs(60), node.child.wait())
        .await
        .expect("the node exits within a minute")
        .expect("wait");
    (status, sent.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poller_stops_within_its_bound_with_nats_down_and_names_what_was_not_handed_over() {
    within(Duration::from_secs(180), async {
        // Arrange: a poller on a NATS of the test's own; backups take 1.5 s.
        let mut nats = NatsServer::start().await;
        let infra = Infra::new(Stack::Served).await;
        let slow = DeviceSpec::default().with_latency(Duration::from_millis(1500));
        let sim = start_simulator(vec![slow; DEVICES]).await;
        let toml = config(&infra, &sim, POLLER).replace("nats://127.0.0.1:4222", &nats.url());
        let path = infra.dir.path().join("config.toml");
        std::fs::write(&path, toml).expect("config");
        let log = infra.dir.path().join("serve.log");
        let mut node =
            ServeProcess::start(crate::helpers::CFGSNAP, &path, log.clone(), false).await;
        await_log(&log, "bus connected to NATS").await;

        // Act: NATS goes away while backups are collected, then SIGTERM.
        nats.stop().await;
        let before = (0..DEVICES).map(|i| sim.exports_served(i)).sum::<u64>();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while (0..DEVICES).map(|i| sim.exports_served(i)).sum::<u64>() <= before {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no backup during the outage"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (status, took) = terminate(&mut node).await;

        // Assert
        assert!(took < SHUTDOWN_TIMEOUT + BOUND, "stopped after {took:?}");
        assert!(
            !status.success(),
            "a backup was not handed over: {status:?}"
        );
        let text = std::fs::read_to_string(&log).expect("log");
        let line = text
            .lines()
            .find(|l| l.contains("never handed over"))
            .expect("an error line says what was not handed over");
        assert!(
            line.contains("ERROR") && line.contains("dev-"),
            "it names the devices"
        );
        sim.shutdown().await;
        infra.finish().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poller_stops_within_its_bound_with_redis_down_and_loses_nothing() {
    within(Duration::from_secs(180), async {
        // Arrange: a poller on a Redis of the test's own.
        let mut redis = RedisServer::start().await;
        let infra = Infra::new(Stack::Served).await;
        let sim = start_simulator(vec![DeviceSpec::default(); DEVICES]).await;
        let toml = config(&infra, &sim, POLLER).replace("redis://127.0.0.1:6379", &redis.url());
        let path = infra.dir.path().join("config.toml");
        std::fs::write(&path, toml).expect("config");
        let log = infra.dir.path().join("serve.log");
        let mut node =
            ServeProcess::start(crate::helpers::CFGSNAP, &path, log.clone(), false).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while sim.exports_served(0) == 0 {
            assert!(tokio::time::Instant::now() < deadline, "no backup ran");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        // Act
        redis.stop().await;
        let (status, took) = terminate(&mut node).await;

        // Assert
        assert!(took < SHUTDOWN_TIMEOUT + BOUND, "stopped after {took:?}");
        assert!(status.success(), "nothing collected was lost: {status:?}");
        sim.shutdown().await;
        infra.finish().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_central_node_stops_within_its_bound_with_postgresql_unreachable() {
    within(Duration::from_secs(180), async {
        // Arrange: a central node reaching PostgreSQL through a relay.
        let infra = Infra::new(Stack::Served).await;
        let relay = Relay::start("127.0.0.1:5432".parse().expect("address")).await;
        let sim = start_simulator(vec![DeviceSpec::default(); DEVICES]).await;
        let direct = infra.store_url.clone();
        let relayed = direct.replace(":5432/", &format!(":{}/", relay.port()));
        let toml = config(&infra, &sim, CENTRAL).replace(&direct, &relayed);
        let path = infra.dir.path().join("config.toml");
        std::fs::write(&path, toml).expect("config");
        let log = infra.dir.path().join("serve.log");
        let mut node = ServeProcess::start(crate::helpers::CFGSNAP, &path, log, true).await;

        // Act
        relay.cut().await;
        let (status, took) = terminate(&mut node).await;

        // Assert
        assert!(took < SHUTDOWN_TIMEOUT + BOUND, "stopped after {took:?}");
        assert!(
            status.success(),
            "a central node collects nothing to lose: {status:?}"
        );
        relay.restore().await;
        sim.shutdown().await;
        infra.finish().await;
    })
    .await;
}
