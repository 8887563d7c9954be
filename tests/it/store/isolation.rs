//! Tenant isolation: every tenant-scoped query asked by `t2` about `t1`'s
//! devices and snapshots finds nothing, exactly like an unknown id.

use cfgsnap::store::Error;
use cfgsnap::store::device::Attempt;
use chrono::Utc;

use super::{TestStore, config, days_ago, snapshot};

on_both_stacks!(
    with TestStore;
    another_tenant_finds_no_snapshot_of_a_device_it_does_not_own,
    another_tenant_finds_no_device_state_or_audit_event_it_does_not_own,
);

fn not_found<T>(result: Result<T, Error>) -> bool {
    matches!(result, Err(Error::SnapshotNotFound))
}

async fn another_tenant_finds_no_snapshot_of_a_device_it_does_not_own(t: &TestStore) {
    // Arrange: t1's r1 has two snapshots, t2's x1 one.
    let s1 = t
        .ingest_new(&snapshot("t1", "r1", &config("a"), days_ago(2)))
        .await;
    let s2 = t
        .ingest_new(&snapshot("t1", "r1", &config("b"), days_ago(1)))
        .await;
    let sx = t
        .ingest_new(&snapshot("t2", "x1", &config("x"), days_ago(1)))
        .await;
    let s = &t.store;

    // Act + Assert: t2 asking about r1, or about t1's ids through x1.
    assert!(
        s.list_snapshots("t2", "r1", 50, None)
            .await
            .expect("list")
            .is_empty()
    );
    assert!(
        s.config_history("t2", "r1", 50, None)
            .await
            .expect("history")
            .is_empty()
    );
    for (device, id) in [("r1", s1), ("r1", s2), ("x1", s1), ("x1", s2)] {
        assert!(
            not_found(s.get_snapshot("t2", device, id).await),
            "get {device} {id}"
        );
        let content = s.snapshot_content("t2", device, id).await;
        assert!(not_found(content), "content {device} {id}");
        let diff = s.snapshot_diff("t2", device, id, None).await;
        assert!(not_found(diff), "diff {device} {id}");
    }
    // `against` naming the other tenant's snapshot, in both directions.
    assert!(
        not_found(s.snapshot_diff("t2", "x1", sx, Some(s1)).await),
        "t2 against t1"
    );
    assert!(
        not_found(s.snapshot_diff("t1", "r1", s2, Some(sx)).await),
        "t1 against t2"
    );
    // The owners still see everything (the ids are right).
    assert_eq!(t.snapshot_ids("t1", "r1").await, [s2, s1]);
    assert_eq!(t.snapshot_ids("t2", "x1").await, [sx]);
    assert!(
        s.snapshot_diff("t1", "r1", s2, Some(s1)).await.is_ok(),
        "owner's diff"
    );
}

async fn another_tenant_finds_no_device_state_or_audit_event_it_does_not_own(t: &TestStore) {
    // Arrange: r1 has a snapshot, a pinned key and a failed attempt.
    t.ingest_new(&snapshot("t1", "r1", &config("a"), days_ago(1)))
        .await;
    t.store
        .pin_host_key("r1", "SHA256:r1-key")
        .await
        .expect("pin");
    let failed = Attempt::Failed {
        error_kind: "hostkey_mismatch".to_owned(),
        next_attempt_at: None,
        blocked_reason: Some("hostkey_mismatch".to_owned()),
    };
    t.store
        .record_attempt("r1", Utc::now(), &failed)
        .await
        .expect("record");
    t.ingest_new(&snapshot("t2", "x1", &config("x"), days_ago(1)))
        .await;
    let s = &t.store;

    // Act
    let devices = s.list_devices("t2").await.expect("list_devices");
    let device = s.get_device("t2", "r1").await;
    let reset = s.reset_host_key("t2", "r1", "mallory").await;
    let audit = s.list_audit("t2", 500, None).await.expect("list_audit");

    // Assert
    let ids: Vec<&str> = devices.iter().map(|d| d.device_id.as_str()).collect();
    assert_eq!(ids, ["x1"]);
    assert!(matches!(device, Err(Error::DeviceNotFound)), "get_device");
    assert!(
        matches!(reset, Err(Error::DeviceNotFound)),
        "reset_host_key"
    );
    let r1 = s.get_device("t1", "r1").await.expect("owner sees r1");
    assert_eq!(
        r1.host_key_fingerprint.as_deref(),
        Some("SHA256:r1-key"),
        "key kept"
    );
    assert_eq!(
        r1.blocked_reason.as_deref(),
        Some("hostkey_mismatch"),
        "block kept"
    );
    assert!(!audit.is_empty(), "t2 has its own events");
    assert!(
        audit
            .iter()
            .all(|e| e.tenant_id.as_deref() == Some("t2") && e.device_id.as_deref() == Some("x1")),
        "t2's audit log holds only t2's events"
    );
    let t1_actions = t.audit_actions("t1", "r1").await;
    assert!(
        !t1_actions.contains(&"ssh_host_key_reset".to_owned()),
        "no reset recorded"
    );
}
