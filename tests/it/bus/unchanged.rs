//! Unchanged snapshot events through the ingester: recorded as duplicates
//! many per transaction, and on the local bus what was received is recorded
//! by a graceful shutdown (duplicates and attempt reports alike).

use std::time::Duration;

use cfgsnap::backup::{AttemptReport, AttemptStatus, Trigger};
use chrono::{SubsecRound, Utc};

use super::events::{event, ingest};
use super::{Stack, TestBus, TestStore, config_text, eventually};

const WAIT: Duration = Duration::from_secs(20);
const DEVICES: [&str; 3] = ["r1", "r2", "r3"];

on_both_stacks!(unchanged_events_are_recorded_as_duplicates_and_store_nothing,);

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

/// Publishes one version per device and waits until all are stored.
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
