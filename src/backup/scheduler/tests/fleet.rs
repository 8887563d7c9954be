//! The concurrency cap, fleet reloads, disabled devices and shutdown.

use super::*;
use crate::backup::AttemptStatus;
use crate::backup::scheduler::ReloadSummary;

#[tokio::test(start_paused = true)]
async fn the_concurrency_cap_is_never_exceeded_and_no_device_is_dropped() {
    // Arrange: 50 devices due within a minute, 5 at a time, each held open.
    let (exec, gate) = RecordingExecutor::gated();
    let names: Vec<String> = (0..50).map(|i| format!("r{i}")).collect();
    let mut setup = Setup::new(6 * HOUR, MIN);
    setup.max_concurrent = 5;
    let h = setup.start(exec, names.iter().map(|n| device(n)).collect());

    // Act
    h.advance_to(2 * MIN).await;
    let running_while_held = (h.exec.running(), h.exec.total());
    for _ in 0..10 {
        gate.add_permits(5);
        tokio::time::sleep(SEC).await;
    }

    // Assert
    assert_eq!(running_while_held, (5, 5));
    assert_eq!(h.exec.max_running(), 5);
    for name in &names {
        assert_eq!(h.exec.calls(name).len(), 1, "{name} ran exactly once");
    }
    assert_eq!(h.sink.count(), 50);
}

#[tokio::test(start_paused = true)]
async fn ten_thousand_devices_run_every_interval_with_a_thousand_at_once() {
    // Arrange: backups of a minute each; demand (2,000 at once) exceeds the cap.
    let exec = RecordingExecutor {
        run_time: MIN,
        ..RecordingExecutor::default()
    };
    let names: Vec<String> = (0..10_000).map(|i| format!("r{i}")).collect();
    let mut setup = Setup::new(HOUR, 5 * MIN);
    setup.max_concurrent = 1_000;
    let h = setup.start(exec, names.iter().map(|n| device(n)).collect());

    // Act
    h.advance_to(2 * HOUR).await;

    // Assert
    assert_eq!(h.exec.max_running(), 1_000);
    for name in &names {
        let runs = h.exec.calls(name).len();
        assert!((2..=3).contains(&runs), "{name}: {runs} runs");
    }
}

#[tokio::test(start_paused = true)]
async fn a_reload_adds_removes_and_restarts_devices_and_keeps_the_others() {
    // Arrange
    let jitter = 10 * MIN;
    let h = Setup::new(HOUR, jitter).start(
        RecordingExecutor::default(),
        vec![device("keep"), device("change"), device("gone")],
    );
    h.advance_to(30 * MIN).await;
    let reloaded_at = Instant::now();

    // Act
    let moved = Device {
        host: "10.0.0.9".into(),
        ..device("change")
    };
    let summary = h.handle.reload(vec![device("keep"), moved, device("new")]);
    h.advance_to(3 * HOUR).await;

    // Assert
    let expected = ReloadSummary {
        added: 1,
        removed: 1,
        changed: 1,
        unchanged: 1,
    };
    assert_eq!(summary, expected);
    assert_eq!(h.exec.calls("gone").len(), 1, "removed: never run again");
    let keep = h.exec.calls("keep");
    assert!(keep.windows(2).all(|p| p[1] - p[0] == HOUR), "timer kept");
    let change = h.exec.calls("change");
    assert_within(change[0], h.t0, jitter);
    assert_within(change[1], reloaded_at, jitter);
    assert!(change[2..].windows(2).all(|p| p[1] - p[0] == HOUR));
    assert!(
        h.exec.hosts("change")[1..]
            .iter()
            .all(|host| host == "10.0.0.9")
    );
    assert_within(h.exec.calls("new")[0], reloaded_at, jitter);
}

#[tokio::test(start_paused = true)]
async fn the_in_flight_backup_of_a_removed_device_finishes_and_is_reported() {
    // Arrange
    let (exec, gate) = RecordingExecutor::gated();
    let h = Setup::new(HOUR, Duration::ZERO).start(exec, vec![device("r1")]);
    h.advance_to(SEC).await;
    assert_eq!(h.exec.running(), 1);

    // Act
    let summary = h.handle.reload(Vec::new());
    gate.add_permits(10);
    h.advance_to(5 * HOUR).await;

    // Assert
    assert_eq!(summary.removed, 1);
    assert_eq!(h.exec.calls("r1").len(), 1);
    let reports = h.sink.reports("r1");
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].status, AttemptStatus::Success);
    assert!(!h.handle.unblock(&id("r1")));
}

