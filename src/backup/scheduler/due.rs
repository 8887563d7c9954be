//! Due-time arithmetic of the scheduler, pure: no I/O, no clock reads, no
//! randomness (the caller passes `now` and the random fraction). The first
//! run within the jitter, the next regular run without drift, the backoff
//! steps and the "another node just did it" test. `schedule.rs` combines them
//! per outcome; the async loop in `task.rs` only sleeps, runs and reports.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tokio::time::Instant;

/// Retry delays after consecutive transient failures: 5 min, 15 min, then 1 h
/// for every further failure (DESIGN.md §5).
pub(super) const BACKOFF_STEPS: [Duration; 3] = [
    Duration::from_secs(5 * 60),
    Duration::from_secs(15 * 60),
    Duration::from_secs(60 * 60),
];

/// How soon a device is tried again while the lock backend is down, or
/// while another run holds its lock (capped at the device's interval).
pub(super) const LOCK_RETRY_DELAY: Duration = Duration::from_secs(30);

/// The shortest interval honoured; a zero interval would spin.
pub(super) const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// When a newly scheduled device first runs: `now` plus `fraction` of
/// `jitter`, where `fraction` is uniform in `[0, 1]` (clamped; NaN is 0).
pub(super) fn first_due(now: Instant, jitter: Duration, fraction: f64) -> Instant {
    let fraction = if fraction.is_nan() {
        0.0
    } else {
        fraction.clamp(0.0, 1.0)
    };
    now + jitter.mul_f64(fraction)
}

/// The next regular run: one interval after the previous run's start, so the
/// run's duration does not shift the schedule. When a run outlasted whole
/// intervals, the missed slots are skipped instead of run back to back.
pub(super) fn next_regular(started: Instant, interval: Duration, now: Instant) -> Instant {
    let interval = interval.max(MIN_INTERVAL);
    let next = started + interval;
    if next > now {
        return next;
    }
    let step = interval.as_nanos();
    let slots = (now - started).as_nanos() / step + 1;
    let offset = u64::try_from(slots * step).unwrap_or(u64::MAX);
    started + Duration::from_nanos(offset)
}

/// The retry delay after the `failures`-th consecutive transient failure
/// (1-based), capped at the interval: a failing device is never tried less
/// often than a healthy one.
pub(super) fn backoff(failures: u32, interval: Duration) -> Duration {
    let index = usize::try_from(failures.saturating_sub(1)).unwrap_or(usize::MAX);
    let step = BACKOFF_STEPS[index.min(BACKOFF_STEPS.len() - 1)];
    step.min(interval.max(MIN_INTERVAL))
}

/// True when the device's last success (by any node) is younger than half
/// its interval, so this run is skipped. A success stamped in the future
/// (clock skew between nodes) counts as recent.
pub(super) fn recently_succeeded(
    last_success: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    interval: Duration,
) -> bool {
    let half = TimeDelta::from_std(interval.max(MIN_INTERVAL) / 2).unwrap_or(TimeDelta::MAX);
    last_success.is_some_and(|at| now - at < half)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);
    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn the_first_run_falls_within_the_jitter() {
        let now = Instant::now();
        let jitter = 5 * MIN;
        assert_eq!(first_due(now, jitter, 0.0), now);
        assert_eq!(
            first_due(now, jitter, 0.5),
            now + 150 * Duration::from_secs(1)
        );
        assert_eq!(first_due(now, jitter, 1.0), now + jitter);
    }

    #[test]
    fn an_out_of_range_fraction_is_clamped_into_the_jitter() {
        let now = Instant::now();
        assert_eq!(first_due(now, MIN, -1.0), now);
        assert_eq!(first_due(now, MIN, 7.0), now + MIN);
        assert_eq!(first_due(now, MIN, f64::NAN), now);
        assert_eq!(first_due(now, Duration::ZERO, 0.7), now);
    }

    #[test]
    fn the_next_run_is_one_interval_after_the_previous_start() {
        let started = Instant::now();
        // A run of 10 minutes does not push the next one back.
        assert_eq!(
            next_regular(started, HOUR, started + 10 * MIN),
            started + HOUR
        );
    }

    #[test]
    fn a_run_longer_than_its_interval_skips_the_missed_slots() {
        let started = Instant::now();
        let next = next_regular(started, HOUR, started + 150 * MIN);
        assert_eq!(next, started + 3 * HOUR);
        // Ending exactly on a slot boundary moves to the following slot.
        assert_eq!(
            next_regular(started, HOUR, started + HOUR),
            started + 2 * HOUR
        );
    }

    #[test]
    fn backoff_steps_are_5_then_15_minutes_then_hourly() {
        let steps: Vec<_> = (1..=5).map(|n| backoff(n, 6 * HOUR)).collect();
        assert_eq!(steps, [5 * MIN, 15 * MIN, HOUR, HOUR, HOUR]);
    }

    #[test]
    fn backoff_is_capped_at_a_shorter_interval() {
        let steps: Vec<_> = (1..=3).map(|n| backoff(n, 10 * MIN)).collect();
        assert_eq!(steps, [5 * MIN, 10 * MIN, 10 * MIN]);
    }

    #[test]
    fn a_success_younger_than_half_the_interval_is_recent() {
        let now = Utc::now();
        let ago = |m: i64| Some(now - TimeDelta::minutes(m));
        assert!(recently_succeeded(ago(29), now, HOUR));
        assert!(!recently_succeeded(ago(30), now, HOUR));
        assert!(!recently_succeeded(ago(90), now, HOUR));
        assert!(!recently_succeeded(None, now, HOUR));
        assert!(
            recently_succeeded(ago(-5), now, HOUR),
            "future = skew = recent"
        );
    }
}
