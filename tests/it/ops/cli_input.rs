//! Malformed command lines and missing files for `cfgsnap key`, `device`
//! and `store`: each gets a clear error and a non-zero exit, and changes
//! nothing.

use std::time::Duration;

use super::{Stack, TestStore, cfgsnap, stderr, write_config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_ops_commands_get_clear_errors_and_change_nothing() {
    let t = TestStore::start(Stack::Embedded).await;
    cfgsnap_testkit::within(Duration::from_secs(120), malformed_commands(&t)).await;
    t.finish().await;
}

async fn malformed_commands(t: &TestStore) {
    // Arrange
    let config = write_config(t);
    let key_before = std::fs::read(t.key_file()).expect("key file");
    let existing = t.dir.path().join("existing.db");
    std::fs::write(&existing, b"keep me").expect("existing file");
    let missing_dir = t.dir.path().join("no-such-dir").join("backup.db");
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (
            vec!["key", "retire", "not-a-key-id"],
            2,
            "16 lowercase hex digits",
        ),
        (
            vec!["key", "retire", "0123456789ABCDEF"],
            2,
            "16 lowercase hex digits",
        ),
        (
            vec!["key", "retire", "0123456789abcdef"],
            1,
            "error[not_found]: no key file",
        ),
        (
            vec!["key", "rotate", "--batch-size", "0"],
            2,
            "--batch-size",
        ),
        (vec!["key", "rotate", "--pause", "soon"], 2, "--pause"),
        (vec!["key", "frobnicate"], 2, "unrecognized subcommand"),
        (
            vec!["device", "move", "bad id!", "--to", "t2"],
            2,
            "invalid value 'bad id!'",
        ),
        (vec!["device", "move", "r1"], 2, "--to"),
        (
            vec!["device", "move", "r1", "--to", "t9"],
            1,
            "no tenant \"t9\"",
        ),
        (vec!["store", "backup"], 2, "--to"),
        (
            vec!["store", "backup", "--to", existing.to_str().expect("utf-8")],
            2,
            "exists already",
        ),
        (
            vec![
                "store",
                "backup",
                "--to",
                missing_dir.to_str().expect("utf-8"),
            ],
            2,
            "directory does not exist",
        ),
    ];

    for (args, code, message) in cases {
        // Act
        let out = cfgsnap(&config, &args).await;
        // Assert
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(message), "{args:?}: {}", stderr(&out));
    }
    assert_eq!(std::fs::read(&existing).expect("existing"), b"keep me");
    assert_eq!(std::fs::read(t.key_file()).expect("key file"), key_before);

    // A configuration file that is missing, and a key from the environment.
    let out = cfgsnap(&t.dir.path().join("missing.toml"), &["key", "status"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let env_config = t.dir.path().join("env.toml");
    let text = std::fs::read_to_string(&config).expect("config");
    let key_line = format!("encryption_key_file = \"{}\"", t.key_file().display());
    std::fs::write(
        &env_config,
        text.replace(&key_line, "encryption_key_env = \"CFGSNAP_TEST_KEY\""),
    )
    .expect("env config");
    let out = cfgsnap(&env_config, &["key", "rotate"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("needs store.encryption_key_file"),
        "{}",
        stderr(&out)
    );
    // A store with records whose key file went missing refuses, as at start-up.
    crate::ops::seed(&t.store, &[("r1", "t1")], 1).await;
    let moved = t.dir.path().join("master.key.away");
    std::fs::rename(t.key_file(), &moved).expect("hide the key");
    let out = cfgsnap(&config, &["store", "verify"]).await;
    std::fs::rename(&moved, t.key_file()).expect("restore the key");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("restore the key file"),
        "{}",
        stderr(&out)
    );
}
