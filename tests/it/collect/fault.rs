//! Collector failures against faulty simulated devices: each ends in its
//! `error_kind` within its timeout, and no error shows the password or
//! export text.

use std::time::{Duration, Instant};

use cfgsnap::backup::{Command, Error, ErrorKind};
use routeros_sim::{DeviceSpec, Export, Fault};

use super::{TEST_TIMEOUT, failure};
use crate::helpers::{
    ScratchSshExecutor, closed_port, device_at, sim_device, sim_device_with_password,
    start_simulator, test_limits, within,
};

#[tokio::test]
async fn a_device_refusing_every_login_is_auth_failed() {
    within(TEST_TIMEOUT, async {
        // Arrange
        let sim = start_simulator(vec![DeviceSpec::default().with_fault(Fault::AuthFailure)]).await;
        let executor = ScratchSshExecutor::new(test_limits()).await;

        // Act
        let e = failure(executor.run(&sim_device(&sim, 0)).await);

        // Assert
        assert_eq!(e.kind(), ErrorKind::AuthFailed, "{e}");
        assert_eq!(sim.exports_served(0), 0);
    })
    .await;
}

#[tokio::test]
async fn a_wrong_password_is_auth_failed() {
    within(TEST_TIMEOUT, async {
        // Arrange
        let sim = start_simulator(vec![DeviceSpec::default()]).await;
        let executor = ScratchSshExecutor::new(test_limits()).await;

        // Act
        let e = failure(
            executor
                .run(&sim_device_with_password(&sim, 0, "not-the-password"))
                .await,
        );

        // Assert
        assert_eq!(e.kind(), ErrorKind::AuthFailed, "{e}");
    })
    .await;
}

#[tokio::test]
async fn a_changed_host_key_is_a_mismatch_until_the_pin_is_forgotten() {
    within(TEST_TIMEOUT, async {
        // Arrange: the device presents a new random key on every connection.
        let sim =
            start_simulator(vec![DeviceSpec::default().with_fault(Fault::HostKeyChange)]).await;
        let executor = ScratchSshExecutor::new(test_limits()).await;
        let device = sim_device(&sim, 0);

        // Act
        let first = executor.run(&device).await.expect("first run pins the key");
        let first_pin = executor.known_hosts.get(&device.id).await;
        let second = failure(executor.run(&device).await);
        let second_key = sim.host_key_fingerprint(0);
        executor
            .known_hosts
            .forget(&device.id)
            .await
            .expect("forget the pin");
        let third = executor.run(&device).await.expect("third run pins anew");

        // Assert
        assert_eq!(
            first_pin.as_deref(),
            Some(first.host_key_fingerprint.as_str())
        );
        assert_eq!(second.kind(), ErrorKind::HostkeyMismatch, "{second}");
        match &second {
            Error::HostKeyMismatch { pinned, presented } => {
                assert_eq!(pinned, &first.host_key_fingerprint);
                assert_eq!(presented, &second_key);
            }
            other => panic!("expected HostKeyMismatch, got {other}"),
        }
        assert_ne!(third.host_key_fingerprint, first.host_key_fingerprint);
        let third_pin = executor.known_hosts.get(&device.id).await;
        assert_eq!(
            third_pin.as_deref(),
            Some(third.host_key_fingerprint.as_str())
        );
        assert_eq!(sim.exports_served(0), 2, "the mismatch ran no command");
    })
    .await;
}

#[tokio::test]
async fn a_device_hanging_after_exec_times_out_at_the_command_timeout() {
    within(TEST_TIMEOUT, async {
        // Arrange
        let sim = start_simulator(vec![DeviceSpec::default().with_fault(Fault::HangAfterExec)]).await;
        let limits = test_limits();
        let executor = ScratchSshExecutor::new(limits.clone()).await;
        let started = Instant::now();

        // Act
        let e = failure(executor.run(&sim_device(&sim, 0)).await);

        // Assert
        assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
        assert!(
            matches!(e, Error::TimedOut { stage: "command", after } if after == limits.command_timeout),
            "{e}"
        );
        let elapsed = started.elapsed();
        assert!(elapsed >= limits.command_timeout, "{elapsed:?}");
        assert!(elapsed < limits.job_timelimit, "{elapsed:?}");
    })
    .await;
}

