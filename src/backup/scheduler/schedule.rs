//! One device's scheduling state machine, pure: given what happened to an
//! attempt (an [`Event`]) and when, it updates the consecutive failures and
//! the block, and decides the next due time and the report's fields. The
//! time arithmetic lives in `due.rs`; the task loop in `task.rs` applies it.

use std::time::Duration;

use tokio::time::Instant;

use super::due::{LOCK_RETRY_DELAY, MIN_INTERVAL, backoff, next_regular};
use crate::backup::{AttemptStatus, Error, ErrorKind, Outcome, Result};

/// What happened when a device came due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Event {
    /// The backup succeeded.
    Success,
    /// Another run (another node, or a manual trigger) holds the device lock.
    Locked,
    /// The backup failed with this kind.
    Failed(ErrorKind),
    /// The lock backend did not answer (the executor's lock or the
    /// `last_success` read): nothing ran, fail closed.
    LockBackendDown,
    /// Another node succeeded within half the interval: skipped.
    RecentSuccess,
    /// The node shut down mid-backup: nothing to report, nothing more to run.
    Cancelled,
}

impl Event {
    /// Classifies an executor result.
    pub(super) fn of(result: &Result<Outcome>) -> Event {
        match result {
            Ok(_) => Event::Success,
            Err(Error::LockHeld) => Event::Locked,
            Err(Error::Cancelled) => Event::Cancelled,
            Err(e) if e.kind() == ErrorKind::LockUnavailable => Event::LockBackendDown,
            Err(e) => Event::Failed(e.kind()),
        }
    }
}

/// The fields of an attempt's report that the schedule decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Verdict {
    /// `success`, `failed` or `locked`.
    pub(super) status: AttemptStatus,
    /// The kind of a failure.
    pub(super) error_kind: Option<ErrorKind>,
    /// The backoff retry after a transient failure.
    pub(super) next_attempt_at: Option<Instant>,
    /// Set when the failure blocks scheduled runs.
    pub(super) blocked_reason: Option<ErrorKind>,
}

impl Verdict {
    fn new(status: AttemptStatus) -> Self {
        Self {
            status,
            error_kind: None,
            next_attempt_at: None,
            blocked_reason: None,
        }
    }

    fn failed(kind: ErrorKind) -> Self {
        Self {
            error_kind: Some(kind),
            ..Self::new(AttemptStatus::Failed)
        }
    }
}

/// What follows an event: the next due time (`None` while blocked) and the
/// report to send (`None` when nothing was attempted on the device).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Decision {
    /// When the device runs next.
    pub(super) next_due: Option<Instant>,
    /// What to report.
    pub(super) report: Option<Verdict>,
}

/// One device's scheduling state: its interval, consecutive transient
/// failures and whether scheduled runs are blocked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct DeviceSchedule {
    interval: Duration,
    failures: u32,
    blocked: Option<ErrorKind>,
}

impl DeviceSchedule {
    /// A fresh, unblocked schedule (at least [`MIN_INTERVAL`]).
    pub(super) fn new(interval: Duration) -> Self {
        Self {
            interval: interval.max(MIN_INTERVAL),
            failures: 0,
            blocked: None,
        }
    }

    /// The device's interval.
    pub(super) fn interval(&self) -> Duration {
        self.interval
    }

    /// Consecutive transient failures since the last success.
    #[cfg(test)]
    pub(super) fn failures(&self) -> u32 {
        self.failures
    }

    /// Why scheduled runs are blocked, if they are.
    #[cfg(test)]
    pub(super) fn blocked(&self) -> Option<ErrorKind> {
        self.blocked
    }

    /// Applies the event of an attempt that started at `started` and ended at
    /// `now`.
    pub(super) fn after(&mut self, event: Event, started: Instant, now: Instant) -> Decision {
        let regular = next_regular(started, self.interval, now);
        let (next_due, report) = match event {
            Event::Success => {
                self.failures = 0;
                self.blocked = None;
                (Some(regular), Some(Verdict::new(AttemptStatus::Success)))
            }
            Event::RecentSuccess => {
                // Another node backed the device up: it is healthy.
                self.failures = 0;
                (Some(regular), None)
            }
            // The holder may be another node's live run, or a dead process
            // whose lock lapses at its TTL: look again soon. If the holder
            // succeeded, the recent-success check then skips the device.
            Event::Locked => (
                Some(now + LOCK_RETRY_DELAY.min(self.interval)),
                Some(Verdict::new(AttemptStatus::Locked)),
            ),
            Event::Cancelled => (None, None),
            Event::LockBackendDown | Event::Failed(ErrorKind::LockUnavailable) => {
                (Some(now + LOCK_RETRY_DELAY.min(self.interval)), None)
            }
            Event::Failed(kind @ (ErrorKind::AuthFailed | ErrorKind::HostkeyMismatch)) => {
                self.failures = self.failures.saturating_add(1);
                self.blocked = Some(kind);
                let verdict = Verdict {
                    blocked_reason: Some(kind),
                    ..Verdict::failed(kind)
                };
                (None, Some(verdict))
            }
            Event::Failed(kind) => {
                self.failures = self.failures.saturating_add(1);
                let retry = now + backoff(self.failures, self.interval);
                let verdict = Verdict {
                    next_attempt_at: Some(retry),
                    ..Verdict::failed(kind)
                };
                (Some(retry), Some(verdict))
            }
        };
        Decision { next_due, report }
    }

