//! The snapshot store against real databases: every test body runs twice, on
//! a fresh SQLite file and on a fresh PostgreSQL database
//! (`on_both_stacks!(with TestStore; …)`).
//! Topics: ingest, concurrency, diffs and changes, encryption, retention,
//! tenant isolation, devices, the devices' newest versions, pagination.
//! Config and diff text hold device secrets: assertion messages print ids,
//! hashes and counts only.
//!
//! PostgreSQL must listen on 127.0.0.1:5432 with trust auth for `postgres`;
//! when it does not, the PostgreSQL tests fail and say how to start it.

mod account;
mod changes;
mod concurrency;
mod device;
mod encryption;
mod errors;
mod ingest;
mod isolation;
mod newest;
mod pagination;
mod retention;
mod semantic;
mod unchanged;

use std::path::{Path, PathBuf};

use cfgsnap::backup::Trigger;
use cfgsnap::backup::normalize::{NORMALIZATION_VERSION, normalize, sha256_hex};
use cfgsnap::config::{Fleet, Settings, StoreSettings};
use cfgsnap::id::{DeviceId, TenantId};
use cfgsnap::store::Store;
use cfgsnap::store::snapshot::{Ingested, NewSnapshot};
use cfgsnap_testkit::ScratchDb;
pub use cfgsnap_testkit::Stack;
use cfgsnap_testkit::stack::Fixture;
use chrono::{DateTime, SubsecRound, Utc};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use tempfile::TempDir;

/// The SQLite database's file name in the test's directory.
const SQLITE_FILE: &str = "cfgsnap.db";

/// Tenants and devices of every test store: `r1`, `r2` in `t1`, `x1` in `t2`.
pub const FLEET: &[(&str, &str)] = &[("r1", "t1"), ("r2", "t1"), ("x1", "t2")];

/// A connected store over its own database (SQLite file or PostgreSQL
/// database) and master key file, with [`FLEET`] synced.
pub struct TestStore {
    pub store: Store,
    pub stack: Stack,
    /// The settings the store was connected with (retention 90 days, keep 2).
    pub settings: StoreSettings,
    /// Holds the SQLite file and the master key file.
    pub dir: TempDir,
    /// The PostgreSQL database, dropped by [`TestStore::finish`].
    pg_database: Option<ScratchDb>,
}

impl Fixture for TestStore {
    async fn start(stack: Stack) -> TestStore {
        TestStore::start(stack).await
    }

    async fn finish(self) {
        TestStore::finish(self).await;
    }
}

impl TestStore {
    /// Creates the database, connects (which generates the key file) and
    /// syncs [`FLEET`].
    pub async fn start(stack: Stack) -> TestStore {
        cfgsnap_testkit::init_tracing();
        let dir = tempfile::tempdir().expect("tempdir for the store");
        let (url, pg_database) = match stack {
            Stack::Embedded => (
                format!("sqlite://{}", dir.path().join(SQLITE_FILE).display()),
                None,
            ),
            Stack::Served => {
                let db = ScratchDb::for_test().await;
                eprintln!("test database {}", db.name());
                (db.url(), Some(db))
            }
        };
        let settings = store_settings(&url, &dir.path().join("master.key"));
        let store = Store::connect(&settings).await.expect("store connects");
        store.sync_fleet(&fleet(FLEET)).await.expect("fleet syncs");
        TestStore {
            store,
            stack,
            settings,
            dir,
            pg_database,
        }
    }

    /// Closes the store and drops the PostgreSQL database (best effort).
    /// Not called when the test panicked: a failed test's PostgreSQL
    /// database stays for inspection (its name is in the test's output).
    pub async fn finish(mut self) {
        self.store.close().await;
        if let Some(db) = self.pg_database.take()
            && let Err(e) = db.drop_now().await
        {
            eprintln!("warning: {e:#}");
        }
    }

    /// Settings equal to this store's but with another key file.
    pub fn settings_with_key_file(&self, key_file: &Path) -> StoreSettings {
        store_settings(&self.settings.url, key_file)
    }

