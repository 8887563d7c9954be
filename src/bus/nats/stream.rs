//! Which JetStream stream carries the snapshot events ([`EventStream`],
//! DESIGN.md §3.2): the stream that already captures `{snapshot}.>`, used as
//! it is, or, when none does, `bus.stream`, which cfgsnap creates and
//! reconciles. Also judges whether a stream's limits can drop events before
//! they are ingested. It never updates or deletes a stream cfgsnap did not
//! create. Entry point: [`EventStream::resolve`].

use std::fmt;
use std::time::Duration;

use anyhow::anyhow;
use async_nats::jetstream::context::GetStreamByNameErrorKind;
use async_nats::jetstream::stream::{self, DiscardPolicy, RetentionPolicy, StorageType};
use async_nats::jetstream::{self as js};
use tracing::{info, warn};

use crate::bus::{Error, Result, Subjects};

/// How long cfgsnap's own stream keeps events, acknowledged or not; also
/// the age at which large-config objects expire if no ingester deleted them.
pub const STREAM_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// Window in which a republished `Nats-Msg-Id` is dropped by cfgsnap's own
/// stream.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(15 * 60);
/// A max age below this can expire events while every ingester is down
/// for a day (a weekend outage, a long migration).
pub const SAFE_MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// What cfgsnap writes into the description of the stream it creates; a
/// stream named `bus.stream` without it belongs to someone else.
const OWN_DESCRIPTION: &str = "cfgsnap snapshot events (DESIGN.md 3.2)";

/// The stream that carries the snapshot events, as found at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventStream {
    /// Its name: `bus.stream`, or whichever stream captured the subjects.
    pub name: String,
    /// Whether cfgsnap created it (and so may reconcile it).
    pub owned: bool,
    /// Its limits.
    pub limits: StreamLimits,
}

/// The limits of a stream that decide when it drops events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamLimits {
    /// Events older than this are dropped; zero: no limit.
    pub max_age: Duration,
    /// Byte cap; `-1` (or `0`): none.
    pub max_bytes: i64,
    /// Message cap; `-1` (or `0`): none.
    pub max_messages: i64,
    /// Whether reaching a cap drops the oldest events (rather than refusing
    /// new ones, which the publisher sees and retries).
    pub discard_old: bool,
}

impl StreamLimits {
    /// The limits of `config`.
    pub fn of(config: &stream::Config) -> StreamLimits {
        StreamLimits {
            max_age: config.max_age,
            max_bytes: config.max_bytes,
            max_messages: config.max_messages,
            discard_old: config.discard == DiscardPolicy::Old,
        }
    }

    /// Why these limits can drop events before an ingester has read them
    /// (a max age under [`SAFE_MAX_AGE`], or a byte or message cap that
    /// discards the oldest); `None` when they cannot.
    pub fn drop_risk(&self) -> Option<String> {
        let mut reasons = Vec::new();
        if !self.max_age.is_zero() && self.max_age < SAFE_MAX_AGE {
            reasons.push(format!(
                "max age {} is under a day",
                humantime::format_duration(self.max_age)
            ));
        }
        if self.discard_old && self.max_bytes > 0 {
            reasons.push(format!("max bytes {} with discard old", self.max_bytes));
        }
        if self.discard_old && self.max_messages > 0 {
            reasons.push(format!(
                "max messages {} with discard old",
                self.max_messages
            ));
        }
        (!reasons.is_empty()).then(|| reasons.join(", "))
    }
}

impl fmt::Display for StreamLimits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cap = |n: i64| if n > 0 { n.to_string() } else { "none".into() };
        let age = match self.max_age.is_zero() {
            true => "none".to_owned(),
            false => humantime::format_duration(self.max_age).to_string(),
        };
        write!(
            f,
            "max_age={age} max_bytes={} max_messages={} discard={}",
            cap(self.max_bytes),
            cap(self.max_messages),
            if self.discard_old { "old" } else { "new" }
        )
    }
}

/// Tries to create the node's own stream a few times: nats-server can
/// refuse a create for a moment (`error creating store for stream`, when
/// it is removing the account's stream directory because another client
/// deleted the last stream), and another process may create an
/// overlapping stream meanwhile, which is then used.
async fn create(js: &js::Context, subjects: &Subjects) -> Result<stream::Config> {
    const ATTEMPTS: u32 = 3;
    let mut attempt = 1;
    loop {
        let create = match js.create_stream(own_config(subjects)).await {
            Ok(created) => return Ok(created.cached_info().config.clone()),
            Err(create) => create,
        };
        if let Some(found) = find(js, subjects).await? {
            return Ok(found);
        }
        if attempt == ATTEMPTS {
            return Err(Error::Unavailable(
                anyhow!(create).context(format!("creating stream {}", subjects.stream)),
            ));
        }
        tokio::time::sleep(std::time::Duration::from_millis(100 * u64::from(attempt))).await;
        attempt += 1;
    }
}

