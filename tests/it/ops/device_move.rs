//! `cfgsnap device move DEVICE --to TENANT`: the history is re-sealed under
//! the new tenant's key and belongs to it, the old tenant sees nothing, the
//! move is audited, and the configuration naming the new tenant then passes
//! start-up (it was refused before).

use cfgsnap::backup::normalize::sha256_hex;
use cfgsnap::store::{Error, Store};

use super::{
    TestStore, cfgsnap, config, days_ago, fleet, seed, snapshot, stderr, stdout, write_config,
};

on_both_stacks!(
    with TestStore;
    a_moved_device_keeps_its_history_under_the_new_tenant_and_the_config_may_follow,
);

async fn a_moved_device_keeps_its_history_under_the_new_tenant_and_the_config_may_follow(
    t: &TestStore,
) {
    // Arrange: r1 has three versions in t1; the configuration moving it is refused.
    seed(&t.store, &[("r1", "t1"), ("r2", "t1")], 3).await;
    let ids = t.snapshot_ids("t1", "r1").await;
    let newest = ids[0];
    let newest_text = t
        .store
        .snapshot_content("t1", "r1", newest)
        .await
        .expect("read before the move");
    let diff_before = t
        .store
        .snapshot_diff("t1", "r1", newest, None)
        .await
        .expect("diff before the move");
    let moved_fleet = fleet(&[("r1", "t2"), ("r2", "t1"), ("x1", "t2")]);
    let refused = t.store.sync_fleet(&moved_fleet).await;
    assert!(
        refused.is_err(),
        "the configuration change is refused first"
    );
    let config_path = write_config(t);

    // Act
    let out = cfgsnap(&config_path, &["device", "move", "r1", "--to", "t2"]).await;

    // Assert: t2 owns the whole history, re-sealed under its key.
    assert!(out.status.success(), "move: {}", stderr(&out));
    assert!(
        stdout(&out).contains("5 records re-sealed"),
        "{}",
        stdout(&out)
    );
    assert_eq!(t.snapshot_ids("t2", "r1").await, ids);
    assert!(t.snapshot_ids("t1", "r1").await.is_empty());
    let read = t.store.snapshot_content("t2", "r1", newest).await;
    assert_eq!(
        sha256_hex(&read.expect("t2 reads it")),
        sha256_hex(&newest_text)
    );
    let diff = t.store.snapshot_diff("t2", "r1", newest, None).await;
    assert_eq!(
        sha256_hex(&diff.expect("t2 diff")),
        sha256_hex(&diff_before)
    );
    assert!(matches!(
        t.store.snapshot_content("t1", "r1", newest).await,
        Err(Error::SnapshotNotFound)
    ));
    // r2 stays where it was.
    assert_eq!(t.snapshot_ids("t1", "r2").await.len(), 3);
    let actions = t.audit_actions("t2", "r1").await;
    assert_eq!(actions.last().map(String::as_str), Some("device_moved"));
    // Every record still opens and hashes to its id.
    let report = t.store.verify(100, |_| {}).await.expect("verify");
    assert!(report.broken.is_empty(), "{:?}", report.broken);
    // The configuration naming t2 now passes, and new versions land in t2.
    t.store
        .sync_fleet(&moved_fleet)
        .await
        .expect("the configuration follows the move");
    let next = t
        .store
        .ingest(&snapshot("t2", "r1", &config("after-move"), days_ago(0)))
        .await;
    assert!(next.is_ok(), "ingest after the move: {:?}", next.err());
    // A node still configured with the old tenant is refused, not stored.
    let stale = t
        .store
        .ingest(&snapshot("t1", "r1", &config("old-tenant"), days_ago(0)))
        .await;
    assert!(matches!(stale, Err(Error::InvalidSnapshot(_))), "{stale:?}");
    let fresh = Store::connect(&t.settings)
        .await
        .expect("a new node starts");
    fresh.sync_fleet(&moved_fleet).await.expect("start-up sync");
    fresh.close().await;

    // Moving it to where it is changes nothing; unknown devices and tenants are refused.
    let same = cfgsnap(&config_path, &["device", "move", "r1", "--to", "t2"]).await;
    assert!(same.status.success(), "{}", stderr(&same));
    assert!(stdout(&same).contains("nothing moved"), "{}", stdout(&same));
    let ghost = cfgsnap(&config_path, &["device", "move", "ghost", "--to", "t2"]).await;
    assert_eq!(ghost.status.code(), Some(1));
    assert!(
        stderr(&ghost).contains("the store has no device"),
        "{}",
        stderr(&ghost)
    );
    let nowhere = cfgsnap(&config_path, &["device", "move", "r1", "--to", "t9"]).await;
    assert_eq!(nowhere.status.code(), Some(1));
    assert!(
        stderr(&nowhere).contains("no tenant"),
        "{}",
        stderr(&nowhere)
    );
}
