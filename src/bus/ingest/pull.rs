//! The ingest loop over the JetStream pull consumer: lanes that keep each
//! device's events in order, where unchanged events wait for their batch's
//! commit beside the lane; ack, nak with backoff, term; re-queue when the
//! store stayed down through every delivery. What to do with an event is
//! decided in `event`.

use std::future::Future;
use std::hash::{BuildHasher as _, RandomState};
use std::time::Duration;

use async_nats::jetstream::AckKind;
use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::consumer::pull::MessagesErrorKind;
use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument as _, debug, error, warn};

use super::event::{Ingester, Meta, Payload, Verdict};
use crate::bus::nats::NatsBus;

/// Most unchanged events one lane lets wait for their batch at once.
pub(super) const LANE_UNCHANGED: usize = 16;

/// Pause before re-subscribing after the consumer's stream failed.
const RESUBSCRIBE_DELAY: Duration = Duration::from_secs(1);

/// Pulls events until `shutdown` and hands them to the lanes; the events
/// the lanes hold are finished first.
pub(crate) async fn run_nats(
    ingester: Ingester,
    nats: NatsBus,
    consumer: PullConsumer,
    shutdown: CancellationToken,
) {
    let lanes = Lanes::start(&ingester, &nats);
    pull(&ingester, &nats, consumer, &lanes, &shutdown).await;
    lanes.finish().await;
}

/// Events of one device go to one lane, in order; the lanes run side by
/// side, so commits of different devices overlap.
struct Lanes {
    senders: Vec<mpsc::Sender<async_nats::jetstream::Message>>,
    tasks: JoinSet<()>,
    hasher: RandomState,
}

impl Lanes {
    fn start(ingester: &Ingester, nats: &NatsBus) -> Lanes {
        let mut tasks = JoinSet::new();
        let senders = (0..ingester.options.lanes.max(1))
            .map(|_| {
                let (tx, mut rx) = mpsc::channel(1);
                let (ingester, nats) = (ingester.clone(), nats.clone());
                let lane = async move { run_lane(&ingester, &nats, &mut rx).await };
                tasks.spawn(lane.instrument(tracing::Span::current()));
                tx
            })
            .collect();
        Lanes {
            senders,
            tasks,
            hasher: RandomState::new(),
        }
    }

    /// Waits for the event's lane to take it; `None` on `shutdown` (the
    /// event stays unacknowledged and is delivered again).
    async fn dispatch(
        &self,
        message: async_nats::jetstream::Message,
        shutdown: &CancellationToken,
    ) -> Option<()> {
        let lane = usize::try_from(self.hasher.hash_one(message.subject.as_str()))
            .unwrap_or_default()
            % self.senders.len();
        tokio::select! {
            () = shutdown.cancelled() => None,
            sent = self.senders[lane].send(message) => sent.ok(),
        }
    }

    /// Lets every lane finish what it holds.
    async fn finish(mut self) {
        self.senders.clear();
        while self.tasks.join_next().await.is_some() {}
    }
}

