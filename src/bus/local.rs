//! The in-process bus (`bus.url = "local"`): the semantics of the NATS
//! backend without a server.
//!
//! - Triggers: one shared queue that every subscribed responder pulls from
//!   (queue-group semantics: one answers each request); a request while no
//!   responder is subscribed fails at once with [`Error::NoResponders`].
//! - Snapshot events: an at-least-once in-memory queue to the ingesters.
//!   Memory is bounded twice: at most [`QUEUE_EVENTS`] events and
//!   [`QUEUE_BYTES`] bytes of config text are queued or in processing; a
//!   publisher waits for room (up to [`ENQUEUE_TIMEOUT`], then
//!   `Unavailable`). An event leaves the queue's budget only once the
//!   ingester is done with it; while the store fails, the ingester holds it
//!   and retries (see `ingest`), so the queue fills and publishers wait.
//!   Events still queued when the process exits are lost: they were never
//!   written anywhere.
//! - Attempt reports and host-key-reset notices: broadcast to every
//!   subscriber (a lagging subscriber loses the oldest).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::anyhow;
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore, broadcast, mpsc, oneshot};

use super::wire::{HostKeyReset, SnapshotEvent};
use super::{Error, Result, Subjects};
use crate::backup::AttemptReport;
use crate::config::BusSettings;

/// Most events queued to the ingesters at once.
pub const QUEUE_EVENTS: usize = 1024;
/// Most bytes of config text queued or in processing at once (256 MiB); a
/// larger single event takes the whole budget.
pub const QUEUE_BYTES: usize = 256 * 1024 * 1024;
/// How long a publisher waits for room in a full queue.
pub const ENQUEUE_TIMEOUT: Duration = Duration::from_secs(60);
/// Queued trigger requests; a full queue makes requesters wait (their
/// timeout still applies).
const TRIGGER_QUEUE: usize = 1024;
/// Control messages kept for slow subscribers.
const CONTROL_BACKLOG: usize = 1024;

/// A trigger request in flight to a local responder.
pub(crate) struct LocalRequest {
    pub payload: Vec<u8>,
    pub reply: Option<oneshot::Sender<Vec<u8>>>,
}

/// A queued snapshot event, holding its share of the byte budget.
pub(crate) struct LocalEvent {
    pub subject: String,
    pub payload: LocalPayload,
    _permit: OwnedSemaphorePermit,
}

/// What was published: a typed event, or raw bytes (tools and tests).
pub(crate) enum LocalPayload {
    Event(Box<SnapshotEvent>),
    Raw(Vec<u8>),
}

/// The in-process bus; clones share it.
#[derive(Clone)]
pub struct LocalBus {
    inner: Arc<Inner>,
    poller_id: Arc<str>,
}

struct Inner {
    subjects: Arc<Subjects>,
    max_deliver: i64,
    triggers_tx: mpsc::Sender<LocalRequest>,
    triggers_rx: Arc<Mutex<mpsc::Receiver<LocalRequest>>>,
    responders: Arc<AtomicUsize>,
    events_tx: mpsc::Sender<LocalEvent>,
    events_rx: Mutex<mpsc::Receiver<LocalEvent>>,
    budget: Arc<Semaphore>,
    /// Control messages travel as values: serializing them to JSON and
    /// back, as on NATS, cost an unchanged backup ~1.5 % of its CPU.
    attempts: broadcast::Sender<(String, AttemptReport)>,
    hostkey_resets: broadcast::Sender<(String, HostKeyReset)>,
}

impl LocalBus {
    /// A new, empty bus.
    pub fn new(settings: &BusSettings, subjects: Subjects) -> LocalBus {
        let (triggers_tx, triggers_rx) = mpsc::channel(TRIGGER_QUEUE);
        let (events_tx, events_rx) = mpsc::channel(QUEUE_EVENTS);
        LocalBus {
            inner: Arc::new(Inner {
                subjects: Arc::new(subjects),
                max_deliver: settings.max_deliver,
                triggers_tx,
                triggers_rx: Arc::new(Mutex::new(triggers_rx)),
                responders: Arc::new(AtomicUsize::new(0)),
                events_tx,
                events_rx: Mutex::new(events_rx),
                budget: Arc::new(Semaphore::new(QUEUE_BYTES)),
                attempts: broadcast::channel(CONTROL_BACKLOG).0,
                hostkey_resets: broadcast::channel(CONTROL_BACKLOG).0,
            }),
            poller_id: crate::bus::default_poller_id().into(),
        }
    }

    pub(crate) fn poller_id(&self) -> &str {
        &self.poller_id
    }

    pub(crate) fn with_poller_id(mut self, poller_id: Arc<str>) -> Self {
        self.poller_id = poller_id;
        self
    }

    pub(crate) fn subjects(&self) -> &Subjects {
        &self.inner.subjects
    }

