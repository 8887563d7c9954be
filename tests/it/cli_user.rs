//! `cfgsnap user` as a process: add, list, passwd, disable, enable and delete
//! on SQLite and PostgreSQL, passwords on stdin only, hostile names and
//! passwords, the last super_admin, and no password or hash in any output.
//!
//! Passwords and hashes never go into assertion messages: where stdout or
//! stderr is checked for a secret, the message names the stream only.

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use serde_json::Value;
use sqlx::Row as _;
use tokio::io::AsyncWriteExt as _;

use crate::helpers::{CFGSNAP, CliConfig, CliOptions, start_simulator, within};

/// Upper bound of one test.
const TEST_TIMEOUT: Duration = Duration::from_secs(120);
/// Upper bound of one `cfgsnap` run.
const RUN_TIMEOUT: Duration = Duration::from_secs(45);
/// The OS user the runs pretend to be, for the audit actor.
const OS_USER: &str = "op-tester";
const FIRST_PASSWORD: &str = "first correct horse";
const SECOND_PASSWORD: &str = "second battery staple";
/// The fields of a `user list --json` line.
const LIST_FIELDS: [&str; 5] = ["created_at", "disabled", "role", "tenant_id", "username"];

/// Runs `cfgsnap --config CONFIG user ARGS…` with `stdin` piped in, no
/// inherited `CFGSNAP*` or `RUST_LOG`, `USER` set to [`OS_USER`], plus `env`.
async fn user(config: &CliConfig, args: &[&str], stdin: &[u8], env: &[(&str, &str)]) -> Output {
    let mut command = tokio::process::Command::new(CFGSNAP);
    command
        .arg("--config")
        .arg(config.path())
        .arg("user")
        .args(args)
        .current_dir(config.dir())
        .env_remove("RUST_LOG")
        .env("USER", OS_USER)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("CFGSNAP") {
            command.env_remove(name);
        }
    }
    command.envs(env.iter().copied());
    let mut child = command.spawn().expect("cfgsnap starts");
    let mut pipe = child.stdin.take().expect("a stdin pipe");
    // A process that refuses early may close stdin before reading it.
    pipe.write_all(stdin).await.unwrap_or_default();
    drop(pipe);
    tokio::time::timeout(RUN_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("cfgsnap user {args:?} did not finish within {RUN_TIMEOUT:?}"))
        .expect("cfgsnap runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("UTF-8 stdout")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts exit code 0 and returns stdout.
fn ok(out: &Output, what: &str) -> String {
    assert_eq!(out.status.code(), Some(0), "{what}: {}", stderr(out));
    stdout(out)
}

/// Asserts `code`, an empty stdout and `message` on stderr.
fn refused(out: &Output, code: i32, message: &str) {
    assert_eq!(out.status.code(), Some(code), "stderr: {}", stderr(out));
    assert!(out.stdout.is_empty(), "stdout: {}", stdout(out));
    assert!(
        stderr(out).contains(message),
        "stderr lacks {message:?}: {}",
        stderr(out)
    );
}

/// `user list --json`, one object per account.
async fn listed(config: &CliConfig, env: &[(&str, &str)]) -> Vec<Value> {
    let out = user(config, &["list", "--json"], b"", env).await;
    ok(&out, "list --json")
        .lines()
        .map(|l| serde_json::from_str(l).expect("list prints JSON lines"))
        .collect()
}

/// The store's URL: `CFGSNAP__STORE__URL` from `env`, else the config's SQLite file.
fn store_url(config: &CliConfig, env: &[(&str, &str)]) -> String {
    env.iter()
        .find(|(k, _)| *k == "CFGSNAP__STORE__URL")
        .map(|(_, v)| (*v).to_owned())
        .unwrap_or_else(|| sqlite_url(config.dir()))
}

fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}/cfgsnap.db", dir.display())
}

