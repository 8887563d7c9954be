//! routeros-sim driven by OpenSSH's `ssh` client (key auth) and one russh client
//! (password auth): export format and v6 behaviour here, authentication and host
//! keys in `auth`, output faults in `fault`.
//!
//! Every `ssh` run has a timeout, so a hanging device never hangs the suite. Export
//! text never goes into assertion messages.

mod auth;
mod fault;

use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use routeros_sim::{self as sim, DeviceSpec, Export, Simulator};
use russh::keys::PublicKey;
use tempfile::TempDir;

const SSH_TIMEOUT: Duration = Duration::from_secs(20);
const V6_ALGORITHMS: [&str; 6] = [
    "-o",
    "KexAlgorithms=diffie-hellman-group14-sha1",
    "-o",
    "MACs=hmac-sha1",
    "-o",
    "HostKeyAlgorithms=ssh-rsa",
];

/// An OpenSSH client key pair in a temporary directory.
struct ClientKey {
    _dir: TempDir,
    private: PathBuf,
    public: PublicKey,
}

fn client_key() -> ClientKey {
    let dir = tempfile::tempdir().expect("tempdir");
    let (private, public) = crate::helpers::client_key_pair(dir.path(), "id_ed25519");
    ClientKey {
        _dir: dir,
        private,
        public,
    }
}

/// Starts one simulated device per spec on OS-chosen loopback ports.
async fn start(specs: Vec<DeviceSpec>) -> Simulator {
    let listen = "127.0.0.1:0".parse().expect("valid address");
    sim::start(listen, specs).await.expect("simulator starts")
}

/// Runs `ssh -v … admin@127.0.0.1 COMMAND` against device `i`; `None` on timeout.
async fn ssh_within(
    sim: &Simulator,
    i: usize,
    key: &ClientKey,
    extra: &[&str],
    command: &str,
    limit: Duration,
) -> Option<Output> {
    let port = sim.addrs()[i].port().to_string();
    let mut cmd = tokio::process::Command::new("/usr/bin/ssh");
    cmd.args(["-v", "-F", "/dev/null", "-o", "StrictHostKeyChecking=no"])
        .args(["-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes"])
        .args(["-o", "IdentitiesOnly=yes", "-i"])
        .arg(&key.private)
        .args(["-p", &port])
        .args(extra)
        .args(["admin@127.0.0.1", command])
        .kill_on_drop(true);
    tokio::time::timeout(limit, cmd.output())
        .await
        .ok()
        .map(|r| r.expect("ssh runs"))
}

