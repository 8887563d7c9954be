//! The SSH collector client against a real OpenSSH sshd: key auth, RouterOS v6
//! algorithms, passphrases, host-key pinning, refusals, caps and timeouts.
//! Export text is never printed: comparisons report lengths and digests.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cfgsnap::backup::ssh::{self, Connection, KeyCache};
use cfgsnap::backup::{Error, ErrorKind, Executor as _};
use sha2::{Digest, Sha256};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::time::Instant;

use crate::sshd::{self, KeyType, Sshd, SshdOptions, key_auth, user_key};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus/routeros");
/// The largest export of the corpus (about 300 KB).
const EXPORT: &str = "defm-mikrobackups__rawconf_anna_latest.rsc";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const COMMAND_TIMEOUT: Duration = Duration::from_secs(20);
const MAX_BYTES: usize = 32 * 1024 * 1024;
/// No test may hang the suite.
const TEST_TIMEOUT: Duration = Duration::from_secs(90);

async fn within<F: Future>(test: F) -> F::Output {
    tokio::time::timeout(TEST_TIMEOUT, test)
        .await
        .expect("test timed out")
}

fn export_path() -> PathBuf {
    Path::new(CORPUS).join(EXPORT)
}

/// Prints the export with CRLF line endings, as RouterOS does.
fn crlf_export_command() -> String {
    format!("sed 's/$/\\r/' '{}'", export_path().display())
}

/// What `crlf_export_command` prints: `\r` before each `\n` and after an
/// unterminated last line.
fn expected_crlf_export() -> Vec<u8> {
    let text = std::fs::read(export_path()).expect("read the corpus export");
    let mut out = Vec::with_capacity(text.len() + text.len() / 20);
    for line in text.split_inclusive(|b| *b == b'\n') {
        let (body, newline) = match line.strip_suffix(b"\n") {
            Some(body) => (body, true),
            None => (line, false),
        };
        out.extend_from_slice(body);
        out.push(b'\r');
        if newline {
            out.push(b'\n');
        }
    }
    out
}

fn digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// An sshd running `command` that admits a fresh ed25519 user key; the
/// tempdir holding the key must outlive the test.
async fn server_with_key(command: &str, passphrase: &str) -> (Sshd, PathBuf, TempDir) {
    let (dir, key) = user_key(KeyType::Ed25519, passphrase).await;
    let server = Sshd::start(SshdOptions::new(command, &[&sshd::pub_path(&key)])).await;
    (server, key, dir)
}

async fn connect_with_key(server: &Sshd, key: &Path) -> ssh::Connection {
    let device = server.device(key_auth(key, None)).await;
    match ssh::connect(&device, None, CONNECT_TIMEOUT, &KeyCache::default()).await {
        Ok(connection) => connection,
        Err(e) => panic!("connect failed: {e:?}\nsshd log:\n{}", server.log()),
    }
}

async fn assert_export(connection: &mut Connection) {
    let output = connection
        .exec("/export", MAX_BYTES, COMMAND_TIMEOUT)
        .await
        .expect("exec /export");
    let expected = expected_crlf_export();
    assert!(
        output.stdout == expected,
        "export differs: got {} bytes (sha256 {}), expected {} bytes (sha256 {})",
        output.stdout.len(),
        digest(&output.stdout),
        expected.len(),
        digest(&expected)
    );
    assert_eq!(output.exit_status, Some(0));
}

#[tokio::test]
async fn exec_returns_the_crlf_export_and_the_host_key_fingerprint() {
    within(async {
        // Arrange
        let (server, key, _keys) = server_with_key(&crlf_export_command(), "").await;

        // Act
        let mut connection = connect_with_key(&server, &key).await;

        // Assert
        assert_eq!(
            connection.host_key_fingerprint(),
            server.host_key_fingerprint().await
        );
        assert!(connection.host_key_fingerprint().starts_with("SHA256:"));
        assert_export(&mut connection).await;
        assert_export(&mut connection).await; // a second channel on the same connection
        connection.close().await;
    })
    .await;
}