/// Reads `SQL` (one text column per row) straight from the store.
async fn query_texts(url: &str, sql: &'static str, bind: &str) -> Vec<String> {
    if url.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(url)
            .await
            .expect("connect PostgreSQL");
        let rows = sqlx::query(sql).bind(bind).fetch_all(&pool).await;
        pool.close().await;
        rows.expect("query").iter().map(|r| r.get(0)).collect()
    } else {
        let pool = sqlx::SqlitePool::connect(url).await.expect("open SQLite");
        let rows = sqlx::query(sql).bind(bind).fetch_all(&pool).await;
        pool.close().await;
        rows.expect("query").iter().map(|r| r.get(0)).collect()
    }
}

/// The stored password hash of `username`.
async fn stored_hash(url: &str, username: &str) -> String {
    let sql = "SELECT password_hash FROM account WHERE username = $1";
    let mut hashes = query_texts(url, sql, username).await;
    assert_eq!(hashes.len(), 1, "one account named {username}");
    hashes.remove(0)
}

fn hash_holds(hash: &str, password: &str) -> bool {
    cfgsnap::account::password::verify(password, hash)
}

/// The whole life of an account, against the store `env` selects; every
/// change is audited as the OS user.
async fn round_trip(config: &CliConfig, env: &[(&str, &str)]) {
    let url = store_url(config, env);
    let hash = add_alice_and_root(config, env, &url).await;
    list_without_secrets(config, env, &hash).await;
    change_alice_password(config, env, &url).await;
    disable_enable_and_delete_alice(config, env).await;
    let sql = "SELECT DISTINCT actor FROM audit_event WHERE action LIKE $1";
    let actors = query_texts(&url, sql, "user_%").await;
    assert_eq!(actors, [format!("cli:{OS_USER}")]);
}

/// Adds admin `alice` (tenant t1) and super_admin `root`, checks their
/// stored Argon2id hashes and refuses a second `alice`; returns alice's hash.
async fn add_alice_and_root(config: &CliConfig, env: &[(&str, &str)], url: &str) -> String {
    let pw = format!("{FIRST_PASSWORD}\n");
    let add_alice = ["add", "alice", "--role", "admin", "--tenant", "t1"];
    let out = user(config, &add_alice, pw.as_bytes(), env).await;
    assert_eq!(
        ok(&out, "add alice"),
        "created user alice (admin, tenant t1)\n"
    );
    let add_root = ["add", "root", "--role", "super_admin"];
    let out = user(config, &add_root, b"root password here\r\n", env).await;
    assert_eq!(
        ok(&out, "add root"),
        "created user root (super_admin, all tenants)\n"
    );
    let hash = stored_hash(url, "alice").await;
    assert!(
        hash.starts_with("$argon2id$v=19$"),
        "alice's hash is not Argon2id"
    );
    assert!(
        hash_holds(&hash, FIRST_PASSWORD),
        "alice's password does not verify"
    );
    let root_hash = stored_hash(url, "root").await;
    assert!(
        hash_holds(&root_hash, "root password here"),
        "root's does not verify"
    );
    let again = ["add", "alice", "--role", "viewer", "--tenant", "t1"];
    let out = user(config, &again, pw.as_bytes(), env).await;
    refused(&out, 1, "error[exists]: user alice exists");
    hash
}

/// `list` in every form: the documented fields, and no hash or password.
async fn list_without_secrets(config: &CliConfig, env: &[(&str, &str)], hash: &str) {
    let accounts = listed(config, env).await;
    assert_eq!(accounts.len(), 2);
    let object = accounts[0].as_object().expect("an object");
    let mut fields: Vec<&str> = object.keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(fields, LIST_FIELDS);
    assert_eq!(accounts[0]["username"], "alice");
    assert_eq!(accounts[0]["tenant_id"], "t1");
    assert_eq!(accounts[0]["role"], "admin");
    assert_eq!(accounts[0]["disabled"], false);
    assert!(accounts[0]["created_at"].is_string());
    assert_eq!(accounts[1]["username"], "root");
    assert_eq!(accounts[1]["tenant_id"], Value::Null);
    for args in [
        &["list"][..],
        &["list", "--json"],
        &["list", "--tenant", "t1"],
    ] {
        let text = ok(&user(config, args, b"", env).await, "list");
        assert!(!text.contains("$argon2"), "list {args:?} shows a hash");
        assert!(!text.contains(hash), "list {args:?} shows a hash");
        assert!(
            !text.contains(FIRST_PASSWORD),
            "list {args:?} shows a password"
        );
    }
    let out = user(config, &["list", "--tenant", "t1"], b"", env).await;
    let table = ok(&out, "list --tenant");
    let rows: Vec<&str> = table.lines().collect();
    assert_eq!(rows.len(), 2, "header and alice");
    assert!(rows[1].starts_with("alice "), "alice's row");
}

