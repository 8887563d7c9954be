//! Devices mirrored from the configuration: fleet sync, host-key pinning and
//! reset, backup state after each attempt (and after each ingested snapshot,
//! whose attempt report may be lost), the newest snapshot in listings.

use cfgsnap::store::device::Attempt;
use cfgsnap::store::{Error, Store};
use chrono::{Duration, SubsecRound, Utc};

use super::{FLEET, TestStore, config, days_ago, fleet, snapshot};

on_both_stacks!(
    with TestStore;
    sync_fleet_marks_a_removed_device_inactive_and_keeps_its_history,
    sync_fleet_refuses_to_move_a_device_with_history_to_another_tenant,
    sync_fleet_of_thousands_writes_new_and_changed_devices,
    a_host_key_is_pinned_on_first_use_only_and_audited,
    reset_host_key_forgets_the_key_lifts_its_block_and_audits_the_actor,
    a_pin_remembered_by_one_node_yields_to_a_reset_on_another,
    record_attempt_updates_the_backup_state_and_counts_failures,
    record_attempts_applies_a_batch_in_order_in_one_call,
    concurrent_batches_in_opposite_device_order_both_commit,
    a_fleet_sync_and_attempt_batches_at_once_all_commit,
    an_ingested_snapshot_is_a_success_unless_a_later_attempt_is_recorded,
    a_failure_or_lock_recorded_after_a_later_success_changes_nothing,
    list_devices_shows_each_devices_newest_snapshot,
);

fn failed(kind: &str, blocked: Option<&str>) -> Attempt {
    Attempt::Failed {
        error_kind: kind.to_owned(),
        next_attempt_at: None,
        blocked_reason: blocked.map(str::to_owned),
    }
}

async fn sync_fleet_marks_a_removed_device_inactive_and_keeps_its_history(t: &TestStore) {
    // Arrange
    let id = t
        .ingest_new(&snapshot("t1", "r2", &config("a"), days_ago(1)))
        .await;
    let without_r2: Vec<(&str, &str)> = FLEET.iter().copied().filter(|d| d.0 != "r2").collect();

    // Act
    t.store
        .sync_fleet(&fleet(&without_r2))
        .await
        .expect("sync without r2");

    // Assert
    let devices = t.store.list_devices("t1").await.expect("list_devices");
    let state: Vec<(&str, bool)> = devices
        .iter()
        .map(|d| (d.device_id.as_str(), d.active))
        .collect();
    assert_eq!(state, [("r1", true), ("r2", false)]);
    assert_eq!(t.snapshot_ids("t1", "r2").await, [id], "history kept");
    assert!(
        t.store.snapshot_content("t1", "r2", id).await.is_ok(),
        "content kept"
    );
    assert!(t.store.get_device("t2", "x1").await.expect("x1").active);

    // Act: configured again.
    t.store
        .sync_fleet(&fleet(FLEET))
        .await
        .expect("sync with r2");

    // Assert
    let r2 = t.store.get_device("t1", "r2").await.expect("r2");
    assert!(r2.active, "active again");
    assert_eq!((r2.name.as_str(), r2.port), ("router-r2", 22));
    assert_eq!(r2.newest_snapshot_id, Some(id));
}

async fn sync_fleet_of_thousands_writes_new_and_changed_devices(t: &TestStore) {
    // Arrange: 2,100 devices, more than one statement's worth.
    let ids: Vec<String> = (0..2100).map(|i| format!("f{i}")).collect();
    let listed: Vec<(&str, &str)> = ids.iter().map(|d| (d.as_str(), "t2")).collect();
    t.store
        .sync_fleet(&fleet(&listed))
        .await
        .expect("first sync");
    let mut changed = fleet(&listed[1..]);
    changed.devices[1499].host = "192.0.2.9".into();
    changed.devices[2050].port = 2222;
    changed.devices[10].name = "renamed".into();

    // Act: f0 removed, three devices changed, the rest as they were.
    t.store.sync_fleet(&changed).await.expect("second sync");

    // Assert
    let devices = t.store.list_devices("t2").await.expect("list_devices");
    let fleet_devices: Vec<_> = devices
        .iter()
        .filter(|d| d.device_id.starts_with('f'))
        .collect();
    assert_eq!(fleet_devices.len(), 2100);
    let get = |id: &str| {
        fleet_devices
            .iter()
            .find(|d| d.device_id == id)
            .expect("listed")
    };
    assert!(!get("f0").active, "removed from the fleet");
    assert_eq!(fleet_devices.iter().filter(|d| d.active).count(), 2099);
    assert_eq!(get("f1500").host, "192.0.2.9");
    assert_eq!(get("f2051").port, 2222);
    assert_eq!(get("f11").name, "renamed");
    assert_eq!(
        (get("f12").name.as_str(), get("f12").port),
        ("router-f12", 22)
    );
}

