//! Backoff after transient failures, blocks after auth and host-key failures,
//! a held lock and a lock backend that is down, and what each reports.

use super::*;
use crate::backup::AttemptStatus;

#[tokio::test(start_paused = true)]
async fn transient_failures_back_off_5_15_60_60_minutes_until_a_success() {
    // Arrange
    let exec = RecordingExecutor::default();
    exec.script("r1", [Res::Fail(ErrorKind::Unreachable); 4]);
    let h = Setup::new(6 * HOUR, Duration::ZERO).start(exec, vec![device("r1")]);

    // Act
    h.advance_to(9 * HOUR).await;

    // Assert: the success at 2h20 re-anchors the schedule.
    let expected = [0, 5, 20, 80, 140, 500].map(|m| m * MIN);
    assert_eq!(h.offsets("r1"), expected);
    let reports = h.sink.reports("r1");
    for (i, report) in reports.iter().take(4).enumerate() {
        assert_eq!(report.status, AttemptStatus::Failed);
        assert_eq!(report.error_kind, Some(ErrorKind::Unreachable));
        assert_eq!(
            report.next_attempt_at,
            Some(h.clock.at(h.t0 + expected[i + 1]))
        );
        assert_eq!(report.blocked_reason, None);
        assert_eq!(report.sha256_hash, None);
    }
    assert_eq!(reports[4].status, AttemptStatus::Success);
    assert_eq!(reports[4].next_attempt_at, None);
}

#[tokio::test(start_paused = true)]
async fn backoff_is_capped_at_an_interval_shorter_than_its_step() {
    // Arrange
    let exec = RecordingExecutor::default();
    exec.always("r1", Res::Fail(ErrorKind::Timeout));
    let h = Setup::new(10 * MIN, Duration::ZERO).start(exec, vec![device("r1")]);

    // Act
    h.advance_to(36 * MIN).await;

    // Assert
    assert_eq!(h.offsets("r1"), [0, 5, 15, 25, 35].map(|m| m * MIN));
}

#[tokio::test(start_paused = true)]
async fn an_auth_failure_blocks_until_the_credentials_change() {
    // Arrange
    let exec = RecordingExecutor::default();
    exec.script("r1", [Res::Fail(ErrorKind::AuthFailed)]);
    let h = Setup::new(HOUR, Duration::ZERO).start(exec, vec![device("r1")]);

    // Act: a day passes, then a reload with the same entry, then a new password.
    h.advance_to(24 * HOUR).await;
    let same = h.handle.reload(vec![device("r1")]);
    h.advance_to(48 * HOUR).await;
    let new_password = Device {
        credentials: Credentials {
            auth: Auth::Password("new-secret".to_owned().into()),
            ..device("r1").credentials
        },
        ..device("r1")
    };
    let changed = h.handle.reload(vec![new_password]);
    h.advance_to(48 * HOUR + SEC).await;

    // Assert
    assert_eq!((same.unchanged, same.changed), (1, 0));
    assert_eq!(changed.changed, 1);
    assert_eq!(h.offsets("r1"), [Duration::ZERO, 48 * HOUR]);
    let reports = h.sink.reports("r1");
    assert_eq!(reports[0].status, AttemptStatus::Failed);
    assert_eq!(reports[0].error_kind, Some(ErrorKind::AuthFailed));
    assert_eq!(reports[0].blocked_reason, Some(ErrorKind::AuthFailed));
    assert_eq!(reports[0].next_attempt_at, None);
    assert_eq!(reports[1].status, AttemptStatus::Success);
}

#[tokio::test(start_paused = true)]
async fn a_host_key_mismatch_blocks_until_unblocked() {
    // Arrange
    let exec = RecordingExecutor::default();
    exec.script("r1", [Res::Fail(ErrorKind::HostkeyMismatch)]);
    let h = Setup::new(HOUR, Duration::ZERO).start(exec, vec![device("r1")]);

    // Act
    h.advance_to(24 * HOUR).await;
    let known = h.handle.unblock(&id("r1"));
    h.advance_to(26 * HOUR + SEC).await;

    // Assert: it runs at once, then on its interval again.
    assert!(known);
    assert_eq!(h.offsets("r1"), [0, 24, 25, 26].map(|n| n * HOUR));
    let reports = h.sink.reports("r1");
    assert_eq!(reports[0].blocked_reason, Some(ErrorKind::HostkeyMismatch));
    assert_eq!(reports[0].error_kind, Some(ErrorKind::HostkeyMismatch));
    assert!(!h.handle.unblock(&id("unknown")));
}

