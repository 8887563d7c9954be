//! Prometheus metrics: one [`Registry`] behind a cheap-to-clone [`Metrics`]
//! handle that `backup`, `bus` and `api` record into and `GET /metrics`
//! encodes. Top-level (not under `api`) so that recording never needs the
//! HTTP layer.
//!
//! Label values come from closed sets (results, error kinds, HTTP statuses,
//! route patterns), never from ids or raw paths, so the series stay few.

use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// What ingest did with a snapshot event (`cfgsnap_ingest_total{result}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestResult {
    /// A new snapshot was stored.
    Created,
    /// Same hash as the newest snapshot: nothing stored.
    Duplicate,
    /// Older than the newest snapshot: recorded, not stored.
    Stale,
    /// Malformed or poison: terminated and audited.
    Rejected,
    /// A transient failure: the event is retried.
    Retry,
}

impl IngestResult {
    /// The label value, e.g. `created`.
    pub fn as_str(self) -> &'static str {
        match self {
            IngestResult::Created => "created",
            IngestResult::Duplicate => "duplicate",
            IngestResult::Stale => "stale",
            IngestResult::Rejected => "rejected",
            IngestResult::Retry => "retry",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NotifyLabels {
    kind: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Debug)]
struct Inner {
    registry: Registry,
    backups: Family<ResultLabels, Counter>,
    backup_duration: Histogram,
    backups_in_flight: Gauge,
    ingest: Family<ResultLabels, Counter>,
    unchanged_batches: Counter,
    unchanged_confirmed: Counter,
    stream_drop_risk: Gauge,
    trigger_responses: Family<StatusLabels, Counter>,
    http_requests: Family<HttpLabels, Counter>,
    notifications: Family<NotifyLabels, Counter>,
    notifications_pending: Gauge,
    notifications_oldest: Gauge,
}

/// The process's metrics. Clones share one registry.
#[derive(Clone, Debug)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every cfgsnap metric registered (at zero).
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let backups = Family::<ResultLabels, Counter>::default();
        registry.register(
            "cfgsnap_backups",
            "Backup attempts by result: success, locked or the error_kind",
            backups.clone(),
        );
        // 50 ms … ~7 min: a loopback simulator to a slow router at the job limit.
        let backup_duration = Histogram::new(exponential_buckets(0.05, 2.0, 14));
        registry.register_with_unit(
            "cfgsnap_backup_duration",
            "Wall time of backup attempts",
            Unit::Seconds,
            backup_duration.clone(),
        );
        let backups_in_flight = Gauge::default();
        registry.register(
            "cfgsnap_backups_in_flight",
            "Backups running on this node",
            backups_in_flight.clone(),
        );
        let ingest = Family::<ResultLabels, Counter>::default();
        registry.register(
            "cfgsnap_ingest",
            "Snapshot events by ingest result",
            ingest.clone(),
        );
        let unchanged_batches = Counter::default();
        registry.register(
            "cfgsnap_ingest_unchanged_batches",
            "Transactions that recorded unchanged snapshot events (duplicates per batch = cfgsnap_ingest_total{result=\"duplicate\"} / this)",
            unchanged_batches.clone(),
        );
        let unchanged_confirmed = Counter::default();
        registry.register(
            "cfgsnap_backups_unchanged_confirmed",
            "Successful backups of this node whose export the store confirmed unchanged without the text crossing the event stream (unchanged claims; compare with cfgsnap_backups_total{result=\"success\"})",
            unchanged_confirmed.clone(),
        );
        let stream_drop_risk = Gauge::default();
        registry.register(
            "cfgsnap_bus_stream_drop_risk",
            "1 when the snapshot event stream's limits (max age under a day, or a byte or message cap with discard old) can drop events before they are ingested",
            stream_drop_risk.clone(),
        );
        let trigger_responses = Family::<StatusLabels, Counter>::default();
        registry.register(
            "cfgsnap_trigger_responses",
            "HTTP trigger responses by status",
            trigger_responses.clone(),
        );
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "cfgsnap_http_requests",
            "HTTP requests by method, route pattern and status",
            http_requests.clone(),
        );
        let notifications = Family::<NotifyLabels, Counter>::default();
        registry.register(
            "cfgsnap_notifications",
            "Notification delivery attempts by target kind and result (delivered, retry, failed, gone, deferred, released)",
            notifications.clone(),
        );
        let notifications_pending = Gauge::default();
        registry.register(
            "cfgsnap_notifications_pending",
            "Notifications queued and not yet delivered or failed (at the last check)",
            notifications_pending.clone(),
        );
        let notifications_oldest = Gauge::default();
        registry.register_with_unit(
            "cfgsnap_notifications_oldest_pending_age",
            "Age of the oldest pending notification (at the last check)",
            Unit::Seconds,
            notifications_oldest.clone(),
        );
        Self {
            inner: Arc::new(Inner {
                registry,
                backups,
                backup_duration,
                backups_in_flight,
                ingest,
                unchanged_batches,
                unchanged_confirmed,
                stream_drop_risk,
                trigger_responses,
                http_requests,
                notifications,
                notifications_pending,
                notifications_oldest,
            }),
        }
    }

    /// Counts a backup as running until the returned guard is dropped.
    pub fn backup_started(&self) -> InFlightGuard {
        self.inner.backups_in_flight.inc();
        InFlightGuard {
            gauge: self.inner.backups_in_flight.clone(),
            started: Instant::now(),
        }
    }

    /// Records a finished backup attempt. `result` is `success`, `locked` or
    /// an `ErrorKind::as_str()` (a `'static` name, which keeps the label set
    /// closed).
    pub fn backup_finished(&self, result: &'static str, duration: Duration) {
        self.inner
            .backups
            .get_or_create(&ResultLabels { result })
            .inc();
        self.inner.backup_duration.observe(duration.as_secs_f64());
    }

    /// Records what ingest did with one snapshot event.
    pub fn ingest(&self, result: IngestResult) {
        self.inner
            .ingest
            .get_or_create(&ResultLabels {
                result: result.as_str(),
            })
            .inc();
    }

    /// Counts a backup whose unchanged export the store confirmed without
    /// its text.
    pub fn unchanged_confirmed(&self) {
        self.inner.unchanged_confirmed.inc();
    }

    /// Counts a committed batch of unchanged events.
    pub fn unchanged_batch(&self) {
        self.inner.unchanged_batches.inc();
    }

    /// Records whether the event stream's limits can drop events before
    /// they are ingested (`cfgsnap_bus_stream_drop_risk`).
    pub fn stream_drop_risk(&self, at_risk: bool) {
        self.inner.stream_drop_risk.set(i64::from(at_risk));
    }

    /// Counts a notification delivery attempt of a target `kind` by `result`.
    pub fn notification(&self, kind: &'static str, result: &'static str) {
        self.inner
            .notifications
            .get_or_create(&NotifyLabels { kind, result })
            .inc();
    }

    /// Records the outbox's depth and the age of its oldest pending row.
    pub fn notification_queue(&self, pending: i64, oldest: Duration) {
        self.inner.notifications_pending.set(pending);
        let secs = i64::try_from(oldest.as_secs()).unwrap_or(i64::MAX);
        self.inner.notifications_oldest.set(secs);
    }

    /// Records the HTTP status of a trigger response.
    pub fn trigger_response(&self, status: u16) {
        self.inner
            .trigger_responses
            .get_or_create(&StatusLabels { status })
            .inc();
    }

    /// Records an HTTP request by method, route pattern (e.g.
    /// `/api/tenants/{tid}/devices`, never the raw path) and status.
    pub fn http_request(&self, method: &str, route: &str, status: u16) {
        self.inner
            .http_requests
            .get_or_create(&HttpLabels {
                method: method.to_owned(),
                route: route.to_owned(),
                status,
            })
            .inc();
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        prometheus_client::encoding::text::encode(&mut out, &self.inner.registry)
            .expect("BUG: encoding metrics into a String failed");
        out
    }
}