async fn ssh(sim: &Simulator, i: usize, key: &ClientKey, extra: &[&str], command: &str) -> Output {
    ssh_within(sim, i, key, extra, command, SSH_TIMEOUT)
        .await
        .expect("ssh finished in time")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The host key fingerprint OpenSSH reports in `-v` output.
fn seen_fingerprint(out: &Output) -> String {
    let err = stderr(out);
    let line = err
        .lines()
        .find(|l| l.contains("Server host key:"))
        .expect("ssh -v prints the server host key");
    line.split_whitespace()
        .last()
        .expect("fingerprint")
        .to_owned()
}

fn is_iso_header(line: &str, version: &str) -> bool {
    let b = line.as_bytes();
    line.len() > 21
        && line.starts_with("# ")
        && b[6] == b'-'
        && b[9] == b'-'
        && b[15] == b':'
        && line.ends_with(&format!(" by RouterOS {version}"))
}

#[tokio::test]
async fn export_arrives_with_crlf_and_a_restamped_header() {
    // Arrange
    let key = client_key();
    let sim = start(vec![
        DeviceSpec::default().with_authorized_key(key.public.clone()),
    ])
    .await;

    // Act
    let first = ssh(&sim, 0, &key, &[], "/export").await;
    let second = ssh(&sim, 0, &key, &[], "/export").await;

    // Assert
    assert!(first.status.success(), "ssh failed: {}", stderr(&first));
    let text = String::from_utf8(first.stdout).expect("UTF-8 export");
    assert!(text.ends_with("\r\n"), "export does not end with CRLF");
    assert_eq!(
        text.matches('\n').count(),
        text.matches("\r\n").count(),
        "bare LF"
    );
    let lines: Vec<&str> = text.lines().collect();
    assert!(is_iso_header(lines[0], "7.16"), "bad header: {}", lines[0]);
    assert!(lines[1].starts_with("# software id = "));
    let again = String::from_utf8(second.stdout).expect("UTF-8 export");
    let differing = lines
        .iter()
        .zip(again.lines())
        .filter(|(a, b)| **a != *b)
        .count();
    assert!(differing <= 1, "{differing} lines differ between exports");
    assert_eq!(sim.exports_served(0), 2);
}

#[tokio::test]
async fn file_export_keeps_its_body_and_gets_a_new_header() {
    // Arrange
    let key = client_key();
    let path = "tests/corpus/routeros/kaihendry-mikrotik-configs__outside.rsc";
    let file = std::fs::read_to_string(path).expect("corpus file");
    let version = sim::version_from_header(&file).expect("corpus header");
    let spec = DeviceSpec::default()
        .with_authorized_key(key.public.clone())
        .with_version(&version)
        .with_export(Export::Text(file.clone()));
    let sim = start(vec![spec]).await;

    // Act
    let out = ssh(&sim, 0, &key, &[], "/export show-sensitive").await;

    // Assert
    let text = String::from_utf8(out.stdout).expect("UTF-8 export");
    let served: Vec<&str> = text.split("\r\n").collect();
    let original: Vec<&str> = file.split('\n').collect();
    assert!(
        is_iso_header(served[0], &version),
        "bad header: {}",
        served[0]
    );
    assert_ne!(served[0], original[0], "header was not re-stamped");
    assert!(served[1..] == original[1..], "body differs from the file");
}

#[tokio::test]
async fn v6_rejects_show_sensitive_like_routeros() {
    // Arrange
    let key = client_key();
    let spec = DeviceSpec::default()
        .with_authorized_key(key.public.clone())
        .with_version("6.49.10");
    let sim = start(vec![spec]).await;

    // Act
    let rejected = ssh(&sim, 0, &key, &V6_ALGORITHMS, "/export show-sensitive").await;
    let export = ssh(&sim, 0, &key, &V6_ALGORITHMS, "/export").await;

    // Assert
    assert!(
        rejected.status.success(),
        "RouterOS exits 0 on syntax errors"
    );
    assert_eq!(
        rejected.stdout,
        b"expected end of command (line 1 column 9)\r\n"
    );
    let text = String::from_utf8(export.stdout).expect("UTF-8 export");
    let header = text.lines().next().unwrap_or_default();
    assert!(header.starts_with("# ") && header.ends_with(" by RouterOS 6.49.10"));
    assert_eq!(
        header.as_bytes()[5],
        b'/',
        "v6 header is mmm/dd/yyyy: {header}"
    );
    assert!(
        header[2..5].chars().all(|c| c.is_ascii_lowercase()),
        "{header}"
    );
}

#[tokio::test]
async fn version_probe_answers_the_version() {
    // Arrange
    let key = client_key();
    let sim = start(vec![
        DeviceSpec::default().with_authorized_key(key.public.clone()),
    ])
    .await;

    // Act
    let out = ssh(&sim, 0, &key, &[], ":put [/system resource get version]").await;
    let bad = ssh(&sim, 0, &key, &[], "frobnicate").await;

    // Assert
    assert_eq!(out.stdout, b"7.16 (stable)\r\n");
    assert_eq!(
        bad.stdout,
        b"bad command name frobnicate (line 1 column 1)\r\n"
    );
    assert_eq!(sim.exports_served(0), 0);
}

#[tokio::test]
async fn v6_device_negotiates_only_the_old_algorithm_set() {
    // Arrange
    let key = client_key();
    let spec = DeviceSpec::default()
        .with_authorized_key(key.public.clone())
        .with_version("6.49.10");
    let sim = start(vec![spec]).await;

    // Act
    let old = ssh(
        &sim,
        0,
        &key,
        &V6_ALGORITHMS,
        ":put [/system resource get version]",
    )
    .await;
    let modern_only = [
        "-o",
        "KexAlgorithms=curve25519-sha256",
        "-o",
        "HostKeyAlgorithms=ssh-rsa",
    ];
    let modern = ssh(&sim, 0, &key, &modern_only, "/export").await;

    // Assert
    assert_eq!(old.stdout, b"6.49.10 (stable)\r\n", "{}", stderr(&old));
    let log = stderr(&old);
    assert!(
        log.contains("kex: algorithm: diffie-hellman-group14-sha1"),
        "{log}"
    );
    assert!(log.contains("kex: host key algorithm: ssh-rsa"), "{log}");
    assert!(log.contains("MAC: hmac-sha1"), "{log}");
    assert_eq!(seen_fingerprint(&old), sim.host_key_fingerprint(0));
    assert!(
        !modern.status.success(),
        "a curve25519-only client must be refused"
    );
}

#[tokio::test]
async fn change_every_changes_one_line_every_kth_export() {
    // Arrange
    let key = client_key();
    let spec = DeviceSpec::default()
        .with_authorized_key(key.public.clone())
        .with_change_every(2);
    let sim = start(vec![spec]).await;

    // Act
    let mut exports = Vec::new();
    for _ in 0..3 {
        let out = ssh(&sim, 0, &key, &[], "/export").await;
        exports.push(String::from_utf8(out.stdout).expect("UTF-8 export"));
    }

    // Assert: the header aside, export 2 differs from 1 by one line, 3 equals 2.
    let body_diff = |a: &str, b: &str| {
        a.lines()
            .zip(b.lines())
            .skip(1)
            .filter(|(x, y)| x != y)
            .count()
    };
    assert_eq!(body_diff(&exports[0], &exports[1]), 1);
    assert_eq!(body_diff(&exports[1], &exports[2]), 0);
}