async fn a_pin_remembered_by_one_node_yields_to_a_reset_on_another(t: &TestStore) {
    use cfgsnap::backup::HostKeys as _;
    use cfgsnap::id::DeviceId;

    // Arrange: this node pinned r1 and remembers it; a second node (the
    // same database) resets the key and pins the device's new one.
    let here = &t.store;
    let other = Store::connect(&t.settings).await.expect("second node");
    let r1 = DeviceId::parse("r1").expect("id");
    here.pin_host_key("r1", "SHA256:old").await.expect("pin");
    assert_eq!(
        here.pinned(&r1).await.expect("read").as_deref(),
        Some("SHA256:old")
    );
    other
        .reset_host_key("t1", "r1", "admin")
        .await
        .expect("reset");
    other
        .pin_host_key("r1", "SHA256:new")
        .await
        .expect("new pin");

    // Act
    let remembered = here.pinned(&r1).await.expect("remembered");
    let fresh = here.pinned_fresh(&r1).await.expect("fresh");
    let after = here.pinned(&r1).await.expect("after the fresh read");

    // Assert: memory answers until the store is asked (what the executor
    // does before it calls a key a mismatch); then memory follows it.
    assert_eq!(remembered.as_deref(), Some("SHA256:old"));
    assert_eq!(fresh.as_deref(), Some("SHA256:new"));
    assert_eq!(after.as_deref(), Some("SHA256:new"));

    // A reset announced on the bus makes the node forget at once.
    other
        .reset_host_key("t1", "r1", "admin")
        .await
        .expect("reset again");
    here.forget_pinned_host_key("r1");
    assert_eq!(here.pinned(&r1).await.expect("read"), None);
    other.close().await;
}

async fn a_host_key_is_pinned_on_first_use_only_and_audited(t: &TestStore) {
    // Arrange
    let s = &t.store;
    assert_eq!(s.pinned_host_key("r1").await.expect("pinned"), None);

    // Act
    s.pin_host_key("r1", "SHA256:first")
        .await
        .expect("first pin");
    s.pin_host_key("r1", "SHA256:second")
        .await
        .expect("second pin");
    let unknown = s.pin_host_key("nope", "SHA256:x").await;

    // Assert
    assert_eq!(
        s.pinned_host_key("r1").await.expect("pinned").as_deref(),
        Some("SHA256:first")
    );
    let r1 = s.get_device("t1", "r1").await.expect("r1");
    assert_eq!(r1.host_key_fingerprint.as_deref(), Some("SHA256:first"));
    assert!(
        matches!(unknown, Err(Error::DeviceNotFound)),
        "unknown device"
    );
    assert_eq!(t.audit_actions("t1", "r1").await, ["ssh_host_key_pinned"]);
    let events = s.list_audit("t1", 10, None).await.expect("list_audit");
    assert_eq!(events[0].detail_json()["fingerprint"], "SHA256:first");
    assert_eq!(
        s.pinned_host_key("r2").await.expect("pinned"),
        None,
        "r2 untouched"
    );
}

