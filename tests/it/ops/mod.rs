//! Operating cfgsnap: master key rotation (`cfgsnap key`), moving a device
//! to another tenant (`cfgsnap device move`), backing up, restoring and
//! verifying the store (`cfgsnap store`), the systemd unit in `dist/`, and
//! malformed command lines. Store-level tests run on both databases
//! (`on_both_stacks!(with TestStore; …)`); the commands run as the real
//! binary. Assertion messages hold ids and counts, never record text.

mod backup;
mod cli_input;
mod device_move;
mod docs;
mod rotate;
mod systemd;

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use cfgsnap::store::Store;
use cfgsnap::store::rekey::KeyUsage;

pub use crate::store::{Stack, TestStore, config, days_ago, fleet, snapshot};

/// Upper bound of one `cfgsnap` run.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(240);

/// Writes a configuration for the binary over `t`'s store and key file,
/// with tenants `t1`, `t2` and the devices of [`crate::store::FLEET`].
pub fn write_config(t: &TestStore) -> PathBuf {
    let key_file = t
        .settings
        .encryption_key_file
        .as_ref()
        .expect("BUG: test stores use a key file");
    let mut toml = format!(
        "[store]\nurl = \"{}\"\nencryption_key_file = \"{}\"\n\n[log]\nlevel = \"error\"\n\n\
         [[credentials]]\nname = \"c\"\nusername = \"admin\"\npassword = \"x\"\n\n\
         [[tenants]]\nid = \"t1\"\n\n[[tenants]]\nid = \"t2\"\nname = \"Second tenant\"\n",
        t.settings.url,
        key_file.display()
    );
    for (device, tenant) in crate::store::FLEET {
        toml.push_str(&format!(
            "\n[[devices]]\nid = \"{device}\"\ntenant = \"{tenant}\"\nname = \"router-{device}\"\n\
             host = \"192.0.2.1\"\ncredentials = \"c\"\nenabled = false\n"
        ));
    }
    let path = t.dir.path().join("config.toml");
    std::fs::write(&path, toml).expect("write the configuration");
    path
}

/// `cfgsnap --config CONFIG ARGS…` without inherited `CFGSNAP*` variables,
/// as a command to run or spawn.
pub fn command(config: &Path, args: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_cfgsnap"));
    command
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("CFGSNAP") {
            command.env_remove(name);
        }
    }
    command
}

/// Runs `cfgsnap --config CONFIG ARGS…` to completion.
pub async fn cfgsnap(config: &Path, args: &[&str]) -> Output {
    tokio::time::timeout(RUN_TIMEOUT, command(config, args).output())
        .await
        .unwrap_or_else(|_| panic!("cfgsnap {args:?} did not finish within {RUN_TIMEOUT:?}"))
        .expect("cfgsnap starts")
}

/// Standard output as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Standard error as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Stores `versions` versions of each of `devices` (`(device, tenant)`),
/// devices concurrently: `versions` snapshots and `versions - 1` diffs each.
pub async fn seed(store: &Store, devices: &[(&str, &str)], versions: usize) {
    let tasks = devices.iter().map(|&(device, tenant)| {
        let store = store.clone();
        let (device, tenant) = (device.to_owned(), tenant.to_owned());
        tokio::spawn(async move {
            let start = days_ago(30);
            for v in 0..versions {
                let at = start + chrono::Duration::seconds(v as i64);
                let text = config(&format!("{device}-{v}"));
                store
                    .ingest(&snapshot(&tenant, &device, &text, at))
                    .await
                    .unwrap_or_else(|e| panic!("seeding {device} version {v}: {e}"));
            }
        })
    });
    for task in futures_util::future::join_all(tasks).await {
        task.expect("seeding task");
    }
}

/// Records sealed with `key_id` according to `usage`.
pub fn records_under(usage: &[KeyUsage], key_id: &str) -> i64 {
    usage
        .iter()
        .find(|u| u.key_id == key_id)
        .map_or(0, |u| u.records)
}

/// Runs one SQL statement on `t`'s database, past the store.
pub async fn raw_execute(t: &TestStore, sql: &str) {
    match t.stack {
        Stack::Embedded => {
            let pool = sqlx::SqlitePool::connect(&t.settings.url)
                .await
                .expect("raw SQLite connection");
            sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
                .execute(&pool)
                .await
                .expect("raw statement");
            pool.close().await;
        }
        Stack::Served => {
            let pool = sqlx::PgPool::connect(&t.settings.url)
                .await
                .expect("raw PostgreSQL connection");
            sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
                .execute(&pool)
                .await
                .expect("raw statement");
            pool.close().await;
        }
    }
}
