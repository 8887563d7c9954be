//! The node as a whole: the scheduled pass, two nodes sharing a fleet,
//! reloading the device list, and shutdown with a backup in flight.

use std::sync::Arc;
use std::time::Duration;

use cfgsnap::app::App;
use cfgsnap::config::Settings;
use routeros_sim::DeviceSpec;
use tokio_util::sync::CancellationToken;

use super::{Infra, Stack, device_ids, on_both_stacks, spawn_app};
use crate::helpers::start_simulator;

async fn the_scheduled_pass_stores_one_snapshot_per_device(stack: Stack) {
    // Arrange: jitter 0, so every device is due at start.
    let infra = Infra::new(stack).await;
    let sim = start_simulator(vec![DeviceSpec::default(); 4]).await;

    // Act
    let app = spawn_app(&infra.config(&sim, "")).await;
    app.await_snapshots(&device_ids(4)).await;
    app.stop().await;

    // Assert: one export per device (the next run is an hour away).
    for i in 0..4 {
        assert_eq!(sim.exports_served(i), 1, "dev-{i} exported once");
    }
    sim.shutdown().await;
    infra.finish().await;
}

on_both_stacks!(the_scheduled_pass_stores_one_snapshot_per_device);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_sharing_nats_redis_and_postgres_back_each_device_up_once() {
    // Arrange: two full nodes on the same infrastructure and devices.
    let infra = Infra::new(Stack::Served).await;
    let sim = start_simulator(vec![DeviceSpec::default(); 6]).await;
    let toml = infra.config(&sim, "");

    // Act
    let (a, b) = tokio::join!(spawn_app(&toml), spawn_app(&toml));
    a.await_snapshots(&device_ids(6)).await;
    a.stop().await;
    b.stop().await;

    // Assert: the lock and last_success kept the second node off each device.
    for i in 0..6 {
        assert_eq!(
            sim.exports_served(i),
            1,
            "dev-{i} must be exported once, not by both nodes"
        );
    }
    sim.shutdown().await;
    infra.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_starts_added_devices_and_stops_removed_ones() {
    // Arrange: a node configured with dev-0 only.
    let infra = Infra::new(Stack::Embedded).await;
    let sim = start_simulator(vec![DeviceSpec::default(); 2]).await;
    let full = infra.config(&sim, "");
    let first_only = full
        .split("[[devices]]")
        .take(2)
        .collect::<Vec<_>>()
        .join("[[devices]]");
    let app = App::build(Settings::from_toml(&first_only).expect("parses"))
        .await
        .expect("builds");
    let port = app.port().expect("api");
    let reloader = app.reloader();
    let stop = CancellationToken::new();
    let done = tokio::spawn(app.run_until_stopped(stop.clone().cancelled_owned()));
    let client = super::TestApp::attach(port);
    client.await_snapshots(&device_ids(1)).await;

    // Act: dev-1 added.
    let summary = reloader
        .reload(&Settings::from_toml(&full).expect("parses"))
        .await
        .expect("reload")
        .expect("the node schedules");

    // Assert
    assert_eq!(summary.added, 1);
    client.await_snapshots(&device_ids(2)).await;
    assert_eq!(sim.exports_served(1), 1);
    let removed = reloader
        .reload(&Settings::from_toml(&first_only).expect("parses"))
        .await
        .expect("reload")
        .expect("the node schedules");
    assert_eq!(removed.removed, 1);
    stop.cancel();
    done.await.expect("join").expect("clean stop");
    sim.shutdown().await;
    infra.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_the_backup_in_flight_finish_and_store_its_snapshot() {
    // Arrange: a device that takes 2 s to answer.
    let infra = Infra::new(Stack::Embedded).await;
    let sim = start_simulator(vec![
        DeviceSpec::default().with_latency(Duration::from_secs(2)),
    ])
    .await;
    let settings = Settings::from_toml(&infra.config(&sim, "")).expect("parses");
    let store_settings = cfgsnap::config::StoreSettings {
        url: settings.store.url.clone(),
        encryption_key_file: settings.store.encryption_key_file.clone(),
        ..Default::default()
    };
    let app = App::build(settings).await.expect("builds");
    let stop = Arc::new(CancellationToken::new());
    let done = tokio::spawn(app.run_until_stopped(stop.as_ref().clone().cancelled_owned()));

    // Act: stop while the export is under way (the first run starts at once).
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(30), done)
        .await
        .expect("stops in time")
        .expect("join")
        .expect("clean stop");

    // Assert: the backup finished and its snapshot was stored before exit.
    assert_eq!(sim.exports_served(0), 1);
    let store = cfgsnap::store::Store::connect(&store_settings)
        .await
        .expect("store reopens");
    let snaps = store
        .list_snapshots("t1", "dev-0", 10, None)
        .await
        .expect("list");
    assert_eq!(
        snaps.len(),
        1,
        "the in-flight backup's snapshot must be stored"
    );
    store.close().await;
    sim.shutdown().await;
    infra.finish().await;
}
