//! `cfgsnap` as a process against an in-process routeros-sim: `backup` (its
//! JSON line, storing, dedup, `--output`), `history`, `show`, `diff`,
//! `check-config`, exit codes, environment overrides, and secrets kept out of
//! stdout and stderr.
//!
//! Every run has a timeout and every test body runs under [`within`]. Export
//! and diff text never goes into assertion messages.

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use cfgsnap::backup::normalize::{normalize, sha256_hex};
use routeros_sim::{DeviceSpec, Fault, Simulator};
use serde_json::Value;

use crate::helpers::{
    CliConfig, CliOptions, corpus_device, corpus_file, normalized_hash, start_simulator, within,
};

/// Upper bound of one test.
const TEST_TIMEOUT: Duration = Duration::from_secs(90);
/// Upper bound of one `cfgsnap` run.
const RUN_TIMEOUT: Duration = Duration::from_secs(45);
/// A v7.12 export of the corpus.
const V7_FILE: &str = "kaihendry-mikrotik-configs__praze.rsc";
/// The fields of `cfgsnap backup`'s JSON line (DESIGN.md §9, plus the store's).
const BACKUP_FIELDS: [&str; 10] = [
    "bytes",
    "device_id",
    "duration_ms",
    "lines",
    "routeros_version",
    "sha256_hash",
    "snapshot_id",
    "stored",
    "tenant_id",
    "warnings",
];

/// Runs `cfgsnap --config CONFIG ARGS…` in the config's directory, with no
/// `CFGSNAP*` or `RUST_LOG` variable inherited, plus `env`.
async fn cfgsnap_with_env(config: &CliConfig, args: &[&str], env: &[(&str, &str)]) -> Output {
    run_binary(config.path(), config.dir(), args, env).await
}

async fn cfgsnap(config: &CliConfig, args: &[&str]) -> Output {
    cfgsnap_with_env(config, args, &[]).await
}

async fn run_binary(config: &Path, cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_cfgsnap"));
    command
        .arg("--config")
        .arg(config)
        .args(args)
        .current_dir(cwd)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("CFGSNAP") {
            command.env_remove(name);
        }
    }
    command.envs(env.iter().copied());
    tokio::time::timeout(RUN_TIMEOUT, command.output())
        .await
        .unwrap_or_else(|_| panic!("cfgsnap {args:?} did not finish within {RUN_TIMEOUT:?}"))
        .expect("cfgsnap starts")
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("UTF-8 stdout")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The JSON line of a successful `cfgsnap backup` (it holds no config text).
fn backup_line(out: &Output) -> Value {
    assert_eq!(out.status.code(), Some(0), "backup failed: {}", stderr(out));
    let text = stdout(out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "backup printed {} lines", lines.len());
    serde_json::from_str(lines[0]).expect("backup prints JSON")
}

fn snapshot_id(line: &Value) -> i64 {
    line["snapshot_id"]
        .as_i64()
        .expect("an integer snapshot_id")
}

#[tokio::test]
async fn backup_prints_one_json_line_with_every_field_and_the_corpus_hash() {
    within(TEST_TIMEOUT, async {
        // Arrange
        let file = corpus_file(V7_FILE);
        let normalized = normalize(&file).text;
        let sim = start_simulator(vec![corpus_device(V7_FILE)]).await;
        let config = CliConfig::write(&sim, &CliOptions::default());

        // Act
        let out = cfgsnap(&config, &["backup", "--device", "dev-0"]).await;

        // Assert
        let line = backup_line(&out);
        let mut fields: Vec<&str> = line
            .as_object()
            .expect("a JSON object")
            .keys()
            .map(String::as_str)
            .collect();
        fields.sort_unstable();
        assert_eq!(fields, BACKUP_FIELDS);
        assert_eq!(line["device_id"], "dev-0");
        assert_eq!(line["tenant_id"], "t1");
        assert_eq!(line["sha256_hash"], normalized_hash(&file).as_str());
        assert_eq!(line["routeros_version"], "7.12");
        assert_eq!(line["bytes"].as_u64(), Some(normalized.len() as u64));
        assert_eq!(
            line["lines"].as_u64(),
            Some(normalized.lines().count() as u64)
        );
        assert!(
            line["duration_ms"].is_u64(),
            "duration_ms: {}",
            line["duration_ms"]
        );
        assert_eq!(line["warnings"], Value::Array(Vec::new()));
        assert!(snapshot_id(&line) > 0);
        assert_eq!(line["stored"], true);
    })
    .await;
}

