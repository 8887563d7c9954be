//! The decision about one snapshot event ([`Ingester::process`]): parse,
//! check the subject against the payload (`{snapshot}.create.{tenant}.{device}`,
//! or `{snapshot}.create.{device}` as the other system's pollers publish),
//! resolve the text (plain, gzip, object store), [`Store::ingest`] (which
//! checks that the tenant owns the device), and the audit row of a rejected
//! event. Never acks: the loops in `pull` and `queue` act on the [`Verdict`].

use serde_json::json;
use tracing::warn;

use super::IngestOptions;
use super::unchanged::{Batcher, Unchanged};
use crate::bus::Bus;
use crate::bus::codec;
use crate::bus::wire::{self, ConfigRef, ContentEncoding, SnapshotEvent};
use crate::id::{DeviceId, TenantId};
use crate::metrics::IngestResult;
use crate::store::audit::Action;
use crate::store::snapshot::{Ingested, NewSnapshot};
use crate::store::{self, Store};
use crate::telemetry::spawn_blocking_with_tracing;

/// Audit tenant of a rejected event whose tenant is unknown.
pub const UNKNOWN_TENANT: &str = "_unknown";

/// An event as received.
pub(crate) enum Payload<'a> {
    Json(&'a [u8]),
    Event(Box<SnapshotEvent>),
}

/// What to do with an event.
pub(crate) enum Verdict {
    /// Stored (or a duplicate/stale of what is stored): ack.
    Done {
        ingested: Ingested,
        reference: Option<ConfigRef>,
    },
    /// Can never be stored: terminate and audit.
    Reject(String),
    /// Failed now; `transient` when the store said so.
    Retry { reason: String, transient: bool },
}

/// An event parsed and resolved, ready to store.
pub(crate) struct Prepared {
    pub(crate) snap: NewSnapshot,
    reference: Option<ConfigRef>,
    meta: Meta,
}

/// The event's identity, for logs and audit rows.
#[derive(Default)]
pub(crate) struct Meta {
    tenant_id: Option<TenantId>,
    device_id: Option<String>,
    sha256_hash: Option<String>,
    collected_at: Option<String>,
}

/// Shared state of one ingester's loops.
#[derive(Clone)]
pub(crate) struct Ingester {
    pub(crate) bus: Bus,
    pub(crate) store: Store,
    pub(crate) options: IngestOptions,
    /// Where probably unchanged events are recorded, many per transaction.
    pub(crate) unchanged: Batcher,
}

impl Ingester {
    /// Decides about one delivery (and counts the verdict in the metrics);
    /// never acks itself.
    pub(crate) async fn process(&self, subject: &str, payload: Payload<'_>) -> (Verdict, Meta) {
        match self.prepare(subject, payload).await {
            Ok(prepared) => self.store_prepared(prepared).await,
            Err((verdict, meta)) => self.counted(verdict, meta),
        }
    }

    /// The first half of [`process`](Self::process): parse, check the
    /// subject, resolve the text. An event that is already decided (rejected
    /// or to retry) comes back as `Err` with its verdict, counted.
    pub(crate) async fn prepare(
        &self,
        subject: &str,
        payload: Payload<'_>,
    ) -> Result<Prepared, (Verdict, Meta)> {
        let event = match payload {
            Payload::Event(event) => *event,
            Payload::Json(bytes) => match wire::from_json::<SnapshotEvent>(bytes) {
                Ok(event) => event,
                Err(reason) => {
                    let verdict = Verdict::Reject(format!("malformed event: {reason}"));
                    return Err(self.counted(verdict, Meta::default()));
                }
            },
        };
        let meta = Meta {
            tenant_id: Some(event.tenant_id.clone()),
            device_id: Some(event.device_id.to_string()),
            sha256_hash: Some(event.sha256_hash.clone()),
            collected_at: Some(wire::rfc3339(&event.collected_at)),
        };
        let subjects = self.bus.subjects();
        // The four-token form carries no tenant: the payload's must own the
        // device, which `Store::ingest` checks like any other event's.
        let matches = subject == subjects.snapshot_create(&event.tenant_id, &event.device_id)
            || subject == subjects.snapshot_create_device(&event.device_id);
        if !matches {
            let reason = "subject does not match the event's tenant_id and device_id".to_owned();
            return Err(self.counted(Verdict::Reject(reason), meta));
        }
        match self.resolve(event).await {
            Ok((snap, reference)) => Ok(Prepared {
                snap,
                reference,
                meta,
            }),
            Err(verdict) => Err(self.counted(verdict, meta)),
        }
    }

    /// The second half of [`process`](Self::process): store the prepared
    /// event (counted in the metrics).
    pub(crate) async fn store_prepared(&self, prepared: Prepared) -> (Verdict, Meta) {
        let Prepared {
            snap,
            reference,
            meta,
        } = prepared;
        let verdict = self.store_snapshot(snap, reference).await;
        self.counted(verdict, meta)
    }

