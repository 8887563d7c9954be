//! The outbox on both backends: which state changes queue which events
//! (failure streaks, recoveries, host-key mismatches, staleness), and the
//! dispatcher's delivery rules: retries with backoff under one
//! `webhook-id`, 410 Gone, giving up after `retry_for`, the SSRF guard,
//! and two dispatchers on one PostgreSQL database.

use std::collections::HashMap;
use std::time::Duration;

use cfgsnap::store::Store;
use cfgsnap::store::device::Attempt;
use chrono::Utc;

use super::{
    Dispatch, Receiver, Reply, WHSEC, notify_config, notify_section, secret_file, verify,
    wait_rows, webhook_target,
};
use crate::store::{TestStore, config, snapshot};
use cfgsnap_testkit::on_both_stacks;

fn failed(kind: &str) -> Attempt {
    Attempt::Failed {
        error_kind: kind.to_owned(),
        next_attempt_at: None,
        blocked_reason: (kind == "hostkey_mismatch").then(|| kind.to_owned()),
    }
}

async fn attempt(store: &Store, device: &str, a: &Attempt) {
    store
        .record_attempt(device, Utc::now(), a)
        .await
        .expect("recording an attempt");
}

async fn events(store: &Store, tenant: &str) -> Vec<(String, String)> {
    let mut rows = store
        .list_notifications(tenant, None, 500)
        .await
        .expect("listing notifications");
    rows.reverse();
    rows.into_iter()
        .map(|r| (r.event_type, r.device_id))
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

async fn failures_notify_once_per_streak_and_recoveries_once(t: &TestStore) {
    // Arrange: routes only (no dispatcher): the rows themselves are checked.
    let dir = tempfile::tempdir().expect("tempdir");
    let toml = webhook_target(
        "ops",
        "https://hooks.example/x",
        r#""backup.failed", "backup.recovered", "hostkey.mismatch""#,
        &secret_file(dir.path()),
        "",
    );
    t.store.set_notify_routes(&notify_config(&toml));
    // Act: five failures, a success, three failures; r2 fails once and
    // recovers (below the threshold: nothing); r1 then meets a changed host key twice.
    for _ in 0..5 {
        attempt(&t.store, "r1", &failed("timeout")).await;
    }
    attempt(&t.store, "r1", &Attempt::Success).await;
    for _ in 0..3 {
        attempt(&t.store, "r1", &failed("unreachable")).await;
    }
    attempt(&t.store, "r2", &failed("timeout")).await;
    attempt(&t.store, "r2", &Attempt::Success).await;
    // The success of an ingested snapshot ends a streak too.
    t.ingest_new(&snapshot("t1", "r1", &config("a"), Utc::now()))
        .await;
    attempt(&t.store, "r1", &failed("hostkey_mismatch")).await;
    attempt(&t.store, "r1", &failed("hostkey_mismatch")).await;
    // Assert
    let expected = pairs(&[
        ("backup.failed", "r1"),
        ("backup.recovered", "r1"),
        ("backup.failed", "r1"),
        ("backup.recovered", "r1"),
        ("hostkey.mismatch", "r1"),
    ]);
    assert_eq!(events(&t.store, "t1").await, expected);
    let rows = t
        .store
        .list_notifications("t1", None, 10)
        .await
        .expect("rows");
    let failed_row: serde_json::Value =
        serde_json::from_str(&rows[rows.len() - 1].payload).expect("payload");
    assert_eq!(failed_row["error_kind"], "timeout");
    assert_eq!(failed_row["consecutive_failures"], 3);
    assert_eq!(failed_row["device_name"], "router-r1");
}

async fn a_thousand_failing_devices_get_one_notification_each(t: &TestStore) {
    // Arrange: 1000 devices of t1, all failing at once, in batches as a node records them.
    let dir = tempfile::tempdir().expect("tempdir");
    let ids: Vec<String> = (0..1000).map(|i| format!("d{i:04}")).collect();
    let fleet: Vec<(&str, &str)> = ids.iter().map(|d| (d.as_str(), "t1")).collect();
    t.store
        .sync_fleet(&crate::store::fleet(&fleet))
        .await
        .expect("fleet");
    let toml = webhook_target(
        "ops",
        "https://hooks.example/x",
        r#""backup.failed""#,
        &secret_file(dir.path()),
        "",
    );
    t.store.set_notify_routes(&notify_config(&toml));
    let at = Utc::now();
    let fail = failed("timeout");
    // Act: four passes of the whole fleet failing.
    for _ in 0..4 {
        let batch: Vec<(&str, chrono::DateTime<Utc>, &Attempt)> =
            ids.iter().map(|d| (d.as_str(), at, &fail)).collect();
        t.store
            .record_attempts(&batch)
            .await
            .expect("recording attempts");
    }
    // Assert: one per device, no storm.
    let rows = t
        .store
        .list_notifications("t1", None, 500)
        .await
        .expect("rows");
    let (count, _) = t.store.pending_notifications().await.expect("pending");
    assert_eq!(count, 1000);
    assert!(rows.iter().all(|r| r.event_type == "backup.failed"));
}

async fn stale_devices_notify_once_per_period(t: &TestStore) {
    // Arrange
    let dir = tempfile::tempdir().expect("tempdir");
    let toml = webhook_target(
        "ops",
        "https://hooks.example/x",
        r#""backup.stale""#,
        &secret_file(dir.path()),
        "",
    );
    t.store.set_notify_routes(&notify_config(&toml));
    let thresholds: HashMap<String, Duration> = [
        ("r1".to_owned(), Duration::from_secs(3600)),
        ("r2".to_owned(), Duration::from_secs(3600)),
    ]
    .into();
    let later = Utc::now() + chrono::Duration::hours(2);
    // r2 succeeds "in the future", within its threshold.
    attempt(&t.store, "r2", &Attempt::Success).await;
    t.store
        .record_attempt(
            "r2",
            later - chrono::Duration::minutes(5),
            &Attempt::Success,
        )
        .await
        .expect("success");
    // Act: two sweeps two hours on; then r1 succeeds and goes stale again.
    let first = t
        .store
        .queue_stale(&thresholds, later)
        .await
        .expect("sweep");
    let second = t
        .store
        .queue_stale(&thresholds, later)
        .await
        .expect("sweep");
    t.store
        .record_attempt(
            "r1",
            later + chrono::Duration::minutes(1),
            &Attempt::Success,
        )
        .await
        .expect("success");
    let third = t
        .store
        .queue_stale(&thresholds, later + chrono::Duration::hours(2))
        .await
        .expect("sweep");
    // Assert
    assert_eq!((first, second, third), (1, 0, 2));
    let got = events(&t.store, "t1").await;
    assert_eq!(
        got,
        pairs(&[
            ("backup.stale", "r1"),
            ("backup.stale", "r1"),
            ("backup.stale", "r2")
        ])
    );
}

async fn retries_back_off_and_keep_the_webhook_id(t: &TestStore) {
    // Arrange: the receiver fails twice, then accepts.
    let receiver = Receiver::start(&[Reply::Status(500), Reply::Status(500)]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let toml = format!(
        "{}{}",
        notify_section(""),
        webhook_target(
            "ops",
            &receiver.url("/hook"),
            r#""backup.failed""#,
            &secret_file(dir.path()),
            "after_failures = 1"
        )
    );
    let dispatch = Dispatch::start(&t.store, notify_config(&toml));
    // Act
    attempt(&t.store, "r1", &failed("timeout")).await;
    let requests = receiver.wait_for(3).await;
    let rows = wait_rows(&t.store, "t1", |r| {
        r.iter().all(|n| n.status == "delivered")
    })
    .await;
    // Assert: three attempts of one row, one id, each signed.
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].attempts, 3);
    assert_eq!(
        rows[0].last_error,
        Some("HTTP 500 Internal Server Error".to_owned())
    );
    for r in &requests {
        assert_eq!(r.header("webhook-id"), rows[0].webhook_id);
        verify(WHSEC, r).expect("a valid signature");
        assert_eq!(r.json()["type"], "backup.failed");
    }
    dispatch.stop().await;
    assert_eq!(receiver.requests().len(), 3, "delivered once, never again");
    receiver.stop().await;
}

