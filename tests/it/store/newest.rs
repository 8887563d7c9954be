//! Each device's newest version as the store keeps it beside the device
//! (the key of the fleet's order by last change): set by ingest, set again
//! by retention when it deletes the newest, kept by a device move, and
//! filled for existing devices by its migration.

use cfgsnap::store::browse::{DeviceOrder, DeviceQuery};
use chrono::Utc;

use super::{TestStore, config, days_ago, snapshot};

/// The migration that added the column, as `_sqlx_migrations` records it.
const MIGRATION: i64 = 20261208000001;

on_both_stacks!(
    with TestStore;
    ingest_and_retention_keep_each_devices_newest_version,
    a_moved_device_keeps_its_newest_version,
    the_migration_fills_in_the_newest_version_of_existing_devices,
);

/// Ingests one version of `device` per age (days), oldest first; returns
/// their ids.
async fn ingest_ages(t: &TestStore, tenant: &str, device: &str, ages: &[i64]) -> Vec<i64> {
    let mut ids = Vec::new();
    for age in ages {
        let text = config(&format!("{device}-{age}"));
        ids.push(
            t.ingest_new(&snapshot(tenant, device, &text, days_ago(*age)))
                .await,
        );
    }
    ids
}

/// The newest version the device's row names.
async fn newest(t: &TestStore, tenant: &str, device: &str) -> Option<i64> {
    let state = t.store.get_device(tenant, device).await;
    state.expect("get_device").newest_snapshot_id
}

/// A tenant's device ids in the fleet's order by last change.
async fn by_last_change(t: &TestStore, tenant: &str) -> Vec<String> {
    let query = DeviceQuery {
        order: DeviceOrder::LastChange,
        ..DeviceQuery::default()
    };
    let devices = t.store.query_devices(tenant, &query).await;
    let devices = devices.expect("query_devices");
    devices.into_iter().map(|d| d.device_id).collect()
}

async fn ingest_and_retention_keep_each_devices_newest_version(t: &TestStore) {
    // Arrange: r1 has a recent version after two old ones, r2 only old
    // ones; r2 changed last.
    let r1 = ingest_ages(t, "t1", "r1", &[300, 200, 5]).await;
    let r2 = ingest_ages(t, "t1", "r2", &[250, 150]).await;
    assert_eq!(newest(t, "t1", "r1").await, Some(r1[2]));
    assert_eq!(newest(t, "t1", "r2").await, Some(r2[1]));
    assert_eq!(by_last_change(t, "t1").await, ["r2", "r1"]);

    // Act: 90 days, keep none, so r2's newest goes too.
    let deleted = t.store.apply_retention(Utc::now(), 90, 0).await;

    // Assert
    assert_eq!(deleted.expect("retention"), 4);
    assert_eq!(t.snapshot_ids("t1", "r1").await, [r1[2]]);
    assert_eq!(
        newest(t, "t1", "r1").await,
        Some(r1[2]),
        "r1 keeps its newest"
    );
    assert!(t.snapshot_ids("t1", "r2").await.is_empty());
    assert_eq!(newest(t, "t1", "r2").await, None, "r2 has none left");
    assert_eq!(
        by_last_change(t, "t1").await,
        ["r1", "r2"],
        "a device without versions goes last"
    );
    let again = ingest_ages(t, "t1", "r2", &[1]).await;
    assert_eq!(newest(t, "t1", "r2").await, Some(again[0]));
    assert_eq!(by_last_change(t, "t1").await, ["r2", "r1"]);
}

async fn a_moved_device_keeps_its_newest_version(t: &TestStore) {
    // Arrange: t2's x1 changed after t1's r1.
    let r1 = ingest_ages(t, "t1", "r1", &[3, 2]).await;
    let x1 = ingest_ages(t, "t2", "x1", &[1]).await;

    // Act
    let moved = t.store.move_device("r1", "t2", "Tenant 2", "test").await;

    // Assert
    assert_eq!(moved.expect("move").records, 3, "two versions and a diff");
    assert_eq!(newest(t, "t2", "r1").await, Some(r1[1]));
    assert_eq!(newest(t, "t2", "x1").await, Some(x1[0]));
    assert_eq!(by_last_change(t, "t2").await, ["x1", "r1"]);
    assert_eq!(by_last_change(t, "t1").await, ["r2"]);
}

async fn the_migration_fills_in_the_newest_version_of_existing_devices(t: &TestStore) {
    // Arrange: versions stored, then the migration undone as if they had
    // been stored before it (the column, its index and its record gone).
    let r1 = ingest_ages(t, "t1", "r1", &[3, 2, 1]).await;
    let x1 = ingest_ages(t, "t2", "x1", &[4]).await;
    t.raw_execute(&format!(
        "DROP INDEX device_last_change_idx; \
         ALTER TABLE device DROP COLUMN newest_snapshot_id; \
         DELETE FROM _sqlx_migrations WHERE version = {MIGRATION}"
    ))
    .await;

    // Act
    t.store.migrate().await.expect("migrate");

    // Assert
    assert_eq!(newest(t, "t1", "r1").await, Some(r1[2]));
    assert_eq!(newest(t, "t1", "r2").await, None);
    assert_eq!(newest(t, "t2", "x1").await, Some(x1[0]));
    assert_eq!(by_last_change(t, "t1").await, ["r1", "r2"]);
}
