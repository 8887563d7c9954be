//! Ingest of one event at a time: created, duplicate, stale, rejected.

use cfgsnap::backup::normalize::sha256_hex;
use cfgsnap::id::TenantId;
use cfgsnap::store::Error;
use cfgsnap::store::snapshot::Ingested;
use chrono::Duration;

use super::{TestStore, config, days_ago, snapshot};

on_both_stacks!(
    with TestStore;
    a_new_snapshot_is_created_with_its_metadata_and_content,
    the_same_event_again_is_a_duplicate_that_stores_nothing,
    a_config_that_changes_back_is_stored_again,
    an_event_older_than_the_newest_snapshot_is_stale_and_not_stored,
    malformed_events_are_rejected_and_store_nothing,
    snapshot_owner_names_the_tenant_and_device_of_a_snapshot,
);

async fn a_new_snapshot_is_created_with_its_metadata_and_content(t: &TestStore) {
    // Arrange
    let text = config("a");
    let snap = snapshot("t1", "r1", &text, days_ago(1));

    // Act
    let ingested = t.ingest(&snap).await;

    // Assert
    let Ingested::Created {
        snapshot_id,
        lines_added,
        lines_removed,
    } = ingested
    else {
        panic!("expected Created, got {ingested:?}");
    };
    assert_eq!(lines_added as usize, text.lines().count());
    assert_eq!(lines_removed, 0);
    let meta = t
        .store
        .get_snapshot("t1", "r1", snapshot_id)
        .await
        .expect("get_snapshot");
    assert_eq!(meta.sha256_hash, snap.sha256_hash);
    assert_eq!(meta.collected_at, snap.collected_at);
    assert_eq!(meta.trigger.as_str(), "scheduled");
    assert_eq!(meta.routeros_version.as_deref(), Some("7.15"));
    assert_eq!(meta.size_bytes as usize, text.len());
    assert_eq!(meta.line_count as usize, text.lines().count());
    assert_eq!(
        meta.lines_added, None,
        "the first snapshot has no stored diff"
    );
    let content = t
        .store
        .snapshot_content("t1", "r1", snapshot_id)
        .await
        .expect("content");
    assert_eq!(
        sha256_hex(&content),
        snap.sha256_hash,
        "content round-trips"
    );
    assert_eq!(
        t.audit_actions("t1", "r1").await,
        ["config_snapshot_created"]
    );
}

async fn the_same_event_again_is_a_duplicate_that_stores_nothing(t: &TestStore) {
    // Arrange
    let snap = snapshot("t1", "r1", &config("a"), days_ago(1));
    let first = t.ingest_new(&snap).await;
    let later = snapshot("t1", "r1", &config("a"), days_ago(0));

    // Act
    let again = t.ingest(&snap).await;
    let same_text_later = t.ingest(&later).await;

    // Assert
    assert_eq!(again, Ingested::Duplicate { snapshot_id: first });
    assert_eq!(same_text_later, Ingested::Duplicate { snapshot_id: first });
    assert_eq!(t.snapshot_ids("t1", "r1").await, [first]);
    assert_eq!(t.raw_count("snapshot_diff").await, 0);
    assert_eq!(
        t.audit_actions("t1", "r1").await,
        [
            "config_snapshot_created",
            "config_snapshot_skipped_duplicate",
            "config_snapshot_skipped_duplicate"
        ]
    );
}

async fn a_config_that_changes_back_is_stored_again(t: &TestStore) {
    // Arrange
    let (a, b) = (config("a"), config("b"));

    // Act
    let first = t.ingest_new(&snapshot("t1", "r1", &a, days_ago(3))).await;
    let second = t.ingest_new(&snapshot("t1", "r1", &b, days_ago(2))).await;
    let third = t.ingest_new(&snapshot("t1", "r1", &a, days_ago(1))).await;

    // Assert
    assert_eq!(t.snapshot_ids("t1", "r1").await, [third, second, first]);
    let newest = t
        .store
        .get_snapshot("t1", "r1", third)
        .await
        .expect("get_snapshot");
    assert_eq!(newest.sha256_hash, sha256_hex(&a));
    assert_eq!(newest.previous_snapshot_id, Some(second));
    assert_eq!(
        (newest.lines_added, newest.lines_removed),
        (Some(1), Some(1))
    );
}