    pub(crate) fn max_deliver(&self) -> i64 {
        self.inner.max_deliver
    }

    /// Sends a request to one responder and waits up to `timeout` for its reply.
    pub(crate) async fn request(&self, payload: Vec<u8>, timeout: Duration) -> Result<Vec<u8>> {
        if self.inner.responders.load(Ordering::SeqCst) == 0 {
            return Err(Error::NoResponders);
        }
        let (tx, rx) = oneshot::channel();
        let request = LocalRequest {
            payload,
            reply: Some(tx),
        };
        let exchange = async {
            self.inner
                .triggers_tx
                .send(request)
                .await
                .map_err(|_| Error::Unavailable(anyhow!("local trigger queue closed")))?;
            rx.await
                .map_err(|_| Error::Unexpected(anyhow!("the responder dropped the request")))
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| Error::TimedOut(timeout))?
    }

    /// Joins the responders' queue group.
    pub(crate) fn subscribe_triggers(&self) -> LocalTriggerReceiver {
        self.inner.responders.fetch_add(1, Ordering::SeqCst);
        LocalTriggerReceiver {
            rx: Arc::clone(&self.inner.triggers_rx),
            responders: Some(Arc::clone(&self.inner.responders)),
        }
    }

    /// Queues an event for the ingesters, waiting for room.
    pub(crate) async fn enqueue(&self, subject: String, payload: LocalPayload) -> Result<()> {
        let size = match &payload {
            LocalPayload::Event(e) => {
                e.config_text.as_ref().map_or(0, String::len)
                    + e.config_text_gzip.as_ref().map_or(0, String::len)
            }
            LocalPayload::Raw(bytes) => bytes.len(),
        };
        let permits = u32::try_from(size.saturating_add(1024).min(QUEUE_BYTES))
            .expect("BUG: QUEUE_BYTES fits in u32");
        let enqueue = async {
            let permit = Arc::clone(&self.inner.budget)
                .acquire_many_owned(permits)
                .await
                .map_err(|_| Error::Unavailable(anyhow!("local event queue closed")))?;
            let event = LocalEvent {
                subject,
                payload,
                _permit: permit,
            };
            self.inner
                .events_tx
                .send(event)
                .await
                .map_err(|_| Error::Unavailable(anyhow!("local event queue closed")))
        };
        tokio::time::timeout(ENQUEUE_TIMEOUT, enqueue)
            .await
            .map_err(|_| {
                Error::Unavailable(anyhow!(
                    "local event queue full for {}s: is an ingester running?",
                    ENQUEUE_TIMEOUT.as_secs()
                ))
            })?
    }

    /// The next queued event; waits while the queue is empty.
    ///
    /// # Cancel safety
    /// Cancel safe: an event is either returned or stays queued.
    pub(crate) async fn next_event(&self) -> Option<LocalEvent> {
        self.inner.events_rx.lock().await.recv().await
    }

    /// A queued event if there is one, without waiting for new ones.
    pub(crate) async fn try_next_event(&self) -> Option<LocalEvent> {
        self.inner.events_rx.lock().await.try_recv().ok()
    }

    /// Broadcasts an attempt report.
    pub(crate) fn publish_attempt(&self, subject: String, report: AttemptReport) {
        // No subscriber is not an error: reports are best effort.
        let _receivers = self.inner.attempts.send((subject, report)).unwrap_or(0);
    }

    /// Broadcasts a host-key-reset notice.
    pub(crate) fn publish_hostkey_reset(&self, subject: String, notice: HostKeyReset) {
        let _receivers = self
            .inner
            .hostkey_resets
            .send((subject, notice))
            .unwrap_or(0);
    }

    pub(crate) fn subscribe_attempts(&self) -> broadcast::Receiver<(String, AttemptReport)> {
        self.inner.attempts.subscribe()
    }

    pub(crate) fn subscribe_hostkey_resets(&self) -> broadcast::Receiver<(String, HostKeyReset)> {
        self.inner.hostkey_resets.subscribe()
    }
}

/// One responder's membership in the local queue group.
pub(crate) struct LocalTriggerReceiver {
    rx: Arc<Mutex<mpsc::Receiver<LocalRequest>>>,
    responders: Option<Arc<AtomicUsize>>,
}

impl LocalTriggerReceiver {
    /// The next request for this group. Once left, only requests already
    /// queued (sent while this member counted), then `None`.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub(crate) async fn next(&mut self) -> Option<LocalRequest> {
        let mut rx = self.rx.lock().await;
        match self.responders {
            Some(_) => rx.recv().await,
            None => rx.try_recv().ok(),
        }
    }

    /// Leaves the group: new requests go to the other members, or fail with
    /// no-responders when none is left; queued ones are still returned.
    pub(crate) fn leave(&mut self) {
        if let Some(count) = self.responders.take() {
            count.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Drop for LocalTriggerReceiver {
    fn drop(&mut self) {
        self.leave();
    }
}