#[tokio::test]
async fn a_second_backup_of_an_unchanged_device_stores_nothing_and_names_the_same_snapshot() {
    within(TEST_TIMEOUT, async {
        // Arrange
        let sim = start_simulator(vec![corpus_device(V7_FILE)]).await;
        let config = CliConfig::write(&sim, &CliOptions::default());
        let first = backup_line(&cfgsnap(&config, &["backup", "--device", "dev-0"]).await);

        // Act
        let second = backup_line(&cfgsnap(&config, &["backup", "--device", "dev-0"]).await);

        // Assert
        assert_eq!(first["stored"], true);
        assert_eq!(second["stored"], false);
        assert_eq!(snapshot_id(&second), snapshot_id(&first));
        assert_eq!(second["sha256_hash"], first["sha256_hash"]);
        assert_eq!(sim.exports_served(0), 2);
    })
    .await;
}

/// A device whose export changes every 2nd time, backed up three times:
/// exports 1, 2, 3 carry generations 0, 1, 1 of the changing line.
async fn backed_up_three_times() -> (Simulator, CliConfig, Vec<Value>) {
    let spec = DeviceSpec::default().with_change_every(2);
    let sim = start_simulator(vec![spec]).await;
    let config = CliConfig::write(&sim, &CliOptions::default());
    let mut lines = Vec::new();
    for _ in 0..3 {
        lines.push(backup_line(
            &cfgsnap(&config, &["backup", "--device", "dev-0"]).await,
        ));
    }
    (sim, config, lines)
}

#[tokio::test]
async fn three_backups_of_a_device_changing_every_second_export_store_two_snapshots() {
    within(TEST_TIMEOUT, async {
        // Arrange, Act
        let (sim, _config, runs) = backed_up_three_times().await;

        // Assert
        let stored: Vec<&Value> = runs.iter().map(|r| &r["stored"]).collect();
        assert_eq!(stored, [true, true, false]);
        assert_ne!(snapshot_id(&runs[0]), snapshot_id(&runs[1]));
        assert_eq!(snapshot_id(&runs[2]), snapshot_id(&runs[1]));
        assert_ne!(runs[0]["sha256_hash"], runs[1]["sha256_hash"]);
        assert_eq!(runs[2]["sha256_hash"], runs[1]["sha256_hash"]);
        assert_eq!(sim.exports_served(0), 3);
    })
    .await;
}

#[tokio::test]
async fn history_json_lists_the_stored_snapshots_newest_first() {
    within(TEST_TIMEOUT, async {
        // Arrange
        let (_sim, config, runs) = backed_up_three_times().await;

        // Act
        let out = cfgsnap(&config, &["history", "--device", "dev-0", "--json"]).await;

        // Assert
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let text = stdout(&out);
        let rows: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
            .collect();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0]["id"].as_i64(), Some(snapshot_id(&runs[1])));
        assert_eq!(rows[1]["id"].as_i64(), Some(snapshot_id(&runs[0])));
        assert_eq!(rows[0]["sha256_hash"], runs[1]["sha256_hash"]);
        assert_eq!(rows[1]["sha256_hash"], runs[0]["sha256_hash"]);
        assert_eq!(rows[0]["trigger"], "manual");
        assert_eq!(rows[0]["lines_added"].as_i64(), Some(1));
        assert_eq!(rows[0]["lines_removed"].as_i64(), Some(1));
    })
    .await;
}

#[tokio::test]
async fn semantic_diff_of_the_newest_snapshot_lists_the_changed_items_as_json() {
    within(TEST_TIMEOUT, async {
        // Arrange
        let (_sim, config, runs) = backed_up_three_times().await;
        let newest = snapshot_id(&runs[1]).to_string();

        // Act
        let out = cfgsnap(&config, &["diff", &newest, "--semantic"]).await;

        // Assert
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let diff: Value = serde_json::from_str(&stdout(&out)).expect("one JSON document");
        assert_eq!(diff["status_only"], false);
        let changes: Vec<(&str, &str)> = diff["changes"]
            .as_array()
            .expect("changes")
            .iter()
            .map(|c| {
                (
                    c["menu"].as_str().unwrap_or_default(),
                    c["kind"].as_str().unwrap_or_default(),
                )
            })
            .collect();
        // The simulator's change replaces its one address-list entry.
        assert_eq!(
            changes,
            [
                ("/ip firewall address-list", "added"),
                ("/ip firewall address-list", "removed")
            ]
        );
    })
    .await;
}