async fn pull(
    ingester: &Ingester,
    nats: &NatsBus,
    mut consumer: PullConsumer,
    lanes: &Lanes,
    shutdown: &CancellationToken,
) {
    loop {
        let stream = consumer
            .stream()
            .max_messages_per_batch(ingester.options.batch.max(1))
            .heartbeat(Duration::from_secs(5))
            .messages()
            .await;
        match stream {
            Ok(mut messages) => loop {
                let next = tokio::select! {
                    () = shutdown.cancelled() => return,
                    next = messages.next() => next,
                };
                match next {
                    Some(Ok(message)) => {
                        if lanes.dispatch(message, shutdown).await.is_none() {
                            return;
                        }
                    }
                    Some(Err(e)) if matches!(e.kind(), MessagesErrorKind::MissingHeartbeat) => {
                        warn!(error.message = %e, "event consumer missed a heartbeat");
                    }
                    Some(Err(e)) => {
                        warn!(error.message = %e, "event consumer failed; re-subscribing");
                        break;
                    }
                    None => break,
                }
            },
            Err(e) => warn!(error.message = %e, "pulling events failed; retrying"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(RESUBSCRIBE_DELAY) => {}
        }
        match nats.ingest_consumer().await {
            Ok(fresh) => consumer = fresh,
            Err(e) => {
                warn!(error.message = %e, error.cause_chain = ?e, "re-creating the consumer failed")
            }
        }
    }
}

/// One lane: its events in order, except that unchanged events (up to
/// [`LANE_UNCHANGED`] of them) wait for their batch's commit beside the
/// lane while it goes on; any other event first waits for them, so a
/// device's events keep their order.
async fn run_lane(
    ingester: &Ingester,
    nats: &NatsBus,
    rx: &mut mpsc::Receiver<async_nats::jetstream::Message>,
) {
    let mut waiting = FuturesUnordered::new();
    loop {
        let message = tokio::select! {
            Some(()) = waiting.next(), if !waiting.is_empty() => continue,
            message = rx.recv() => message,
        };
        let Some(message) = message else {
            break;
        };
        let subject = message.subject.to_string();
        let prepare = ingester.prepare(&subject, Payload::Json(&message.payload));
        let prepared = with_progress(&message, nats, prepare).await;
        match prepared {
            Err((verdict, meta)) => settle(ingester, nats, &message, verdict, meta).await,
            Ok(prepared) if ingester.is_probably_unchanged(&prepared.snap) => {
                if waiting.len() >= LANE_UNCHANGED {
                    waiting.next().await;
                }
                waiting.push(async move {
                    let (verdict, meta) =
                        with_progress(&message, nats, ingester.store_prepared(prepared)).await;
                    settle(ingester, nats, &message, verdict, meta).await;
                });
            }
            Ok(prepared) => {
                ingester.unchanged.finish(&mut waiting).await;
                let (verdict, meta) =
                    with_progress(&message, nats, ingester.store_prepared(prepared)).await;
                settle(ingester, nats, &message, verdict, meta).await;
            }
        }
    }
    ingester.unchanged.finish(&mut waiting).await;
}

/// Acks, naks, terminates or re-queues the event as its verdict says.
async fn settle(
    ingester: &Ingester,
    nats: &NatsBus,
    message: &async_nats::jetstream::Message,
    verdict: Verdict,
    meta: Meta,
) {
    let delivered = message.info().map(|i| i.delivered).unwrap_or(1);
    let subject = message.subject.as_str();
    let last = nats.max_deliver > 0 && delivered >= nats.max_deliver;
    match verdict {
        Verdict::Done {
            ingested,
            reference,
        } => {
            debug!(subject = %subject, result = ?ingested, "event ingested");
            // Only an object-store copy needs to know the ack arrived before
            // it is deleted; else a lost ack means a redelivery, which the
            // store skips, and waiting for the server's reply costs a round
            // trip per event.
            let acked = match reference {
                Some(_) => message.double_ack().await,
                None => message.ack().await,
            };
            match acked {
                Ok(()) => {
                    if let Some(r) = reference {
                        nats.objects.delete_config(&r).await;
                    }
                }
                // Redelivery is harmless: the store skips the duplicate.
                Err(e) => {
                    warn!(error.message = %e, subject = %subject, "acking an ingested event failed")
                }
            }
        }
        Verdict::Reject(reason) => {
            ingester
                .audit_rejected(subject, &meta, &reason, delivered)
                .await;
            ack(message, AckKind::Term).await;
        }
        // The store is still down after every delivery: the event goes to
        // the end of the stream instead of being dropped (it holds a config
        // that exists nowhere else).
        Verdict::Retry {
            reason,
            transient: true,
        } if last => match nats.requeue(message).await {
            Ok(()) => {
                warn!(subject = %subject, reason = %reason, delivered, "store unavailable through every delivery; event re-queued");
                ack(message, AckKind::Ack).await;
            }
            Err(e) => {
                error!(subject = %subject, error.message = %e, "re-queueing an event failed; it stays unacknowledged in the stream");
            }
        },
        Verdict::Retry { reason, .. } if last => {
            let reason = format!("gave up after {delivered} deliveries: {reason}");
            error!(subject = %subject, reason = %reason, "snapshot event not stored");
            ingester
                .audit_rejected(subject, &meta, &reason, delivered)
                .await;
            ack(message, AckKind::Term).await;
        }
        Verdict::Retry { reason, transient } => {
            let delay = ingester.options.delay(delivered);
            warn!(subject = %subject, reason = %reason, transient, delivered, retry_in = ?delay, "ingest failed; event will be redelivered");
            ack(message, AckKind::Nak(Some(delay))).await;
        }
    }
}

/// Runs `work`, telling the server every `every` that the event is still
/// being worked on, so a long ingest is not redelivered meanwhile.
async fn with_progress<F: Future>(
    message: &async_nats::jetstream::Message,
    nats: &NatsBus,
    work: F,
) -> F::Output {
    let every = (nats.ack_wait / 3).max(Duration::from_secs(1));
    tokio::pin!(work);
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        tokio::select! {
            out = &mut work => return out,
            _ = ticks.tick() => ack(message, AckKind::Progress).await,
        }
    }
}

async fn ack(message: &async_nats::jetstream::Message, kind: AckKind) {
    if let Err(e) = message.ack_with(kind).await {
        warn!(error.message = %e, subject = %message.subject, "acknowledging an event failed");
    }
}
