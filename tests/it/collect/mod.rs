//! The SSH collector (`SshExecutor` with file-backed pins) against the
//! in-process routeros-sim: exports of v6 and v7 devices, their hashes, the
//! command `auto` picks and host-key pinning here; faults, each ending in its
//! `error_kind` within its timeout, in `fault`.
//!
//! Each test body runs under [`within`], so a hanging device never hangs the
//! suite. Export text never goes into assertion messages: they compare
//! hashes, counts and short labels.

mod fault;
mod keys;
mod known_hosts;

use std::time::Duration;

use cfgsnap::backup::normalize::normalize;
use cfgsnap::backup::ssh::{self, KeyCache};
use cfgsnap::backup::{Command, Error, ErrorKind, Outcome};
use routeros_sim::{DeviceSpec, Export, HostKeyKind};

use crate::helpers::{
    ScratchSshExecutor, corpus_device, corpus_file, normalized_hash, sim_device, start_simulator,
    test_limits, within,
};

/// Upper bound of one test; every expected failure comes far sooner.
const TEST_TIMEOUT: Duration = Duration::from_secs(60);
/// A v7.12 export: CRLF, wrapped lines, a transient `# Firmware upgraded` comment.
const V7_FILE: &str = "kaihendry-mikrotik-configs__praze.rsc";
/// A verbose v6.49.7 export.
const V6_FILE: &str = "pancho-mk__respaldo.rsc";
/// The RouterOS version of `V6_FILE`.
const V6_VERSION: &str = "6.49.7";

/// The error of a run expected to fail (an export is reported by size only).
fn failure(result: cfgsnap::backup::Result<Outcome>) -> Error {
    match result {
        Ok(outcome) => panic!(
            "expected a failure, got a {}-byte export",
            outcome.config_text.len()
        ),
        Err(e) => e,
    }
}

/// Physical lines ending in `\` that are followed by a 4-space continuation.
fn continuations(text: &str) -> usize {
    let lines: Vec<&str> = text.lines().collect();
    lines
        .windows(2)
        .filter(|w| w[0].ends_with('\\') && w[1].starts_with("    "))
        .count()
}

#[tokio::test]
async fn a_v7_corpus_export_is_collected_with_the_hash_of_the_normalized_file() {
    within(TEST_TIMEOUT, async {
        // Arrange
        let file = corpus_file(V7_FILE);
        let sim = start_simulator(vec![corpus_device(V7_FILE)]).await;
        let executor = ScratchSshExecutor::new(test_limits()).await;

        // Act
        let outcome = executor
            .run(&sim_device(&sim, 0))
            .await
            .expect("backup succeeds");

        // Assert
        assert_eq!(outcome.sha256_hash, normalized_hash(&file));
        assert!(
            outcome.config_text == normalize(&file).text,
            "normalized export differs from the normalized file"
        );
        assert_eq!(outcome.routeros_version.as_deref(), Some("7.12"));
        assert_eq!(outcome.device_id.as_str(), "dev-0");
        assert_eq!(outcome.tenant_id.as_str(), "t1");
        assert!(outcome.warnings.is_empty(), "{:?}", outcome.warnings);
        assert_eq!(outcome.host_key_fingerprint, sim.host_key_fingerprint(0));
        assert_eq!(sim.exports_served(0), 1);
    })
    .await;
}

#[tokio::test]
async fn repeated_exports_hash_the_same_although_the_header_is_restamped() {
    within(TEST_TIMEOUT, async {
        // Arrange: the file's header dates from 2023; the simulator stamps
        // every export with the current time instead.
        let sim = start_simulator(vec![corpus_device(V7_FILE)]).await;
        let executor = ScratchSshExecutor::new(test_limits()).await;
        let device = sim_device(&sim, 0);

        // Act
        let first = executor.run(&device).await.expect("first backup");
        let second = executor.run(&device).await.expect("second backup");

        // Assert
        assert_eq!(first.sha256_hash, second.sha256_hash);
        assert_eq!(sim.exports_served(0), 2);
    })
    .await;
}

