//! `cfgsnap --version`, `cfgsnap completions SHELL` and `cfgsnap man`: they
//! run without a configuration file and describe the real command line.

use std::process::Output;

async fn run_in_empty_dir(args: &[&str]) -> Output {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_cfgsnap"))
        .args(args)
        .current_dir(dir.path())
        .env_remove("CFGSNAP_CONFIG")
        .output();
    tokio::time::timeout(super::RUN_TIMEOUT, out)
        .await
        .expect("cfgsnap finishes")
        .expect("cfgsnap starts")
}

#[tokio::test]
async fn version_completions_and_man_page_need_no_configuration_and_list_the_commands() {
    // Act
    let version = run_in_empty_dir(&["--version"]).await;
    let bash = run_in_empty_dir(&["completions", "bash"]).await;
    let zsh = run_in_empty_dir(&["completions", "zsh"]).await;
    let man = run_in_empty_dir(&["man"]).await;
    let bad = run_in_empty_dir(&["completions", "tcsh"]).await;

    // Assert: the version names the package version and a commit.
    let version = super::stdout(&version);
    let expected = format!("cfgsnap {} (commit ", env!("CARGO_PKG_VERSION"));
    assert!(version.starts_with(&expected), "{version}");
    let commit = version
        .trim()
        .trim_start_matches(&expected)
        .trim_end_matches(')');
    assert!(
        commit == "unknown"
            || (commit.len() == 12 && commit.bytes().all(|b| b.is_ascii_hexdigit())),
        "{version}"
    );
    for out in [&bash, &zsh, &man] {
        assert!(out.status.success(), "{}", super::stderr(out));
    }
    let (bash, zsh, man) = (
        super::stdout(&bash),
        super::stdout(&zsh),
        super::stdout(&man),
    );
    for word in ["rotate", "retire", "verify", "move"] {
        assert!(
            bash.contains(word) && zsh.contains(word),
            "completions lack {word}"
        );
    }
    assert!(
        man.starts_with(".ie") || man.contains(".TH cfgsnap 1"),
        "not roff"
    );
    assert!(man.contains(".TH cfgsnap 1"));
    for command in ["serve", "key", "store", "device"] {
        assert!(man.contains(command), "man page lacks {command}");
    }
    assert_eq!(bad.status.code(), Some(2));
    assert!(super::stderr(&bad).contains("invalid value 'tcsh'"));
}
