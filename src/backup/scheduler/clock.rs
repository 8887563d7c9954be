//! `WallClock`: turns the scheduler's tokio instants into the UTC timestamps
//! that reports and `last_success` use. Production reads the system clock;
//! tests on a paused tokio clock use a wall clock that follows tokio's time,
//! so timestamps are exact and deterministic.

use chrono::{DateTime, TimeDelta, Utc};
use tokio::time::Instant;

/// Maps tokio instants to UTC wall-clock time.
#[derive(Debug, Clone, Copy, Default)]
pub struct WallClock {
    /// `None`: the system clock. `Some((wall, instant))`: `wall` at `instant`,
    /// advancing with tokio's clock.
    anchor: Option<(DateTime<Utc>, Instant)>,
}

impl WallClock {
    /// The system clock (the default): `now()` is `Utc::now()`, and another
    /// instant is placed relative to it.
    pub fn system() -> Self {
        Self { anchor: None }
    }

    /// A wall clock that reads `Utc::now()` once and then advances with
    /// tokio's clock, for tests on a paused clock (`tokio::time::pause`).
    pub fn following_tokio() -> Self {
        Self {
            anchor: Some((Utc::now(), Instant::now())),
        }
    }

    /// The wall-clock time now.
    pub fn now(&self) -> DateTime<Utc> {
        self.at(Instant::now())
    }

    /// The wall-clock time of `instant` (past or future).
    pub fn at(&self, instant: Instant) -> DateTime<Utc> {
        let (wall, anchor) = self.anchor.unwrap_or_else(|| (Utc::now(), Instant::now()));
        if instant >= anchor {
            wall + delta(instant - anchor)
        } else {
            wall - delta(anchor - instant)
        }
    }
}

/// `std` to `chrono` duration; saturates (only absurd spans overflow).
fn delta(d: std::time::Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_tokio_following_clock_advances_with_paused_time() {
        // Arrange
        let clock = WallClock::following_tokio();
        let before = clock.now();

        // Act
        tokio::time::sleep(Duration::from_secs(3600)).await;

        // Assert
        assert_eq!(clock.now() - before, TimeDelta::hours(1));
        let later = Instant::now() + Duration::from_secs(60);
        assert_eq!(clock.at(later) - clock.now(), TimeDelta::minutes(1));
        let earlier = Instant::now() - Duration::from_secs(60);
        assert_eq!(clock.now() - clock.at(earlier), TimeDelta::minutes(1));
    }

    #[test]
    fn the_system_clock_places_future_instants_ahead_of_now() {
        let clock = WallClock::system();
        let ahead = clock.at(Instant::now() + Duration::from_secs(600));
        let diff = ahead - Utc::now();
        assert!(
            diff > TimeDelta::minutes(9) && diff <= TimeDelta::minutes(10),
            "{diff}"
        );
    }
}
