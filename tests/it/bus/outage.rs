//! Ingest while the store is unavailable: another connection holds
//! SQLite's write lock longer than the store's busy timeout (10 s), so
//! ingests fail with `SQLITE_BUSY` (transient) and are retried; once the
//! lock is released every event lands, none twice. On NATS, an event whose
//! deliveries run out meanwhile is re-queued, not dropped.

use std::time::{Duration, Instant};

use sqlx::Connection as _;
use sqlx::sqlite::SqliteConnectOptions;

use super::events::{event, ingest};
use super::{Stack, TestBus, TestStore, config_text, eventually};

/// Longer than the store's 10 s busy timeout, so at least one ingest fails.
const OUTAGE: Duration = Duration::from_secs(12);

on_both_stacks!(ingest_survives_the_store_being_unavailable);

/// Takes the store's write lock from a second connection.
async fn hold_write_lock(ts: &TestStore) -> sqlx::SqliteConnection {
    let options = SqliteConnectOptions::new().filename(ts.dir.path().join("db"));
    let mut blocker = sqlx::SqliteConnection::connect_with(&options)
        .await
        .expect("second connection");
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut blocker)
        .await
        .expect("write lock");
    blocker
}

/// Gives the write lock back.
async fn release(mut blocker: sqlx::SqliteConnection) {
    sqlx::query("ROLLBACK")
        .execute(&mut blocker)
        .await
        .expect("unlock");
    blocker.close().await.expect("closes");
}

async fn ingest_survives_the_store_being_unavailable(stack: Stack) {
    // Arrange: the store's write lock taken by someone else.
    let tb = TestBus::start(stack).await;
    let ts = TestStore::start(&[("t1", "d1"), ("t1", "d2"), ("t1", "d3")]).await;
    ingest(&tb, &tb.bus, &ts).await;
    let blocker = hold_write_lock(&ts).await;
    let started = Instant::now();

    // Act: events published during the outage.
    let events: Vec<_> = ["d1", "d2", "d3"]
        .iter()
        .map(|d| event(&ts, d, &config_text(d)))
        .collect();
    for e in &events {
        tb.bus
            .publish_snapshot(e)
            .await
            .expect("accepted while the store is down");
    }
    tokio::time::sleep(OUTAGE.saturating_sub(started.elapsed())).await;
    for d in ["d1", "d2", "d3"] {
        assert!(
            ts.snapshots("t1", d).await.is_empty(),
            "nothing can land during the outage"
        );
    }
    release(blocker).await;

    // Assert
    eventually(
        Duration::from_secs(40),
        "all events after the outage",
        || async {
            let mut stored = 0;
            for d in ["d1", "d2", "d3"] {
                stored += ts.snapshots("t1", d).await.len();
            }
            stored == 3
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    for e in &events {
        let stored = ts.snapshots("t1", e.device_id.as_str()).await;
        assert_eq!(stored, vec![e.sha256_hash.clone()], "{}", e.device_id);
    }
    let audit = ts.audit("t1").await;
    let created = audit
        .iter()
        .filter(|(a, _)| a == "config_snapshot_created")
        .count();
    let rejected = audit
        .iter()
        .filter(|(a, _)| a == "snapshot_event_rejected")
        .count();
    assert_eq!((created, rejected), (3, 0));
    tb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_whose_deliveries_run_out_while_the_store_is_down_is_requeued_not_dropped() {
    // Arrange: two deliveries only, and the store's write lock held.
    super::require_nats().await;
    let tb = TestBus::with_settings(super::BusSettings {
        max_deliver: 2,
        ..super::settings(Stack::Served)
    })
    .await;
    let ts = TestStore::start(&[("t1", "d1")]).await;
    ingest(&tb, &tb.bus, &ts).await;
    let blocker = hold_write_lock(&ts).await;
    let client = async_nats::connect(super::NATS_URL)
        .await
        .expect("connects");
    let js = async_nats::jetstream::new(client);

    // Act: an event fails both its deliveries (10 s busy timeout each).
    let e = event(&ts, "d1", &config_text("d1"));
    tb.bus.publish_snapshot(&e).await.expect("published");
    eventually(
        Duration::from_secs(60),
        "the event re-queued at the end of the stream",
        || async {
            let mut stream = js.get_stream(&tb.settings.stream).await.expect("stream");
            stream.info().await.expect("stream info").state.messages >= 2
        },
    )
    .await;
    release(blocker).await;

    // Assert: stored once, never given up.
    eventually(
        Duration::from_secs(40),
        "the re-queued event stored",
        || async { !ts.snapshots("t1", "d1").await.is_empty() },
    )
    .await;
    assert_eq!(ts.snapshots("t1", "d1").await, vec![e.sha256_hash.clone()]);
    let rejected = ts
        .audit("t1")
        .await
        .iter()
        .filter(|(a, _)| a == "snapshot_event_rejected")
        .count();
    assert_eq!(rejected, 0, "the event was not given up");
    tb.stop().await;
}
