//! Unchanged snapshot events through the ingester: recorded as duplicates
//! many per transaction (the lanes going on meanwhile on NATS), and on the local bus what was received is recorded
//! by a graceful shutdown (duplicates and attempt reports alike).

use std::time::Duration;

use cfgsnap::backup::{AttemptReport, AttemptStatus, Trigger};
use cfgsnap::bus::ingest::{IngestOptions, spawn_ingester};
use cfgsnap::metrics::Metrics;
use chrono::{SubsecRound, Utc};

use super::events::{event, ingest, options};
use super::{Stack, TestBus, TestStore, config_text, eventually};

const WAIT: Duration = Duration::from_secs(20);
const DEVICES: [&str; 3] = ["r1", "r2", "r3"];

on_both_stacks!(
    unchanged_events_are_recorded_as_duplicates_and_store_nothing,
    unchanged_events_of_many_devices_share_a_few_transactions,
    an_event_with_an_empty_text_is_rejected_even_with_the_newest_hash,
);

#[tokio::test]
async fn a_graceful_shutdown_records_the_unchanged_events_and_reports_it_received() {
    cfgsnap_testkit::within(WAIT * 2, async {
        // Arrange: every device has its version stored.
        let tb = TestBus::start(Stack::Embedded).await;
        let ts = TestStore::start(&DEVICES.map(|d| ("t1", d))).await;
        ingest(&tb, &tb.bus, &ts).await;
        store_first_versions(&tb, &ts).await;

        // Act: the same exports again and a success report each, then stop
        // at once (the batches wait up to 100 and 200 ms for more).
        let mut last = Vec::new();
        for d in DEVICES {
            let e = event(&ts, d, &config_text(d));
            tb.bus.publish_snapshot(&e).await.expect("published");
            // Later than the event: only the report can record this time.
            let r = report(&ts, d);
            last.push(r.at.trunc_subsecs(6));
            tb.bus.publish_attempt(&r).await.expect("published");
        }
        tb.stop().await;

        // Assert: recorded by the shutdown, not lost with the process.
        let audit = ts.audit("t1").await;
        let duplicates = audit
            .iter()
            .filter(|(a, _)| a == "config_snapshot_skipped_duplicate")
            .count();
        assert_eq!(duplicates, DEVICES.len());
        for (d, at) in DEVICES.iter().zip(&last) {
            let state = ts.store.get_device("t1", d).await.expect("device");
            assert!(
                state.last_success_at >= Some(*at),
                "{d}: last success {:?}, expected the report's {at}",
                state.last_success_at
            );
            assert_eq!(ts.snapshots("t1", d).await.len(), 1, "{d}");
        }
    })
    .await;
}

async fn unchanged_events_are_recorded_as_duplicates_and_store_nothing(stack: Stack) {
    // Arrange
    let tb = TestBus::start(stack).await;
    let ts = TestStore::start(&DEVICES.map(|d| ("t1", d))).await;
    ingest(&tb, &tb.bus, &ts).await;
    store_first_versions(&tb, &ts).await;

    // Act: five passes that find every export unchanged.
    for _ in 0..5 {
        for d in DEVICES {
            let e = event(&ts, d, &config_text(d));
            tb.bus.publish_snapshot(&e).await.expect("published");
        }
    }

    // Assert
    eventually(WAIT, "15 duplicates", || async {
        let audit = ts.audit("t1").await;
        audit
            .iter()
            .filter(|(a, _)| a == "config_snapshot_skipped_duplicate")
            .count()
            == 15
    })
    .await;
    for d in DEVICES {
        assert_eq!(ts.snapshots("t1", d).await.len(), 1, "{d}");
    }
    tb.stop().await;
}

