//! Manual triggers end to end: HTTP → bus request-reply → responder →
//! lock → SSH → publish → ingester → store, on both stacks.

use std::time::Duration;

use routeros_sim::{DeviceSpec, Fault};
use serde_json::Value;

use super::{Infra, Stack, on_both_stacks, spawn_app};
use crate::helpers::start_simulator;

/// Scheduled runs are pushed an hour away so only triggers run.
fn no_schedule(toml: String) -> String {
    toml.replace("jitter = \"0s\"", "jitter = \"1h\"")
}

async fn a_trigger_returns_201_with_the_hash_of_the_stored_snapshot(stack: Stack) {
    // Arrange
    let infra = Infra::new(stack).await;
    let sim = start_simulator(vec![DeviceSpec::default()]).await;
    let app = spawn_app(&no_schedule(infra.config(&sim, ""))).await;

    // Act
    let resp = app.trigger("dev-0").await;

    // Assert
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["status"], "success");
    assert_eq!(body["device_id"], "dev-0");
    assert_eq!(body["tenant_id"], "t1");
    let hash = body["sha256_hash"].as_str().expect("hash").to_owned();
    assert_eq!(hash.len(), 64);
    assert_eq!(body["routeros_version"], "7.16");
    // The snapshot reaches the store through the ingester (asynchronously).
    app.await_snapshots(&["dev-0".to_owned()]).await;
    let stored = app.snapshots("dev-0").await;
    assert_eq!(
        stored[0]["sha256_hash"],
        hash.as_str(),
        "the stored snapshot is the one reported"
    );
    assert_eq!(stored[0]["trigger"], "manual");
    let metrics = app.metrics().await;
    let counted = |prefix: &str| {
        metrics
            .lines()
            .any(|l| l.starts_with(prefix) && !l.ends_with(" 0"))
    };
    assert!(
        counted("cfgsnap_ingest_total{result=\"created\"}"),
        "ingest results are counted"
    );
    assert!(
        counted("cfgsnap_backups_total{result=\"success\"}"),
        "backup results are counted"
    );
    // The same export again: on NATS the store confirms it without the
    // text crossing the stream, and the node counts that.
    assert_eq!(app.trigger("dev-0").await.status(), 201);
    let metrics = app.metrics().await;
    let confirmed = metrics
        .lines()
        .find_map(|l| l.strip_prefix("cfgsnap_backups_unchanged_confirmed_total "))
        .expect("the series is exported");
    let expected = match stack {
        Stack::Served => "1",
        Stack::Embedded => "0",
    };
    assert_eq!(confirmed, expected, "unchanged exports confirmed by claim");
    app.stop().await;
    sim.shutdown().await;
    infra.finish().await;
}

async fn the_snapshot_of_a_201_is_listed_when_the_answer_arrives(stack: Stack) {
    // Arrange: a device whose configuration changes at every export, so
    // every trigger stores a new version through the (asynchronous) ingest.
    let infra = Infra::new(stack).await;
    let sim = start_simulator(vec![DeviceSpec::default().with_change_every(1)]).await;
    let app = spawn_app(&no_schedule(infra.config(&sim, ""))).await;

    for round in 1..=5 {
        // Act
        let resp = app.trigger("dev-0").await;
        assert_eq!(resp.status(), 201, "trigger {round}");
        let body: Value = resp.json().await.expect("json");
        let hash = body["sha256_hash"].as_str().expect("hash").to_owned();
        let listed = app.snapshots("dev-0").await;

        // Assert: the history read right after the answer shows it.
        assert_eq!(
            listed.len(),
            round,
            "trigger {round}: a new version each time"
        );
        assert_eq!(
            listed[0]["sha256_hash"],
            hash.as_str(),
            "trigger {round}: the answer's snapshot is the newest listed"
        );
    }
    app.stop().await;
    sim.shutdown().await;
    infra.finish().await;
}

async fn a_second_trigger_while_one_runs_is_409(stack: Stack) {
    // Arrange: a slow device, so the first backup holds the lock.
    let infra = Infra::new(stack).await;
    let sim = start_simulator(vec![
        DeviceSpec::default().with_latency(Duration::from_millis(1500)),
    ])
    .await;
    let app = spawn_app(&no_schedule(infra.config(&sim, ""))).await;

    // Act
    let (first, second) = tokio::join!(app.trigger("dev-0"), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        app.trigger("dev-0").await
    });

    // Assert
    assert_eq!(first.status(), 201);
    assert_eq!(second.status(), 409);
    let problem: Value = second.json().await.expect("problem json");
    assert_eq!(problem["code"], "backup_in_progress");
    app.stop().await;
    sim.shutdown().await;
    infra.finish().await;
}

async fn a_device_that_refuses_the_login_is_502_auth_failed(stack: Stack) {
    let infra = Infra::new(stack).await;
    let sim = start_simulator(vec![DeviceSpec::default().with_fault(Fault::AuthFailure)]).await;
    let app = spawn_app(&no_schedule(infra.config(&sim, ""))).await;

    let resp = app.trigger("dev-0").await;

    assert_eq!(resp.status(), 502);
    let problem: Value = resp.json().await.expect("problem json");
    assert_eq!(problem["code"], "auth_failed");
    app.stop().await;
    sim.shutdown().await;
    infra.finish().await;
}