/// `passwd`: the new password verifies, the old one no longer does.
async fn change_alice_password(config: &CliConfig, env: &[(&str, &str)], url: &str) {
    let pw = format!("{SECOND_PASSWORD}\n");
    let out = user(config, &["passwd", "alice"], pw.as_bytes(), env).await;
    let expected = "changed the password of alice; its sessions have ended\n";
    assert_eq!(ok(&out, "passwd"), expected);
    let hash = stored_hash(url, "alice").await;
    assert!(
        hash_holds(&hash, SECOND_PASSWORD),
        "the new password does not verify"
    );
    assert!(
        !hash_holds(&hash, FIRST_PASSWORD),
        "the old password still verifies"
    );
}

async fn disable_enable_and_delete_alice(config: &CliConfig, env: &[(&str, &str)]) {
    let out = user(config, &["disable", "alice"], b"", env).await;
    let expected = "disabled user alice; its sessions have ended\n";
    assert_eq!(ok(&out, "disable"), expected);
    assert_eq!(listed(config, env).await[0]["disabled"], true);
    let out = user(config, &["enable", "alice"], b"", env).await;
    assert_eq!(ok(&out, "enable"), "enabled user alice\n");
    assert_eq!(listed(config, env).await[0]["disabled"], false);
    let out = user(config, &["delete", "alice"], b"", env).await;
    assert_eq!(ok(&out, "delete"), "deleted user alice and its sessions\n");
    let accounts = listed(config, env).await;
    let names: Vec<&Value> = accounts.iter().map(|a| &a["username"]).collect();
    assert_eq!(names, ["root"]);
    let out = user(config, &["delete", "alice"], b"", env).await;
    refused(&out, 1, "error[not_found]: no user alice");
}

async fn config() -> (routeros_sim::Simulator, CliConfig) {
    let sim = start_simulator(Vec::new()).await;
    let config = CliConfig::write(&sim, &CliOptions::default());
    (sim, config)
}

#[tokio::test]
async fn user_add_list_passwd_disable_enable_delete_round_trip_on_sqlite() {
    within(TEST_TIMEOUT, async {
        // Arrange
        let (_sim, config) = config().await;

        // Act, Assert
        round_trip(&config, &[]).await;
    })
    .await;
}

#[tokio::test]
async fn user_commands_work_the_same_on_postgresql() {
    within(TEST_TIMEOUT, async {
        // Arrange: the store moved to a fresh PostgreSQL database.
        let db = cfgsnap_testkit::ScratchDb::for_test().await;
        let url = db.url();
        let (_sim, config) = config().await;

        // Act, Assert
        round_trip(&config, &[("CFGSNAP__STORE__URL", url.as_str())]).await;
        drop(db);
    })
    .await;
}

#[tokio::test]
async fn hostile_user_names_and_bad_roles_or_tenants_are_refused_before_any_password() {
    within(TEST_TIMEOUT, async {
        // Arrange
        let (_sim, config) = config().await;
        let pw = format!("{FIRST_PASSWORD}\n");
        let long = "u".repeat(65);
        let shape = "user names are 1 to 64 characters";
        let cases = [
            (format!("add {long} --role admin --tenant t1"), 2, shape),
            ("add ädmin --role admin --tenant t1".into(), 2, shape),
            ("add a/b --role admin --tenant t1".into(), 2, shape),
            (format!("passwd {long}"), 2, shape),
            (
                "add bob --role root --tenant t1".into(),
                2,
                "role must be one of viewer, operator, admin, super_admin",
            ),
            (
                "add bob --role admin".into(),
                2,
                "error[usage]: --tenant is required for role admin",
            ),
            (
                "add boss --role super_admin --tenant t1".into(),
                2,
                "error[usage]: a super_admin has no tenant",
            ),
            (
                "add bob --role viewer --tenant nope".into(),
                1,
                "error[not_found]: no tenant \"nope\" in the configuration",
            ),
        ];

        for (line, code, message) in cases {
            // Act
            let args: Vec<&str> = line.split(' ').collect();
            let out = user(&config, &args, pw.as_bytes(), &[]).await;

            // Assert
            refused(&out, code, message);
        }
        assert!(listed(&config, &[]).await.is_empty(), "nothing was created");
    })
    .await;
}