async fn reset_host_key_forgets_the_key_lifts_its_block_and_audits_the_actor(t: &TestStore) {
    // Arrange: r1 blocked by a changed key, r2 blocked by a rejected login.
    let s = &t.store;
    for (device, kind) in [("r1", "hostkey_mismatch"), ("r2", "auth_failed")] {
        s.pin_host_key(device, "SHA256:old").await.expect("pin");
        s.record_attempt(device, Utc::now(), &failed(kind, Some(kind)))
            .await
            .expect("record");
    }

    // Act
    s.reset_host_key("t1", "r1", "alice")
        .await
        .expect("reset r1");
    s.reset_host_key("t1", "r2", "bob").await.expect("reset r2");

    // Assert
    let r1 = s.get_device("t1", "r1").await.expect("r1");
    assert_eq!((r1.host_key_fingerprint, r1.blocked_reason), (None, None));
    let r2 = s.get_device("t1", "r2").await.expect("r2");
    assert_eq!(r2.host_key_fingerprint, None);
    assert_eq!(
        r2.blocked_reason.as_deref(),
        Some("auth_failed"),
        "not a host-key block"
    );
    let events = s.list_audit("t1", 10, None).await.expect("list_audit");
    let resets: Vec<(Option<&str>, Option<&str>)> = events
        .iter()
        .filter(|e| e.action.as_str() == "ssh_host_key_reset")
        .map(|e| (e.device_id.as_deref(), e.actor.as_deref()))
        .collect();
    assert_eq!(
        resets,
        [(Some("r2"), Some("bob")), (Some("r1"), Some("alice"))]
    );
    let r1_reset = events
        .iter()
        .find(|e| e.actor.as_deref() == Some("alice"))
        .expect("r1 reset");
    assert_eq!(r1_reset.detail_json()["previous_fingerprint"], "SHA256:old");

    // Act: the next contact pins again.
    s.pin_host_key("r1", "SHA256:new").await.expect("pin again");

    // Assert
    assert_eq!(
        s.pinned_host_key("r1").await.expect("pinned").as_deref(),
        Some("SHA256:new")
    );
}

async fn record_attempts_applies_a_batch_in_order_in_one_call(t: &TestStore) {
    // Arrange: two failures of r1 then its success, a failure of r2, and a
    // device the store does not know, all in one batch.
    let s = &t.store;
    let t0 = Utc::now().trunc_subsecs(6);
    let at = |minutes: i64| t0 + Duration::minutes(minutes);
    let (unreachable, blocked) = (
        failed("unreachable", None),
        failed("auth_failed", Some("auth_failed")),
    );
    let batch = [
        ("r1", at(0), &unreachable),
        ("r2", at(0), &blocked),
        ("r1", at(1), &unreachable),
        ("gone", at(1), &unreachable),
        ("r1", at(2), &Attempt::Success),
    ];

    // Act
    s.record_attempts(&batch).await.expect("record the batch");

    // Assert: each device ends as its last attempt left it.
    let r1 = s.get_device("t1", "r1").await.expect("r1");
    assert_eq!(r1.last_status.as_deref(), Some("success"));
    assert_eq!(
        (r1.last_attempt_at, r1.last_success_at),
        (Some(at(2)), Some(at(2)))
    );
    assert_eq!(r1.consecutive_failures, 0);
    let r2 = s.get_device("t1", "r2").await.expect("r2");
    assert_eq!(r2.last_status.as_deref(), Some("failed"));
    assert_eq!(r2.blocked_reason.as_deref(), Some("auth_failed"));
    assert_eq!(r2.consecutive_failures, 1);
}

async fn concurrent_batches_in_opposite_device_order_both_commit(t: &TestStore) {
    // Arrange: two nodes' batches naming the same devices in opposite orders
    // (on PostgreSQL, row locks taken in those orders would deadlock).
    let s = &t.store;
    let at = Utc::now().trunc_subsecs(6);
    let forward = [
        ("r1", at, &Attempt::Success),
        ("r2", at, &Attempt::Success),
        ("x1", at, &Attempt::Success),
    ];
    let mut backward = forward;
    backward.reverse();

    // Act + Assert
    for round in 0..20 {
        let (a, b) = tokio::join!(s.record_attempts(&forward), s.record_attempts(&backward));
        assert!(a.is_ok() && b.is_ok(), "round {round}: {a:?} / {b:?}");
    }
    let x1 = s.get_device("t2", "x1").await.expect("x1");
    assert_eq!(x1.last_success_at, Some(at));
}