    fn counted(&self, verdict: Verdict, meta: Meta) -> (Verdict, Meta) {
        if let Some(metrics) = &self.options.metrics {
            metrics.ingest(match &verdict {
                Verdict::Done {
                    ingested: Ingested::Created { .. },
                    ..
                } => IngestResult::Created,
                Verdict::Done {
                    ingested: Ingested::Duplicate { .. },
                    ..
                } => IngestResult::Duplicate,
                Verdict::Done {
                    ingested: Ingested::Stale { .. },
                    ..
                } => IngestResult::Stale,
                Verdict::Reject(_) => IngestResult::Rejected,
                Verdict::Retry { .. } => IngestResult::Retry,
            });
        }
        (verdict, meta)
    }

    /// The event's text, whichever way it came, as the snapshot to store.
    async fn resolve(
        &self,
        mut event: SnapshotEvent,
    ) -> Result<(NewSnapshot, Option<ConfigRef>), Verdict> {
        let reference = event.config_ref.clone();
        let text = match event.encoding() {
            None => {
                let reason = "exactly one of config_text, config_text_gzip, config_ref must be set";
                return Err(Verdict::Reject(reason.to_owned()));
            }
            Some(ContentEncoding::Plain) => Ok(event.config_text.take().unwrap_or_default()),
            Some(ContentEncoding::Gzip) => {
                let b64 = event.config_text_gzip.take().unwrap_or_default();
                match spawn_blocking_with_tracing(move || codec::decode_gzip_base64(&b64)).await {
                    Ok(decoded) => decoded,
                    Err(e) => return Err(retry(format!("decompressing: {e}"), false)),
                }
            }
            Some(ContentEncoding::ObjectStore) => match (&self.bus, &reference) {
                (Bus::Nats(nats), Some(r)) => match nats.objects.fetch_config(r).await {
                    Ok(resolved) => resolved,
                    Err(e) => return Err(retry(error_chain(&e), false)),
                },
                _ => Err("config_ref is not supported on the local bus".to_owned()),
            },
        };
        match text {
            // Checked here, not only by `Store::ingest`: an event recorded
            // as a duplicate skips that check, and only claims come textless.
            Ok(text) if text.trim().is_empty() => {
                Err(Verdict::Reject("config_text is empty".to_owned()))
            }
            Ok(text) => Ok((event.to_new_snapshot(text), reference)),
            Err(reason) => Err(Verdict::Reject(reason)),
        }
    }

    async fn store_snapshot(&self, snap: NewSnapshot, reference: Option<ConfigRef>) -> Verdict {
        // The common case first: the device's newest hash again. Recorded
        // with others in one transaction; the full path below only for what
        // turns out not to be a duplicate.
        let snap = match self.is_probably_unchanged(&snap) {
            true => match self.unchanged.record(snap).await {
                Unchanged::Recorded(ingested) => {
                    return Verdict::Done {
                        ingested,
                        reference,
                    };
                }
                Unchanged::Changed(snap) => snap,
                Unchanged::Failed { reason, transient } => {
                    return Verdict::Retry { reason, transient };
                }
            },
            false => snap,
        };
        match self.store.ingest(&snap).await {
            Ok(ingested) => Verdict::Done {
                ingested,
                reference,
            },
            Err(store::Error::InvalidSnapshot(reason)) => Verdict::Reject(reason),
            Err(e) => Verdict::Retry {
                reason: error_chain(&e),
                transient: e.is_transient(),
            },
        }
    }

    /// Whether `snap` carries its device's newest hash as this node knows it.
    pub(crate) fn is_probably_unchanged(&self, snap: &NewSnapshot) -> bool {
        self.store
            .is_probably_unchanged(snap.device_id.as_str(), &snap.sha256_hash)
    }

    /// Audits a rejected (or given-up) event: tenant from the payload, else
    /// from the subject, else [`UNKNOWN_TENANT`].
    pub(crate) async fn audit_rejected(
        &self,
        subject: &str,
        meta: &Meta,
        reason: &str,
        delivered: i64,
    ) {
        let from_subject = self.bus.subjects().parse_snapshot_create(subject);
        let tenant = meta
            .tenant_id
            .as_ref()
            .map(ToString::to_string)
            .or_else(|| {
                from_subject
                    .and_then(|(t, _)| TenantId::parse(t).ok())
                    .map(|t| t.to_string())
            })
            .unwrap_or_else(|| UNKNOWN_TENANT.to_owned());
        let device = meta.device_id.clone().or_else(|| {
            from_subject
                .map(|(_, d)| d)
                .or_else(|| self.bus.subjects().parse_snapshot_create_device(subject))
                .and_then(|d| DeviceId::parse(d).ok())
                .map(|d| d.to_string())
        });
        let subject: String = subject.chars().take(256).collect();
        warn!(subject = %subject, tenant_id = %tenant, reason = %reason, delivered, "snapshot event rejected");
        let detail = json!({
            "reason": reason,
            "subject": subject,
            "delivered": delivered,
            "sha256_hash": meta.sha256_hash,
            "collected_at": meta.collected_at,
        });
        self.store
            .audit_best_effort(
                Some(&tenant),
                device.as_deref(),
                Action::EventRejected,
                None,
                &detail,
            )
            .await;
    }
}

/// `error: cause: cause`, for logs and audit reasons.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn retry(reason: String, transient: bool) -> Verdict {
    Verdict::Retry { reason, transient }
}
