//! Cursor pagination: newest first, `before` = the last id of the previous
//! page, until a short or empty page.

use super::{TestStore, config, days_ago, snapshot};

on_both_stacks!(
    with TestStore;
    seven_snapshots_come_in_pages_of_three_three_and_one,
    the_change_history_and_the_audit_log_page_the_same_way,
);

/// Ingests `n` different snapshots of `r1`, oldest first; returns their ids.
async fn ingest_versions(t: &TestStore, n: i64) -> Vec<i64> {
    let mut ids = Vec::new();
    for i in 0..n {
        let text = config(&format!("v{i}"));
        ids.push(
            t.ingest_new(&snapshot("t1", "r1", &text, days_ago(n - i)))
                .await,
        );
    }
    ids
}

async fn seven_snapshots_come_in_pages_of_three_three_and_one(t: &TestStore) {
    // Arrange
    let mut ids = ingest_versions(t, 7).await;
    ids.reverse();

    // Act
    let mut pages = Vec::new();
    let mut before = None;
    loop {
        let page = t
            .store
            .list_snapshots("t1", "r1", 3, before)
            .await
            .expect("page");
        let page_ids: Vec<i64> = page.iter().map(|s| s.id).collect();
        before = page_ids.last().copied();
        pages.push(page_ids);
        if pages.last().is_some_and(|p| p.len() < 3) {
            break;
        }
    }

    // Assert
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, [3, 3, 1]);
    assert_eq!(pages.concat(), ids, "every snapshot once, newest first");
    let past_the_end = t.store.list_snapshots("t1", "r1", 3, Some(ids[6])).await;
    assert!(past_the_end.expect("page").is_empty());
}

async fn the_change_history_and_the_audit_log_page_the_same_way(t: &TestStore) {
    // Arrange: 7 snapshots make 6 changes and 13 audit events (7 created, 6 diffs).
    let ids = ingest_versions(t, 7).await;

    // Act
    let first = t
        .store
        .config_history("t1", "r1", 4, None)
        .await
        .expect("page 1");
    let cursor = first.last().map(|h| h.snapshot_id);
    let second = t
        .store
        .config_history("t1", "r1", 4, cursor)
        .await
        .expect("page 2");
    let mut audit_ids = Vec::new();
    let mut before = None;
    loop {
        let page = t
            .store
            .list_audit("t1", 5, before)
            .await
            .expect("audit page");
        audit_ids.extend(page.iter().map(|e| e.id));
        before = page.last().map(|e| e.id);
        if page.len() < 5 {
            break;
        }
    }

    // Assert
    let history: Vec<i64> = first.iter().chain(&second).map(|h| h.snapshot_id).collect();
    let mut changed = ids[1..].to_vec();
    changed.reverse();
    assert_eq!((first.len(), second.len()), (4, 2));
    assert_eq!(history, changed);
    assert!(
        first.iter().chain(&second).all(|h| h.changes.len() == 1),
        "each entry carries its own changes across pages"
    );
    assert_eq!(audit_ids.len(), 13);
    assert!(
        audit_ids.windows(2).all(|w| w[0] > w[1]),
        "strictly newest first"
    );
}