async fn gone_disables_the_target_until_reload(t: &TestStore) {
    // Arrange: one delivery at a time; the receiver says 410 once.
    let receiver = Receiver::start(&[Reply::Status(410)]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let toml = format!(
        "{}{}",
        notify_section("concurrency = 1"),
        webhook_target(
            "ops",
            &receiver.url("/hook"),
            r#""backup.failed""#,
            &secret_file(dir.path()),
            "after_failures = 1"
        )
    );
    let config = notify_config(&toml);
    let dispatch = Dispatch::start(&t.store, config.clone());
    // Act: the first event meets the 410; the second waits.
    attempt(&t.store, "r1", &failed("timeout")).await;
    receiver.wait_for(1).await;
    wait_rows(&t.store, "t1", |r| r.iter().any(|n| n.status == "failed")).await;
    attempt(&t.store, "r2", &failed("timeout")).await;
    let rows = wait_rows(&t.store, "t1", |r| {
        r.iter()
            .any(|n| n.device_id == "r2" && n.next_attempt_ms > n.created_ms)
    })
    .await;
    // Assert: disabled (audited), nothing sent for the waiting row.
    let r2 = rows.iter().find(|n| n.device_id == "r2").expect("r2's row");
    assert_eq!((r2.status.as_str(), r2.attempts), ("pending", 0));
    assert_eq!(receiver.requests().len(), 1);
    let actions = t.audit_actions("t1", "r1").await;
    assert!(
        actions.contains(&"notification_target_disabled".to_owned()),
        "{actions:?}"
    );
    // Act: a reload enables the target again.
    dispatch.notifier.apply(Some(&t.store), config);
    receiver.wait_for(2).await;
    wait_rows(&t.store, "t1", |r| {
        r.iter()
            .any(|n| n.device_id == "r2" && n.status == "delivered")
    })
    .await;
    dispatch.stop().await;
    receiver.stop().await;
}

async fn deliveries_that_keep_failing_end_failed_and_audited(t: &TestStore) {
    // Arrange: the receiver always fails; retries stop after a second.
    let receiver = Receiver::start(&[Reply::Status(503); 1000]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let toml = format!(
        "{}{}",
        notify_section("retry_for = \"1s\""),
        webhook_target(
            "ops",
            &receiver.url("/hook"),
            r#""backup.failed""#,
            &secret_file(dir.path()),
            "after_failures = 1"
        )
    );
    let dispatch = Dispatch::start(&t.store, notify_config(&toml));
    // Act
    attempt(&t.store, "r1", &failed("timeout")).await;
    let rows = wait_rows(&t.store, "t1", |r| r.iter().any(|n| n.status == "failed")).await;
    dispatch.stop().await;
    // Assert
    assert!(rows[0].attempts >= 2, "retried before giving up");
    let actions = t.audit_actions("t1", "r1").await;
    assert!(
        actions.contains(&"notification_failed".to_owned()),
        "{actions:?}"
    );
    receiver.stop().await;
}

async fn internal_targets_are_refused_unless_allowed(t: &TestStore) {
    // Arrange: loopback targets by address and by name, loopback not allowed.
    let receiver = Receiver::start(&[]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let by_name = receiver.url("/hook").replace("127.0.0.1", "localhost");
    let toml = format!(
        "[notify]\npoll_interval = \"100ms\"\nretry_initial = \"10s\"\n{}{}",
        webhook_target(
            "literal",
            &receiver.url("/hook"),
            r#""backup.failed""#,
            &secret_file(dir.path()),
            "after_failures = 1"
        ),
        webhook_target(
            "named",
            &by_name,
            r#""backup.failed""#,
            &secret_file(dir.path()),
            "after_failures = 1"
        ),
    );
    let dispatch = Dispatch::start(&t.store, notify_config(&toml));
    // Act
    attempt(&t.store, "r1", &failed("timeout")).await;
    let rows = wait_rows(&t.store, "t1", |r| {
        r.len() == 2 && r.iter().all(|n| n.attempts >= 1)
    })
    .await;
    dispatch.stop().await;
    // Assert: both refused, nothing reached the receiver.
    for row in &rows {
        let error = row.last_error.as_deref().unwrap_or("");
        assert!(error.contains("refused"), "{}: {error}", row.target);
        assert_eq!(row.status, "pending");
    }
    assert!(receiver.requests().is_empty());
    receiver.stop().await;
}

async fn a_hanging_receiver_times_out_and_redirects_are_not_followed(t: &TestStore) {
    // Arrange: the receiver first hangs, then redirects, then accepts.
    let receiver = Receiver::start(&[Reply::Hang, Reply::Status(302)]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let toml = format!(
        "{}{}",
        notify_section("timeout = \"1s\""),
        webhook_target(
            "ops",
            &receiver.url("/hook"),
            r#""backup.failed""#,
            &secret_file(dir.path()),
            "after_failures = 1"
        )
    );
    let dispatch = Dispatch::start(&t.store, notify_config(&toml));
    // Act
    attempt(&t.store, "r1", &failed("timeout")).await;
    let requests = receiver.wait_for(3).await;
    let rows = wait_rows(&t.store, "t1", |r| {
        r.iter().all(|n| n.status == "delivered")
    })
    .await;
    dispatch.stop().await;
    // Assert: three attempts, one id; the redirect was not followed.
    assert_eq!(rows[0].attempts, 3);
    assert!(
        requests
            .iter()
            .all(|r| r.path == "/hook" && r.header("webhook-id") == rows[0].webhook_id)
    );
    assert_eq!(
        rows[0].last_error.as_deref(),
        Some("HTTP 302 Found: redirects are not followed")
    );
    receiver.stop().await;
}

async fn ten_thousand_notifications_are_all_delivered(t: &TestStore) {
    // Arrange: 1,000 devices failing once, ten targets each: 10,000 rows.
    let receiver = Receiver::start(&[]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = secret_file(dir.path());
    let mut toml = notify_section("concurrency = 64");
    for i in 0..10 {
        toml.push_str(&webhook_target(
            &format!("t{i}"),
            &receiver.url("/hook"),
            r#""backup.failed""#,
            &secret,
            "after_failures = 1",
        ));
    }
    let ids: Vec<String> = (0..1000).map(|i| format!("d{i:04}")).collect();
    let fleet: Vec<(&str, &str)> = ids.iter().map(|d| (d.as_str(), "t1")).collect();
    t.store
        .sync_fleet(&crate::store::fleet(&fleet))
        .await
        .expect("fleet");
    let config = notify_config(&toml);
    t.store.set_notify_routes(&config);
    let fail = failed("timeout");
    let batch: Vec<(&str, chrono::DateTime<Utc>, &Attempt)> = ids
        .iter()
        .map(|d| (d.as_str(), Utc::now(), &fail))
        .collect();
    t.store
        .record_attempts(&batch)
        .await
        .expect("recording attempts");
    assert_eq!(
        t.store.pending_notifications().await.expect("pending").0,
        10_000
    );
    // Act: the dispatcher claims at most 64 rows at a time.
    let dispatch = Dispatch::start(&t.store, config);
    let requests = receiver.wait_for(10_000).await;
    while t.store.pending_notifications().await.expect("pending").0 > 0 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    dispatch.stop().await;
    // Assert: each row once.
    let mut ids: Vec<&str> = requests.iter().map(|r| r.header("webhook-id")).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!((requests.len(), ids.len()), (10_000, 10_000));
    receiver.stop().await;
}

on_both_stacks!(with TestStore;
    ten_thousand_notifications_are_all_delivered,
    a_hanging_receiver_times_out_and_redirects_are_not_followed,
    failures_notify_once_per_streak_and_recoveries_once,
    a_thousand_failing_devices_get_one_notification_each,
    stale_devices_notify_once_per_period,
    retries_back_off_and_keep_the_webhook_id,
    gone_disables_the_target_until_reload,
    deliveries_that_keep_failing_end_failed_and_audited,
    internal_targets_are_refused_unless_allowed,
);

/// Two central nodes on one PostgreSQL database: each row delivered once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_dispatchers_on_one_postgresql_deliver_each_row_once() {
    cfgsnap_testkit::within(cfgsnap_testkit::trace::TEST_DEADLINE, async {
        // Arrange: 200 changes queued, two stores (pools) on one database.
        let t = TestStore::start(cfgsnap_testkit::Stack::Served).await;
        let receiver = Receiver::start(&[]).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let toml = format!(
            "{}{}",
            notify_section("concurrency = 4"),
            webhook_target(
                "ops",
                &receiver.url("/hook"),
                r#""config.changed""#,
                &secret_file(dir.path()),
                ""
            )
        );
        let routes = notify_config(&toml);
        t.store.set_notify_routes(&routes);
        let start = Utc::now() - chrono::Duration::hours(1);
        for i in 0..201 {
            let text = config(if i % 2 == 0 { "a" } else { "b" });
            let at = start + chrono::Duration::seconds(i);
            t.ingest_new(&snapshot("t1", "r1", &text, at)).await;
        }
        let other = Store::connect(&t.settings).await.expect("a second store");
        // Act
        let a = Dispatch::start(&t.store, routes.clone());
        let b = Dispatch::start(&other, routes);
        receiver.wait_for(200).await;
        wait_rows(&t.store, "t1", |r| {
            r.iter().all(|n| n.status == "delivered")
        })
        .await;
        a.stop().await;
        b.stop().await;
        // Assert
        let requests = receiver.requests();
        let mut ids: Vec<&str> = requests.iter().map(|r| r.header("webhook-id")).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!((requests.len(), ids.len()), (200, 200));
        other.close().await;
        receiver.stop().await;
        t.finish().await;
    })
    .await;
}