#[tokio::test]
async fn auto_on_a_v6_device_runs_plain_export_over_the_v6_algorithms() {
    within(TEST_TIMEOUT, async {
        // Arrange: the simulated v6 device offers only diffie-hellman-group14-sha1 /
        // group-exchange-sha256, hmac-sha1 and an ssh-rsa host key.
        let file = corpus_file(V6_FILE);
        let spec = DeviceSpec::default()
            .with_version(V6_VERSION)
            .with_export(Export::Text(file.clone()));
        let sim = start_simulator(vec![spec]).await;
        let executor = ScratchSshExecutor::new(test_limits()).await;
        let device = sim_device(&sim, 0);

        // Act
        let outcome = executor.run(&device).await.expect("v6 backup succeeds");

        // Assert: `show-sensitive` would have been a syntax error on v6, which
        // the simulator does not count as an export.
        assert_eq!(outcome.sha256_hash, normalized_hash(&file));
        assert_eq!(outcome.routeros_version.as_deref(), Some(V6_VERSION));
        assert_eq!(sim.exports_served(0), 1);
        assert_eq!(outcome.host_key_fingerprint, sim.host_key_fingerprint(0));
        let pinned = executor.known_hosts.get(&device.id).await;
        assert_eq!(
            pinned.as_deref(),
            Some(outcome.host_key_fingerprint.as_str())
        );
    })
    .await;
}

#[tokio::test]
async fn a_fixed_show_sensitive_command_on_v6_is_command_failed() {
    within(TEST_TIMEOUT, async {
        // Arrange
        let spec = DeviceSpec::default()
            .with_version(V6_VERSION)
            .with_export(Export::Text(corpus_file(V6_FILE)));
        let sim = start_simulator(vec![spec]).await;
        let mut limits = test_limits();
        limits.command = Command::Fixed("/export show-sensitive".to_owned());
        let executor = ScratchSshExecutor::new(limits).await;

        // Act
        let e = failure(executor.run(&sim_device(&sim, 0)).await);

        // Assert
        assert_eq!(e.kind(), ErrorKind::CommandFailed, "{e}");
        assert!(e.to_string().contains("expected end of command"), "{e}");
    })
    .await;
}

#[tokio::test]
async fn auto_on_v7_exports_with_show_sensitive() {
    within(TEST_TIMEOUT, async {
        // Arrange: generated configs print `password=` only when secrets are shown.
        let spec = DeviceSpec::default().with_export(Export::Generated { lines: 1000 });
        let sim = start_simulator(vec![spec]).await;
        let executor = ScratchSshExecutor::new(test_limits()).await;

        // Act
        let outcome = executor
            .run(&sim_device(&sim, 0))
            .await
            .expect("backup succeeds");

        // Assert
        assert!(
            outcome.config_text.contains(" password="),
            "the v7 export hides its secrets"
        );
        assert_eq!(outcome.routeros_version.as_deref(), Some("7.16"));
    })
    .await;
}

#[tokio::test]
async fn hide_sensitive_succeeds_on_v6_and_v7_without_secrets() {
    within(TEST_TIMEOUT, async {
        // Arrange
        let generated = Export::Generated { lines: 1000 };
        let sim = start_simulator(vec![
            DeviceSpec::default().with_export(generated.clone()),
            DeviceSpec::default()
                .with_version("6.49.10")
                .with_export(generated),
        ])
        .await;
        let mut limits = test_limits();
        limits.command = Command::Auto {
            hide_sensitive: true,
        };
        let executor = ScratchSshExecutor::new(limits).await;

        // Act
        let v7 = executor.run(&sim_device(&sim, 0)).await.expect("v7 backup");
        let v6 = executor.run(&sim_device(&sim, 1)).await.expect("v6 backup");

        // Assert
        assert!(!v7.config_text.contains(" password="), "v7 shows secrets");
        assert!(!v6.config_text.contains(" password="), "v6 shows secrets");
        assert_eq!(v7.routeros_version.as_deref(), Some("7.16"));
        assert_eq!(v6.routeros_version.as_deref(), Some("6.49.10"));
        assert_eq!((sim.exports_served(0), sim.exports_served(1)), (1, 1));
    })
    .await;
}