#[tokio::test]
async fn a_slowly_dripping_export_times_out() {
    within(TEST_TIMEOUT, async {
        // Arrange: about 60 KB at 64 bytes per 50 ms would take some 45 s.
        let spec = DeviceSpec::default()
            .with_export(Export::Generated { lines: 1000 })
            .with_fault(Fault::SlowDrip {
                chunk: 64,
                every: Duration::from_millis(50),
            });
        let sim = start_simulator(vec![spec]).await;
        let limits = test_limits();
        let executor = ScratchSshExecutor::new(limits.clone()).await;

        // Act
        let e = failure(executor.run(&sim_device(&sim, 0)).await);

        // Assert
        assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
        assert!(
            matches!(e, Error::TimedOut { stage: "command", after } if after == limits.command_timeout),
            "{e}"
        );
    })
    .await;
}

#[tokio::test]
async fn a_connection_dropped_mid_output_is_unreachable() {
    within(TEST_TIMEOUT, async {
        // Arrange
        let spec = DeviceSpec::default()
            .with_export(Export::Generated { lines: 1000 })
            .with_fault(Fault::DisconnectMidOutput);
        let sim = start_simulator(vec![spec]).await;
        let executor = ScratchSshExecutor::new(test_limits()).await;

        // Act
        let e = failure(executor.run(&sim_device(&sim, 0)).await);

        // Assert
        assert_eq!(e.kind(), ErrorKind::Unreachable, "{e}");
        assert_eq!(sim.exports_served(0), 1);
    })
    .await;
}

#[tokio::test]
async fn an_export_over_the_cap_is_too_large_without_reading_it_all() {
    within(TEST_TIMEOUT, async {
        // Arrange: 200 MiB offered, 1 MiB accepted; reading it all would take
        // far longer than this test's own timeout allows.
        let spec = DeviceSpec::default().with_fault(Fault::HugeOutput {
            bytes: 200 * 1024 * 1024,
        });
        let sim = start_simulator(vec![spec]).await;
        let mut limits = test_limits();
        limits.max_config_bytes = 1024 * 1024;
        let executor = ScratchSshExecutor::new(limits).await;

        // Act
        let e = failure(executor.run(&sim_device(&sim, 0)).await);

        // Assert
        assert_eq!(e.kind(), ErrorKind::TooLarge, "{e}");
        assert!(matches!(e, Error::TooLarge { limit: 1_048_576 }), "{e}");
    })
    .await;
}

#[tokio::test]
async fn garbage_output_is_invalid_output() {
    within(TEST_TIMEOUT, async {
        // Arrange
        let sim = start_simulator(vec![DeviceSpec::default().with_fault(Fault::Garbage)]).await;
        let executor = ScratchSshExecutor::new(test_limits()).await;

        // Act
        let e = failure(executor.run(&sim_device(&sim, 0)).await);

        // Assert
        assert_eq!(e.kind(), ErrorKind::InvalidOutput, "{e}");
    })
    .await;
}

#[tokio::test]
async fn a_routeros_error_instead_of_the_export_is_command_failed() {
    within(TEST_TIMEOUT, async {
        // Arrange
        let error = "bad command name export (line 1 column 2)";
        let spec = DeviceSpec::default().with_fault(Fault::RouterOsError(error.to_owned()));
        let sim = start_simulator(vec![spec]).await;
        let executor = ScratchSshExecutor::new(test_limits()).await;

        // Act
        let e = failure(executor.run(&sim_device(&sim, 0)).await);

        // Assert
        assert_eq!(e.kind(), ErrorKind::CommandFailed, "{e}");
        assert!(e.to_string().contains(error), "{e}");
    })
    .await;
}

#[tokio::test]
async fn a_closed_port_is_unreachable() {
    within(TEST_TIMEOUT, async {
        // Arrange
        let port = closed_port().await;
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let executor = ScratchSshExecutor::new(test_limits()).await;

        // Act
        let e = failure(executor.run(&device_at(addr, "closed", "admin")).await);

        // Assert
        assert_eq!(e.kind(), ErrorKind::Unreachable, "{e}");
        assert!(e.to_string().contains("connection refused"), "{e}");
    })
    .await;
}