#[tokio::test]
async fn diff_of_the_newest_snapshot_shows_the_changed_line() {
    within(TEST_TIMEOUT, async {
        // Arrange
        let (_sim, config, runs) = backed_up_three_times().await;
        let newest = snapshot_id(&runs[1]).to_string();

        // Act
        let out = cfgsnap(&config, &["diff", &newest]).await;

        // Assert
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let text = stdout(&out);
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines.first().is_some_and(|l| l.starts_with("--- "))
                && lines.get(1).is_some_and(|l| l.starts_with("+++ ")),
            "no unified diff header"
        );
        assert!(lines.iter().any(|l| l.starts_with("@@ ")), "no hunk");
        let removed: Vec<&&str> = lines
            .iter()
            .filter(|l| l.starts_with('-') && !l.starts_with("--- "))
            .collect();
        let added: Vec<&&str> = lines
            .iter()
            .filter(|l| l.starts_with('+') && !l.starts_with("+++ "))
            .collect();
        // The simulator's own change lines, no device text.
        assert_eq!(
            removed,
            [&"-add address=198.51.100.1 comment=\"sim change 0\" list=sim-change"]
        );
        assert_eq!(
            added,
            [&"+add address=198.51.100.2 comment=\"sim change 1\" list=sim-change"]
        );
    })
    .await;
}

#[tokio::test]
async fn search_prints_matching_lines_and_with_history_when_they_came_and_went() {
    within(TEST_TIMEOUT, async {
        // Arrange
        let (_sim, config, runs) = backed_up_three_times().await;
        let (first, second) = (snapshot_id(&runs[0]), snapshot_id(&runs[1]));

        // Act
        let current = cfgsnap(&config, &["search", "sim change"]).await;
        let history = cfgsnap(
            &config,
            &[
                "search",
                "--history",
                "--device",
                "dev-*",
                "SIM CHANGE",
                "-i",
            ],
        )
        .await;

        // Assert
        assert_eq!(current.status.code(), Some(0), "{}", stderr(&current));
        let lines: Vec<String> = stdout(&current).lines().map(str::to_owned).collect();
        assert_eq!(lines.len(), 1);
        assert!(
            lines[0].starts_with("dev-0:")
                && lines[0].ends_with("comment=\"sim change 1\" list=sim-change")
        );
        assert_eq!(history.status.code(), Some(0), "{}", stderr(&history));
        let lives: Vec<String> = stdout(&history).lines().map(str::to_owned).collect();
        assert_eq!(lives.len(), 2);
        assert!(
            lives[0].contains(&format!("+#{first} ")) && lives[0].contains(&format!("-#{second} "))
        );
        assert!(lives[0].contains("sim change 0"));
        assert!(lives[1].contains(&format!("+#{second} ")) && lives[1].contains("present"));
    })
    .await;
}

#[tokio::test]
async fn search_refuses_bad_queries_with_exit_2() {
    within(TEST_TIMEOUT, async {
        // Arrange
        let sim = start_simulator(vec![DeviceSpec::default()]).await;
        let config = CliConfig::write(&sim, &CliOptions::default());

        // Act + Assert
        for args in [
            vec!["search", ""],
            vec!["search", "--regex", "(unclosed"],
            vec!["search", "--device", "a/b", "x"],
            vec!["search", "--tenant", "nobody", "x"],
        ] {
            let out = cfgsnap(&config, &args).await;
            let code = out.status.code();
            assert!(code == Some(2) || code == Some(1), "{args:?}: {code:?}");
            assert!(
                stderr(&out).starts_with("error["),
                "{args:?}: {}",
                stderr(&out)
            );
            assert!(stdout(&out).is_empty());
        }
    })
    .await;
}

#[tokio::test]
async fn show_prints_the_content_whose_sha256_is_the_snapshot_hash() {
    within(TEST_TIMEOUT, async {
        // Arrange
        let (_sim, config, runs) = backed_up_three_times().await;

        // Act
        let mut shown = Vec::new();
        for run in &runs[..2] {
            let id = snapshot_id(run).to_string();
            shown.push(cfgsnap(&config, &["show", &id]).await);
        }

        // Assert
        for (out, run) in shown.iter().zip(&runs) {
            assert_eq!(out.status.code(), Some(0), "{}", stderr(out));
            assert_eq!(
                sha256_hex(&stdout(out)),
                run["sha256_hash"].as_str().expect("hash")
            );
        }
    })
    .await;
}

