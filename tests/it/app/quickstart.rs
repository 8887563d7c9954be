//! The README's quick start, scripted: the simulator with the flags
//! `scripts/demo.sh` gives it, `cfgsnap serve` on the shipped `config.toml` (unchanged, in a
//! scratch working directory), the demo devices' first snapshots within a
//! minute, then the README's shell block between the `quickstart` markers,
//! run as written with bash and curl.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::helpers::CFGSNAP;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The simulator's command line as `scripts/demo.sh` gives it.
fn demo_sim_argv() -> Vec<String> {
    let script = std::fs::read_to_string(repo("scripts/demo.sh")).expect("demo.sh");
    let line = script
        .lines()
        .find(|l| l.contains("/routeros-sim\""))
        .expect("demo.sh starts routeros-sim");
    let args = line.split_whitespace().skip(1).take_while(|w| *w != "&");
    std::iter::once("routeros-sim")
        .chain(args)
        .map(str::to_owned)
        .collect()
}

/// The simulator as `scripts/demo.sh` starts it (in process, from the same
/// command line the binary parses).
async fn start_demo_simulator() -> routeros_sim::Simulator {
    let args = routeros_sim::cli::Args::try_from_argv(demo_sim_argv()).expect("demo.sh's flags");
    let specs = args.specs().expect("the demo's device specs");
    routeros_sim::start(args.listen, specs)
        .await
        .expect("the demo simulator starts on 127.0.0.1:2201-2203")
}

/// The README's shell block between the quickstart markers.
fn readme_block() -> String {
    let readme = std::fs::read_to_string(repo("README.md")).expect("README.md");
    let start = readme
        .find("<!-- quickstart:start -->")
        .expect("start marker");
    let end = readme.find("<!-- quickstart:end -->").expect("end marker");
    let block = &readme[start..end];
    let body = block.split("```sh\n").nth(1).expect("a sh block");
    body.split("```").next().expect("closed block").to_owned()
}

fn spawn(bin: &str, args: &[String], dir: &Path, log: &str) -> Child {
    Command::new(bin)
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join(log)).expect("log"))
        .kill_on_drop(true)
        .spawn()
        .expect("starts")
}

async fn curl_ok(url: &str, token: &str) -> String {
    let out = Command::new("curl")
        .args([
            "-s",
            "-f",
            "-H",
            &format!("Authorization: Bearer {token}"),
            url,
        ])
        .output()
        .await
        .expect("curl runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What a failure message shows: the API's JSON answers the block printed
/// before the diff (at most 4,000 characters; the diff's configuration lines
/// are left out) and the end of the node's log.
fn failure_context(stdout: &str, log: &Path) -> String {
    let answers = stdout.split("--- ").next().unwrap_or_default();
    let answers: String = answers.chars().take(4000).collect();
    let log = std::fs::read_to_string(log).unwrap_or_default();
    let mut tail: Vec<&str> = log.lines().rev().take(40).collect();
    tail.reverse();
    format!(
        "API answers:\n{answers}\nend of serve.log:\n{}",
        tail.join("\n")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_quickstart_works_as_written() {
    // Arrange: the demo's simulator and node, on the shipped configuration.
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(repo("config.toml"), dir.path().join("config.toml")).expect("copy config");
    let api_port = std::net::TcpListener::bind("127.0.0.1:8080");
    assert!(
        api_port.is_ok(),
        "port 8080 is taken: stop what listens there (a demo left running?); the quickstart needs it"
    );
    drop(api_port);
    let _sim = start_demo_simulator().await;
    let mut node = spawn(CFGSNAP, &["serve".into()], dir.path(), "serve.log");
    let log_path = dir.path().join("serve.log");
    let mut assert_node_runs = move || {
        if let Ok(Some(status)) = node.try_wait() {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            panic!("cfgsnap serve exited ({status}); log:\n{log}");
        }
    };

    // Act 1: the demo devices get their first snapshots within a minute.
    let started = tokio::time::Instant::now();
    let token = loop {
        let minted = Command::new(CFGSNAP)
            .args([
                "token", "--sub", "check", "--tenant", "demo", "--role", "viewer",
            ])
            .current_dir(dir.path())
            .output()
            .await
            .expect("token");
        if minted.status.success() {
            break String::from_utf8(minted.stdout)
                .expect("utf-8")
                .trim()
                .to_owned();
        }
        assert_node_runs();
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no JWT secret file appeared"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for device in ["demo-r1", "demo-r2", "demo-r3"] {
        let url =
            format!("http://127.0.0.1:8080/api/tenants/demo/devices/{device}/config-snapshots");
        while !curl_ok(&url, &token).await.contains("\"sha256_hash\"") {
            assert_node_runs();
            let log = std::fs::read_to_string(dir.path().join("serve.log")).unwrap_or_default();
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{device} has no snapshot after a minute; log:\n{log}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    // Act 2: the README's commands, as written, with the test's binaries first on PATH.
    let bin_dir = Path::new(CFGSNAP).parent().expect("bin dir");
    let fake_target = dir.path().join("target");
    std::fs::create_dir_all(&fake_target).expect("dir");
    std::os::unix::fs::symlink(bin_dir, fake_target.join("release")).expect("symlink");
    let script = format!("set -euo pipefail\n{}", readme_block());
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(dir.path())
        .env("CARGO_TARGET_DIR", &fake_target)
        .output()
        .await
        .expect("bash runs");

    // Assert
    let stdout = String::from_utf8_lossy(&out.stdout);
    let context = || failure_context(&stdout, &dir.path().join("serve.log"));
    assert!(
        out.status.success(),
        "the README block failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        context()
    );
    assert!(
        stdout.contains("\"status\":\"success\""),
        "a trigger succeeded\n{}",
        context()
    );
    assert!(
        stdout.contains("\"changes\""),
        "the history lists changes\n{}",
        context()
    );
    assert!(
        stdout.contains("+++ "),
        "a unified diff was printed\n{}",
        context()
    );
    let downloads: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("router-core-r1-") && n.ends_with(".rsc"))
        .collect();
    assert_eq!(
        downloads.len(),
        1,
        "one router-core-r1-*.rsc downloaded\n{}",
        context()
    );
    let rsc = std::fs::read_to_string(dir.path().join(&downloads[0])).expect("download");
    assert!(
        rsc.lines().any(|l| l.starts_with('/')),
        "the download is an export"
    );
}
