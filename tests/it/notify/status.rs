//! Status-only versions (DESIGN.md §16) and `config.changed`, on both
//! backends: a version that differs from its predecessor only in status
//! comments is stored and marked, and queues `config.changed` only for
//! targets that set `status_only = true`.

use chrono::{Duration, Utc};

use super::{notify_config, secret_file, webhook_target};
use crate::store::{TestStore, config, snapshot};
use cfgsnap_testkit::on_both_stacks;

async fn status_only_versions_notify_only_targets_that_ask_for_them(t: &TestStore) {
    // Arrange: two targets for config.changed; only "status" wants
    // status-only versions. Routes only (no dispatcher): the rows are
    // what is checked.
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = secret_file(dir.path());
    let toml = format!(
        "{}{}",
        webhook_target(
            "quiet",
            "https://hooks.example/q",
            r#""config.changed""#,
            &secret,
            ""
        ),
        webhook_target(
            "status",
            "https://hooks.example/s",
            r#""config.changed""#,
            &secret,
            "status_only = true"
        ),
    );
    t.store.set_notify_routes(&notify_config(&toml));
    let base = config("a");
    let flapping = base.replace(
        "/interface bridge\n",
        "/interface bridge\n# managed by CAPsMAN\n# ether5 not ready\n",
    );
    let start = Utc::now() - Duration::minutes(10);

    // Act: first version, a status-only one, then a real change.
    let first_id = t.ingest_new(&snapshot("t1", "r1", &base, start)).await;
    let status_id = t
        .ingest_new(&snapshot(
            "t1",
            "r1",
            &flapping,
            start + Duration::minutes(1),
        ))
        .await;
    let changed_id = t
        .ingest_new(&snapshot(
            "t1",
            "r1",
            &config("b"),
            start + Duration::minutes(2),
        ))
        .await;

    // Assert
    let mut rows = t
        .store
        .list_notifications("t1", None, 50)
        .await
        .expect("listing notifications");
    rows.sort_by_key(|r| r.notification_id);
    let got: Vec<(String, i64)> = rows
        .iter()
        .map(|r| {
            let data: serde_json::Value = serde_json::from_str(&r.payload).expect("payload");
            (r.target.clone(), data["snapshot_id"].as_i64().unwrap_or(-1))
        })
        .collect();
    let want = [
        ("status".to_owned(), status_id),
        ("quiet".to_owned(), changed_id),
        ("status".to_owned(), changed_id),
    ];
    assert_eq!(got, want, "the status-only version reaches only `status`");
    assert!(rows.iter().all(|r| r.event_type == "config.changed"));
    let metas = t
        .store
        .list_snapshots("t1", "r1", 10, None)
        .await
        .expect("listing snapshots");
    let marks: Vec<(i64, bool)> = metas.iter().map(|m| (m.id, m.status_only)).collect();
    assert_eq!(
        marks,
        [(changed_id, false), (status_id, true), (first_id, false)],
        "only the status-only version is marked"
    );
}

on_both_stacks!(with TestStore;
    status_only_versions_notify_only_targets_that_ask_for_them,
);
