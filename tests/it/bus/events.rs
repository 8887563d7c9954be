//! Snapshot events into the store (DESIGN.md §3.2, §7): stored once,
//! republish deduplicated, poison terminated and audited, ingesters sharing
//! a durable, attempt reports recorded, and a manual trigger end to end.

use std::sync::Arc;
use std::time::Duration;

use cfgsnap::backup::{AttemptReport, AttemptStatus, ErrorKind, SnapshotSink, Trigger};
use cfgsnap::bus::ingest::{IngestOptions, spawn_ingester};
use cfgsnap::bus::responder::{Responder, ResponderOptions, spawn_responder};
use cfgsnap::bus::{Bus, SnapshotEvent, TriggerRequest};
use cfgsnap::id::{DeviceId, TenantId};
use serde_json::json;
use tokio::sync::watch;

use super::{ScriptedExecutor, Stack, TestBus, TestStore, config_text, eventually, outcome};

const WAIT: Duration = Duration::from_secs(20);

on_both_stacks!(
    a_published_snapshot_is_stored_once_even_when_republished,
    each_devices_events_are_stored_in_order_while_devices_interleave,
    malformed_events_are_terminated_and_audited_and_ingest_goes_on,
    two_ingesters_on_one_durable_store_each_event_once,
    attempt_reports_reach_the_store,
    a_success_is_reported_on_nats_and_left_to_its_event_on_the_local_bus,
    a_manual_trigger_runs_end_to_end_into_the_store,
);

/// Fast retries for tests.
pub fn options() -> IngestOptions {
    let ms = Duration::from_millis;
    IngestOptions {
        backoff: vec![ms(100), ms(300), ms(1000)],
        batch: 8,
        lanes: 4,
        metrics: None,
    }
}

pub async fn ingest(tb: &TestBus, bus: &Bus, ts: &TestStore) {
    spawn_ingester(
        bus,
        ts.store.clone(),
        options(),
        tb.shutdown.clone(),
        &tb.tracker,
    )
    .await
    .expect("ingester starts");
}

/// The event of a backup of `device` (configured in `ts`) that got `text`.
pub fn event(ts: &TestStore, device: &str, text: &str) -> SnapshotEvent {
    let device = ts.fleet.device(device).expect("configured device");
    SnapshotEvent::from_outcome(&outcome(device, text), Some("test-poller".into()))
}

fn count(audit: &[(String, serde_json::Value)], action: &str) -> usize {
    audit.iter().filter(|(a, _)| a == action).count()
}

async fn each_devices_events_are_stored_in_order_while_devices_interleave(stack: Stack) {
    // Arrange: on NATS the ingester stores several devices at once.
    let tb = TestBus::start(stack).await;
    let devices = ["r1", "r2", "r3"];
    let ts = TestStore::start(&devices.map(|d| ("t1", d))).await;
    ingest(&tb, &tb.bus, &ts).await;

    // Act: ten versions of each device, interleaved.
    let mut published: Vec<Vec<String>> = vec![Vec::new(); devices.len()];
    for v in 0..10 {
        for (i, d) in devices.iter().enumerate() {
            let e = event(&ts, d, &config_text(&format!("{d}-{v}")));
            tb.bus.publish_snapshot(&e).await.expect("published");
            published[i].push(e.sha256_hash.clone());
        }
    }

    // Assert: every version stored, in order; none taken for stale.
    eventually(WAIT, "30 versions", || async {
        let mut stored = 0;
        for d in devices {
            stored += ts.snapshots("t1", d).await.len();
        }
        stored == 30
    })
    .await;
    for (i, d) in devices.iter().enumerate() {
        let mut newest_first = published[i].clone();
        newest_first.reverse();
        assert_eq!(ts.snapshots("t1", d).await, newest_first, "{d}");
    }
    let audit = ts.audit("t1").await;
    assert_eq!(count(&audit, "config_snapshot_stale"), 0);
    tb.stop().await;
}

