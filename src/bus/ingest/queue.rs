//! The ingest loop over the local queue: one event at a time, held and
//! retried in place while the store is down, so order is kept and memory
//! stays bounded. Events that are probably unchanged (the device's newest
//! hash again) are the exception: up to [`LOCAL_UNCHANGED_BATCH`] of them
//! are in flight at once, so that they share transactions; an event of any
//! other kind waits until they are done, so each device's order is kept.

use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, warn};

use super::LOCAL_UNCHANGED_BATCH;
use super::event::{Ingester, Payload, Verdict};
use crate::bus::local::{LocalBus, LocalEvent, LocalPayload};

/// Takes events from the local queue until `shutdown`, then gives the
/// events still queued one attempt each. Returns once every event taken
/// is done (the unchanged ones in flight included).
pub(crate) async fn run_local(ingester: Ingester, local: LocalBus, shutdown: CancellationToken) {
    let max_deliver = local.max_deliver();
    let mut in_flight = FuturesUnordered::new();
    loop {
        let next = tokio::select! {
            () = shutdown.cancelled() => break,
            Some(()) = in_flight.next(), if !in_flight.is_empty() => continue,
            next = local.next_event() => next,
        };
        let Some(event) = next else {
            break;
        };
        if probably_unchanged(&ingester, &event) {
            if in_flight.len() >= LOCAL_UNCHANGED_BATCH {
                in_flight.next().await;
            }
            let (ingester, shutdown) = (&ingester, &shutdown);
            in_flight.push(async move {
                handle_local(ingester, &event, Some(shutdown), max_deliver).await;
            });
        } else {
            ingester.unchanged.finish(&mut in_flight).await;
            handle_local(&ingester, &event, Some(&shutdown), max_deliver).await;
        }
    }
    ingester.unchanged.finish(&mut in_flight).await;
    while let Some(event) = local.try_next_event().await {
        handle_local(&ingester, &event, None, 1).await;
    }
}

/// Whether the event carries the device's newest hash as this node knows it.
fn probably_unchanged(ingester: &Ingester, event: &LocalEvent) -> bool {
    match &event.payload {
        LocalPayload::Event(e) => ingester
            .store
            .is_probably_unchanged(e.device_id.as_str(), &e.sha256_hash),
        LocalPayload::Raw(_) => false,
    }
}

/// Holds the event and retries it in place: the queue behind it waits,
/// so order is kept and memory stays bounded while the store is down.
/// Transient store errors are retried until the store returns; other
/// failures up to `max_deliver` deliveries. `shutdown` ends the retries.
async fn handle_local(
    ingester: &Ingester,
    event: &LocalEvent,
    shutdown: Option<&CancellationToken>,
    max_deliver: i64,
) {
    let mut delivered: i64 = 1;
    loop {
        let payload = match &event.payload {
            LocalPayload::Event(e) => Payload::Event(e.clone()),
            LocalPayload::Raw(bytes) => Payload::Json(bytes),
        };
        let (verdict, meta) = ingester.process(&event.subject, payload).await;
        let reason = match verdict {
            Verdict::Done { ingested, .. } => {
                debug!(subject = %event.subject, result = ?ingested, "event ingested");
                return;
            }
            Verdict::Reject(reason) => {
                ingester
                    .audit_rejected(&event.subject, &meta, &reason, delivered)
                    .await;
                return;
            }
            Verdict::Retry { reason, transient } => {
                let give_up = shutdown.is_none()
                    || (!transient && max_deliver > 0 && delivered >= max_deliver);
                if give_up {
                    let reason = format!("gave up after {delivered} deliveries: {reason}");
                    error!(subject = %event.subject, reason = %reason, "snapshot event not stored");
                    ingester
                        .audit_rejected(&event.subject, &meta, &reason, delivered)
                        .await;
                    return;
                }
                reason
            }
        };
        let delay = ingester.options.delay(delivered);
        warn!(subject = %event.subject, reason = %reason, delivered, retry_in = ?delay, "ingest failed; retrying");
        if let Some(token) = shutdown {
            tokio::select! {
                () = token.cancelled() => {
                    error!(subject = %event.subject, "shutting down: a queued snapshot event was not stored");
                    return;
                }
                () = tokio::time::sleep(delay) => {}
            }
        }
        delivered += 1;
    }
}
