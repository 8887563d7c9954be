//! Tuning of an ingester ([`IngestOptions`]): backoff between deliveries,
//! batch size, lanes and the metrics it counts into. No behaviour of its own
//! beyond the backoff lookup.

use std::time::Duration;

use crate::metrics::Metrics;

/// Tuning of an ingester.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// Delay before redelivery after the n-th failed delivery (the last
    /// entry repeats).
    pub backoff: Vec<Duration>,
    /// Events a NATS ingester fetches ahead; small, so that fetched events
    /// do not wait past `ack_wait` behind a slow one.
    pub batch: usize,
    /// Events a NATS ingester stores at once, on separate database
    /// connections; each device's events keep their order (one lane per
    /// device). The database's commits, not the CPU, bound one lane.
    pub lanes: usize,
    /// Where ingest results are counted (`cfgsnap_ingest_total`).
    pub metrics: Option<Metrics>,
}

impl Default for IngestOptions {
    fn default() -> Self {
        let s = Duration::from_secs;
        Self {
            backoff: vec![s(1), s(5), s(30), s(60), s(120), s(300)],
            batch: 8,
            lanes: 8,
            metrics: None,
        }
    }
}

impl IngestOptions {
    /// The delay after the `delivered`-th delivery failed.
    pub fn delay(&self, delivered: i64) -> Duration {
        let i = usize::try_from(delivered.max(1) - 1).unwrap_or(usize::MAX);
        self.backoff
            .get(i)
            .or(self.backoff.last())
            .copied()
            .unwrap_or(Duration::from_secs(1))
    }
}