async fn a_published_snapshot_is_stored_once_even_when_republished(stack: Stack) {
    // Arrange
    let tb = TestBus::start(stack).await;
    let ts = TestStore::start(&[("t1", "r1")]).await;
    ingest(&tb, &tb.bus, &ts).await;
    let text = config_text("first");
    let event = event(&ts, "r1", &text);

    // Act
    let first = tb.bus.publish_snapshot(&event).await.expect("published");
    let again = tb.bus.publish_snapshot(&event).await.expect("republished");

    // Assert
    assert!(!first.duplicate);
    assert_eq!(
        again.duplicate,
        stack == Stack::Served,
        "the stream drops the republish"
    );
    eventually(WAIT, "the snapshot", || async {
        ts.snapshots("t1", "r1").await.len() == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        ts.snapshots("t1", "r1").await,
        vec![event.sha256_hash.clone()]
    );
    let meta = ts
        .store
        .newest_snapshot("t1", "r1")
        .await
        .expect("reads")
        .expect("one");
    let content = ts
        .store
        .snapshot_content("t1", "r1", meta.id)
        .await
        .expect("content");
    assert!(
        content == text,
        "stored content differs from the published text"
    );
    assert_eq!(meta.trigger.as_str(), "manual");
    assert_eq!(count(&ts.audit("t1").await, "config_snapshot_created"), 1);
    tb.stop().await;
}

async fn malformed_events_are_terminated_and_audited_and_ingest_goes_on(stack: Stack) {
    // Arrange
    let tb = TestBus::start(stack).await;
    let ts = TestStore::start(&[("t1", "r1"), ("t1", "r2")]).await;
    ingest(&tb, &tb.bus, &ts).await;
    let prefix = format!("{}.create", tb.settings.snapshot_subject);
    let secret = "password=hunter2";
    let good = event(&ts, "r1", &config_text(secret));
    let mut mismatch = serde_json::to_value(&good).expect("JSON");
    mismatch["config_text"] = json!(format!("{}\n/extra {secret}\n", config_text(secret)));
    let mut wrong_type = serde_json::to_value(&good).expect("JSON");
    wrong_type["normalization_version"] = json!(secret);
    let mut unknown_device = serde_json::to_value(&good).expect("JSON");
    unknown_device["device_id"] = json!("r9");
    let poison: Vec<(String, Vec<u8>)> = vec![
        (format!("{prefix}.t1.r1"), b"\xff\x00 garbage".to_vec()),
        (
            format!("{prefix}.t1.r1"),
            br#"{"device_id": "r1", "tenant_id": "#.to_vec(),
        ),
        (
            format!("{prefix}.t1.r1"),
            wrong_type.to_string().into_bytes(),
        ),
        (format!("{prefix}.t1.r1"), mismatch.to_string().into_bytes()),
        (
            format!("{prefix}.t1.r2"),
            serde_json::to_vec(&good).expect("JSON"),
        ),
        (
            format!("{prefix}.t1.r9"),
            unknown_device.to_string().into_bytes(),
        ),
        (format!("{prefix}.t%1.r1"), b"not json".to_vec()),
    ];

    // Act
    for (subject, payload) in poison {
        tb.bus
            .publish_snapshot_raw(&subject, payload)
            .await
            .expect("published");
    }
    tb.bus.publish_snapshot(&good).await.expect("published");

    // Assert: the good one lands after the poison, which is audited once each.
    eventually(WAIT, "the good event", || async {
        ts.snapshots("t1", "r1").await.len() == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let audit = ts.audit("t1").await;
    let rejected: Vec<_> = audit
        .iter()
        .filter(|(a, _)| a == "snapshot_event_rejected")
        .collect();
    assert_eq!(rejected.len(), 6, "one audit row per poison event in t1");
    for (_, detail) in &rejected {
        let text = detail.to_string();
        assert!(
            !text.contains("hunter2"),
            "an audit detail holds config text"
        );
        assert!(
            detail["subject"]
                .as_str()
                .is_some_and(|s| s.starts_with(&prefix))
        );
        assert!(detail["reason"].as_str().is_some_and(|r| !r.is_empty()));
    }
    let reasons: Vec<&str> = rejected
        .iter()
        .filter_map(|(_, d)| d["reason"].as_str())
        .collect();
    for expected in [
        "malformed event",
        "does not match config_text",
        "subject does not match",
        "unknown device",
    ] {
        assert!(
            reasons.iter().any(|r| r.contains(expected)),
            "no rejection for {expected:?}: {reasons:?}"
        );
    }
    let unknown = ts.audit("_unknown").await;
    assert_eq!(
        count(&unknown, "snapshot_event_rejected"),
        1,
        "bad tenant token goes to _unknown"
    );
    assert_eq!(ts.snapshots("t1", "r2").await.len(), 0);
    tb.stop().await;
}

async fn two_ingesters_on_one_durable_store_each_event_once(stack: Stack) {
    // Arrange
    let tb = TestBus::start(stack).await;
    let devices: Vec<String> = (0..20).map(|i| format!("d{i}")).collect();
    let pairs: Vec<(&str, &str)> = devices.iter().map(|d| ("t1", d.as_str())).collect();
    let ts = TestStore::start(&pairs).await;
    let other = tb.second().await;
    ingest(&tb, &tb.bus, &ts).await;
    ingest(&tb, &other, &ts).await;

    // Act
    for d in &devices {
        let published = tb
            .bus
            .publish_snapshot(&event(&ts, d, &config_text(d)))
            .await;
        published.expect("published");
    }

    // Assert
    eventually(WAIT, "all events", || async {
        count(&ts.audit("t1").await, "config_snapshot_created") == 20
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    for d in &devices {
        assert_eq!(ts.snapshots("t1", d).await.len(), 1, "{d}");
    }
    let audit = ts.audit("t1").await;
    assert_eq!(count(&audit, "config_snapshot_created"), 20);
    assert_eq!(
        count(&audit, "config_snapshot_skipped_duplicate"),
        0,
        "an event was handled twice"
    );
    tb.stop().await;
}

async fn attempt_reports_reach_the_store(stack: Stack) {
    // Arrange
    let tb = TestBus::start(stack).await;
    let ts = TestStore::start(&[("t1", "r1")]).await;
    ingest(&tb, &tb.bus, &ts).await;
    let device = ts.fleet.device("r1").expect("configured").clone();
    let failed = AttemptReport {
        device_id: device.id.clone(),
        tenant_id: device.tenant.clone(),
        at: chrono::Utc::now(),
        trigger: Trigger::Scheduled,
        status: AttemptStatus::Failed,
        error_kind: Some(ErrorKind::AuthFailed),
        sha256_hash: None,
        next_attempt_at: None,
        blocked_reason: Some(ErrorKind::AuthFailed),
        poller_id: "remote-1".into(),
    };

    // Act
    tb.bus.publish_attempt(&failed).await.expect("published");

    // Assert
    eventually(WAIT, "the failure", || async {
        let state = ts.store.get_device("t1", "r1").await.expect("device");
        state.last_status.as_deref() == Some("failed")
    })
    .await;
    let state = ts.store.get_device("t1", "r1").await.expect("device");
    assert_eq!(state.last_error_kind.as_deref(), Some("auth_failed"));
    assert_eq!(state.blocked_reason.as_deref(), Some("auth_failed"));
    assert_eq!(state.consecutive_failures, 1);

    // Act
    let success = AttemptReport {
        status: AttemptStatus::Success,
        error_kind: None,
        blocked_reason: None,
        at: chrono::Utc::now(),
        ..failed
    };
    tb.bus.publish_attempt(&success).await.expect("published");

    // Assert
    eventually(WAIT, "the success", || async {
        let state = ts.store.get_device("t1", "r1").await.expect("device");
        state.last_status.as_deref() == Some("success") && state.consecutive_failures == 0
    })
    .await;
    tb.stop().await;
}

async fn a_success_is_reported_on_nats_and_left_to_its_event_on_the_local_bus(stack: Stack) {
    // Arrange: a listener for attempt reports, as the ingester's.
    let tb = TestBus::start(stack).await;
    let mut attempts = tb.bus.subscribe_attempts().await.expect("subscribed");
    let success = AttemptReport {
        device_id: DeviceId::parse("r1").expect("id"),
        tenant_id: TenantId::parse("t1").expect("id"),
        at: chrono::Utc::now(),
        trigger: Trigger::Scheduled,
        status: AttemptStatus::Success,
        error_kind: None,
        sha256_hash: Some("0".repeat(64)),
        next_attempt_at: None,
        blocked_reason: None,
        poller_id: "test-poller".into(),
    };
    let failed = AttemptReport {
        status: AttemptStatus::Failed,
        error_kind: Some(ErrorKind::Unreachable),
        sha256_hash: None,
        ..success.clone()
    };

    // Act: the executors' sink reports a success, then a failure.
    SnapshotSink::report(&tb.bus, &success).await;
    SnapshotSink::report(&tb.bus, &failed).await;

    // Assert: on NATS both arrive; on the local bus only the failure (the
    // in-process ingester records the success with its event).
    let mut next = async || {
        tokio::time::timeout(WAIT, attempts.next())
            .await
            .expect("a report within the wait")
            .expect("subscription open")
            .1
            .status
    };
    if stack == Stack::Served {
        assert_eq!(next().await, AttemptStatus::Success);
    }
    assert_eq!(next().await, AttemptStatus::Failed);
    tb.stop().await;
}

async fn a_manual_trigger_runs_end_to_end_into_the_store(stack: Stack) {
    // Arrange: responder + ingester; the executor publishes like the real one.
    let tb = TestBus::start(stack).await;
    let ts = TestStore::start(&[("t1", "r1")]).await;
    ingest(&tb, &tb.bus, &ts).await;
    let mut executor = ScriptedExecutor::succeeding();
    executor.sink = Some(tb.bus.clone());
    let (_reload, fleet) = watch::channel(Arc::clone(&ts.fleet));
    let responder = Responder {
        executor: Arc::new(executor),
        fleet,
        sink: Arc::new(tb.bus.clone()),
        options: ResponderOptions {
            max_concurrent: 2,
            poller_id: "poller-a".into(),
            silent_outside_fleet: false,
        },
    };
    spawn_responder(&tb.bus, responder, tb.shutdown.clone(), &tb.tracker)
        .await
        .expect("responder");
    let device = ts.fleet.device("r1").expect("configured");
    let request = TriggerRequest::new(&device.id, &device.tenant);

    // Act
    let reply = tb
        .bus
        .request_trigger(&request, Duration::from_secs(10))
        .await;

    // Assert
    let hash = reply.expect("a reply").sha256_hash.expect("success");
    eventually(WAIT, "the snapshot and the attempt", || async {
        let state = ts.store.get_device("t1", "r1").await.expect("device");
        state.newest_sha256_hash.as_deref() == Some(hash.as_str())
            && state.last_status.as_deref() == Some("success")
    })
    .await;
    tb.stop().await;
}