    /// The master key file the store generated.
    pub fn key_file(&self) -> PathBuf {
        self.dir.path().join("master.key")
    }

    /// The SQLite database file (and `-wal` beside it).
    pub fn sqlite_file(&self) -> PathBuf {
        self.dir.path().join(SQLITE_FILE)
    }

    /// Ingests `snap`, panicking on an error.
    pub async fn ingest(&self, snap: &NewSnapshot) -> Ingested {
        match self.store.ingest(snap).await {
            Ok(ingested) => ingested,
            Err(e) => panic!("ingest of {} failed: {e}", snap.device_id),
        }
    }

    /// Ingests `snap`, which must be new, and returns its id.
    pub async fn ingest_new(&self, snap: &NewSnapshot) -> i64 {
        match self.ingest(snap).await {
            Ingested::Created { snapshot_id, .. } => snapshot_id,
            other => panic!("expected Created, got {other:?}"),
        }
    }

    /// A device's snapshot ids, newest first.
    pub async fn snapshot_ids(&self, tenant: &str, device: &str) -> Vec<i64> {
        let list = self.store.list_snapshots(tenant, device, 500, None).await;
        list.expect("list_snapshots").iter().map(|s| s.id).collect()
    }

    /// Actions of a tenant's audit events for `device`, oldest first.
    pub async fn audit_actions(&self, tenant: &str, device: &str) -> Vec<String> {
        let events = self.store.list_audit(tenant, 500, None).await;
        let mut actions: Vec<String> = events
            .expect("list_audit")
            .into_iter()
            .filter(|e| e.device_id.as_deref() == Some(device))
            .map(|e| e.action.as_str().to_owned())
            .collect();
        actions.reverse();
        actions
    }

    /// `(snapshot_id, nonce, content)` of every row of `table` (`snapshot`
    /// or `snapshot_diff`), read past the store: the bytes at rest.
    pub async fn raw_records(&self, table: &str) -> Vec<(i64, Vec<u8>, Vec<u8>)> {
        let sql = format!("SELECT snapshot_id, nonce, content FROM {table} ORDER BY snapshot_id");
        match self.stack {
            Stack::Embedded => {
                let pool = self.raw_sqlite().await;
                let rows = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .fetch_all(&pool)
                    .await;
                pool.close().await;
                rows.expect("raw select")
            }
            Stack::Served => {
                let pool = self.raw_pg().await;
                let rows = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .fetch_all(&pool)
                    .await;
                pool.close().await;
                rows.expect("raw select")
            }
        }
    }

    /// Number of rows of `table`, read past the store, for rows the API
    /// cannot show (orphans left by a missing cascade).
    pub async fn raw_count(&self, table: &str) -> i64 {
        let sql = format!("SELECT COUNT(*) FROM {table}");
        match self.stack {
            Stack::Embedded => {
                let pool = self.raw_sqlite().await;
                let n = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                    .fetch_one(&pool)
                    .await;
                pool.close().await;
                n.expect("raw count")
            }
            Stack::Served => {
                let pool = self.raw_pg().await;
                let n = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                    .fetch_one(&pool)
                    .await;
                pool.close().await;
                n.expect("raw count")
            }
        }
    }

    /// Runs `sql` (statements separated by `;`) past the store, in the
    /// database's own dialect.
    pub async fn raw_execute(&self, sql: &str) {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        match self.stack {
            Stack::Embedded => {
                let pool = self.raw_sqlite().await;
                let done = sqlx::raw_sql(sql).execute(&pool).await;
                pool.close().await;
                done.expect("raw statements");
            }
            Stack::Served => {
                let pool = self.raw_pg().await;
                let done = sqlx::raw_sql(sql).execute(&pool).await;
                pool.close().await;
                done.expect("raw statements");
            }
        }
    }

    async fn raw_sqlite(&self) -> SqlitePool {
        let options = SqliteConnectOptions::new().filename(self.sqlite_file());
        SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .expect("raw SQLite connection")
    }

