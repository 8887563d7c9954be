//! The ingest loop over the local queue: one event at a time, held and
//! retried in place while the store is down, so order is kept and memory
//! stays bounded.

use tokio_util::sync::CancellationToken;
use tracing::{debug, error, warn};

use super::event::{Ingester, Payload, Verdict};
use crate::bus::local::{LocalBus, LocalEvent, LocalPayload};

/// Takes events from the local queue until `shutdown`, then gives the
/// events still queued one attempt each.
pub(crate) async fn run_local(ingester: Ingester, local: LocalBus, shutdown: CancellationToken) {
    loop {
        let next = tokio::select! {
            () = shutdown.cancelled() => break,
            next = local.next_event() => next,
        };
        match next {
            Some(event) => {
                handle_local(&ingester, &event, Some(&shutdown), local.max_deliver()).await
            }
            None => return,
        }
    }
    while let Some(event) = local.try_next_event().await {
        handle_local(&ingester, &event, None, 1).await;
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
