//! The trigger responder (DESIGN.md §3.1): replies to well-formed, malformed
//! and unknown requests, `locked`, no-responders versus timeout, queue-group
//! delivery and shutdown.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cfgsnap::backup::{self, normalize::sha256_hex};
use cfgsnap::bus::responder::{Responder, ResponderOptions, spawn_responder};
use cfgsnap::bus::{Bus, Error, TriggerRequest};
use cfgsnap::config::Fleet;
use cfgsnap::id::{DeviceId, TenantId};
use serde_json::{Value, json};
use tokio::sync::{Notify, watch};

use super::{NATS_URL, ScriptedExecutor, Stack, TestBus, config_text, eventually, fleet};

pub const TIMEOUT: Duration = Duration::from_secs(10);

on_both_stacks!(
    malformed_requests_get_bad_request_replies,
    unknown_devices_and_other_tenants_devices_are_not_found,
    a_held_lock_replies_locked,
    a_device_failure_replies_failed_with_its_kind,
    no_responders_is_told_apart_from_a_timeout,
    one_responder_of_the_group_answers_each_request,
    shutdown_lets_in_flight_requests_finish,
);

/// Starts a responder on `bus` for devices `t1/r1` and `t2/r2`.
pub async fn respond(tb: &TestBus, bus: &Bus, executor: Arc<ScriptedExecutor>) {
    let fleet: Arc<Fleet> = Arc::new(fleet(&[("t1", "r1"), ("t2", "r2")]));
    let (_reload, fleet) = watch::channel(fleet);
    let responder = Responder {
        executor,
        fleet,
        sink: Arc::new(bus.clone()),
        options: ResponderOptions {
            max_concurrent: 4,
            poller_id: "test-poller".into(),
            silent_outside_fleet: false,
        },
    };
    spawn_responder(bus, responder, tb.shutdown.clone(), &tb.tracker)
        .await
        .expect("responder subscribes");
}

/// Sends raw bytes the way another system would (a plain NATS client), and
/// returns the reply as JSON.
async fn send(tb: &TestBus, payload: Vec<u8>) -> Value {
    let reply = match tb.bus {
        Bus::Nats(_) => {
            let client = async_nats::connect(NATS_URL)
                .await
                .expect("client connects");
            let subject = tb.settings.trigger_subject.clone();
            let request = async_nats::Request::new()
                .payload(payload.into())
                .timeout(Some(TIMEOUT));
            let message = client.send_request(subject, request).await;
            message.expect("a reply").payload.to_vec()
        }
        Bus::Local(_) => tb
            .bus
            .request_trigger_raw(payload, TIMEOUT)
            .await
            .expect("a reply"),
    };
    serde_json::from_slice(&reply).expect("the reply is JSON")
}

pub fn request(device: &str, tenant: &str) -> TriggerRequest {
    TriggerRequest::new(
        &DeviceId::parse(device).expect("id"),
        &TenantId::parse(tenant).expect("id"),
    )
}