/// Asserts that neither stdout nor stderr holds `secret` (naming neither).
fn silent_about(out: &Output, secret: &str) {
    assert!(!stdout(out).contains(secret), "stdout echoes a password");
    assert!(!stderr(out).contains(secret), "stderr echoes a password");
}

#[tokio::test]
async fn passwords_too_long_missing_or_given_in_argv_are_refused_and_never_echoed() {
    within(TEST_TIMEOUT, async {
        // Arrange
        let (_sim, config) = config().await;
        let add = ["add", "bob", "--role", "operator", "--tenant", "t1"];
        let long = "p".repeat(1025);
        let in_argv = "argv-secret-password";
        let mut with_argv = add.to_vec();
        with_argv.push(in_argv);
        let length_rule = "error[invalid_password]: passwords are 8 to 1024 bytes long";

        // Act
        let too_long = user(&config, &add, format!("{long}\n").as_bytes(), &[]).await;
        let too_short = user(&config, &add, b"short-7\n", &[]).await;
        let empty = user(&config, &add, b"", &[]).await;
        let argv = user(&config, &with_argv, b"", &[]).await;
        let passwd_argv = user(&config, &["passwd", "bob", in_argv], b"", &[]).await;

        // Assert: silence first, so that a failing message holds no secret.
        silent_about(&too_long, &long[..64]);
        refused(&too_long, 1, length_rule);
        silent_about(&too_short, "short-7");
        refused(&too_short, 1, length_rule);
        refused(&empty, 1, "error[invalid_password]: no password on stdin");
        silent_about(&argv, in_argv);
        refused(&argv, 2, "unexpected argument");
        silent_about(&passwd_argv, in_argv);
        refused(&passwd_argv, 2, "never the command line");
        assert!(listed(&config, &[]).await.is_empty(), "nothing was created");
    })
    .await;
}

#[tokio::test]
async fn the_last_enabled_super_admin_cannot_be_disabled_or_deleted() {
    within(TEST_TIMEOUT, async {
        // Arrange
        let (_sim, config) = config().await;
        let pw = format!("{FIRST_PASSWORD}\n");
        let last = "error[last_super_admin]: root is the last enabled super_admin";
        for name in ["root", "root2"] {
            let out = user(
                &config,
                &["add", name, "--role", "super_admin"],
                pw.as_bytes(),
                &[],
            )
            .await;
            ok(&out, "add a super_admin");
        }

        // Act: one of two may go; then the other is the last.
        let disabled_root2 = user(&config, &["disable", "root2"], b"", &[]).await;
        let disable_root = user(&config, &["disable", "root"], b"", &[]).await;
        let delete_root = user(&config, &["delete", "root"], b"", &[]).await;
        let deleted_root2 = user(&config, &["delete", "root2"], b"", &[]).await;
        let delete_root_again = user(&config, &["delete", "root"], b"", &[]).await;

        // Assert
        ok(&disabled_root2, "disable root2");
        refused(&disable_root, 1, last);
        refused(&delete_root, 1, last);
        ok(&deleted_root2, "delete the disabled root2");
        refused(&delete_root_again, 1, last);
        let accounts = listed(&config, &[]).await;
        assert_eq!(accounts.len(), 1);
        assert_eq!(accounts[0]["username"], "root");
        assert_eq!(accounts[0]["disabled"], false);
        for cmd in ["passwd", "disable", "enable", "delete"] {
            let out = user(&config, &[cmd, "ghost"], pw.as_bytes(), &[]).await;
            refused(&out, 1, "error[not_found]: no user ghost");
        }
    })
    .await;
}
