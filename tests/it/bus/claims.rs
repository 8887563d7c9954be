//! Unchanged claims (issue #21) on NATS, through the real pipeline, Redis
//! locks and ingester: an export whose hash the device's previous backup
//! handed over is recorded without its text crossing JetStream; anything
//! the store cannot confirm (a newer version from another publisher, no
//! ingester listening, a hostile claim) is published in full, so no
//! version is ever lost to a claim.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cfgsnap::backup::pipeline::Pipeline;
use cfgsnap::backup::{Executor as _, Trigger};
use cfgsnap::bus::{SnapshotEvent, UnchangedReply, UnchangedStatus};
use cfgsnap::lock::Locker;
use cfgsnap_testkit::service::REDIS_URL;

use super::events::{event, ingest};
use super::{
    NATS_URL, ScriptedExecutor, Stack, TEST_LIMIT, TestBus, TestStore, config_text, eventually,
    outcome, suffix,
};

const WAIT: Duration = Duration::from_secs(20);

/// A pipeline over the test bus whose device answers with `text`.
pub(crate) fn pipeline(
    tb: &TestBus,
    text: &Arc<Mutex<String>>,
) -> Pipeline<ScriptedExecutor, cfgsnap::bus::Bus> {
    let text = Arc::clone(text);
    let executor = ScriptedExecutor::new(move |d| {
        let text = text.lock().expect("not poisoned").clone();
        Ok(outcome(d, &text))
    });
    let prefix = format!("test-{}:backup:device:", suffix());
    let locker = Locker::connect(REDIS_URL, &prefix).expect("valid url");
    Pipeline::new(executor, locker, tb.bus.clone(), Duration::from_secs(60))
}

/// Messages in the test's event stream.
async fn stream_messages(tb: &TestBus) -> u64 {
    let client = async_nats::connect(NATS_URL).await.expect("connects");
    let js = async_nats::jetstream::new(client);
    let mut stream = js.get_stream(&tb.settings.stream).await.expect("stream");
    stream.info().await.expect("stream info").state.messages
}

fn count(audit: &[(String, serde_json::Value)], action: &str) -> usize {
    audit.iter().filter(|(a, _)| a == action).count()
}

#[tokio::test]
async fn an_unchanged_export_is_recorded_without_crossing_the_stream_and_a_revert_is_not_lost() {
    cfgsnap_testkit::within(TEST_LIMIT, async {
        // Arrange
        let tb = TestBus::start(Stack::Served).await;
        let ts = TestStore::start(&[("t1", "r1")]).await;
        ingest(&tb, &tb.bus, &ts).await;
        let text = Arc::new(Mutex::new(config_text("a")));
        let pipeline = pipeline(&tb, &text);
        let device = ts.fleet.device("r1").expect("configured");
        pipeline
            .run(device, Trigger::Scheduled)
            .await
            .expect("first backup");
        eventually(WAIT, "the first version", || async {
            ts.snapshots("t1", "r1").await.len() == 1
        })
        .await;

        // Act: the same export twice more.
        let mut last = None;
        for _ in 0..2 {
            let o = pipeline
                .run(device, Trigger::Scheduled)
                .await
                .expect("unchanged backup");
            assert!(o.recorded, "the store confirmed it: no report needed");
            last = Some(o.collected_at);
        }

        // Assert: recorded by the time each backup returned, and the
        // stream holds the first event only.
        assert_eq!(
            stream_messages(&tb).await,
            1,
            "no event for unchanged exports"
        );
        let audit = ts.audit("t1").await;
        assert_eq!(count(&audit, "config_snapshot_skipped_duplicate"), 2);
        let state = ts.store.get_device("t1", "r1").await.expect("device");
        let last = last.expect("ran");
        let recorded = state.last_success_at.expect("a success");
        assert!(
            (recorded - last).num_milliseconds().abs() < 1,
            "last success {recorded}, the last backup's {last}"
        );

        // Act: a new version, then another publisher's newer one (which our
        // locks never see), then the device goes back to ours.
        *text.lock().expect("not poisoned") = config_text("b");
        pipeline.run(device, Trigger::Scheduled).await.expect("b");
        let foreign = event(&ts, "r1", &config_text("c"));
        tb.bus.publish_snapshot(&foreign).await.expect("published");
        eventually(WAIT, "versions a, b and c", || async {
            ts.snapshots("t1", "r1").await.len() == 3
        })
        .await;
        let revert = pipeline
            .run(device, Trigger::Scheduled)
            .await
            .expect("b again");
        assert!(!revert.recorded, "published in full, reported as usual");

        // Assert: the store did not confirm b (its newest is c), so the
        // export went out in full and the revert is a version of its own.
        eventually(WAIT, "the revert to b stored", || async {
            ts.snapshots("t1", "r1").await.len() == 4
        })
        .await;
        let history = ts.snapshots("t1", "r1").await;
        let b = cfgsnap::backup::normalize::sha256_hex(&config_text("b"));
        assert_eq!(history[0], b, "the newest version is the revert");
        assert_eq!(stream_messages(&tb).await, 4);
        tb.stop().await;
    })
    .await;
}