#[tokio::test(start_paused = true)]
async fn unblocking_a_device_that_is_not_blocked_adds_no_run() {
    // Arrange
    let h =
        Setup::new(HOUR, Duration::ZERO).start(RecordingExecutor::default(), vec![device("r1")]);
    h.advance_to(10 * MIN).await;

    // Act
    assert!(h.handle.unblock(&id("r1")));
    h.advance_to(HOUR + SEC).await;

    // Assert
    assert_eq!(h.offsets("r1"), [Duration::ZERO, HOUR]);
}

#[tokio::test(start_paused = true)]
async fn a_held_lock_is_tried_again_after_30_seconds() {
    // Arrange: the holder may have died; its lock lapses at its TTL.
    let exec = RecordingExecutor::default();
    exec.script("r1", [Res::Locked]);
    let h = Setup::new(HOUR, Duration::ZERO).start(exec, vec![device("r1")]);

    // Act
    h.advance_to(HOUR + MIN).await;

    // Assert: the retry succeeds and re-anchors the schedule.
    assert_eq!(h.offsets("r1"), [Duration::ZERO, 30 * SEC, HOUR + 30 * SEC]);
    let reports = h.sink.reports("r1");
    assert_eq!(reports[0].status, AttemptStatus::Locked);
    assert_eq!(
        (
            reports[0].error_kind,
            reports[0].next_attempt_at,
            reports[0].blocked_reason
        ),
        (None, None, None)
    );
}

#[tokio::test(start_paused = true)]
async fn an_unavailable_lock_backend_is_retried_soon_and_not_counted_as_a_failure() {
    // Arrange
    let down = Res::Fail(ErrorKind::LockUnavailable);
    let unreachable = Res::Fail(ErrorKind::Unreachable);
    let exec = RecordingExecutor::default();
    exec.script("r1", [unreachable, down, down, unreachable, Res::Ok]);
    let h = Setup::new(6 * HOUR, Duration::ZERO).start(exec, vec![device("r1")]);

    // Act
    h.advance_to(HOUR).await;

    // Assert: the second real failure backs off 15 min, not 1 h.
    let expected = [0, 300, 330, 360, 1260].map(|s| s * SEC);
    assert_eq!(h.offsets("r1"), expected);
    let reports = h.sink.reports("r1");
    let kinds: Vec<_> = reports.iter().map(|r| r.error_kind).collect();
    assert_eq!(
        kinds,
        [
            Some(ErrorKind::Unreachable),
            Some(ErrorKind::Unreachable),
            None
        ]
    );
    assert_eq!(
        reports[1].next_attempt_at,
        Some(h.clock.at(h.t0 + 21 * MIN))
    );
}

#[tokio::test(start_paused = true)]
async fn nothing_runs_while_the_lock_backend_is_down() {
    // Arrange: the pipeline fails closed before it touches the device.
    let exec = RecordingExecutor::default();
    exec.always("r1", Res::Fail(ErrorKind::LockUnavailable));
    let h = Setup::new(HOUR, Duration::ZERO).start(exec, vec![device("r1")]);

    // Act
    h.advance_to(2 * MIN + SEC).await;

    // Assert: retried every 30 s, no failure reported.
    assert_eq!(h.offsets("r1"), [0, 30, 60, 90, 120].map(|s| s * SEC));
    assert_eq!(h.sink.count(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_success_the_store_recorded_already_is_not_reported_again() {
    // Arrange: an unchanged export the store confirmed, then a failure,
    // then a success it did not record.
    let exec = RecordingExecutor::default();
    exec.script(
        "r1",
        [Res::Recorded, Res::Fail(ErrorKind::Unreachable), Res::Ok],
    );
    let h = Setup::new(HOUR, Duration::ZERO).start(exec, vec![device("r1")]);

    // Act
    h.advance_to(HOUR + 10 * MIN).await;

    // Assert: three runs (the schedule goes on as after any success), two
    // reports: the failure and the success the store did not record.
    assert_eq!(h.offsets("r1"), [Duration::ZERO, HOUR, HOUR + 5 * MIN]);
    let reports = h.sink.reports("r1");
    let statuses: Vec<_> = reports.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [AttemptStatus::Failed, AttemptStatus::Success]);
}