#[tokio::test(start_paused = true)]
async fn a_changed_device_waits_for_its_in_flight_backup_before_running_again() {
    // Arrange
    let (exec, gate) = RecordingExecutor::gated();
    let h = Setup::new(HOUR, Duration::ZERO).start(exec, vec![device("r1")]);
    h.advance_to(SEC).await;

    // Act
    let moved = Device {
        port: 2222,
        ..device("r1")
    };
    let summary = h.handle.reload(vec![moved]);
    h.advance_to(MIN).await;
    let calls_while_in_flight = h.exec.calls("r1").len();
    gate.add_permits(10);
    h.advance_to(2 * MIN).await;

    // Assert
    assert_eq!(summary.changed, 1);
    assert_eq!(calls_while_in_flight, 1);
    assert_eq!(h.exec.calls("r1").len(), 2);
    assert_eq!(h.exec.max_running(), 1, "never two backups of one device");
    assert_eq!(h.offsets("r1")[1], MIN, "ran as soon as the first ended");
}

#[tokio::test(start_paused = true)]
async fn disabled_devices_are_never_scheduled() {
    // Arrange
    let off = Device {
        enabled: false,
        ..device("off")
    };
    let h = Setup::new(HOUR, Duration::ZERO)
        .start(RecordingExecutor::default(), vec![device("on"), off]);

    // Act
    h.advance_to(5 * HOUR).await;
    let enabled = h.handle.reload(vec![device("on"), device("off")]);
    h.advance_to(5 * HOUR + SEC).await;
    let disabled = h.handle.reload(vec![
        device("on"),
        Device {
            enabled: false,
            ..device("off")
        },
    ]);
    h.advance_to(10 * HOUR + SEC).await;

    // Assert
    assert!(!h.handle.unblock(&id("off")));
    assert_eq!((enabled.added, disabled.removed), (1, 1));
    assert_eq!(h.offsets("off"), [5 * HOUR]);
    assert_eq!(h.exec.calls("on").len(), 11);
}

#[tokio::test(start_paused = true)]
async fn shutdown_starts_nothing_new_and_lets_the_in_flight_backup_finish() {
    // Arrange: one permit; r1 or r2 runs (held), the other waits for it.
    let (exec, gate) = RecordingExecutor::gated();
    let mut setup = Setup::new(HOUR, Duration::ZERO);
    setup.max_concurrent = 1;
    let h = setup.start(exec, vec![device("r1"), device("r2")]);
    h.advance_to(SEC).await;

    // Act
    h.shutdown.cancel();
    h.tracker.close();
    let drained = tokio::spawn({
        let tracker = h.tracker.clone();
        async move { tracker.wait().await }
    });
    h.advance_to(MIN).await;
    let drained_while_in_flight = drained.is_finished();
    gate.add_permits(10);
    tokio::time::timeout(MIN, drained)
        .await
        .expect("tasks end")
        .expect("join");
    h.advance_to(5 * HOUR).await;

    // Assert
    assert!(!drained_while_in_flight, "the in-flight backup is awaited");
    assert_eq!(h.exec.total(), 1, "the waiting device never started");
    assert_eq!(h.sink.count(), 1, "the in-flight backup is reported");
    assert_eq!(
        h.handle.reload(vec![device("r3")]),
        ReloadSummary::default()
    );
    assert!(!h.handle.unblock(&id("r1")));
}

#[test]
fn the_fingerprint_changes_with_every_field_and_only_then() {
    use crate::backup::scheduler::fingerprint;

    // Arrange
    let base = device("r1");
    let key = |passphrase: Option<&str>| Credentials {
        auth: Auth::Key {
            path: "/keys/r1".into(),
            passphrase: passphrase.map(|p| p.to_owned().into()),
        },
        ..device("r1").credentials
    };
    let variants = [
        Device {
            name: "other".into(),
            ..device("r1")
        },
        Device {
            host: "10.0.0.1".into(),
            ..device("r1")
        },
        Device {
            port: 2222,
            ..device("r1")
        },
        Device {
            interval: Some(HOUR),
            ..device("r1")
        },
        Device {
            tenant: TenantId::parse("t2").expect("id"),
            ..device("r1")
        },
        Device {
            credentials: Credentials {
                username: "backup".into(),
                ..device("r1").credentials
            },
            ..device("r1")
        },
        Device {
            credentials: Credentials {
                auth: Auth::Password("other".to_owned().into()),
                ..device("r1").credentials
            },
            ..device("r1")
        },
        Device {
            credentials: key(None),
            ..device("r1")
        },
        Device {
            credentials: key(Some("pass")),
            ..device("r1")
        },
    ];

    // Act + Assert
    assert_eq!(fingerprint(&base), fingerprint(&device("r1")));
    let mut seen = vec![fingerprint(&base)];
    for variant in &variants {
        let fp = fingerprint(variant);
        assert!(!seen.contains(&fp), "{variant:?} must differ");
        seen.push(fp);
    }
}