async fn a_hanging_device_is_504_after_the_trigger_timeout(stack: Stack) {
    // Arrange: the device hangs longer than the trigger waits.
    let infra = Infra::new(stack).await;
    let sim = start_simulator(vec![DeviceSpec::default().with_fault(Fault::HangAfterExec)]).await;
    let toml = no_schedule(infra.config(&sim, ""))
        .replace("trigger_timeout = \"10s\"", "trigger_timeout = \"1s\"")
        .replace("command_timeout = \"5s\"", "command_timeout = \"4s\"");
    let app = spawn_app(&toml).await;

    // Act
    let resp = app.trigger("dev-0").await;

    // Assert
    assert_eq!(resp.status(), 504);
    let problem: Value = resp.json().await.expect("problem json");
    assert_eq!(problem["code"], "trigger_timeout");
    app.stop().await;
    sim.shutdown().await;
    infra.finish().await;
}

async fn a_trigger_with_no_responder_running_is_503_at_once(stack: Stack) {
    // Arrange: a central node without the responder role, and nobody else.
    let infra = Infra::new(stack).await;
    let sim = start_simulator(vec![DeviceSpec::default()]).await;
    let toml = infra.config(&sim, "[roles]\nresponder = false\nscheduler = false\n");
    let app = spawn_app(&toml).await;

    // Act
    let started = tokio::time::Instant::now();
    let resp = app.trigger("dev-0").await;

    // Assert: told apart from a timeout, so no waiting for trigger_timeout (10 s).
    assert_eq!(resp.status(), 503);
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "no-responders must not wait for the timeout"
    );
    let problem: Value = resp.json().await.expect("problem json");
    assert_eq!(problem["code"], "no_responder");
    app.stop().await;
    sim.shutdown().await;
    infra.finish().await;
}

async fn a_node_stopped_right_after_a_trigger_keeps_its_audit_row(stack: Stack) {
    // Arrange
    let infra = Infra::new(stack).await;
    let sim = start_simulator(vec![DeviceSpec::default()]).await;
    let toml = no_schedule(infra.config(&sim, ""));
    let app = spawn_app(&toml).await;

    // Act: the audit row is written alongside the response; stop at once.
    let resp = app.trigger("dev-0").await;
    assert_eq!(resp.status(), 201);
    app.stop().await;

    // Assert: a node started again on the same store lists the row.
    let again = spawn_app(&toml).await;
    let items = again.audit_events().await;
    let row = items
        .iter()
        .find(|e| e["action"] == "config_backup_manual_trigger")
        .unwrap_or_else(|| {
            panic!(
                "no manual-trigger row among {:?}",
                items
                    .iter()
                    .map(|e| e["action"].clone())
                    .collect::<Vec<_>>()
            )
        });
    assert_eq!(row["device_id"], "dev-0");
    assert_eq!(row["actor"], "tester");
    assert_eq!(row["detail"]["outcome"], "success");
    again.stop().await;
    sim.shutdown().await;
    infra.finish().await;
}

on_both_stacks!(
    a_trigger_returns_201_with_the_hash_of_the_stored_snapshot,
    the_snapshot_of_a_201_is_listed_when_the_answer_arrives,
    a_second_trigger_while_one_runs_is_409,
    a_device_that_refuses_the_login_is_502_auth_failed,
    a_hanging_device_is_504_after_the_trigger_timeout,
    a_trigger_with_no_responder_running_is_503_at_once,
    a_node_stopped_right_after_a_trigger_keeps_its_audit_row,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_nats_client_gets_the_contract_reply_from_a_served_node() {
    // Arrange
    let infra = Infra::new(Stack::Served).await;
    let sim = start_simulator(vec![DeviceSpec::default()]).await;
    let app = spawn_app(&no_schedule(infra.config(&sim, ""))).await;
    let client = async_nats::connect("nats://127.0.0.1:4222")
        .await
        .expect("NATS on 127.0.0.1:4222");

    // Act: exactly what the originating system sends.
    let reply = client
        .request(
            format!("t{}.config.backup.trigger", infra.tag),
            r#"{"device_id":"dev-0","tenant_id":"t1"}"#.into(),
        )
        .await
        .expect("a reply");
    let bad = client
        .request(
            format!("t{}.config.backup.trigger", infra.tag),
            "{\"device_id\":".into(),
        )
        .await
        .expect("a reply to garbage too");

    // Assert
    let reply: Value = serde_json::from_slice(&reply.payload).expect("json reply");
    assert_eq!(reply["status"], "success");
    let hash = reply["sha256_hash"].as_str().expect("hash").to_owned();
    assert!(reply["collected_at"].is_string());
    app.await_snapshots(&["dev-0".to_owned()]).await;
    assert_eq!(
        app.snapshots("dev-0").await[0]["sha256_hash"],
        hash.as_str()
    );
    let bad: Value = serde_json::from_slice(&bad.payload).expect("json reply");
    assert_eq!(bad["status"], "failed");
    assert_eq!(bad["error_kind"], "bad_request");
    app.stop().await;
    sim.shutdown().await;
    infra.finish().await;
}