    /// Lifts a block (an admin reset the host key): the device runs at
    /// `now`. Returns `None`, changing nothing, when it was not blocked.
    pub(super) fn unblock(&mut self, now: Instant) -> Option<Instant> {
        self.blocked.take().map(|_| {
            self.failures = 0;
            now
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);
    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn executor_results_are_classified() {
        let unreachable = Error::DeviceUnreachable {
            reason: "connection refused".into(),
            source: None,
        };
        let down = Error::LockUnavailable(anyhow::anyhow!("refused"));
        assert_eq!(Event::of(&Err(Error::LockHeld)), Event::Locked);
        assert_eq!(Event::of(&Err(Error::Cancelled)), Event::Cancelled);
        assert_eq!(Event::of(&Err(down)), Event::LockBackendDown);
        assert_eq!(
            Event::of(&Err(unreachable)),
            Event::Failed(ErrorKind::Unreachable)
        );
    }

    #[test]
    fn transient_failures_back_off_and_a_success_resets_them() {
        // Arrange
        let mut s = DeviceSchedule::new(6 * HOUR);
        let t0 = Instant::now();
        let fail = Event::Failed(ErrorKind::Timeout);

        // Act
        let first = s.after(fail, t0, t0 + MIN);
        let second = s.after(fail, t0 + 6 * MIN, t0 + 7 * MIN);
        let ok = s.after(Event::Success, t0 + 22 * MIN, t0 + 23 * MIN);

        // Assert
        assert_eq!(first.next_due, Some(t0 + 6 * MIN));
        let verdict = first.report.expect("a failure is reported");
        assert_eq!(verdict.status, AttemptStatus::Failed);
        assert_eq!(verdict.error_kind, Some(ErrorKind::Timeout));
        assert_eq!(verdict.next_attempt_at, Some(t0 + 6 * MIN));
        assert_eq!(verdict.blocked_reason, None);
        assert_eq!(second.next_due, Some(t0 + 22 * MIN));
        assert_eq!(ok.next_due, Some(t0 + 22 * MIN + 6 * HOUR));
        assert_eq!(s.failures(), 0);
        let verdict = ok.report.expect("a success is reported");
        assert_eq!(verdict.status, AttemptStatus::Success);
        assert_eq!(verdict.next_attempt_at, None);
    }

    #[test]
    fn auth_and_host_key_failures_block_until_unblocked() {
        for kind in [ErrorKind::AuthFailed, ErrorKind::HostkeyMismatch] {
            // Arrange
            let mut s = DeviceSchedule::new(HOUR);
            let t0 = Instant::now();

            // Act
            let d = s.after(Event::Failed(kind), t0, t0);

            // Assert
            assert_eq!(d.next_due, None);
            let verdict = d.report.expect("reported");
            assert_eq!(verdict.blocked_reason, Some(kind));
            assert_eq!(verdict.next_attempt_at, None);
            assert_eq!(s.blocked(), Some(kind));
            assert_eq!(s.unblock(t0 + MIN), Some(t0 + MIN));
            assert_eq!((s.blocked(), s.failures()), (None, 0));
        }
    }

    #[test]
    fn unblocking_an_unblocked_device_changes_nothing() {
        let mut s = DeviceSchedule::new(HOUR);
        assert_eq!(s.unblock(Instant::now()), None);
    }

    #[test]
    fn a_held_lock_is_tried_again_soon_without_counting() {
        let mut s = DeviceSchedule::new(HOUR);
        let t0 = Instant::now();
        s.after(Event::Failed(ErrorKind::Unreachable), t0, t0);
        let d = s.after(Event::Locked, t0 + 5 * MIN, t0 + 5 * MIN);
        assert_eq!(d.next_due, Some(t0 + 5 * MIN + Duration::from_secs(30)));
        assert_eq!(d.report.map(|v| v.status), Some(AttemptStatus::Locked));
        assert_eq!(s.failures(), 1);
    }

    #[test]
    fn a_down_lock_backend_retries_soon_unreported_and_uncounted() {
        let mut s = DeviceSchedule::new(HOUR);
        let t0 = Instant::now();
        let d = s.after(Event::LockBackendDown, t0, t0 + Duration::from_secs(2));
        assert_eq!(d.next_due, Some(t0 + Duration::from_secs(32)));
        assert_eq!(d.report, None);
        assert_eq!(s.failures(), 0);
    }

    #[test]
    fn a_recent_success_elsewhere_skips_one_interval_and_clears_failures() {
        let mut s = DeviceSchedule::new(HOUR);
        let t0 = Instant::now();
        s.after(Event::Failed(ErrorKind::Unreachable), t0, t0);
        let d = s.after(Event::RecentSuccess, t0 + 5 * MIN, t0 + 5 * MIN);
        assert_eq!(d.next_due, Some(t0 + 65 * MIN));
        assert_eq!(d.report, None);
        assert_eq!(s.failures(), 0);
    }
}
