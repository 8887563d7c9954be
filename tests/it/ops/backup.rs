//! Backing up and restoring the store as the README says: a SQLite store is
//! copied by `cfgsnap store backup` while `cfgsnap serve` runs and writes,
//! then wiped, restored, verified and served again; a PostgreSQL store is
//! dumped with pg_dump, restored with pg_restore into a new database, and
//! opens and verifies with the same key file.

use std::path::Path;
use std::time::Duration;

use cfgsnap::api::Role;
use cfgsnap::config::Settings;
use cfgsnap::store::Store;
use cfgsnap_testkit::serve::{ServeProcess, signal};
use cfgsnap_testkit::{Infra, ScratchDb};
use routeros_sim::DeviceSpec;
use serde_json::Value;

use super::{Stack, TestStore, cfgsnap, seed, stderr, stdout};
use crate::helpers::{CFGSNAP as BIN, start_simulator};

/// Seeded versions of the simulated device.
const SEEDED: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_backup_taken_while_serving_restores_verifies_and_serves() {
    cfgsnap_testkit::within(Duration::from_secs(240), async {
        // Arrange: a store with history, and a node serving it.
        let infra = Infra::new(Stack::Embedded).await;
        let sim = start_simulator(vec![DeviceSpec::default()]).await;
        let config = infra.dir.path().join("config.toml");
        std::fs::write(&config, infra.config(&sim, "")).expect("config");
        let settings = Settings::load(&config).expect("settings");
        let fleet = settings.validate().expect("valid configuration");
        let store = Store::connect(&settings.store).await.expect("store");
        store.sync_fleet(&fleet).await.expect("fleet");
        seed(&store, &[("dev-0", "t1")], SEEDED).await;
        store.close().await;
        let node =
            ServeProcess::start(BIN, &config, infra.dir.path().join("serve-1.log"), true).await;
        let token = infra.token("ops", "t1", Role::Viewer);
        let port = node.port.expect("api port");
        // The node's first scheduled backup adds a version while it serves.
        let before = wait_for_snapshots(port, &token, SEEDED + 1).await;

        // Act: back up while serving, stop, wipe, restore, verify, serve.
        let backup = infra.dir.path().join("backups").join("cfgsnap-backup.db");
        std::fs::create_dir_all(backup.parent().expect("dir")).expect("backup dir");
        let out = cfgsnap(&config, &["store", "backup", "--to", path(&backup)]).await;
        assert!(out.status.success(), "backup: {}", stderr(&out));
        assert!(stdout(&out).contains("back up the master key file separately"));
        let again = cfgsnap(&config, &["store", "backup", "--to", path(&backup)]).await;
        signal(&node.child, "TERM");
        let mut child = node.child;
        child.wait().await.expect("the node stops");
        let db = infra.dir.path().join("cfgsnap.db");
        for suffix in ["", "-wal", "-shm"] {
            std::fs::remove_file(format!("{}{suffix}", db.display())).ok();
        }
        assert!(!db.exists(), "the store is wiped");
        std::fs::copy(&backup, &db).expect("restore the copy");
        let verify = cfgsnap(&config, &["store", "verify"]).await;
        let node =
            ServeProcess::start(BIN, &config, infra.dir.path().join("serve-2.log"), true).await;
        let after = wait_for_snapshots(node.port.expect("api port"), &token, before.len()).await;

        // Assert
        assert_eq!(again.status.code(), Some(2), "a backup never overwrites");
        assert!(
            stderr(&again).contains("exists already"),
            "{}",
            stderr(&again)
        );
        assert!(verify.status.success(), "verify: {}", stderr(&verify));
        let checked = format!("{} records checked", 2 * before.len() - 1);
        assert!(stdout(&verify).contains(&checked), "{}", stdout(&verify));
        assert_eq!(after[after.len() - before.len()..], before[..]);

        // Act: rotate the key while the restored node serves.
        let status = stdout(&cfgsnap(&config, &["key", "status"]).await);
        let old_key = status
            .lines()
            .find(|l| l.ends_with("current"))
            .and_then(|l| l.split_whitespace().next())
            .expect("a current key")
            .to_owned();
        let rotate = cfgsnap(&config, &["key", "rotate"]).await;
        let oldest = *before.last().expect("snapshots");
        let content = reqwest::Client::new()
            .get(format!(
                "http://127.0.0.1:{}/api/tenants/t1/devices/dev-0/config-snapshots/{oldest}/content",
                node.port.expect("api port")
            ))
            .bearer_auth(&token)
            .send()
            .await
            .expect("content");

        // Assert: the running node reads records re-sealed under the new key.
        assert!(rotate.status.success(), "rotate: {}", stderr(&rotate));
        assert!(stderr(&rotate).contains(&format!("the previous key {old_key} is kept")));
        assert!(!stdout(&rotate).contains(&format!("sealed with key {old_key}")));
        assert_eq!(content.status(), 200, "the node learned the new key");
        node.kill().await;
        infra.finish().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgresql_store_is_backed_up_with_pg_dump_and_a_restored_dump_opens_and_verifies() {
    let t = TestStore::start(Stack::Served).await;
    cfgsnap_testkit::within(Duration::from_secs(120), pg_dump_and_restore(&t)).await;
    t.finish().await;
}

async fn pg_dump_and_restore(t: &TestStore) {
    // Arrange
    seed(&t.store, &[("r1", "t1"), ("x1", "t2")], 4).await;
    let config = super::write_config(t);
    let dump = t.dir.path().join("cfgsnap.dump");

    // Act: the command says how, then dump and restore as the README says.
    let refused = cfgsnap(&config, &["store", "backup", "--to", path(&dump)]).await;
    run_tool(
        "pg_dump",
        &["--format=custom", "--file", path(&dump), &t.settings.url],
    )
    .await;
    let restored = ScratchDb::for_test().await;
    run_tool(
        "pg_restore",
        &["--no-owner", "--dbname", &restored.url(), path(&dump)],
    )
    .await;
    let settings = cfgsnap::config::StoreSettings {
        url: restored.url(),
        encryption_key_file: Some(t.key_file()),
        ..cfgsnap::config::StoreSettings::default()
    };
    let store = Store::connect(&settings)
        .await
        .expect("the restored store opens");

    // Assert
    assert_eq!(refused.status.code(), Some(2));
    assert!(stderr(&refused).contains("pg_dump"), "{}", stderr(&refused));
    let report = store.verify(100, |_| {}).await.expect("verify");
    assert_eq!(report.checked, 14, "8 snapshots and 6 diffs");
    assert!(report.broken.is_empty(), "{:?}", report.broken);
    let ids = store
        .list_snapshots("t1", "r1", 10, None)
        .await
        .expect("list");
    let original = t.snapshot_ids("t1", "r1").await;
    assert_eq!(ids.iter().map(|s| s.id).collect::<Vec<_>>(), original);
    store.close().await;
    restored
        .drop_now()
        .await
        .expect("drop the restored database");
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

async fn run_tool(tool: &str, args: &[&str]) {
    let out = tokio::process::Command::new(tool)
        .args(args)
        .output()
        .await
        .unwrap_or_else(|e| {
            panic!("{tool} must be installed (apt-get install postgresql-client): {e}")
        });
    assert!(
        out.status.success(),
        "{tool}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Polls the node's API until the device has at least `n` snapshots;
/// returns their ids, newest first.
async fn wait_for_snapshots(port: u16, token: &str, n: usize) -> Vec<i64> {
    let url =
        format!("http://127.0.0.1:{port}/api/tenants/t1/devices/dev-0/config-snapshots?limit=100");
    let http = reqwest::Client::new();
    loop {
        let resp = http
            .get(&url)
            .bearer_auth(token)
            .send()
            .await
            .expect("list");
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.expect("json");
        let ids: Vec<i64> = body["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|s| s["id"].as_i64().expect("id"))
            .collect();
        if ids.len() >= n {
            return ids;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