impl EventStream {
    /// Finds the stream that captures `{snapshot}.>` and uses it as it is;
    /// only when none does, creates `bus.stream`. A stream cfgsnap created
    /// itself is reconciled with today's settings. Logs the stream's name
    /// and limits, and warns when they can drop events unread.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when JetStream does not answer, or refuses
    /// the stream (e.g. `bus.stream` names a stream on other subjects).
    pub async fn resolve(js: &js::Context, subjects: &Subjects) -> Result<EventStream> {
        let found = match find(js, subjects).await? {
            Some(found) => found,
            None => create(js, subjects).await?,
        };
        let owned = is_own(&found, subjects);
        let config = match owned {
            true => reconcile(js, subjects).await?,
            false => found,
        };
        let stream = EventStream {
            name: config.name.clone(),
            owned,
            limits: StreamLimits::of(&config),
        };
        stream.log();
        Ok(stream)
    }

    fn log(&self) {
        let limits = self.limits.to_string();
        match self.owned {
            true => {
                info!(stream = %self.name, limits = %limits, "snapshot events use cfgsnap's own stream")
            }
            false => {
                info!(stream = %self.name, limits = %limits, "snapshot events use an existing stream as it is (cfgsnap does not change it)")
            }
        }
        if let Some(risk) = self.limits.drop_risk() {
            warn!(stream = %self.name, risk = %risk, "the event stream's limits can drop snapshot events before they are ingested; give snapshots a stream of their own (README, Deployment)");
        }
    }
}

/// The configuration of the stream capturing `{snapshot}.>`, if one does.
async fn find(js: &js::Context, subjects: &Subjects) -> Result<Option<stream::Config>> {
    let name = match js.stream_by_subject(subjects.snapshot_all()).await {
        Ok(name) => name,
        Err(e) if e.kind() == GetStreamByNameErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Error::Unavailable(
                anyhow!(e).context("looking up the stream of the snapshot subjects"),
            ));
        }
    };
    let stream = js
        .get_stream(&name)
        .await
        .map_err(|e| Error::Unavailable(anyhow!(e).context(format!("reading stream {name}"))))?;
    Ok(Some(stream.cached_info().config.clone()))
}

/// Updates cfgsnap's own stream to today's settings.
async fn reconcile(js: &js::Context, subjects: &Subjects) -> Result<stream::Config> {
    js.update_stream(own_config(subjects))
        .await
        .map(|info| info.config)
        .map_err(|e| {
            Error::Unavailable(anyhow!(e).context(format!("updating stream {}", subjects.stream)))
        })
}

/// Created by cfgsnap: named `bus.stream` and described as cfgsnap's. The
/// name alone is not enough, or `bus.stream` could take over any stream.
fn is_own(config: &stream::Config, subjects: &Subjects) -> bool {
    config.name == subjects.stream && config.description.as_deref() == Some(OWN_DESCRIPTION)
}

/// The stream cfgsnap creates when no stream captures `{snapshot}.>`.
fn own_config(subjects: &Subjects) -> stream::Config {
    stream::Config {
        name: subjects.stream.clone(),
        description: Some(OWN_DESCRIPTION.into()),
        subjects: vec![subjects.snapshot_all()],
        retention: RetentionPolicy::Limits,
        storage: StorageType::File,
        max_age: STREAM_MAX_AGE,
        duplicate_window: DUPLICATE_WINDOW,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BusSettings;

    fn limits(max_age_h: u64, max_bytes: i64, discard: DiscardPolicy) -> StreamLimits {
        StreamLimits::of(&stream::Config {
            max_age: Duration::from_secs(max_age_h * 3600),
            max_bytes,
            max_messages: -1,
            discard,
            ..Default::default()
        })
    }

    #[test]
    fn cfgsnaps_own_stream_cannot_drop_events_unread() {
        let subjects = Subjects::new(&BusSettings::default()).expect("defaults are valid");
        assert_eq!(StreamLimits::of(&own_config(&subjects)).drop_risk(), None);
    }

    #[test]
    fn the_other_systems_stream_can_drop_events_unread() {
        let risk = limits(24, 64 << 20, DiscardPolicy::Old).drop_risk();
        let risk = risk.expect("a byte cap with discard old");
        assert!(risk.contains("max bytes 67108864"), "{risk}");
        assert!(!risk.contains("max age"), "a day is enough: {risk}");
    }

    #[test]
    fn a_max_age_under_a_day_or_an_old_discarding_cap_is_a_risk() {
        assert!(limits(23, -1, DiscardPolicy::New).drop_risk().is_some());
        assert!(limits(0, 1 << 30, DiscardPolicy::Old).drop_risk().is_some());
        assert_eq!(limits(0, 1 << 30, DiscardPolicy::New).drop_risk(), None);
        assert_eq!(limits(0, -1, DiscardPolicy::Old).drop_risk(), None);
    }

    #[test]
    fn bus_stream_names_only_a_stream_described_as_cfgsnaps() {
        let subjects = Subjects::new(&BusSettings::default()).expect("defaults are valid");
        assert!(is_own(&own_config(&subjects), &subjects));
        let foreign = stream::Config {
            name: subjects.stream.clone(),
            description: None,
            ..Default::default()
        };
        assert!(!is_own(&foreign, &subjects));
    }
}
