//! The trigger responder (DESIGN.md §3.1): answers `{trigger_subject}`
//! requests in queue group `{queue_group}` by running the [`Executor`] for
//! the device and replying `success`, `failed` or `locked`. Every request
//! with a reply subject gets a reply, garbage included (`bad_request`).
//!
//! Entry point: [`spawn_responder`]. (Host-key resets are applied by
//! `app`, which owns both the pins and the scheduler.)

use std::sync::Arc;

use chrono::Utc;
use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument as _, Span, debug, field, info, info_span, warn};

use super::wire::{self, TriggerReply, TriggerRequest};
use super::{Bus, IncomingRequest, Result, TriggerSubscription};
use crate::backup::{
    self, AttemptReport, AttemptStatus, ErrorKind, Executor, SnapshotSink, Trigger,
};
use crate::config::Fleet;
use crate::id::{DeviceId, TenantId};

/// Largest trigger request read; larger ones get `bad_request`.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// Tuning of a responder.
#[derive(Debug, Clone)]
pub struct ResponderOptions {
    /// Requests handled at once; more wait in the subscription.
    pub max_concurrent: usize,
    /// This node's name in attempt reports.
    pub poller_id: String,
    /// Leave triggers for devices outside the fleet unanswered (a fleet
    /// partition: another partition's member owns them); otherwise they
    /// get `not_found`.
    pub silent_outside_fleet: bool,
}

/// What a responder needs besides the bus.
pub struct Responder<E, S> {
    /// Runs the backups.
    pub executor: Arc<E>,
    /// The configured devices; reloads replace the value.
    pub fleet: watch::Receiver<Arc<Fleet>>,
    /// Where attempts are reported.
    pub sink: Arc<S>,
    /// Tuning.
    pub options: ResponderOptions,
}

/// Subscribes to the trigger subject, then serves requests in a task on
/// `tracker` until `shutdown`: each request runs concurrently (at most
/// `max_concurrent`). On shutdown it stops taking requests (NATS: drain,
/// answering what was already received) and lets in-flight ones finish;
/// `tracker.wait()` covers them. Returns once subscribed, so a request sent
/// after it returns is served.
///
/// # Errors
/// When the subscription fails.
pub async fn spawn_responder<E: Executor, S: SnapshotSink>(
    bus: &Bus,
    responder: Responder<E, S>,
    shutdown: CancellationToken,
    tracker: &TaskTracker,
) -> Result<()> {
    let subscription = bus.subscribe_triggers().await?;
    let permits = Arc::new(Semaphore::new(responder.options.max_concurrent.max(1)));
    let span = info_span!("bus.responder", backend = bus.backend());
    tracker.spawn(
        serve(
            Arc::new(responder),
            subscription,
            permits,
            shutdown,
            tracker.clone(),
        )
        .instrument(span),
    );
    Ok(())
}

async fn serve<E: Executor, S: SnapshotSink>(
    responder: Arc<Responder<E, S>>,
    mut subscription: TriggerSubscription,
    permits: Arc<Semaphore>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    loop {
        let next = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            next = subscription.next() => next,
        };
        let Some(request) = next else { return };
        dispatch(&responder, request, &permits, &tracker).await;
    }
    subscription.drain().await;
    while let Some(request) = subscription.next().await {
        dispatch(&responder, request, &permits, &tracker).await;
    }
    info!("trigger responder stopped taking requests");
}

async fn dispatch<E: Executor, S: SnapshotSink>(
    responder: &Arc<Responder<E, S>>,
    request: IncomingRequest,
    permits: &Arc<Semaphore>,
    tracker: &TaskTracker,
) {
    if !request.expects_reply() {
        debug!(
            bytes = request.payload().len(),
            "trigger without reply subject ignored"
        );
        return;
    }
    let Ok(permit) = Arc::clone(permits).acquire_owned().await else {
        return; // The semaphore is never closed.
    };
    let responder = Arc::clone(responder);
    let span = info_span!(
        "bus.trigger",
        device_id = field::Empty,
        request_id = field::Empty,
        requested_by = field::Empty
    );
    tracker.spawn(
        async move {
            let _permit = permit;
            let Some(reply) = responder.answer(request.payload()).await else {
                debug!("trigger for a device of another partition left to its owner");
                return;
            };
            let bytes = serde_json::to_vec(&reply).unwrap_or_else(|_| {
                br#"{"status":"failed","error_kind":"internal","error":"reply not serializable"}"#
                    .to_vec()
            });
            if let Err(e) = request.respond(bytes).await {
                warn!(error.message = %e, error.cause_chain = ?e, "sending a trigger reply failed");
            }
        }
        .instrument(span),
    );
}