#[tokio::test]
async fn backup_output_writes_the_normalized_export_readable_by_the_owner_only() {
    within(TEST_TIMEOUT, async {
        // Arrange
        use std::os::unix::fs::PermissionsExt as _;
        let file = corpus_file(V7_FILE);
        let sim = start_simulator(vec![corpus_device(V7_FILE)]).await;
        let config = CliConfig::write(&sim, &CliOptions::default());
        let output = config.dir().join("dev-0.rsc");
        let output_arg = output.display().to_string();

        // Act
        let out = cfgsnap(
            &config,
            &["backup", "--device", "dev-0", "--output", &output_arg],
        )
        .await;

        // Assert
        let line = backup_line(&out);
        let written = std::fs::read_to_string(&output).expect("the output file exists");
        assert!(
            written == normalize(&file).text,
            "the file is not the normalized export"
        );
        assert_eq!(
            sha256_hex(&written),
            line["sha256_hash"].as_str().expect("hash")
        );
        let mode = std::fs::metadata(&output)
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "mode {:o}", mode & 0o777);
    })
    .await;
}

#[tokio::test]
async fn a_failing_device_exits_1_with_its_error_kind_on_stderr() {
    within(TEST_TIMEOUT, async {
        // Arrange
        let sim = start_simulator(vec![DeviceSpec::default().with_fault(Fault::AuthFailure)]).await;
        let config = CliConfig::write(&sim, &CliOptions::default());

        // Act
        let out = cfgsnap(&config, &["backup", "--device", "dev-0"]).await;

        // Assert
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(
            stderr(&out).starts_with("error[auth_failed]: "),
            "{}",
            stderr(&out)
        );
        assert!(out.stdout.is_empty(), "a failed backup printed to stdout");
    })
    .await;
}

#[tokio::test]
async fn an_unknown_device_exits_1_with_not_found() {
    within(TEST_TIMEOUT, async {
        // Arrange
        let sim = start_simulator(vec![DeviceSpec::default()]).await;
        let config = CliConfig::write(&sim, &CliOptions::default());

        // Act
        let out = cfgsnap(&config, &["backup", "--device", "no-such-device"]).await;

        // Assert
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(
            stderr(&out).starts_with("error[not_found]: "),
            "{}",
            stderr(&out)
        );
        assert_eq!(sim.exports_served(0), 0);
    })
    .await;
}

#[tokio::test]
async fn an_invalid_config_exits_2_listing_every_problem() {
    within(TEST_TIMEOUT, async {
        // Arrange: an unknown key, a bad device id and a device of an unknown tenant.
        let sim = start_simulator(vec![DeviceSpec::default()]).await;
        let config = CliConfig::write(&sim, &CliOptions::default());
        let text = std::fs::read_to_string(config.path()).expect("read config");
        let text = text
            .replace("[backup]\n", "[backup]\nintervall = \"1h\"\n")
            .replace("id = \"dev-0\"", "id = \"dev 0!\"")
            + "\n[[devices]]\nid = \"orphan\"\ntenant = \"nobody\"\nhost = \"127.0.0.1\"\ncredentials = \"sim\"\n";
        std::fs::write(config.path(), text).expect("write config");

        // Act
        let out = cfgsnap(&config, &["backup", "--device", "orphan"]).await;

        // Assert
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains("backup.intervall: unknown key"), "{err}");
        assert!(err.contains("devices[0].id"), "{err}");
        assert!(err.contains("devices[1].tenant"), "{err}");
        assert_eq!(sim.exports_served(0), 0);
    })
    .await;
}

#[tokio::test]
async fn check_config_accepts_the_shipped_config() {
    within(TEST_TIMEOUT, async {
        // Arrange
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml");
        let cwd = tempfile::tempdir().expect("tempdir");

        // Act
        let out = run_binary(&shipped, cwd.path(), &["check-config"], &[]).await;

        // Assert
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert_eq!(stdout(&out), "ok\n");
    })
    .await;
}

#[tokio::test]
async fn the_inline_password_warning_comes_from_check_config_and_not_from_token() {
    within(TEST_TIMEOUT, async {
        // Arrange: the shipped config holds an inline (demo) password.
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml");
        let cwd = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(cwd.path().join("data")).expect("data dir");
        std::fs::write(
            cwd.path().join("data/jwt-secret"),
            "a-test-secret-of-more-than-32-bytes-0123456789",
        )
        .expect("secret");

        // Act
        let check = run_binary(&shipped, cwd.path(), &["check-config"], &[]).await;
        let args = [
            "token", "--sub", "ci", "--tenant", "demo", "--role", "viewer",
        ];
        let token = run_binary(&shipped, cwd.path(), &args, &[]).await;

        // Assert
        assert_eq!(check.status.code(), Some(0), "{}", stderr(&check));
        assert!(
            stderr(&check).contains("inline password"),
            "check-config warns"
        );
        assert_eq!(token.status.code(), Some(0), "{}", stderr(&token));
        assert!(!stdout(&token).trim().is_empty(), "a token is printed");
        assert!(
            !stderr(&token).contains("inline password"),
            "token repeats the server's warning: {}",
            stderr(&token)
        );
    })
    .await;
}

