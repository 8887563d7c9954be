//! Cursor pagination: newest first, `before` = the last id of the previous
//! page, until a short or empty page; the fleet's device orders page by
//! keyset both ways.

use cfgsnap::store::browse::{DeviceOrder, DeviceQuery};
use cfgsnap::store::device::Attempt;
use chrono::Utc;

use super::{TestStore, config, days_ago, fleet, snapshot};

on_both_stacks!(
    with TestStore;
    seven_snapshots_come_in_pages_of_three_three_and_one,
    the_change_history_and_the_audit_log_page_the_same_way,
    the_fleet_orders_page_by_status_last_success_and_last_change,
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

/// Lists `t1`'s devices in `order`, `size` at a time, forwards to the end and
/// then backwards from the last page; returns both walks' ids.
async fn walk(t: &TestStore, order: DeviceOrder, size: u32) -> (Vec<String>, Vec<String>) {
    let query = |after: Option<String>, before: Option<String>| DeviceQuery {
        order,
        after,
        before,
        limit: Some(size),
        ..DeviceQuery::default()
    };
    let mut forward: Vec<String> = Vec::new();
    loop {
        let page = t
            .store
            .query_devices("t1", &query(forward.last().cloned(), None))
            .await
            .expect("page forwards");
        forward.extend(page.iter().map(|d| d.device_id.clone()));
        if page.len() < size as usize {
            break;
        }
    }
    let mut backward: Vec<String> = Vec::new();
    let mut before = forward.last().cloned();
    while let Some(cursor) = before {
        let page = t
            .store
            .query_devices("t1", &query(None, Some(cursor)))
            .await
            .expect("page backwards");
        before = page.first().map(|d| d.device_id.clone());
        let mut ids: Vec<String> = page.iter().map(|d| d.device_id.clone()).collect();
        ids.append(&mut backward);
        backward = ids;
    }
    if let Some(last) = forward.last() {
        backward.push(last.clone());
    }
    (forward, backward)
}

async fn the_fleet_orders_page_by_status_last_success_and_last_change(t: &TestStore) {
    // Arrange: d1 blocked; d2 failing; d3, d4 (and the fixture's r1, r2)
    // never backed up (ties); d5 succeeded long ago and changed last; d6
    // succeeded recently and changed first.
    let ids = ["d1", "d2", "d3", "d4", "d5", "d6"];
    let devices: Vec<(&str, &str)> = ids.iter().map(|d| (*d, "t1")).collect();
    t.store.sync_fleet(&fleet(&devices)).await.expect("sync");
    let failed = |blocked: Option<&str>| Attempt::Failed {
        error_kind: "unreachable".to_owned(),
        next_attempt_at: None,
        blocked_reason: blocked.map(str::to_owned),
    };
    let now = Utc::now();
    t.store
        .record_attempt("d1", now, &failed(Some("auth_failed")))
        .await
        .expect("d1");
    t.store
        .record_attempt("d2", now, &failed(None))
        .await
        .expect("d2");
    t.ingest_new(&snapshot("t1", "d6", &config("six"), days_ago(1)))
        .await;
    t.ingest_new(&snapshot("t1", "d5", &config("five"), days_ago(9)))
        .await;

    // Act + Assert: every order, in pages of 2 both ways, sees each device
    // once and in the same order.
    let expected: [(DeviceOrder, [&str; 8]); 3] = [
        (
            DeviceOrder::Status,
            ["d1", "d2", "d3", "d4", "r1", "r2", "d5", "d6"],
        ),
        (
            DeviceOrder::LastSuccess,
            ["d1", "d2", "d3", "d4", "r1", "r2", "d5", "d6"],
        ),
        (
            DeviceOrder::LastChange,
            ["d5", "d6", "d1", "d2", "d3", "d4", "r1", "r2"],
        ),
    ];
    for (order, want) in expected {
        let (forward, backward) = walk(t, order, 2).await;
        assert_eq!(forward, want, "{order:?} forwards");
        assert_eq!(backward, want, "{order:?} backwards");
    }
}