async fn a_fleet_sync_and_attempt_batches_at_once_all_commit(t: &TestStore) {
    // Arrange: devices whose table order (z9 added first) is the reverse of
    // their id order, the order batches lock them in; on PostgreSQL the two
    // meet in a deadlock and one is aborted.
    let s = &t.store;
    let devices = fleet(&[("z9", "t1"), ("a9", "t1")]);
    s.sync_fleet(&devices).await.expect("first sync");
    let at = Utc::now().trunc_subsecs(6);
    let batch = [("a9", at, &Attempt::Success), ("z9", at, &Attempt::Success)];

    // Act + Assert: the aborted one runs again.
    for round in 0..20 {
        let (synced, recorded) = tokio::join!(s.sync_fleet(&devices), s.record_attempts(&batch));
        assert!(
            synced.is_ok() && recorded.is_ok(),
            "round {round}: {synced:?} / {recorded:?}"
        );
    }
    let a9 = s.get_device("t1", "a9").await.expect("a9");
    assert_eq!(a9.last_success_at, Some(at));
}

async fn record_attempt_updates_the_backup_state_and_counts_failures(t: &TestStore) {
    // Arrange
    let s = &t.store;
    let t0 = Utc::now().trunc_subsecs(6);
    let at = |minutes: i64| t0 + Duration::minutes(minutes);
    let retry = Attempt::Failed {
        error_kind: "timeout".to_owned(),
        next_attempt_at: Some(at(15)),
        blocked_reason: None,
    };

    // Act + Assert: two failures.
    s.record_attempt("r1", at(0), &failed("unreachable", None))
        .await
        .expect("record");
    s.record_attempt("r1", at(1), &retry).await.expect("record");
    let r1 = s.get_device("t1", "r1").await.expect("r1");
    assert_eq!(r1.last_status.as_deref(), Some("failed"));
    assert_eq!(r1.last_error_kind.as_deref(), Some("timeout"));
    assert_eq!(r1.consecutive_failures, 2);
    assert_eq!(
        (r1.last_attempt_at, r1.next_attempt_at),
        (Some(at(1)), Some(at(15)))
    );
    assert_eq!(r1.last_success_at, None);

    // Act + Assert: locked changes the status only.
    s.record_attempt("r1", at(2), &Attempt::Locked)
        .await
        .expect("record");
    let r1 = s.get_device("t1", "r1").await.expect("r1");
    assert_eq!(r1.last_status.as_deref(), Some("locked"));
    assert_eq!(
        (r1.consecutive_failures, r1.last_attempt_at),
        (2, Some(at(2)))
    );

    // Act + Assert: a success resets the failure state.
    s.record_attempt("r1", at(3), &Attempt::Success)
        .await
        .expect("record");
    let r1 = s.get_device("t1", "r1").await.expect("r1");
    assert_eq!(r1.last_status.as_deref(), Some("success"));
    assert_eq!(
        (r1.last_attempt_at, r1.last_success_at),
        (Some(at(3)), Some(at(3)))
    );
    assert_eq!(
        (
            r1.consecutive_failures,
            r1.last_error_kind,
            r1.next_attempt_at
        ),
        (0, None, None)
    );
    assert_eq!(r1.blocked_reason, None);
    let r2 = s.get_device("t1", "r2").await.expect("r2");
    assert_eq!(
        (r2.last_status, r2.consecutive_failures),
        (None, 0),
        "r2 untouched"
    );
}

async fn an_ingested_snapshot_is_a_success_unless_a_later_attempt_is_recorded(t: &TestStore) {
    // Arrange: r1 failed at some point; its later backup's report was lost.
    let s = &t.store;
    let old = snapshot("t1", "r1", &config("a"), days_ago(2));
    s.record_attempt("r1", old.collected_at, &failed("timeout", None))
        .await
        .expect("record");
    let newer = snapshot("t1", "r1", &config("b"), days_ago(1));

    // Act: the newer snapshot, then a duplicate of it, then a stale one
    // after a later failure.
    t.ingest_new(&newer).await;
    let after_new = s.get_device("t1", "r1").await.expect("r1");
    let later = newer.collected_at + Duration::hours(1);
    s.record_attempt("r1", later, &failed("unreachable", None))
        .await
        .expect("record");
    s.ingest(&newer).await.expect("duplicate");
    let after_failure = s.get_device("t1", "r1").await.expect("r1");

    // Assert: the snapshot counts as the success its report would have been…
    assert_eq!(after_new.last_status.as_deref(), Some("success"));
    let at = Some(newer.collected_at.trunc_subsecs(6));
    assert_eq!(
        (after_new.last_success_at, after_new.last_attempt_at),
        (at, at)
    );
    assert_eq!(after_new.consecutive_failures, 0);
    // …but never hides a failure recorded after it.
    assert_eq!(after_failure.last_status.as_deref(), Some("failed"));
    assert_eq!(
        after_failure.last_error_kind.as_deref(),
        Some("unreachable")
    );
    assert_eq!(after_failure.last_success_at, at);
}