async fn malformed_requests_get_bad_request_replies(stack: Stack) {
    // Arrange
    let tb = TestBus::start(stack).await;
    let executor = Arc::new(ScriptedExecutor::succeeding());
    respond(&tb, &tb.bus, Arc::clone(&executor)).await;
    let long = "a".repeat(65);
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("garbage bytes", vec![0xff, 0x00, 0xfe, b'{', 0x80]),
        ("empty body", Vec::new()),
        (
            "truncated JSON",
            br#"{"device_id": "r1", "tenant_id": "#.to_vec(),
        ),
        (
            "a number as device_id",
            br#"{"device_id": 1, "tenant_id": "t1"}"#.to_vec(),
        ),
        (
            "an array as tenant_id",
            br#"{"device_id": "r1", "tenant_id": ["t1"]}"#.to_vec(),
        ),
        ("a JSON array", b"[]".to_vec()),
        ("missing tenant_id", br#"{"device_id": "r1"}"#.to_vec()),
        (
            "trailing garbage",
            br#"{"device_id": "r1", "tenant_id": "t1"} x"#.to_vec(),
        ),
    ];
    for bad_id in ["r.1", "r*", ">", "r 1", "", long.as_str(), "r1\n"] {
        let body = json!({"device_id": bad_id, "tenant_id": "t1"}).to_string();
        cases.push(("a bad device id", body.into_bytes()));
    }
    let body = json!({"device_id": "r1", "tenant_id": "t.1"}).to_string();
    cases.push(("a bad tenant id", body.into_bytes()));
    let padding = "x".repeat(1_000_000);
    let body = json!({"device_id": "r1", "tenant_id": "t1", "pad": padding}).to_string();
    cases.push(("a 1 MB payload", body.into_bytes()));

    for (what, payload) in cases {
        // Act
        let reply = send(&tb, payload).await;

        // Assert
        assert_eq!(reply["status"], "failed", "{what}: {reply}");
        assert_eq!(reply["error_kind"], "bad_request", "{what}: {reply}");
        assert!(
            reply["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{what}: {reply}"
        );
    }
    assert_eq!(executor.runs(), 0, "no backup may run for a bad request");
}

async fn unknown_devices_and_other_tenants_devices_are_not_found(stack: Stack) {
    // Arrange
    let tb = TestBus::start(stack).await;
    let executor = Arc::new(ScriptedExecutor::succeeding());
    respond(&tb, &tb.bus, Arc::clone(&executor)).await;

    for (device, tenant) in [("nope", "t1"), ("r2", "t1"), ("r1", "t9")] {
        // Act
        let reply = tb
            .bus
            .request_trigger(&request(device, tenant), TIMEOUT)
            .await;

        // Assert
        let reply = reply.expect("a reply");
        assert_eq!(reply.status, backup::AttemptStatus::Failed);
        assert_eq!(
            reply.error_kind,
            Some(backup::ErrorKind::NotFound),
            "{device}/{tenant}"
        );
        assert_eq!(
            reply.error.as_deref(),
            Some(format!("unknown device {device}").as_str())
        );
    }
    assert_eq!(executor.runs(), 0);
}

async fn a_held_lock_replies_locked(stack: Stack) {
    // Arrange
    let tb = TestBus::start(stack).await;
    let executor = Arc::new(ScriptedExecutor::new(|_| Err(backup::Error::LockHeld)));
    respond(&tb, &tb.bus, executor).await;

    // Act
    let reply = send(&tb, br#"{"device_id":"r1","tenant_id":"t1"}"#.to_vec()).await;

    // Assert
    assert_eq!(
        reply,
        json!({"status": "locked", "message": "backup already in progress"})
    );
}

async fn a_device_failure_replies_failed_with_its_kind(stack: Stack) {
    // Arrange
    let tb = TestBus::start(stack).await;
    let executor = ScriptedExecutor::new(|_| {
        Err(backup::Error::AuthRejected {
            username: "admin".into(),
        })
    });
    respond(&tb, &tb.bus, Arc::new(executor)).await;

    // Act
    let reply = tb.bus.request_trigger(&request("r1", "t1"), TIMEOUT).await;

    // Assert
    let reply = reply.expect("a reply");
    assert_eq!(reply.status, backup::AttemptStatus::Failed);
    assert_eq!(reply.error_kind, Some(backup::ErrorKind::AuthFailed));
    assert_eq!(
        reply.error.as_deref(),
        Some("authentication rejected for user \"admin\"")
    );
    assert_eq!(reply.sha256_hash, None);
}

async fn no_responders_is_told_apart_from_a_timeout(stack: Stack) {
    // Arrange
    let tb = TestBus::start(stack).await;

    // Act: nobody listens.
    let started = Instant::now();
    let nobody = tb.bus.request_trigger(&request("r1", "t1"), TIMEOUT).await;
    let nobody_took = started.elapsed();

    // Assert
    assert!(matches!(nobody, Err(Error::NoResponders)), "{nobody:?}");
    assert!(
        nobody_took < Duration::from_secs(1),
        "no-responders took {nobody_took:?}"
    );

    // Arrange: a responder whose device never answers.
    let gate = Arc::new(Notify::new());
    let mut executor = ScriptedExecutor::succeeding();
    executor.gate = Some(Arc::clone(&gate));
    respond(&tb, &tb.bus, Arc::new(executor)).await;

    // Act
    let started = Instant::now();
    let slow = tb
        .bus
        .request_trigger(&request("r1", "t1"), Duration::from_millis(500))
        .await;

    // Assert
    assert!(matches!(slow, Err(Error::TimedOut(_))), "{slow:?}");
    assert!(started.elapsed() >= Duration::from_millis(500));
    gate.notify_one();
    tb.stop().await;
}

async fn one_responder_of_the_group_answers_each_request(stack: Stack) {
    // Arrange: two responders (on two connections for NATS) in one group.
    let tb = TestBus::start(stack).await;
    let first = Arc::new(ScriptedExecutor::succeeding());
    let second = Arc::new(ScriptedExecutor::succeeding());
    let other = tb.second().await;
    respond(&tb, &tb.bus, Arc::clone(&first)).await;
    respond(&tb, &other, Arc::clone(&second)).await;

    // Act
    let req = request("r1", "t1");
    let requests = (0..20).map(|_| tb.bus.request_trigger(&req, TIMEOUT));
    let replies = futures_util::future::join_all(requests).await;

    // Assert: every request answered, and exactly one backup per request.
    assert!(
        replies
            .iter()
            .all(|r| r.as_ref().is_ok_and(|r| r.sha256_hash.is_some()))
    );
    assert_eq!(first.runs() + second.runs(), 20);
}

async fn shutdown_lets_in_flight_requests_finish(stack: Stack) {
    // Arrange: a backup in flight.
    let tb = TestBus::start(stack).await;
    let gate = Arc::new(Notify::new());
    let mut executor = ScriptedExecutor::succeeding();
    executor.gate = Some(Arc::clone(&gate));
    let executor = Arc::new(executor);
    respond(&tb, &tb.bus, Arc::clone(&executor)).await;
    let bus = tb.bus.clone();
    let in_flight =
        tokio::spawn(async move { bus.request_trigger(&request("r1", "t1"), TIMEOUT).await });
    eventually(TIMEOUT, "the backup to start", || async {
        executor.runs() == 1
    })
    .await;

    // Act: probes for an unknown device never reach the (gated) executor.
    tb.shutdown.cancel();
    let probe = request("nope", "t1");
    eventually(TIMEOUT, "the responder to leave", || async {
        let late = tb.bus.request_trigger(&probe, Duration::from_secs(1)).await;
        matches!(late, Err(Error::NoResponders))
    })
    .await;
    gate.notify_one();

    // Assert
    let reply = in_flight
        .await
        .expect("joins")
        .expect("the in-flight request is answered");
    assert_eq!(reply.sha256_hash, Some(sha256_hex(&config_text("r1"))));
    tb.stop().await;
    assert_eq!(executor.runs(), 1);
}
