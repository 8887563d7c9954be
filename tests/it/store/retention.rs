//! Retention: snapshots past `retention_days` go with their diffs and changes,
//! except the newest `keep_min` of each device; every deletion is audited.

use chrono::Utc;

use super::{TestStore, config, days_ago, snapshot};

/// Ages of the snapshots of `r1`, oldest first.
const AGES: [i64; 6] = [200, 150, 100, 50, 10, 1];

on_both_stacks!(
    with TestStore;
    snapshots_past_retention_are_deleted_with_their_diffs_and_changes,
    a_device_with_only_old_snapshots_keeps_the_newest_keep_min,
    a_second_run_deletes_nothing,
);

/// Ingests one snapshot per age (days), oldest first; returns their ids.
async fn ingest_ages(t: &TestStore, device: &str, ages: &[i64]) -> Vec<i64> {
    let mut ids = Vec::new();
    for age in ages {
        let text = config(&format!("{device}-{age}"));
        ids.push(
            t.ingest_new(&snapshot("t1", device, &text, days_ago(*age)))
                .await,
        );
    }
    ids
}

async fn apply(t: &TestStore) -> u64 {
    let (days, keep) = (t.settings.retention_days, t.settings.keep_min);
    t.store
        .apply_retention(Utc::now(), days, keep)
        .await
        .expect("retention")
}

async fn snapshots_past_retention_are_deleted_with_their_diffs_and_changes(t: &TestStore) {
    // Arrange: retention 90 days, keep 2 (see TestStore).
    let ids = ingest_ages(t, "r1", &AGES).await;
    let history = t
        .store
        .config_history("t1", "r1", 50, None)
        .await
        .expect("history");
    assert_eq!(history.len(), 5, "every snapshot but the first is a change");
    assert_eq!(
        (
            t.raw_count("snapshot_diff").await,
            t.raw_count("config_change").await
        ),
        (5, 5)
    );

    // Act
    let deleted = apply(t).await;

    // Assert: 200, 150 and 100 days old are gone; 50, 10 and 1 stay.
    assert_eq!(deleted, 3);
    let kept = &ids[3..];
    let mut newest_first: Vec<i64> = kept.to_vec();
    newest_first.reverse();
    assert_eq!(t.snapshot_ids("t1", "r1").await, newest_first);
    let history = t
        .store
        .config_history("t1", "r1", 50, None)
        .await
        .expect("history");
    let changed: Vec<i64> = history.iter().map(|h| h.snapshot_id).collect();
    assert_eq!(
        changed, newest_first,
        "the oldest kept one keeps its change summary"
    );
    assert!(
        history.iter().all(|h| h.changes.len() == 1),
        "each keeps its changes"
    );
    assert_eq!(
        (
            t.raw_count("snapshot_diff").await,
            t.raw_count("config_change").await
        ),
        (3, 3)
    );
    let oldest = t
        .store
        .get_snapshot("t1", "r1", kept[0])
        .await
        .expect("oldest kept");
    assert_eq!(
        oldest.previous_snapshot_id, None,
        "its predecessor is deleted"
    );
    assert_eq!(
        (oldest.lines_added, oldest.lines_removed),
        (Some(1), Some(1))
    );
    for id in &ids[..3] {
        let gone = t.store.snapshot_content("t1", "r1", *id).await;
        assert!(gone.is_err(), "snapshot {id} is deleted");
    }
    let events = t
        .store
        .list_audit("t1", 50, None)
        .await
        .expect("list_audit");
    let retention: Vec<_> = events
        .iter()
        .filter(|e| e.action.as_str() == "config_snapshot_deleted_retention")
        .collect();
    let [event] = &retention[..] else {
        panic!("one retention event expected, got {}", retention.len());
    };
    assert_eq!(event.device_id.as_deref(), Some("r1"));
    let detail = event.detail_json();
    assert_eq!(detail["count"], 3);
    assert_eq!(detail["snapshot_ids"], serde_json::json!(&ids[..3]));
}

async fn a_device_with_only_old_snapshots_keeps_the_newest_keep_min(t: &TestStore) {
    // Arrange
    let old = ingest_ages(t, "r2", &[300, 200, 120]).await;
    let recent = ingest_ages(t, "r1", &[5, 4, 3]).await;

    // Act
    let deleted = apply(t).await;

    // Assert
    assert_eq!(deleted, 1);
    assert_eq!(t.snapshot_ids("t1", "r2").await, [old[2], old[1]]);
    assert_eq!(
        t.snapshot_ids("t1", "r1").await.len(),
        recent.len(),
        "young ones stay"
    );
    let history = t
        .store
        .config_history("t1", "r2", 50, None)
        .await
        .expect("history");
    assert_eq!(history.len(), 2);
    let actions = t.audit_actions("t1", "r2").await;
    assert_eq!(
        actions.last().map(String::as_str),
        Some("config_snapshot_deleted_retention")
    );
    assert!(
        !t.audit_actions("t1", "r1")
            .await
            .contains(&"config_snapshot_deleted_retention".to_owned()),
        "nothing deleted for r1"
    );
}

async fn a_second_run_deletes_nothing(t: &TestStore) {
    // Arrange
    ingest_ages(t, "r1", &AGES).await;
    ingest_ages(t, "r2", &[400, 300]).await;
    assert_eq!(apply(t).await, 3);
    let audit_before = t
        .store
        .list_audit("t1", 500, None)
        .await
        .expect("audit")
        .len();

    // Act
    let deleted = apply(t).await;

    // Assert
    assert_eq!(deleted, 0);
    assert_eq!(t.snapshot_ids("t1", "r1").await.len(), 3);
    assert_eq!(t.snapshot_ids("t1", "r2").await.len(), 2);
    let audit_after = t
        .store
        .list_audit("t1", 500, None)
        .await
        .expect("audit")
        .len();
    assert_eq!(audit_after, audit_before, "no audit event for an empty run");
}