async fn unchanged_events_of_many_devices_share_a_few_transactions(stack: Stack) {
    // Arrange: 40 devices with their versions stored, an ingester of four
    // lanes that counts its batches.
    let tb = TestBus::start(stack).await;
    let names: Vec<String> = (0..40).map(|i| format!("m{i}")).collect();
    let devices: Vec<(&str, &str)> = names.iter().map(|d| ("t1", d.as_str())).collect();
    let ts = TestStore::start(&devices).await;
    let metrics = Metrics::new();
    let options = IngestOptions {
        metrics: Some(metrics.clone()),
        ..options()
    };
    spawn_ingester(
        &tb.bus,
        ts.store.clone(),
        options,
        tb.shutdown.clone(),
        &tb.tracker,
    )
    .await
    .expect("ingester starts");
    for d in &names {
        let e = event(&ts, d, &config_text(d));
        tb.bus.publish_snapshot(&e).await.expect("published");
    }
    eventually(WAIT, "the first versions", || async {
        counter(&metrics, "cfgsnap_ingest_total{result=\"created\"}") == 40
    })
    .await;

    // Act: every export again.
    for d in &names {
        let e = event(&ts, d, &config_text(d));
        tb.bus.publish_snapshot(&e).await.expect("published");
    }

    // Assert: recorded in a few transactions. A lane that waited for its
    // unchanged event's commit (on NATS, at most one event per lane in a
    // batch of four) took ten or more.
    eventually(WAIT, "40 duplicates", || async {
        counter(&metrics, "cfgsnap_ingest_total{result=\"duplicate\"}") == 40
    })
    .await;
    let batches = counter(&metrics, "cfgsnap_ingest_unchanged_batches_total");
    assert!(
        (1..=4).contains(&batches),
        "40 unchanged events took {batches} transactions"
    );
    tb.stop().await;
}

/// The value of `series` in the metrics text (0 when absent).
fn counter(metrics: &Metrics, series: &str) -> u64 {
    metrics
        .encode()
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0)
}

/// Publishes one version per device and waits until all are stored.
async fn an_event_with_an_empty_text_is_rejected_even_with_the_newest_hash(stack: Stack) {
    // Arrange
    let tb = TestBus::start(stack).await;
    let ts = TestStore::start(&DEVICES.map(|d| ("t1", d))).await;
    ingest(&tb, &tb.bus, &ts).await;
    store_first_versions(&tb, &ts).await;

    // Act: r1's newest hash, but no text (only claims come textless, on
    // a subject of their own).
    let mut e = event(&ts, "r1", &config_text("r1"));
    e.config_text = Some(String::new());
    tb.bus.publish_snapshot(&e).await.expect("published");

    // Assert: rejected and audited, not recorded as a duplicate.
    eventually(WAIT, "the rejection audited", || async {
        let audit = ts.audit("t1").await;
        audit.iter().any(|(a, _)| a == "snapshot_event_rejected")
    })
    .await;
    let audit = ts.audit("t1").await;
    let duplicates = audit
        .iter()
        .filter(|(a, _)| a == "config_snapshot_skipped_duplicate")
        .count();
    assert_eq!(duplicates, 0);
    tb.stop().await;
}

async fn store_first_versions(tb: &TestBus, ts: &TestStore) {
    for d in DEVICES {
        let e = event(ts, d, &config_text(d));
        tb.bus.publish_snapshot(&e).await.expect("published");
    }
    eventually(WAIT, "the first versions", || async {
        let mut stored = 0;
        for d in DEVICES {
            stored += ts.snapshots("t1", d).await.len();
        }
        stored == DEVICES.len()
    })
    .await;
}

fn report(ts: &TestStore, device: &str) -> AttemptReport {
    let device = ts.fleet.device(device).expect("configured device");
    AttemptReport {
        device_id: device.id.clone(),
        tenant_id: device.tenant.clone(),
        at: Utc::now(),
        trigger: Trigger::Scheduled,
        status: AttemptStatus::Success,
        error_kind: None,
        sha256_hash: None,
        next_attempt_at: None,
        blocked_reason: None,
        poller_id: "test-poller".into(),
    }
}
