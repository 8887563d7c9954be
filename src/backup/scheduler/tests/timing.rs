//! Intervals, jitter, per-device intervals and the skip after another node's
//! recent success.

use chrono::TimeDelta;

use super::*;
use crate::backup::AttemptStatus;

#[tokio::test(start_paused = true)]
async fn devices_run_once_per_interval_at_exact_instants() {
    // Arrange
    let jitter = 10 * MIN;
    let h = Setup::new(HOUR, jitter).start(
        RecordingExecutor::default(),
        vec![device("r1"), device("r2"), device("r3")],
    );

    // Act
    h.advance_to(5 * HOUR).await;

    // Assert
    for name in ["r1", "r2", "r3"] {
        let calls = h.exec.calls(name);
        assert!(
            (5..=6).contains(&calls.len()),
            "{name}: {} runs",
            calls.len()
        );
        assert_within(calls[0], h.t0, jitter);
        for pair in calls.windows(2) {
            assert_eq!(pair[1] - pair[0], HOUR, "{name}: no drift");
        }
        let reports = h.sink.reports(name);
        assert_eq!(reports.len(), calls.len());
        for (report, at) in reports.iter().zip(&calls) {
            assert_eq!(report.status, AttemptStatus::Success);
            assert_eq!(report.trigger, Trigger::Scheduled);
            assert_eq!(report.at, h.clock.at(*at));
            assert_eq!(report.tenant_id.as_str(), "t1");
            assert_eq!(report.poller_id, "poller-1");
            assert_eq!(
                report.sha256_hash.as_deref(),
                Some("ab".repeat(32).as_str())
            );
            assert_eq!(
                (
                    report.error_kind,
                    report.next_attempt_at,
                    report.blocked_reason
                ),
                (None, None, None)
            );
        }
    }
}

#[tokio::test(start_paused = true)]
async fn first_runs_fall_within_the_jitter() {
    // Arrange
    let jitter = 5 * MIN;
    let names: Vec<String> = (0..20).map(|i| format!("r{i}")).collect();
    let devices = names.iter().map(|n| device(n)).collect();
    let h = Setup::new(6 * HOUR, jitter).start(RecordingExecutor::default(), devices);

    // Act
    h.advance_to(jitter + SEC).await;

    // Assert
    let mut firsts = Vec::new();
    for name in &names {
        let calls = h.exec.calls(name);
        assert_eq!(calls.len(), 1, "{name}");
        assert_within(calls[0], h.t0, jitter);
        firsts.push(calls[0]);
    }
    firsts.sort();
    firsts.dedup();
    assert!(firsts.len() > 1, "first runs are spread, not all at once");
}

#[tokio::test(start_paused = true)]
async fn a_device_interval_overrides_the_default() {
    // Arrange
    let fast = Device {
        interval: Some(15 * MIN),
        ..device("fast")
    };
    let h = Setup::new(HOUR, Duration::ZERO)
        .start(RecordingExecutor::default(), vec![device("slow"), fast]);

    // Act
    h.advance_to(HOUR - SEC).await;

    // Assert
    assert_eq!(h.offsets("slow"), [Duration::ZERO]);
    assert_eq!(
        h.offsets("fast"),
        [Duration::ZERO, 15 * MIN, 30 * MIN, 45 * MIN]
    );
}

#[tokio::test(start_paused = true)]
async fn a_run_is_skipped_when_another_node_succeeded_within_half_the_interval() {
    // Arrange: r1 succeeded elsewhere 10 min ago, r2 40 min ago (interval 1 h).
    let setup = Setup::new(HOUR, Duration::ZERO);
    let keep = 7 * 24 * HOUR;
    let now = setup.clock.now();
    let record = |name: &'static str, ago: i64| {
        let locker = setup.locker.clone();
        async move {
            locker
                .try_acquire(&id(name), keep)
                .await
                .expect("local locker")
                .expect("free")
                .release_after_success(now - TimeDelta::minutes(ago), keep, None)
                .await
                .expect("local locker");
        }
    };
    record("r1", 10).await;
    record("r2", 40).await;

    // Act
    let h = setup.start(
        RecordingExecutor::default(),
        vec![device("r1"), device("r2")],
    );
    h.advance_to(HOUR + SEC).await;

    // Assert: r1 waits one interval, then runs (its success is 70 min old).
    assert_eq!(h.offsets("r1"), [HOUR]);
    assert_eq!(h.offsets("r2"), [Duration::ZERO, HOUR]);
    assert_eq!(h.sink.reports("r1").len(), 1, "a skip is not reported");
}