#[tokio::test]
async fn without_an_ingester_listening_every_export_is_published_in_full() {
    cfgsnap_testkit::within(TEST_LIMIT, async {
        // Arrange: nobody answers claims (an older ingester, or none).
        let tb = TestBus::start(Stack::Served).await;
        let ts = TestStore::start(&[("t1", "r1")]).await;
        let text = Arc::new(Mutex::new(config_text("a")));
        let pipeline = pipeline(&tb, &text);
        let device = ts.fleet.device("r1").expect("configured");

        // Act
        for _ in 0..3 {
            pipeline
                .run(device, Trigger::Scheduled)
                .await
                .expect("backup");
        }

        // Assert
        assert_eq!(stream_messages(&tb).await, 3);
        tb.stop().await;
    })
    .await;
}

#[tokio::test]
async fn hostile_claims_are_answered_publish_and_record_nothing() {
    cfgsnap_testkit::within(TEST_LIMIT, async {
        // Arrange: r1 of t1 and r2 of t2 have their versions stored.
        let tb = TestBus::start(Stack::Served).await;
        let ts = TestStore::start(&[("t1", "r1"), ("t2", "r2")]).await;
        ingest(&tb, &tb.bus, &ts).await;
        for (t, d) in [("t1", "r1"), ("t2", "r2")] {
            let e = event(&ts, d, &config_text(d));
            tb.bus.publish_snapshot(&e).await.expect("published");
            eventually(WAIT, "the first version", || async {
                ts.snapshots(t, d).await.len() == 1
            })
            .await;
        }
        let client = async_nats::connect(NATS_URL).await.expect("connects");
        let subjects = tb.bus.subjects().clone();
        let claim = |d: &str, text: &str| {
            let device = ts.fleet.device(d).expect("configured");
            SnapshotEvent::claim_from_outcome(&outcome(device, text), Some("poller".into()))
        };
        let json = |c: &SnapshotEvent| serde_json::to_vec(c).expect("serializes");
        let valid = claim("r1", &config_text("r1"));
        let on = |c: &SnapshotEvent| subjects.unchanged(&c.tenant_id, &c.device_id);
        let mut with_text = valid.clone();
        with_text.config_text = Some(config_text("r1"));
        let mut other_tenant = valid.clone();
        other_tenant.tenant_id = cfgsnap::id::TenantId::parse("t2").expect("id");
        let mut unknown = valid.clone();
        unknown.device_id = cfgsnap::id::DeviceId::parse("ghost").expect("id");
        let r2 = claim("r2", &config_text("r2"));
        let mut bad_hash = valid.clone();
        bad_hash.sha256_hash = "Z".repeat(64);
        let cases: Vec<(&str, String, Vec<u8>)> = vec![
            ("not JSON", on(&valid), b"{\"device_id\": ".to_vec()),
            ("an array", on(&valid), b"[1,2,3]".to_vec()),
            ("a claim with text", on(&valid), json(&with_text)),
            ("another device's subject", on(&r2), json(&valid)),
            (
                "another tenant's device",
                on(&other_tenant),
                json(&other_tenant),
            ),
            ("an unknown device", on(&unknown), json(&unknown)),
            ("a hash that is not hex", on(&bad_hash), json(&bad_hash)),
            (
                "a stale hash",
                on(&valid),
                json(&claim("r1", &config_text("old"))),
            ),
        ];

        // Act + Assert
        for (what, subject, payload) in cases {
            let reply = client
                .request(subject, payload.into())
                .await
                .expect("an ingester answers");
            let reply: UnchangedReply = serde_json::from_slice(&reply.payload).expect("a reply");
            assert_eq!(reply.status, UnchangedStatus::Publish, "{what}");
            assert!(reply.reason.is_some(), "{what}: says why");
        }
        for t in ["t1", "t2"] {
            let audit = ts.audit(t).await;
            assert_eq!(count(&audit, "config_snapshot_skipped_duplicate"), 0, "{t}");
        }

        // The control: the same connection, a valid claim.
        let reply = client
            .request(on(&valid), json(&valid).into())
            .await
            .expect("an ingester answers");
        let reply: UnchangedReply = serde_json::from_slice(&reply.payload).expect("a reply");
        assert_eq!(reply.status, UnchangedStatus::Recorded);
        let audit = ts.audit("t1").await;
        assert_eq!(count(&audit, "config_snapshot_skipped_duplicate"), 1);
        tb.stop().await;
    })
    .await;
}