/// A running backup; dropping it lowers `cfgsnap_backups_in_flight`.
#[derive(Debug)]
#[must_use = "the backup counts as running only while the guard lives"]
pub struct InFlightGuard {
    gauge: Gauge,
    started: Instant,
}

impl InFlightGuard {
    /// Time since [`Metrics::backup_started`].
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_every_family_with_its_labels() {
        let m = Metrics::new();
        {
            let guard = m.backup_started();
            assert!(m.encode().contains("cfgsnap_backups_in_flight 1"));
            m.backup_finished("success", guard.elapsed());
        }
        m.backup_finished("auth_failed", Duration::from_millis(20));
        m.ingest(IngestResult::Duplicate);
        m.trigger_response(409);
        m.stream_drop_risk(true);
        m.http_request("GET", "/api/tenants/{tid}/devices", 200);

        let text = m.encode();
        assert!(text.contains("cfgsnap_backups_in_flight 0"), "{text}");
        assert!(text.contains(r#"cfgsnap_backups_total{result="success"} 1"#));
        assert!(text.contains(r#"cfgsnap_backups_total{result="auth_failed"} 1"#));
        assert!(text.contains("cfgsnap_backup_duration_seconds_count 2"));
        assert!(text.contains(r#"cfgsnap_ingest_total{result="duplicate"} 1"#));
        assert!(text.contains(r#"cfgsnap_trigger_responses_total{status="409"} 1"#));
        assert!(text.contains("cfgsnap_bus_stream_drop_risk 1"), "{text}");
        assert!(text.contains(
            r#"cfgsnap_http_requests_total{method="GET",route="/api/tenants/{tid}/devices",status="200"} 1"#
        ));
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn clones_share_the_registry() {
        let a = Metrics::new();
        let b = a.clone();
        b.ingest(IngestResult::Created);
        assert!(
            a.encode()
                .contains(r#"cfgsnap_ingest_total{result="created"} 1"#)
        );
    }
}