/// A request with validated ids.
struct Valid {
    device_id: DeviceId,
    tenant_id: TenantId,
}

/// Parses and validates a request; the error is the `bad_request` text.
fn validate(payload: &[u8]) -> std::result::Result<Valid, String> {
    if payload.len() > MAX_REQUEST_BYTES {
        return Err(format!("request larger than {MAX_REQUEST_BYTES} bytes"));
    }
    let request: TriggerRequest = wire::from_json(payload)?;
    let span = Span::current();
    if let Some(id) = &request.request_id {
        span.record("request_id", id.chars().take(128).collect::<String>());
    }
    if let Some(by) = &request.requested_by {
        span.record("requested_by", by.chars().take(128).collect::<String>());
    }
    let device_id = DeviceId::parse(&request.device_id).map_err(|e| format!("device_id: {e}"))?;
    let tenant_id = TenantId::parse(&request.tenant_id).map_err(|e| format!("tenant_id: {e}"))?;
    span.record("device_id", device_id.as_str());
    Ok(Valid {
        device_id,
        tenant_id,
    })
}

impl<E: Executor, S: SnapshotSink> Responder<E, S> {
    /// The §3.1 reply to one request; reports the attempt when a backup ran.
    async fn answer(&self, payload: &[u8]) -> Option<TriggerReply> {
        let valid = match validate(payload) {
            Ok(valid) => valid,
            Err(reason) => {
                debug!(reason = %reason, "bad trigger request");
                return Some(TriggerReply::failed(ErrorKind::BadRequest, reason));
            }
        };
        let fleet = self.fleet.borrow().clone();
        // A device of another tenant looks exactly like an unknown one.
        let Some(device) = fleet
            .device(valid.device_id.as_str())
            .filter(|d| d.tenant == valid.tenant_id)
            .cloned()
        else {
            if self.options.silent_outside_fleet {
                return None;
            }
            let error = backup::Error::DeviceNotFound(valid.device_id.to_string());
            return Some(TriggerReply::failed(ErrorKind::NotFound, error.to_string()));
        };
        drop(fleet);
        let at = Utc::now();
        let result = self.executor.run(&device, Trigger::Manual).await;
        let mut report = AttemptReport {
            device_id: device.id.clone(),
            tenant_id: device.tenant.clone(),
            at,
            trigger: Trigger::Manual,
            status: AttemptStatus::Success,
            error_kind: None,
            sha256_hash: None,
            next_attempt_at: None,
            blocked_reason: None,
            poller_id: self.options.poller_id.clone(),
        };
        let mut recorded = false;
        let reply = match result {
            Ok(outcome) => {
                info!(sha256_hash = %outcome.sha256_hash, "manual backup collected");
                report.sha256_hash = Some(outcome.sha256_hash.clone());
                recorded = outcome.recorded;
                TriggerReply::success(&outcome)
            }
            Err(backup::Error::LockHeld) => {
                report.status = AttemptStatus::Locked;
                TriggerReply::locked()
            }
            Err(e) => {
                let kind = e.kind();
                warn!(error.message = %e, error.cause_chain = ?e, error_kind = %kind, "manual backup failed");
                report.status = AttemptStatus::Failed;
                report.error_kind = Some(kind);
                // As DESIGN.md §5: these stop scheduled retries until fixed.
                report.blocked_reason =
                    matches!(kind, ErrorKind::AuthFailed | ErrorKind::HostkeyMismatch)
                        .then_some(kind);
                TriggerReply::failed(kind, e.to_string())
            }
        };
        // The store recorded an unchanged export it confirmed: a success
        // report would record nothing more.
        if !recorded {
            self.sink.report(&report).await;
        }
        Some(reply)
    }
}
