//! A central node (api, ingester) and two pollers (scheduler, responder),
//! each a `cfgsnap serve` process on shared NATS, Redis and PostgreSQL. One
//! poller is killed mid-pass: the other answers every trigger and backs up
//! every device, including those the dead one had locked. A remote poller's
//! unchanged exports are confirmed by the central node's ingester without
//! an event in the stream.

use std::time::Duration;

use routeros_sim::{DeviceSpec, Simulator};
use sqlx::PgPool;

use super::servers::ServeProcess;
use super::{CENTRAL, POLLER, await_devices_stored, snapshot_counts};
use crate::app::{Infra, Stack, TestApp};
use crate::helpers::{start_simulator, within};

const DEVICES: usize = 60;

/// `cfgsnap serve` named `name` with `roles` (the API on when they say so),
/// on the run's infrastructure and simulator, with a known-hosts file of
/// its own; its config and log in the run's directory.
async fn serve(infra: &Infra, sim: &Simulator, name: &str, roles: &str) -> ServeProcess {
    let dir = infra.dir.path();
    let path = dir.join(format!("{name}.toml"));
    let toml = infra
        .config(sim, roles)
        .replace("known_hosts.json", &format!("known_hosts-{name}.json"));
    std::fs::write(&path, toml).expect("config");
    let api = roles.contains("api = true");
    let log = dir.join(format!("{name}.log"));
    ServeProcess::start(crate::helpers::CFGSNAP, &path, log, api).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_one_of_two_pollers_mid_pass_leaves_no_trigger_unanswered_and_no_device_behind() {
    within(Duration::from_secs(240), async {
        // Arrange: 60 devices at 1 s each; each poller runs 8 at a time.
        let infra = Infra::new(Stack::Served).await;
        let sim = start_simulator(vec![
            DeviceSpec::default()
                .with_latency(Duration::from_secs(1));
            DEVICES
        ])
        .await;
        let central = serve(&infra, &sim, "central", CENTRAL).await;
        let app = TestApp::attach(central.port.expect("api"));
        let a = serve(&infra, &sim, "a", POLLER).await;
        let b = serve(&infra, &sim, "b", POLLER).await;
        let pool = PgPool::connect(&infra.store_url).await.expect("store pool");
        await_devices_stored(&pool, 10, Duration::from_secs(60)).await;

        // Act: poller a dies mid-pass.
        a.kill().await;
        let (_, at_kill) = snapshot_counts(&pool).await;
        let mut answers = Vec::new();
        for i in 0..5 {
            answers.push(app.trigger(&format!("dev-{i}")).await.status().as_u16());
        }

        // Assert: the remaining poller answers (a backup, or "in progress"
        // when its own scheduled run holds the device).
        assert!(at_kill < DEVICES as i64, "the kill fell inside the pass");
        assert!(
            answers.iter().all(|s| *s == 201 || *s == 409),
            "every trigger answered: {answers:?}"
        );
        await_devices_stored(&pool, DEVICES as i64, Duration::from_secs(150)).await;
        let (rows, _) = snapshot_counts(&pool).await;
        assert_eq!(rows, DEVICES as i64, "no device stored twice");
        b.kill().await;
        central.kill().await;
        pool.close().await;
        sim.shutdown().await;
        infra.finish().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_pollers_unchanged_backups_are_confirmed_by_the_central_node_without_events() {
    within(Duration::from_secs(120), async {
        // Arrange: a central node and a poller, each a `cfgsnap serve`;
        // the poller's first pass stores a version of each device.
        let infra = Infra::new(Stack::Served).await;
        let sim = start_simulator(vec![DeviceSpec::default(); 3]).await;
        let central = serve(&infra, &sim, "central", CENTRAL).await;
        let app = TestApp::attach(central.port.expect("api"));
        let poller = serve(&infra, &sim, "poller", POLLER).await;
        let pool = PgPool::connect(&infra.store_url).await.expect("store pool");
        await_devices_stored(&pool, 3, Duration::from_secs(60)).await;

        // Act: a manual backup of each device, whose export is unchanged.
        for i in 0..3 {
            let status = app.trigger(&format!("dev-{i}")).await.status().as_u16();
            assert_eq!(status, 201, "dev-{i}");
        }

        // Assert: recorded as duplicates by the central node before each
        // 201, and the stream holds the first pass's three events only.
        let duplicates = super::audit_count(&pool, "config_snapshot_skipped_duplicate").await;
        assert_eq!(duplicates, 3);
        assert_eq!(snapshot_counts(&pool).await, (3, 3));
        let client = async_nats::connect(crate::bus::NATS_URL)
            .await
            .expect("nats");
        let js = async_nats::jetstream::new(client);
        let name = format!("T{}_SNAPSHOTS", infra.tag.to_uppercase());
        let mut stream = js.get_stream(&name).await.expect("the run's stream");
        let events = stream.info().await.expect("stream info").state.messages;
        assert_eq!(events, 3, "no event for the unchanged exports");
        poller.kill().await;
        central.kill().await;
        pool.close().await;
        sim.shutdown().await;
        infra.finish().await;
    })
    .await;
}