#[tokio::test]
async fn a_generated_export_keeps_its_wrapped_continuation_lines() {
    within(TEST_TIMEOUT, async {
        // Arrange
        let spec = DeviceSpec::default().with_export(Export::Generated { lines: 1000 });
        let sim = start_simulator(vec![spec]).await;
        let device = sim_device(&sim, 0);
        let limits = test_limits();
        let mut raw_conn =
            ssh::connect(&device, None, limits.connect_timeout, &KeyCache::default())
                .await
                .expect("raw connection");
        let raw = raw_conn
            .exec(
                "/export show-sensitive",
                limits.max_config_bytes,
                limits.command_timeout,
            )
            .await
            .expect("raw export");
        raw_conn.close().await;
        let raw = String::from_utf8(raw.stdout).expect("UTF-8 export");
        let executor = ScratchSshExecutor::new(limits).await;

        // Act
        let outcome = executor.run(&device).await.expect("backup succeeds");

        // Assert
        let wrapped = continuations(&outcome.config_text);
        assert!(wrapped > 10, "only {wrapped} continuation lines");
        assert_eq!(wrapped, continuations(&raw));
        assert!(!outcome.config_text.contains('\r'), "CR left in the export");
        assert!(
            outcome.config_text == normalize(&raw).text,
            "the collected export differs from a raw export normalized"
        );
    })
    .await;
}

#[tokio::test]
async fn a_device_changing_every_second_export_changes_hash_on_exports_two_and_four() {
    within(TEST_TIMEOUT, async {
        // Arrange: with change_every(2), export n carries generation n / 2,
        // so exports 1..=4 are generations 0, 1, 1, 2.
        let spec = DeviceSpec::default().with_change_every(2);
        let sim = start_simulator(vec![spec]).await;
        let executor = ScratchSshExecutor::new(test_limits()).await;
        let device = sim_device(&sim, 0);

        // Act
        let mut hashes = Vec::new();
        for run in 1..=4 {
            let outcome = executor
                .run(&device)
                .await
                .unwrap_or_else(|e| panic!("run {run}: {e}"));
            hashes.push(outcome.sha256_hash);
        }

        // Assert
        assert_ne!(hashes[0], hashes[1]);
        assert_eq!(hashes[1], hashes[2]);
        assert_ne!(hashes[2], hashes[3]);
        assert_ne!(hashes[0], hashes[3]);
        assert_eq!(sim.exports_served(0), 4);
    })
    .await;
}

#[tokio::test]
async fn a_v7_device_with_an_rsa_host_key_is_backed_up_and_pinned() {
    within(TEST_TIMEOUT, async {
        // Arrange
        let spec = DeviceSpec::default().with_host_key(HostKeyKind::Rsa);
        let sim = start_simulator(vec![spec]).await;
        let executor = ScratchSshExecutor::new(test_limits()).await;
        let device = sim_device(&sim, 0);

        // Act
        let first = executor.run(&device).await.expect("first backup");
        let second = executor
            .run(&device)
            .await
            .expect("second backup, key pinned");

        // Assert
        assert_eq!(first.host_key_fingerprint, sim.host_key_fingerprint(0));
        assert_eq!(second.host_key_fingerprint, first.host_key_fingerprint);
        let pinned = executor.known_hosts.get(&device.id).await;
        assert_eq!(pinned.as_deref(), Some(first.host_key_fingerprint.as_str()));
    })
    .await;
}
