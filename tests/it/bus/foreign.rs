//! Events published as the other system's pollers publish them (DESIGN.md
//! §3.2): subject `{snapshot}.create.{device_id}` (no tenant), the seven
//! payload fields, no `Nats-Msg-Id`; on NATS into its stream. Stored for the
//! device's tenant, deduplicated by hash; a tenant that does not own the
//! device, a missing tenant, an unknown device and malformed bodies are
//! terminated and audited, and ingest goes on.

use std::time::Duration;

use cfgsnap::backup::normalize::sha256_hex;
use serde_json::{Value, json};

use super::events::ingest;
use super::shared::{SharedNames, create_like_the_pollers};
use super::{Stack, TestBus, TestStore, config_text, eventually};

const WAIT: Duration = Duration::from_secs(20);

on_both_stacks!(
    an_event_from_the_other_systems_poller_is_stored_for_the_devices_tenant,
    four_token_events_with_a_wrong_or_missing_tenant_or_a_bad_body_are_refused_and_audited,
);

/// The seven fields the other system's pollers send for `device` of `tenant`.
fn seven_fields(tenant: &str, device: &str, text: &str) -> Value {
    json!({
        "device_id": device,
        "tenant_id": tenant,
        "routeros_version": "7.15",
        "collected_at": chrono::Utc::now().to_rfc3339(),
        "sha256_hash": sha256_hex(text),
        "config_text": text,
        "normalization_version": 1,
    })
}

/// A bus on `names`, on NATS behind the other system's stream.
async fn start(stack: Stack, names: &SharedNames) -> TestBus {
    crate::helpers::init_tracing();
    if stack == Stack::Served {
        super::require_nats().await;
        create_like_the_pollers(names.foreign_config()).await;
    }
    TestBus::with_settings(names.settings()).await
}

fn rejections(audit: &[(String, Value)]) -> Vec<Value> {
    audit
        .iter()
        .filter(|(a, _)| a == "snapshot_event_rejected")
        .map(|(_, d)| d.clone())
        .collect()
}

async fn an_event_from_the_other_systems_poller_is_stored_for_the_devices_tenant(stack: Stack) {
    // Arrange
    let names = SharedNames::new(stack);
    let tb = start(stack, &names).await;
    let ts = TestStore::start(&[("t1", "r1"), ("t2", "r2")]).await;
    ingest(&tb, &tb.bus, &ts).await;
    let subject = format!("{}.create.r1", names.settings().snapshot_subject);
    let payload = seven_fields("t1", "r1", &config_text("poller"));

    // Act: the same event twice, as a poller retrying without a message id.
    for _ in 0..2 {
        let bytes = payload.to_string().into_bytes();
        tb.bus
            .publish_snapshot_raw(&subject, bytes)
            .await
            .expect("published");
    }

    // Assert: stored once for t1, as a scheduled backup; the copy is a
    // duplicate by hash.
    eventually(WAIT, "the duplicate recorded", || async {
        let audit = ts.audit("t1").await;
        audit
            .iter()
            .any(|(a, _)| a == "config_snapshot_skipped_duplicate")
    })
    .await;
    assert_eq!(
        ts.snapshots("t1", "r1").await,
        vec![
            payload["sha256_hash"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        ]
    );
    let meta = ts.store.newest_snapshot("t1", "r1").await.expect("reads");
    let meta = meta.expect("stored");
    assert_eq!(meta.trigger.as_str(), "scheduled");
    let content = ts.store.snapshot_content("t1", "r1", meta.id).await;
    assert!(
        content.expect("content") == config_text("poller"),
        "stored text differs"
    );
    assert!(rejections(&ts.audit("t1").await).is_empty());
    tb.stop().await;
}

/// Four-token events that must be refused, on `{snapshot}.create.{device}`;
/// each text holds a password that must not reach an audit row.
fn poison(snapshot: &str) -> Vec<(String, Vec<u8>)> {
    let on = |device: &str| format!("{snapshot}.create.{device}");
    let text = config_text("password=hunter2");
    let mut no_tenant = seven_fields("t1", "r1", &text);
    no_tenant.as_object_mut().map(|o| o.remove("tenant_id"));
    vec![
        // r1 belongs to t1, not t2.
        (on("r1"), seven_fields("t2", "r1", &text).to_string().into()),
        (on("r1"), no_tenant.to_string().into()),
        (on("r9"), seven_fields("t1", "r9", &text).to_string().into()),
        // The subject names r2, the payload r1.
        (on("r2"), seven_fields("t1", "r1", &text).to_string().into()),
        (on("r1"), b"\xff\x00 garbage".to_vec()),
        (on("r1"), br#"{"device_id": "r1", "tenant_id": "#.to_vec()),
    ]
}

/// The reasons of `tenant`'s rejection audit rows, after checking that no
/// row holds config text.
async fn reasons(ts: &TestStore, tenant: &str) -> Vec<String> {
    let rows = rejections(&ts.audit(tenant).await);
    for row in &rows {
        let leaked = row.to_string().contains("hunter2");
        assert!(!leaked, "an audit detail holds config text");
    }
    rows.iter()
        .map(|d| d["reason"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn four_token_events_with_a_wrong_or_missing_tenant_or_a_bad_body_are_refused_and_audited(
    stack: Stack,
) {
    // Arrange
    let names = SharedNames::new(stack);
    let tb = start(stack, &names).await;
    let ts = TestStore::start(&[("t1", "r1"), ("t2", "r2")]).await;
    ingest(&tb, &tb.bus, &ts).await;
    let snapshot = names.settings().snapshot_subject;
    let good = seven_fields("t1", "r1", &config_text("good"));

    // Act
    for (subject, payload) in poison(&snapshot) {
        let published = tb.bus.publish_snapshot_raw(&subject, payload).await;
        published.expect("published");
    }
    let subject = format!("{snapshot}.create.r1");
    let published = tb
        .bus
        .publish_snapshot_raw(&subject, good.to_string().into())
        .await;
    published.expect("published");

    // Assert: the good event lands after the poison; each poison event is
    // audited once (t1: unknown device, subject mismatch; t2: the wrong
    // tenant; _unknown: bodies without a readable tenant).
    eventually(WAIT, "the good event and every rejection", || async {
        let stored = ts.snapshots("t1", "r1").await.len() == 1;
        let t1 = rejections(&ts.audit("t1").await).len();
        let t2 = rejections(&ts.audit("t2").await).len();
        let unknown = rejections(&ts.audit("_unknown").await).len();
        stored && t1 == 2 && t2 == 1 && unknown == 3
    })
    .await;
    let t2 = reasons(&ts, "t2").await;
    assert!(t2[0].contains("does not belong to tenant t2"), "{t2:?}");
    let t1 = reasons(&ts, "t1").await;
    assert!(t1.iter().any(|r| r.contains("unknown device r9")), "{t1:?}");
    assert!(
        t1.iter().any(|r| r.contains("subject does not match")),
        "{t1:?}"
    );
    let unknown = reasons(&ts, "_unknown").await;
    assert!(
        unknown.iter().all(|r| r.contains("malformed")),
        "{unknown:?}"
    );
    assert!(ts.snapshots("t2", "r2").await.is_empty());
    tb.stop().await;
}