async fn a_failure_or_lock_recorded_after_a_later_success_changes_nothing(t: &TestStore) {
    // Arrange: r1's backup at `success` is stored (with it its success, as
    // on the embedded bus, where no success report follows).
    let s = &t.store;
    let snap = snapshot("t1", "r1", &config("a"), days_ago(1));
    t.ingest_new(&snap).await;
    let success = snap.collected_at;
    let before = s.get_device("t1", "r1").await.expect("r1");

    // Act: the reports of an earlier failed attempt and of an earlier
    // held lock arrive after it.
    let earlier = success - Duration::minutes(1);
    s.record_attempt("r1", earlier, &failed("unreachable", None))
        .await
        .expect("record");
    s.record_attempt("r1", earlier, &Attempt::Locked)
        .await
        .expect("record");

    // Assert: the state is still the success's.
    let after = s.get_device("t1", "r1").await.expect("r1");
    assert_eq!(after.last_status.as_deref(), Some("success"));
    assert_eq!(after.last_attempt_at, before.last_attempt_at);
    assert_eq!(after.consecutive_failures, 0);
    assert_eq!(after.last_error_kind, None);

    // Act: a failure after the success still counts.
    s.record_attempt(
        "r1",
        success + Duration::minutes(1),
        &failed("timeout", None),
    )
    .await
    .expect("record");

    // Assert
    let later = s.get_device("t1", "r1").await.expect("r1");
    assert_eq!(later.last_status.as_deref(), Some("failed"));
    assert_eq!(later.consecutive_failures, 1);
}

async fn list_devices_shows_each_devices_newest_snapshot(t: &TestStore) {
    // Arrange
    let a = snapshot("t1", "r1", &config("a"), days_ago(2));
    let b = snapshot("t1", "r1", &config("b"), days_ago(1));
    t.ingest_new(&a).await;
    let newest = t.ingest_new(&b).await;

    // Act
    let devices = t.store.list_devices("t1").await.expect("list_devices");

    // Assert
    let newest_of: Vec<(&str, Option<i64>, Option<&str>)> = devices
        .iter()
        .map(|d| {
            (
                d.device_id.as_str(),
                d.newest_snapshot_id,
                d.newest_sha256_hash.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        newest_of,
        [
            ("r1", Some(newest), Some(b.sha256_hash.as_str())),
            ("r2", None, None)
        ]
    );
    let r1 = t.store.get_device("t1", "r1").await.expect("r1");
    assert_eq!(
        (r1.tenant_id.as_str(), r1.name.as_str(), r1.host.as_str()),
        ("t1", "router-r1", "192.0.2.1")
    );
    assert_eq!(r1.newest_snapshot_id, Some(newest));
}

async fn sync_fleet_refuses_to_move_a_device_with_history_to_another_tenant(t: &TestStore) {
    // Arrange: r1 has history in t1.
    let id = t
        .ingest_new(&snapshot("t1", "r1", &config("a"), days_ago(1)))
        .await;
    let moved: Vec<(&str, &str)> = FLEET
        .iter()
        .map(|&(d, tenant)| if d == "r1" { ("r1", "t2") } else { (d, tenant) })
        .collect();

    // Act
    let err = t
        .store
        .sync_fleet(&fleet(&moved))
        .await
        .expect_err("refused");

    // Assert: a clear error, and nothing changed.
    assert!(
        err.to_string().contains("cfgsnap device move r1 --to t2"),
        "{err}"
    );
    let device = t.store.get_device("t1", "r1").await.expect("still t1's");
    assert_eq!(device.newest_snapshot_id, Some(id));
    assert!(matches!(
        t.store.get_device("t2", "r1").await,
        Err(Error::DeviceNotFound)
    ));
}