    async fn raw_pg(&self) -> PgPool {
        let db = self
            .pg_database
            .as_ref()
            .expect("BUG: a PostgreSQL test store");
        PgPoolOptions::new()
            .max_connections(1)
            .connect(&db.url())
            .await
            .expect("raw PostgreSQL connection")
    }
}

/// `[store]` with `url` and `key_file`, retention 90 days, keep 2.
fn store_settings(url: &str, key_file: &Path) -> StoreSettings {
    StoreSettings {
        url: url.to_owned(),
        encryption_key_env: None,
        encryption_key_file: Some(key_file.to_owned()),
        retention_days: 90,
        keep_min: 2,
        ..StoreSettings::default()
    }
}

/// The fleet of a configuration with tenants `t1`, `t2` and `devices`
/// (`(device, tenant)` pairs), through the real config loader.
pub fn fleet(devices: &[(&str, &str)]) -> Fleet {
    let mut toml = String::from(
        "[[credentials]]\nname = \"c\"\nusername = \"admin\"\npassword = \"x\"\n\n\
         [[tenants]]\nid = \"t1\"\n\n[[tenants]]\nid = \"t2\"\n",
    );
    for (device, tenant) in devices {
        toml.push_str(&format!(
            "\n[[devices]]\nid = \"{device}\"\ntenant = \"{tenant}\"\nname = \"router-{device}\"\n\
             host = \"192.0.2.1\"\ncredentials = \"c\"\n"
        ));
    }
    let settings = Settings::from_toml(&toml).expect("test configuration parses");
    settings.validate().expect("test configuration is valid")
}

/// A snapshot event for `text` with its correct hash.
pub fn snapshot(
    tenant: &str,
    device: &str,
    text: &str,
    collected_at: DateTime<Utc>,
) -> NewSnapshot {
    NewSnapshot {
        tenant_id: TenantId::parse(tenant).expect("valid tenant id"),
        device_id: DeviceId::parse(device).expect("valid device id"),
        sha256_hash: sha256_hex(text),
        collected_at,
        trigger: Trigger::Scheduled,
        routeros_version: Some("7.15".to_owned()),
        config_text: text.to_owned(),
        normalization_version: NORMALIZATION_VERSION,
        poller_id: Some("it".to_owned()),
        warnings: Vec::new(),
    }
}

/// A small normalized export that differs for each `tag`.
pub fn config(tag: &str) -> String {
    format!(
        "# model = RB5009UG+S+\n/interface bridge\nadd name=bridge\n/ip address\n\
         add address=192.0.2.1/24 interface=bridge\n/system identity\nset name=router-{tag}\n"
    )
}

/// `days` days before now, to the microsecond (what both databases keep).
pub fn days_ago(days: i64) -> DateTime<Utc> {
    (Utc::now() - chrono::Duration::days(days)).trunc_subsecs(6)
}

/// A corpus export (tests/corpus/routeros/), normalized.
pub fn corpus(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus/routeros")
        .join(name);
    let raw = std::fs::read_to_string(&path).expect("corpus file is readable");
    normalize(&raw).text
}

/// Applies a unified diff to `old` with GNU patch and returns the result.
pub fn apply_patch(old: &str, diff: &str) -> String {
    let dir = tempfile::tempdir().expect("tempdir for patch");
    let (old_file, diff_file, out_file) = (
        dir.path().join("old.rsc"),
        dir.path().join("change.diff"),
        dir.path().join("new.rsc"),
    );
    std::fs::write(&old_file, old).expect("write old text");
    std::fs::write(&diff_file, diff).expect("write diff");
    let output = std::process::Command::new("patch")
        .args(["--silent", "--force", "--no-backup-if-mismatch", "-o"])
        .arg(&out_file)
        .arg(&old_file)
        .arg(&diff_file)
        .output();
    let output = match output {
        Ok(output) => output,
        Err(e) => panic!("GNU patch must be installed (apt-get install patch): {e}"),
    };
    assert!(
        output.status.success(),
        "patch does not apply: {}",
        output.status
    );
    std::fs::read_to_string(&out_file).expect("patched text")
}
