//! Times as pages show them: [`Stamp`] holds the exact UTC time (for the
//! `datetime` and `title` attributes, which `assets/app.js` turns into the
//! browser's time zone) and a relative text ("5 min ago") for reading.

use chrono::{DateTime, Utc};

/// A point in time, ready for a `<time>` element.
#[derive(Debug, Clone)]
pub struct Stamp {
    /// RFC 3339 UTC, for `datetime`.
    pub iso: String,
    /// `2026-12-06 02:14:00 UTC`, for `title` (without JavaScript).
    pub exact: String,
    /// `5 min ago`.
    pub relative: String,
}

impl Stamp {
    /// The stamp of `at`, relative to `now`.
    pub fn new(at: DateTime<Utc>, now: DateTime<Utc>) -> Stamp {
        Stamp {
            iso: at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            exact: at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
            relative: relative(at, now),
        }
    }

    /// The stamp of `at` relative to the current time, if any.
    pub fn of(at: Option<DateTime<Utc>>) -> Option<Stamp> {
        at.map(|at| Stamp::new(at, Utc::now()))
    }
}

/// "just now", "42 s ago", "5 min ago", "3 h ago", "12 days ago", or the
/// date for anything older than a year (and "in …" for the future).
pub fn relative(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (now - at).num_seconds();
    let (n, future) = (secs.unsigned_abs(), secs < 0);
    let text = match n {
        0..=4 => return "just now".to_owned(),
        5..=59 => format!("{n} s"),
        60..=3_599 => format!("{} min", n / 60),
        3_600..=86_399 => format!("{} h", n / 3_600),
        86_400..=31_535_999 => match n / 86_400 {
            1 => "1 day".to_owned(),
            d => format!("{d} days"),
        },
        _ => return at.format("%Y-%m-%d").to_string(),
    };
    if future {
        format!("in {text}")
    } else {
        format!("{text} ago")
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;

    #[test]
    fn relative_times_read_naturally() {
        let now = Utc
            .with_ymd_and_hms(2026, 12, 6, 12, 0, 0)
            .single()
            .expect("valid");
        let ago = |s| relative(now - chrono::Duration::seconds(s), now);
        assert_eq!(ago(2), "just now");
        assert_eq!(ago(42), "42 s ago");
        assert_eq!(ago(300), "5 min ago");
        assert_eq!(ago(3 * 3600 + 5), "3 h ago");
        assert_eq!(ago(86_400), "1 day ago");
        assert_eq!(ago(12 * 86_400), "12 days ago");
        assert_eq!(ago(400 * 86_400), "2025-11-01");
        assert_eq!(ago(-120), "in 2 min");
    }
}
