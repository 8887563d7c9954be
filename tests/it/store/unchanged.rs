//! Unchanged exports recorded in batches ([`Store::record_unchanged`]) and
//! this node's memory of each device's newest hash: a batch records what a
//! duplicate ingest records, a memory left stale by another node never
//! costs a version, and a wait for a version to be listed
//! ([`Store::wait_until_listed`]) ends with this node's ingest or another's.

use std::time::Duration;

use cfgsnap::store::Store;
use cfgsnap::store::snapshot::Ingested;

use super::{TestStore, config, days_ago, snapshot};

on_both_stacks!(
    with TestStore;
    a_batch_of_unchanged_snapshots_records_what_a_duplicate_ingest_records,
    a_hint_left_stale_by_another_node_never_loses_a_version,
    a_store_opened_on_existing_history_knows_the_newest_hashes_once_loaded,
    a_wait_for_a_version_ends_when_this_node_or_another_stores_it,
);

async fn a_batch_of_unchanged_snapshots_records_what_a_duplicate_ingest_records(t: &TestStore) {
    // Arrange: r1 and r2 have a version each; r2's event below is changed.
    let r1 = t
        .ingest_new(&snapshot("t1", "r1", &config("a"), days_ago(2)))
        .await;
    t.ingest_new(&snapshot("t1", "r2", &config("b"), days_ago(2)))
        .await;
    let again = snapshot("t1", "r1", &config("a"), days_ago(1));
    let changed = snapshot("t1", "r2", &config("b2"), days_ago(1));
    let unknown = snapshot("t1", "nope", &config("a"), days_ago(1));
    assert!(
        t.store
            .is_probably_unchanged(again.device_id.as_str(), &again.sha256_hash),
        "the node's own ingest taught it r1's newest hash"
    );
    assert!(
        !t.store
            .is_probably_unchanged(changed.device_id.as_str(), &changed.sha256_hash)
    );

    // Act
    let results = t
        .store
        .record_unchanged(&[&again, &changed, &unknown])
        .await
        .expect("the batch commits");

    // Assert: r1 recorded as a duplicate; the others left to the full path.
    assert_eq!(
        results,
        vec![Some(Ingested::Duplicate { snapshot_id: r1 }), None, None]
    );
    let r1_state = t.store.get_device("t1", "r1").await.expect("device");
    assert_eq!(r1_state.last_success_at, Some(again.collected_at));
    assert_eq!(r1_state.last_status.as_deref(), Some("success"));
    let r2_state = t.store.get_device("t1", "r2").await.expect("device");
    assert_ne!(
        r2_state.last_success_at,
        Some(changed.collected_at),
        "a changed event declined by the batch records nothing"
    );
    assert_eq!(
        t.audit_actions("t1", "r1").await,
        [
            "config_snapshot_created",
            "config_snapshot_skipped_duplicate"
        ]
    );
    assert_eq!(
        t.audit_actions("t1", "r2").await,
        ["config_snapshot_created"]
    );
    assert_eq!(t.snapshot_ids("t1", "r1").await, [r1], "nothing new stored");
}

async fn a_hint_left_stale_by_another_node_never_loses_a_version(t: &TestStore) {
    // Arrange: this node stores A; another node (its own store, same
    // database) stores B after it; then the device goes back to A.
    let other = Store::connect(&t.settings).await.expect("second node");
    let a = t
        .ingest_new(&snapshot("t1", "r1", &config("a"), days_ago(3)))
        .await;
    let b = match other
        .ingest(&snapshot("t1", "r1", &config("b"), days_ago(2)))
        .await
        .expect("the other node ingests")
    {
        Ingested::Created { snapshot_id, .. } => snapshot_id,
        other => panic!("expected Created, got {other:?}"),
    };
    let back = snapshot("t1", "r1", &config("a"), days_ago(1));
    assert!(
        t.store
            .is_probably_unchanged(back.device_id.as_str(), &back.sha256_hash),
        "this node still believes A is the newest"
    );

    // Act
    let batch = t.store.record_unchanged(&[&back]).await.expect("commits");
    let full = t.ingest(&back).await;

    // Assert: the batch saw B and declined; the full path stored A again.
    assert_eq!(batch, vec![None]);
    let Ingested::Created { snapshot_id, .. } = full else {
        panic!("expected Created, got {full:?}");
    };
    assert_eq!(t.snapshot_ids("t1", "r1").await, [snapshot_id, b, a]);
    assert!(
        !t.store
            .is_probably_unchanged(back.device_id.as_str(), &config_hash("b")),
        "the hint follows the store after the ingest"
    );
    other.close().await;
}

async fn a_store_opened_on_existing_history_knows_the_newest_hashes_once_loaded(t: &TestStore) {
    // Arrange: two versions of r1, one of x1, stored by this node.
    t.ingest_new(&snapshot("t1", "r1", &config("a"), days_ago(3)))
        .await;
    t.ingest_new(&snapshot("t1", "r1", &config("b"), days_ago(2)))
        .await;
    t.ingest_new(&snapshot("t2", "x1", &config("x"), days_ago(2)))
        .await;
    let restarted = Store::connect(&t.settings).await.expect("reopens");
    assert!(!restarted.is_probably_unchanged("r1", &config_hash("b")));

    // Act
    let devices = restarted.load_newest_hashes().await.expect("loads");

    // Assert
    assert_eq!(devices, 2);
    assert!(restarted.is_probably_unchanged("r1", &config_hash("b")));
    assert!(!restarted.is_probably_unchanged("r1", &config_hash("a")));
    assert!(restarted.is_probably_unchanged("x1", &config_hash("x")));
    assert!(!restarted.is_probably_unchanged("r2", &config_hash("b")));
    restarted.close().await;
}

fn config_hash(tag: &str) -> String {
    cfgsnap::backup::normalize::sha256_hex(&config(tag))
}

async fn a_wait_for_a_version_ends_when_this_node_or_another_stores_it(t: &TestStore) {
    // Arrange: r1 has version A; B and C are still to come.
    t.ingest_new(&snapshot("t1", "r1", &config("a"), days_ago(3)))
        .await;
    let other = Store::connect(&t.settings).await.expect("second node");
    let long = Duration::from_secs(30);

    // Act 1: this node's ingest of B, while a wait for B runs.
    let b = snapshot("t1", "r1", &config("b"), days_ago(2));
    let b_hash = config_hash("b");
    let (waited, ()) = tokio::join!(
        t.store.wait_until_listed("t1", "r1", &b_hash, long),
        async {
            t.ingest_new(&b).await;
        },
    );

    // Assert 1
    assert!(waited, "this node's ingest ends the wait");

    // Act 2: another node's ingest of C (this node's memory never hears of it).
    let c = snapshot("t1", "r1", &config("c"), days_ago(1));
    let c_hash = config_hash("c");
    let (waited, stored) = tokio::join!(
        t.store.wait_until_listed("t1", "r1", &c_hash, long),
        other.ingest(&c),
    );

    // Assert 2
    assert!(matches!(stored, Ok(Ingested::Created { .. })), "{stored:?}");
    assert!(waited, "the database check finds another node's version");
    assert!(
        !t.store
            .wait_until_listed("t1", "r1", &config_hash("a"), Duration::from_millis(300))
            .await,
        "a version that is not the newest is waited for only up to the bound"
    );
    other.close().await;
}