#[tokio::test]
async fn routeros_v6_algorithms_are_accepted() {
    within(async {
        for kex in [
            "diffie-hellman-group14-sha1",
            "diffie-hellman-group-exchange-sha256",
        ] {
            // Arrange: only what RouterOS v6 offers; a CTR cipher so the MAC is used.
            let (_keys, key) = user_key(KeyType::Rsa, "").await;
            let mut options = SshdOptions::new(crlf_export_command(), &[&sshd::pub_path(&key)]);
            options.host_key = KeyType::Rsa;
            options.extra_config = vec![
                "LogLevel DEBUG".to_owned(),
                format!("KexAlgorithms {kex}"),
                "Ciphers aes128-ctr".to_owned(),
                "MACs hmac-sha1".to_owned(),
                "HostKeyAlgorithms ssh-rsa".to_owned(),
                "PubkeyAcceptedAlgorithms ssh-rsa".to_owned(),
            ];
            let server = Sshd::start(options).await;

            // Act
            let mut connection = connect_with_key(&server, &key).await;

            // Assert
            assert_eq!(
                connection.host_key_fingerprint(),
                server.host_key_fingerprint().await
            );
            assert_export(&mut connection).await;
            connection.close().await;
            let log = server.log();
            assert!(
                log.contains(&format!("kex: algorithm: {kex}")),
                "{kex} not negotiated:\n{log}"
            );
            assert!(
                log.contains("MAC: hmac-sha1"),
                "hmac-sha1 not negotiated:\n{log}"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn openssh_negotiates_aes_gcm_on_a_cpu_with_aes_instructions_else_chacha20() {
    let aes = std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|c| c.contains(" aes "));
    let expected = match aes {
        true => "aes256-gcm@openssh.com",
        false => "chacha20-poly1305@openssh.com",
    };
    within(async {
        // Arrange: sshd's own default order (ChaCha20-Poly1305 first).
        let (_keys, key) = user_key(KeyType::Ed25519, "").await;
        let mut options = SshdOptions::new(crlf_export_command(), &[&sshd::pub_path(&key)]);
        options.extra_config = vec!["LogLevel DEBUG".to_owned()];
        let server = Sshd::start(options).await;

        // Act
        let mut connection = connect_with_key(&server, &key).await;
        assert_export(&mut connection).await;
        connection.close().await;

        // Assert: the client's order decides.
        let log = server.log();
        assert!(
            log.contains(&format!("cipher: {expected}")),
            "{expected} not negotiated:\n{log}"
        );
    })
    .await;
}

#[tokio::test]
async fn an_encrypted_key_needs_the_right_passphrase() {
    within(async {
        // Arrange
        let passphrase = "correct horse battery staple";
        let (server, key, _keys) = server_with_key("echo ok", passphrase).await;
        let connect = |auth| async {
            let device = server.device(auth).await;
            ssh::connect(&device, None, CONNECT_TIMEOUT, &KeyCache::default()).await
        };

        // Act
        let right = connect(key_auth(&key, Some(passphrase))).await;
        let wrong = connect(key_auth(&key, Some("tr0ub4dor&3"))).await;
        let missing = connect(key_auth(&key, None)).await;

        // Assert
        let mut connection = right.expect("the right passphrase works");
        let output = connection
            .exec("/export", 1024, COMMAND_TIMEOUT)
            .await
            .expect("exec");
        assert_eq!(output.stdout, b"ok\n");
        connection.close().await;
        for (result, expected) in [
            (wrong, "wrong passphrase"),
            (missing, "no passphrase is configured"),
        ] {
            let err = result.expect_err("a bad passphrase is refused");
            let message = format!("{err} {err:?}");
            assert_eq!(err.kind(), ErrorKind::Internal);
            assert!(message.contains(expected), "unclear error: {message}");
            assert!(
                message.contains("id_user"),
                "error does not name the key file: {message}"
            );
            assert!(
                !message.contains("tr0ub4dor") && !message.contains("horse"),
                "passphrase leaked"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn a_pinned_fingerprint_must_match_the_host_key() {
    within(async {
        // Arrange
        let (server, key, _keys) = server_with_key("echo ok", "").await;
        let actual = server.host_key_fingerprint().await;
        let other = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        let device = server.device(key_auth(&key, None)).await;

        // Act
        let mismatch =
            ssh::connect(&device, Some(other), CONNECT_TIMEOUT, &KeyCache::default()).await;
        let matching = ssh::connect(
            &device,
            Some(&actual),
            CONNECT_TIMEOUT,
            &KeyCache::default(),
        )
        .await;

        // Assert
        let err = mismatch.expect_err("another pinned key is refused");
        assert_eq!(err.kind(), ErrorKind::HostkeyMismatch);
        match err {
            Error::HostKeyMismatch { pinned, presented } => {
                assert_eq!(pinned, other);
                assert_eq!(presented, actual);
            }
            other => panic!("expected HostKeyMismatch, got {other:?}"),
        }
        let connection = matching.expect("the pinned key is accepted");
        assert_eq!(connection.host_key_fingerprint(), actual);
        connection.close().await;
    })
    .await;
}

#[tokio::test]
async fn an_unauthorized_key_is_rejected() {
    within(async {
        // Arrange
        let (_authorized_dir, authorized) = user_key(KeyType::Ed25519, "").await;
        let (_stranger_dir, stranger) = user_key(KeyType::Ed25519, "").await;
        let server =
            Sshd::start(SshdOptions::new("echo ok", &[&sshd::pub_path(&authorized)])).await;
        let device = server.device(key_auth(&stranger, None)).await;

        // Act
        let result = ssh::connect(&device, None, CONNECT_TIMEOUT, &KeyCache::default()).await;

        // Assert
        let err = result.expect_err("an unknown key is refused");
        assert_eq!(err.kind(), ErrorKind::AuthFailed);
        let user = sshd::current_user().await;
        assert!(
            matches!(&err, Error::AuthRejected { username } if *username == user),
            "{err:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn nothing_listening_is_unreachable() {
    within(async {
        // Arrange: a port bound and released.
        let (_keys, key) = user_key(KeyType::Ed25519, "").await;
        let device = sshd::device_at(sshd::free_port().await, key_auth(&key, None)).await;

        // Act
        let result = ssh::connect(&device, None, CONNECT_TIMEOUT, &KeyCache::default()).await;

        // Assert
        let err = result.expect_err("a closed port is refused");
        assert_eq!(err.kind(), ErrorKind::Unreachable);
        assert_eq!(err.to_string(), "device unreachable: connection refused");
    })
    .await;
}

#[tokio::test]
async fn a_server_that_never_speaks_times_out_the_connect() {
    within(async {
        // Arrange: accepts TCP connections and keeps them open, silently.
        let (_keys, key) = user_key(KeyType::Ed25519, "").await;
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let device = sshd::device_at(port, key_auth(&key, None)).await;
        let silent = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let limit = Duration::from_millis(500);

        // Act
        let started = Instant::now();
        let result = ssh::connect(&device, None, limit, &KeyCache::default()).await;

        // Assert
        let elapsed = started.elapsed();
        let err = result.expect_err("a silent server times out");
        assert!(
            matches!(err, Error::TimedOut { stage: "connect", after } if after == limit),
            "{err:?}"
        );
        assert_eq!(err.kind(), ErrorKind::Timeout);
        assert!(
            elapsed >= limit && elapsed < limit + Duration::from_secs(2),
            "took {elapsed:?}"
        );
        silent.abort();
    })
    .await;
}

#[tokio::test]
async fn stdout_over_the_byte_cap_is_too_large() {
    within(async {
        // Arrange: the command the client sends is the number of bytes to print.
        let command = "head -c \"$SSH_ORIGINAL_COMMAND\" /dev/zero";
        let (server, key, _keys) = server_with_key(command, "").await;
        let mut connection = connect_with_key(&server, &key).await;

        // Act
        let over = connection.exec("100001", 100_000, COMMAND_TIMEOUT).await;
        let at_cap = connection.exec("100000", 100_000, COMMAND_TIMEOUT).await;
        let large = connection.exec("8000000", MAX_BYTES, COMMAND_TIMEOUT).await;

        // Assert
        let err = over.expect_err("one byte over the cap is refused");
        assert!(matches!(err, Error::TooLarge { limit: 100_000 }), "{err:?}");
        assert_eq!(err.kind(), ErrorKind::TooLarge);
        assert_eq!(
            at_cap.expect("exactly the cap is fine").stdout.len(),
            100_000
        );
        let large = large.expect("8 MB within the cap");
        assert_eq!(large.stdout.len(), 8_000_000);
        assert!(large.stdout.capacity() <= MAX_BYTES);
        assert_eq!(large.exit_status, Some(0));
        connection.close().await;
    })
    .await;
}

#[tokio::test]
async fn a_slow_command_times_out() {
    within(async {
        // Arrange
        let (server, key, _keys) = server_with_key("sleep 5", "").await;
        let mut connection = connect_with_key(&server, &key).await;
        let limit = Duration::from_secs(1);

        // Act
        let started = Instant::now();
        let result = connection.exec("/export", MAX_BYTES, limit).await;

        // Assert
        let elapsed = started.elapsed();
        let err = result.expect_err("sleep 5 outlives a 1 s timeout");
        assert!(
            matches!(err, Error::TimedOut { stage: "command", after } if after == limit),
            "{err:?}"
        );
        assert!(elapsed < limit + Duration::from_secs(2), "took {elapsed:?}");
        connection.close().await;
        assert!(
            started.elapsed() < limit + Duration::from_secs(5),
            "close hung"
        );
    })
    .await;
}

#[tokio::test]
async fn a_connection_lost_mid_command_is_unreachable_not_partial_output() {
    within(async {
        // Arrange: the command prints a little, then kills its sshd session process.
        let command = "printf partial; sleep 0.2; kill -KILL $PPID";
        let (server, key, _keys) = server_with_key(command, "").await;
        let mut connection = connect_with_key(&server, &key).await;

        // Act
        let result = connection.exec("/export", MAX_BYTES, COMMAND_TIMEOUT).await;

        // Assert
        let err = result.expect_err("a dropped connection is not a success");
        assert_eq!(err.kind(), ErrorKind::Unreachable, "{err:?}");
        assert_eq!(
            err.to_string(),
            "device unreachable: connection lost during the command"
        );
    })
    .await;
}

#[tokio::test]
async fn an_oversized_version_probe_answer_is_reported_as_the_probe_failing() {
    within(async {
        // Arrange: a forced command that prints the export whatever is
        // asked, so `command = "auto"` gets about 300 KB for its probe.
        let (server, key, _keys) = server_with_key(&crlf_export_command(), "").await;
        let device = server.device(key_auth(&key, None)).await;
        let executor =
            cfgsnap_testkit::fleet::ScratchSshExecutor::new(cfgsnap_testkit::fleet::test_limits())
                .await;

        // Act
        let err = executor
            .executor
            .run(&device, cfgsnap::backup::Trigger::Manual)
            .await
            .expect_err("the probe's answer is over its cap");

        // Assert: the probe is named with its cap, the export's cap is not.
        let text = err.to_string();
        assert_eq!(err.kind(), ErrorKind::InvalidOutput, "{text}");
        assert!(text.contains("version probe failed"), "{text}");
        assert!(
            text.contains(&format!(
                "more than {} bytes",
                cfgsnap::backup::executor::PROBE_CAP
            )),
            "{text}"
        );
        assert!(!text.contains("export larger"), "{text}");
    })
    .await;
}
