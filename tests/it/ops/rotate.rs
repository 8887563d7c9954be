//! `cfgsnap key rotate|status|retire` on 10,000 records: a rotation killed
//! with SIGKILL halfway resumes to completion, a running store (the test's
//! own, standing for a node) seals with the new key at once and still reads
//! every record, the old key is retired only when unused, and records under
//! a key id no key file has are reported, never skipped.

use std::process::Stdio;
use std::time::Duration;

use cfgsnap::backup::normalize::sha256_hex;
use cfgsnap::store::Store;
use cfgsnap::store::crypto::previous_key_path;
use cfgsnap::store::snapshot::Ingested;

use super::{
    TestStore, cfgsnap, command, config, days_ago, raw_execute, records_under, seed, snapshot,
    stderr, stdout, write_config,
};

on_both_stacks!(
    with TestStore;
    a_rotation_killed_halfway_resumes_and_reseals_ten_thousand_records,
    a_record_under_an_unknown_key_id_is_reported_by_status_rotate_and_verify,
);

/// 3 devices × 1,669 versions: 5,007 snapshots and 5,004 diffs.
const VERSIONS: usize = 1_669;
const RECORDS: i64 = 10_011;

async fn a_rotation_killed_halfway_resumes_and_reseals_ten_thousand_records(t: &TestStore) {
    // Arrange
    seed(&t.store, crate::store::FLEET, VERSIONS).await;
    let old = t.store.current_key_id();
    let usage = t.store.key_usage().await.expect("key usage");
    assert_eq!(records_under(&usage, &old), RECORDS);
    let config_path = write_config(t);

    // Act 1: a slow rotation, killed with SIGKILL once the store shows progress.
    let mut child = command(
        &config_path,
        &["key", "rotate", "--batch-size", "50", "--pause", "20ms"],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .expect("cfgsnap key rotate starts");
    let new = loop {
        let current = t.store.current_key_id();
        if current != old {
            let usage = t.store.key_usage().await.expect("key usage");
            if records_under(&usage, &current) > 0 {
                break current;
            }
        }
        assert!(
            child.try_wait().expect("poll the rotation").is_none(),
            "the rotation ended before it was killed"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    child.kill().await.expect("kill -9 the rotation");

    // Assert 1: halfway, the running store seals with the new key at once
    // and reads records under both keys.
    let usage = t.store.key_usage().await.expect("key usage");
    let (under_old, under_new) = (records_under(&usage, &old), records_under(&usage, &new));
    assert!(
        under_old > 0 && under_new > 0,
        "old {under_old}, new {under_new}"
    );
    assert_eq!(under_old + under_new, RECORDS);
    assert!(previous_key_path(&t.key_file(), &old).exists());
    let text = config("written-during-rotation");
    let Ingested::Created { snapshot_id, .. } = t
        .store
        .ingest(&snapshot("t1", "r1", &text, days_ago(0)))
        .await
        .expect("ingest during rotation")
    else {
        panic!("expected a new snapshot");
    };
    let usage = t.store.key_usage().await.expect("key usage");
    assert_eq!(
        records_under(&usage, &new),
        under_new + 2,
        "snapshot and diff under the new key"
    );
    let read = t.store.snapshot_content("t1", "r1", snapshot_id).await;
    assert_eq!(sha256_hex(&read.expect("read back")), sha256_hex(&text));

    // Act 2: run it again; it resumes.
    let out = cfgsnap(&config_path, &["key", "rotate", "--batch-size", "1000"]).await;

    // Assert 2: every record under the new key, the key file unchanged.
    assert!(out.status.success(), "rotate: {}", stderr(&out));
    assert!(stderr(&out).contains("resuming:"), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("sealed with key {new}")),
        "{}",
        stdout(&out)
    );
    let fresh = Store::connect(&t.settings)
        .await
        .expect("a new node starts");
    assert_eq!(fresh.current_key_id(), new);
    let usage = fresh.key_usage().await.expect("key usage");
    assert_eq!(records_under(&usage, &new), RECORDS + 2);
    assert_eq!(records_under(&usage, &old), 0);
    let report = fresh.verify(1_000, |_| {}).await.expect("verify");
    assert_eq!(report.checked, (RECORDS + 2) as u64);
    assert!(report.broken.is_empty(), "{:?}", report.broken);
    fresh.close().await;

    // Act 3: retire the old key; the current one and unknown ones are refused.
    let current = cfgsnap(&config_path, &["key", "retire", &new]).await;
    let retired = cfgsnap(&config_path, &["key", "retire", &old]).await;
    let again = cfgsnap(&config_path, &["key", "retire", &old]).await;
    let status = cfgsnap(&config_path, &["key", "status"]).await;

    // Assert 3
    assert_eq!(current.status.code(), Some(2), "{}", stderr(&current));
    assert!(stderr(&current).contains("is the current key"));
    assert!(retired.status.success(), "retire: {}", stderr(&retired));
    assert!(!previous_key_path(&t.key_file(), &old).exists());
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("error[not_found]"),
        "{}",
        stderr(&again)
    );
    assert!(status.status.success(), "status: {}", stderr(&status));
    let listed = stdout(&status);
    assert!(
        listed.contains(&new) && listed.contains("current"),
        "{listed}"
    );
    assert!(!listed.contains(&old), "{listed}");
    // The completed rotation and the retirement are audited.
    let rotated = t
        .raw_count("audit_event WHERE action = 'master_key_rotated'")
        .await;
    let retired = t
        .raw_count("audit_event WHERE action = 'master_key_retired'")
        .await;
    assert_eq!((rotated, retired), (1, 1));
}

async fn a_record_under_an_unknown_key_id_is_reported_by_status_rotate_and_verify(t: &TestStore) {
    // Arrange: three versions; the newest claims a key id no file has.
    seed(&t.store, &[("r1", "t1")], 3).await;
    let ids = t.snapshot_ids("t1", "r1").await;
    let newest = ids[0];
    raw_execute(
        t,
        &format!("UPDATE snapshot SET key_id = 'feedfacefeedface' WHERE snapshot_id = {newest}"),
    )
    .await;
    // A node refuses to start on it, naming the key id.
    let refused = Store::connect(&t.settings)
        .await
        .expect_err("start-up refused");
    assert!(
        format!("{refused:#}").contains("feedfacefeedface"),
        "{refused:#}"
    );
    let config_path = write_config(t);

    // Act
    let status = cfgsnap(&config_path, &["key", "status"]).await;
    let verify = cfgsnap(&config_path, &["store", "verify"]).await;
    let rotate = cfgsnap(&config_path, &["key", "rotate"]).await;

    // Assert
    assert_eq!(status.status.code(), Some(1), "{}", stderr(&status));
    assert!(
        stdout(&status).contains("feedfacefeedface"),
        "{}",
        stdout(&status)
    );
    assert!(
        stderr(&status).contains("1 records are sealed with key id feedfacefeedface"),
        "{}",
        stderr(&status)
    );
    assert_eq!(verify.status.code(), Some(1), "{}", stderr(&verify));
    assert!(
        stderr(&verify).contains(&format!("snapshot {newest} ")),
        "{}",
        stderr(&verify)
    );
    assert!(
        stdout(&verify).contains("1 of 5 records are broken"),
        "{}",
        stdout(&verify)
    );
    assert_eq!(rotate.status.code(), Some(1), "{}", stderr(&rotate));
    assert!(
        stderr(&rotate).contains("feedfacefeedface"),
        "{}",
        stderr(&rotate)
    );
    // Everything else was re-sealed with the new key.
    let fresh = Store::open(&t.settings).await.expect("the store opens");
    let usage = fresh.key_usage().await.expect("key usage");
    assert_eq!(records_under(&usage, &fresh.current_key_id()), 4);
    assert_eq!(records_under(&usage, "feedfacefeedface"), 1);
    fresh.close().await;
}