#[tokio::test]
async fn an_environment_override_of_the_command_timeout_is_honoured() {
    within(TEST_TIMEOUT, async {
        // Arrange: the file allows 30 s per command, the environment 1 s.
        let sim =
            start_simulator(vec![DeviceSpec::default().with_fault(Fault::HangAfterExec)]).await;
        let options = CliOptions {
            command_timeout: "30s",
            job_timelimit: "60s",
            ..CliOptions::default()
        };
        let config = CliConfig::write(&sim, &options);

        // Act
        let out = cfgsnap_with_env(
            &config,
            &["backup", "--device", "dev-0"],
            &[("CFGSNAP__BACKUP__COMMAND_TIMEOUT", "1s")],
        )
        .await;

        // Assert
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.starts_with("error[timeout]: "), "{err}");
        assert!(err.contains("command timed out after 1s"), "{err}");
    })
    .await;
}

/// Marks the device password; it must never reach stdout or stderr.
const PASSWORD_MARKER: &str = "pw-MARKER-c1i-4e8b";

#[tokio::test]
async fn stdout_and_stderr_never_contain_the_password_even_when_logging_debug() {
    within(TEST_TIMEOUT, async {
        // Arrange
        let with_marker = || DeviceSpec::default().with_credentials("admin", Some(PASSWORD_MARKER));
        let sim = start_simulator(vec![
            with_marker(),
            with_marker().with_fault(Fault::AuthFailure),
            with_marker().with_fault(Fault::HangAfterExec),
        ])
        .await;
        let options = CliOptions {
            password: PASSWORD_MARKER.to_owned(),
            command_timeout: "1s",
            ..CliOptions::default()
        };
        let config = CliConfig::write(&sim, &options);
        let debug = [("RUST_LOG", "debug")];

        // Act
        let mut outputs = Vec::new();
        for args in [
            &["backup", "--device", "dev-0"][..],
            &["backup", "--device", "dev-1"],
            &["backup", "--device", "dev-2"],
            &["history", "--device", "dev-0"],
            &["check-config"],
        ] {
            outputs.push((args, cfgsnap_with_env(&config, args, &debug).await));
        }

        // Assert
        let codes: Vec<Option<i32>> = outputs.iter().map(|(_, o)| o.status.code()).collect();
        assert_eq!(codes, [Some(0), Some(1), Some(1), Some(0), Some(0)]);
        for (args, out) in &outputs {
            assert!(
                !String::from_utf8_lossy(&out.stdout).contains(PASSWORD_MARKER),
                "{args:?}: stdout shows the password"
            );
            assert!(
                !stderr(out).contains(PASSWORD_MARKER),
                "{args:?}: stderr shows the password"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn backup_history_and_diff_work_the_same_on_postgresql() {
    within(TEST_TIMEOUT, async {
        // Arrange: the same configuration, its store moved to a fresh
        // PostgreSQL database by an environment override.
        let db = cfgsnap_testkit::ScratchDb::for_test().await;
        let url = db.url();
        let sim = start_simulator(vec![DeviceSpec::default().with_change_every(2)]).await;
        let config = CliConfig::write(&sim, &CliOptions::default());
        let env = [("CFGSNAP__STORE__URL", url.as_str())];

        // Act
        let mut runs = Vec::new();
        for _ in 0..3 {
            let out = cfgsnap_with_env(&config, &["backup", "--device", "dev-0"], &env).await;
            runs.push(backup_line(&out));
        }
        let history =
            cfgsnap_with_env(&config, &["history", "--device", "dev-0", "--json"], &env).await;
        let newest = snapshot_id(&runs[1]).to_string();
        let diff = cfgsnap_with_env(&config, &["diff", &newest], &env).await;

        // Assert
        let stored: Vec<&Value> = runs.iter().map(|r| &r["stored"]).collect();
        assert_eq!(stored, [true, true, false]);
        assert_eq!(stdout(&history).lines().count(), 2, "{}", stderr(&history));
        let diff = stdout(&diff);
        assert!(diff.lines().any(|l| l.starts_with("@@ ")), "a hunk");
        assert_eq!(
            diff.lines()
                .filter(|l| l.starts_with('+') && !l.starts_with("+++"))
                .count(),
            1
        );
        drop(db);
    })
    .await;
}