async fn an_event_older_than_the_newest_snapshot_is_stale_and_not_stored(t: &TestStore) {
    // Arrange
    let newest = t
        .ingest_new(&snapshot("t1", "r1", &config("new"), days_ago(1)))
        .await;
    let older = snapshot("t1", "r1", &config("old"), days_ago(2));

    // Act
    let ingested = t.ingest(&older).await;

    // Assert
    assert_eq!(
        ingested,
        Ingested::Stale {
            newest_snapshot_id: newest
        }
    );
    assert_eq!(ingested.snapshot_id(), None);
    assert_eq!(t.snapshot_ids("t1", "r1").await, [newest]);
    assert_eq!(
        t.audit_actions("t1", "r1").await,
        ["config_snapshot_created", "config_snapshot_stale"]
    );
    let events = t.store.list_audit("t1", 1, None).await.expect("list_audit");
    let detail = events[0].detail_json();
    assert_eq!(detail["sha256_hash"], older.sha256_hash.as_str());
    assert_eq!(detail["newest_snapshot_id"], newest);
}

async fn malformed_events_are_rejected_and_store_nothing(t: &TestStore) {
    // Arrange
    let text = config("a");
    let good = snapshot("t1", "r1", &text, days_ago(1));
    let mut cases = Vec::new();
    let mut bad = good.clone();
    bad.sha256_hash = "z".repeat(64);
    cases.push(("hash not hex", bad));
    let mut bad = good.clone();
    bad.sha256_hash = good.sha256_hash.to_uppercase();
    cases.push(("hash in upper case", bad));
    let mut bad = good.clone();
    bad.sha256_hash.truncate(63);
    cases.push(("hash too short", bad));
    let mut bad = good.clone();
    bad.sha256_hash = sha256_hex(&config("b"));
    cases.push(("hash of another text", bad));
    cases.push(("empty text", snapshot("t1", "r1", "", days_ago(1))));
    cases.push(("blank text", snapshot("t1", "r1", " \n\n", days_ago(1))));
    cases.push(("unknown device", snapshot("t1", "nope", &text, days_ago(1))));
    cases.push((
        "device of another tenant",
        snapshot("t2", "r1", &text, days_ago(1)),
    ));
    cases.push((
        "collected_at two days ahead",
        snapshot("t1", "r1", &text, days_ago(0) + Duration::days(2)),
    ));
    let mut bad = good.clone();
    bad.normalization_version = 0;
    cases.push(("normalization version 0", bad));
    let mut bad = good.clone();
    bad.tenant_id = TenantId::parse("t3").expect("valid id");
    cases.push(("unknown tenant", bad));

    for (case, event) in &cases {
        // Act
        let result = t.store.ingest(event).await;

        // Assert
        assert!(
            matches!(result, Err(Error::InvalidSnapshot(_))),
            "{case}: expected InvalidSnapshot, got {:?}",
            result.as_ref().map_err(ToString::to_string)
        );
        assert!(
            !result.is_err_and(|e| e.is_transient()),
            "{case}: not transient"
        );
    }
    for (device, tenant) in super::FLEET {
        assert!(
            t.snapshot_ids(tenant, device).await.is_empty(),
            "{device}: nothing stored"
        );
    }
    assert_eq!(t.raw_count("snapshot").await, 0);
    assert_eq!(t.raw_count("audit_event").await, 0);
}

async fn snapshot_owner_names_the_tenant_and_device_of_a_snapshot(t: &TestStore) {
    // Arrange
    let id = t
        .ingest_new(&snapshot("t2", "x1", &config("x"), days_ago(1)))
        .await;

    // Act
    let owner = t.store.snapshot_owner(id).await.expect("snapshot_owner");
    let missing = t.store.snapshot_owner(id + 1000).await;

    // Assert
    assert_eq!(owner, ("t2".to_owned(), "x1".to_owned()));
    assert!(matches!(missing, Err(Error::SnapshotNotFound)));
}