#[tokio::test]
async fn a_job_time_limit_shorter_than_the_device_latency_is_a_job_timeout() {
    within(TEST_TIMEOUT, async {
        // Arrange: every command answers after 2 s; the whole job may take 1 s.
        let spec = DeviceSpec::default().with_latency(Duration::from_secs(2));
        let sim = start_simulator(vec![spec]).await;
        let mut limits = test_limits();
        limits.job_timelimit = Duration::from_secs(1);
        let executor = ScratchSshExecutor::new(limits).await;

        // Act
        let e = failure(executor.run(&sim_device(&sim, 0)).await);

        // Assert
        assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
        assert!(
            matches!(e, Error::TimedOut { stage: "job", after } if after == Duration::from_secs(1)),
            "{e}"
        );
    })
    .await;
}

/// Marks the device password; it must never appear in an error.
const PASSWORD_MARKER: &str = "pw-MARKER-7f3a9c";
/// Marks config text; it must never appear in an error.
const EXPORT_MARKER: &str = "export-MARKER-51d2e8";

/// Every text an error shows: `Display`, `Debug` and the source chain.
fn error_texts(e: &Error) -> String {
    let mut texts = format!("{e}\n{e:?}");
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        texts.push_str(&format!("\n{cause}"));
        source = cause.source();
    }
    texts
}

#[tokio::test]
async fn error_messages_never_contain_the_password_or_export_text() {
    within(TEST_TIMEOUT, async {
        // Arrange
        let marked = format!(
            "# 2024-01-02 03:04:05 by RouterOS 7.16\n/user\nadd name=ops password={EXPORT_MARKER}\n\
             /ip dns\nset servers=192.0.2.53 comment={EXPORT_MARKER}\n"
        );
        let no_menu = format!("# {EXPORT_MARKER}\nadd password={EXPORT_MARKER}\n");
        let base = |export: &str| {
            DeviceSpec::default()
                .with_credentials("admin", Some(PASSWORD_MARKER))
                .with_export(Export::Text(export.to_owned()))
        };
        let sim = start_simulator(vec![
            base(&marked).with_fault(Fault::AuthFailure),
            base(&marked),
            base(&marked).with_fault(Fault::DisconnectMidOutput),
            base(&no_menu),
            base(&marked).with_fault(Fault::HangAfterExec),
            base(&marked).with_fault(Fault::SlowDrip {
                chunk: 16,
                every: Duration::from_millis(500),
            }),
            base(&marked).with_version("6.49.10"),
        ])
        .await;
        let device = |i| sim_device_with_password(&sim, i, PASSWORD_MARKER);
        let plain = ScratchSshExecutor::new(test_limits()).await;
        let mut small = test_limits();
        small.max_config_bytes = 64;
        let capped = ScratchSshExecutor::new(small).await;
        let mut fixed = test_limits();
        fixed.command = Command::Fixed("/export show-sensitive".to_owned());
        let fixed = ScratchSshExecutor::new(fixed).await;
        let wrong_password = format!("wrong-{PASSWORD_MARKER}");

        // Act
        let errors = vec![
            ("auth failure", failure(plain.run(&device(0)).await)),
            (
                "wrong password",
                failure(
                    plain
                        .run(&sim_device_with_password(&sim, 1, &wrong_password))
                        .await,
                ),
            ),
            ("too large", failure(capped.run(&device(1)).await)),
            ("disconnect", failure(plain.run(&device(2)).await)),
            ("no menu", failure(plain.run(&device(3)).await)),
            ("hang", failure(plain.run(&device(4)).await)),
            ("drip", failure(plain.run(&device(5)).await)),
            ("v6 show-sensitive", failure(fixed.run(&device(6)).await)),
        ];

        // Assert
        let kinds: Vec<_> = errors.iter().map(|(name, e)| (*name, e.kind())).collect();
        assert_eq!(
            kinds,
            [
                ("auth failure", ErrorKind::AuthFailed),
                ("wrong password", ErrorKind::AuthFailed),
                ("too large", ErrorKind::TooLarge),
                ("disconnect", ErrorKind::Unreachable),
                ("no menu", ErrorKind::InvalidOutput),
                ("hang", ErrorKind::Timeout),
                ("drip", ErrorKind::Timeout),
                ("v6 show-sensitive", ErrorKind::CommandFailed),
            ]
        );
        for (name, e) in &errors {
            let texts = error_texts(e);
            assert!(
                !texts.contains(PASSWORD_MARKER),
                "{name}: the error shows the password"
            );
            assert!(
                !texts.contains(EXPORT_MARKER),
                "{name}: the error shows export text"
            );
        }
    })
    .await;
}
