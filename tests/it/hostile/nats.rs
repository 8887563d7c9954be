//! Hostile payloads on a served node's NATS subjects, sent by a plain NATS
//! client: every bad trigger request gets a `bad_request` reply, every bad
//! snapshot event is terminated with a `snapshot_event_rejected` audit
//! record (read through the API), and the node still backs up afterwards.
//! (`tests/it/bus/` covers the responder and the ingester on their own.)

use std::time::Duration;

use routeros_sim::DeviceSpec;
use serde_json::{Value, json};

use super::within;
use crate::app::{Infra, Stack, TestApp, spawn_app};
use crate::helpers::start_simulator;

const NATS_URL: &str = "nats://127.0.0.1:4222";
const LIMIT: Duration = Duration::from_secs(120);

/// A served node for one simulated device `dev-0` of `t1`, scheduled runs
/// pushed an hour away, and a plain client of the same NATS server.
async fn served_node() -> (Infra, routeros_sim::Simulator, TestApp, async_nats::Client) {
    let infra = Infra::new(Stack::Served).await;
    let sim = start_simulator(vec![DeviceSpec::default()]).await;
    let toml = infra
        .config(&sim, "")
        .replace("jitter = \"0s\"", "jitter = \"1h\"");
    let app = spawn_app(&toml).await;
    let client = async_nats::connect(NATS_URL)
        .await
        .expect("NATS on 127.0.0.1:4222 (run scripts/test.sh)");
    (infra, sim, app, client)
}

/// Garbage, truncated JSON, wrong types, deep nesting and a 900 KB payload.
fn hostile_payloads(valid: &Value) -> Vec<(String, Vec<u8>)> {
    let text = valid.to_string();
    let mut cases = vec![
        (
            "garbage bytes".to_owned(),
            vec![0xff, 0x00, 0xfe, b'{', 0x80],
        ),
        ("empty".to_owned(), Vec::new()),
        (
            "truncated JSON".to_owned(),
            text.as_bytes()[..text.len() / 2].to_vec(),
        ),
        ("a JSON string".to_owned(), b"\"dev-0\"".to_vec()),
        ("null".to_owned(), b"null".to_vec()),
        (
            "deep nesting".to_owned(),
            ("[".repeat(100_000) + &"]".repeat(100_000)).into_bytes(),
        ),
        ("900 KB of junk".to_owned(), vec![b'{'; 900 * 1024]),
    ];
    for (field, wrong) in [
        ("device_id", json!(1)),
        ("tenant_id", json!({"t": 1})),
        ("device_id", json!("dev.0")),
        ("device_id", json!("dev-0.>")),
        ("tenant_id", json!("*")),
    ] {
        let mut bad = valid.clone();
        bad[field] = wrong;
        cases.push((
            format!("{field} = {}", bad[field]),
            bad.to_string().into_bytes(),
        ));
    }
    let mut huge = valid.clone();
    huge["padding"] = json!("p".repeat(900 * 1024));
    cases.push((
        "a 900 KB valid-looking payload".to_owned(),
        huge.to_string().into_bytes(),
    ));
    cases
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_trigger_requests_get_bad_request_replies_and_the_node_still_backs_up() {
    within(LIMIT, async {
        // Arrange
        let (infra, sim, app, client) = served_node().await;
        let subject = format!("t{}.config.backup.trigger", infra.tag);
        let valid = json!({"device_id": "dev-0", "tenant_id": "t1"});

        for (what, payload) in hostile_payloads(&valid) {
            // Act
            let reply = tokio::time::timeout(
                Duration::from_secs(15),
                client.request(subject.clone(), payload.into()),
            )
            .await
            .unwrap_or_else(|_| panic!("{what}: no reply in time"))
            .unwrap_or_else(|e| panic!("{what}: request failed: {e}"));

            // Assert
            let reply: Value = serde_json::from_slice(&reply.payload).expect("a JSON reply");
            assert_eq!(reply["status"], "failed", "{what}: {reply}");
            assert_eq!(reply["error_kind"], "bad_request", "{what}: {reply}");
            let error = reply["error"].as_str().unwrap_or_default();
            assert!(!error.is_empty() && error.len() < 300, "{what}: {reply}");
        }
        let reply = client
            .request(subject, valid.to_string().into())
            .await
            .expect("a reply to a good trigger");
        let reply: Value = serde_json::from_slice(&reply.payload).expect("a JSON reply");
        assert_eq!(
            reply["status"], "success",
            "the node still backs up: {reply}"
        );
        app.stop().await;
        sim.shutdown().await;
        infra.finish().await;
    })
    .await;
}

/// The `snapshot_event_rejected` audit details of `t1`, through the API.
async fn rejected_events(app: &TestApp) -> Vec<Value> {
    app.audit_events()
        .await
        .into_iter()
        .filter(|e| e["action"] == "snapshot_event_rejected")
        .map(|e| e["detail"].clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_snapshot_events_are_terminated_and_audited_and_the_node_still_stores() {
    within(LIMIT, async {
        // Arrange
        let (infra, sim, app, client) = served_node().await;
        let subject = format!("t{}.config.snapshot.create.t1.dev-0", infra.tag);
        let secret = "secret=hostile-event-marker";
        let valid = json!({
            "device_id": "dev-0",
            "tenant_id": "t1",
            "routeros_version": "7.16",
            "collected_at": "2024-05-01T10:00:00Z",
            "sha256_hash": "0".repeat(64),
            "config_text": format!("/ip address\nadd comment=\"{secret}\"\n"),
            "normalization_version": 1,
        });
        let mut cases = hostile_payloads(&valid);
        let mut wrong_hash = valid.clone();
        wrong_hash["config_text"] = json!(format!("/x {secret}\n").repeat(900 * 1024 / 32));
        cases.push((
            "a 900 KB event whose hash does not match".to_owned(),
            wrong_hash.to_string().into_bytes(),
        ));
        let js = async_nats::jetstream::new(client);

        // Act
        for (what, payload) in &cases {
            js.publish(subject.clone(), payload.clone().into())
                .await
                .unwrap_or_else(|e| panic!("{what}: publish failed: {e}"))
                .await
                .unwrap_or_else(|e| panic!("{what}: not acked by the stream: {e}"));
        }

        // Assert: each is audited once, without config text.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let rejected = loop {
            let rejected = rejected_events(&app).await;
            if rejected.len() >= cases.len() || tokio::time::Instant::now() > deadline {
                break rejected;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert_eq!(
            rejected.len(),
            cases.len(),
            "one audit record per hostile event"
        );
        for detail in &rejected {
            assert!(detail["reason"].as_str().is_some_and(|r| !r.is_empty()));
            assert!(
                !detail.to_string().contains("hostile-event-marker"),
                "config text in an audit record"
            );
        }
        // Unharmed: a real backup still lands in the store.
        assert_eq!(app.trigger("dev-0").await.status(), 201);
        app.await_snapshots(&["dev-0".to_owned()]).await;
        assert_eq!(
            app.snapshots("dev-0").await.len(),
            1,
            "no hostile event was stored"
        );
        app.stop().await;
        sim.shutdown().await;
        infra.finish().await;
    })
    .await;
}
