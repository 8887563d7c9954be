//! The NATS backend: core request-reply for triggers, JetStream for snapshot
//! events (the stream that captures them, found or created by `stream`;
//! dedup by `Nats-Msg-Id`; a durable pull consumer), the object store for
//! configs beyond `max_payload` (`object`), core
//! subjects for control messages. The client reconnects by itself, with no
//! reconnect limit, and re-subscribes.
//!
//! It must not decide what happens to an event (ingest does) nor build
//! subjects itself ([`Subjects`] does).

use std::sync::Arc;
use std::time::Duration;

use anyhow::anyhow;
use async_nats::jetstream;
use async_nats::jetstream::consumer::{AckPolicy, PullConsumer, pull};
use async_nats::jetstream::message::PublishMessage;
use async_nats::{Client, ConnectOptions, Event, Request, RequestErrorKind};
use futures_util::StreamExt as _;
use tracing::{debug, info, warn};

use crate::bus::wire::SnapshotEvent;
use crate::bus::{Error, Published, Result, Subjects};
use crate::config::BusSettings;

mod object;
mod stream;

use object::ConfigObjects;
pub use stream::{EventStream, STREAM_MAX_AGE, StreamLimits};
/// How long a snapshot event is held and sent again while NATS does not
/// acknowledge it; shorter than the pipeline's `PUBLISH_TIMEOUT`, so the
/// backup reports the bus's own error rather than a timeout.
pub const PUBLISH_PATIENCE: Duration = Duration::from_secs(45);
/// Marks the `Nats-Msg-Id` of a re-queued event, before its stream sequence.
const REQUEUED: &str = ":requeued:";
/// Bytes reserved for the `Nats-Msg-Id` header besides the id itself.
const HEADER_OVERHEAD: usize = 64;

/// A connection to NATS with JetStream.
#[derive(Clone)]
pub struct NatsBus {
    pub(crate) client: Client,
    pub(crate) js: Arc<jetstream::Context>,
    pub(crate) objects: Arc<ConfigObjects>,
    pub(crate) subjects: Arc<Subjects>,
    pub(crate) stream: Arc<EventStream>,
    pub(crate) max_deliver: i64,
    pub(crate) ack_wait: Duration,
    pub(crate) poller_id: Arc<str>,
}

impl NatsBus {
    /// Connects, finds the stream that captures the snapshot subjects (or
    /// creates `bus.stream` when none does; see [`EventStream::resolve`])
    /// and opens the object store bucket.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the server cannot be reached, has no
    /// JetStream, or refuses the stream.
    pub async fn connect(settings: &BusSettings, subjects: Subjects) -> Result<NatsBus> {
        let url = redact(&settings.url);
        let client = ConnectOptions::new()
            .name("cfgsnap")
            .connection_timeout(Duration::from_secs(5))
            .event_callback(|event| async move { log_event(event) })
            .connect(settings.url.as_str())
            .await
            .map_err(|e| Error::Unavailable(anyhow!(e).context(format!("connecting to {url}"))))?;
        let js = jetstream::new(client.clone());
        let stream = EventStream::resolve(&js, &subjects).await?;
        let objects = ConfigObjects::open(&js, &subjects.object_bucket, STREAM_MAX_AGE).await?;
        info!(url = %url, stream = %stream.name, "bus connected to NATS");
        Ok(NatsBus {
            client,
            js: Arc::new(js),
            objects: Arc::new(objects),
            subjects: Arc::new(subjects),
            stream: Arc::new(stream),
            max_deliver: settings.max_deliver,
            ack_wait: settings.ack_wait,
            poller_id: crate::bus::default_poller_id().into(),
        })
    }

    /// Core request-reply on the trigger subject.
    pub(crate) async fn request(&self, payload: Vec<u8>, timeout: Duration) -> Result<Vec<u8>> {
        // While reconnecting the client would queue the request and report
        // a timeout (504); say what it is (503).
        self.require_connected()?;
        let request = Request::new()
            .payload(payload.into())
            .timeout(Some(timeout));
        match self
            .client
            .send_request(self.subjects.trigger.clone(), request)
            .await
        {
            Ok(message) => Ok(message.payload.to_vec()),
            Err(e) => Err(match e.kind() {
                RequestErrorKind::NoResponders => Error::NoResponders,
                RequestErrorKind::TimedOut => Error::TimedOut(timeout),
                RequestErrorKind::MaxPayloadExceeded => {
                    Error::InvalidRequest("request larger than the server's max_payload".into())
                }
                _ => Error::Unavailable(anyhow!(e).context("sending a trigger request")),
            }),
        }
    }

    /// Publishes `event` (text inline, gzip or in the object store, whatever
    /// fits) and waits for the stream's ack. While the server is unreachable
    /// the event is held and sent again, with the same `Nats-Msg-Id`, for up
    /// to [`PUBLISH_PATIENCE`]: a collected config survives a NATS restart,
    /// and the stream's duplicate window drops a copy that got through twice.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when no attempt within the patience was
    /// acknowledged; [`Error::InvalidEvent`] when the event cannot be encoded.
    pub(crate) async fn publish_snapshot(&self, event: &SnapshotEvent) -> Result<Published> {
        let deadline = tokio::time::Instant::now() + PUBLISH_PATIENCE;
        let mut pause = Duration::from_millis(250);
        loop {
            match self.publish_once(event).await {
                Err(Error::Unavailable(e)) if tokio::time::Instant::now() + pause < deadline => {
                    debug!(error.message = %e, retry_in = ?pause, "snapshot event not acknowledged; sending it again");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(4));
                }
                other => return other,
            }
        }
    }

    async fn publish_once(&self, event: &SnapshotEvent) -> Result<Published> {
        let subject = self
            .subjects
            .snapshot_create(&event.tenant_id, &event.device_id);
        let msg_id = event.msg_id();
        let budget = self
            .client
            .max_payload()
            .saturating_sub(HEADER_OVERHEAD + msg_id.len());
        let (payload, encoding) = self.objects.encode(event, &msg_id, budget).await?;
        let ack = self
            .js
            .send_publish(
                subject,
                PublishMessage::build()
                    .payload(payload.into())
                    .message_id(&msg_id),
            )
            .await
            .map_err(|e| Error::Unavailable(anyhow!(e).context("publishing a snapshot event")))?
            .await
            .map_err(|e| Error::Unavailable(anyhow!(e).context("awaiting the stream's ack")))?;
        if ack.duplicate {
            debug!(msg_id = %msg_id, "stream dropped a duplicate snapshot event");
        }
        Ok(Published {
            duplicate: ack.duplicate,
            encoding,
        })
    }

    /// Publishes an event again at the end of the stream, under a message
    /// id of its own, and waits for the ack: for an event whose deliveries
    /// ran out while the store was unavailable, so it waits in the stream
    /// for the store rather than be dropped.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the stream did not take it.
    pub(crate) async fn requeue(&self, message: &jetstream::Message) -> Result<()> {
        let sequence = message.info().map(|i| i.stream_sequence).unwrap_or(0);
        let original = message
            .headers
            .as_ref()
            .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
            .map(|v| v.as_str())
            .unwrap_or_default();
        // One suffix, however often the event went round.
        let base = original.split(REQUEUED).next().unwrap_or_default();
        let msg_id = format!("{base}{REQUEUED}{sequence}");
        self.js
            .send_publish(
                message.subject.clone(),
                PublishMessage::build()
                    .payload(message.payload.clone())
                    .message_id(&msg_id),
            )
            .await
            .map_err(|e| Error::Unavailable(anyhow!(e).context("re-queueing a snapshot event")))?
            .await
            .map_err(|e| Error::Unavailable(anyhow!(e).context("awaiting the stream's ack")))?;
        Ok(())
    }

    /// The durable pull consumer of the ingesters on the event stream
    /// (whichever captures the subjects), created or reconciled. Other
    /// durables on that stream are left alone; each gets every event.
    pub(crate) async fn ingest_consumer(&self) -> Result<PullConsumer> {
        let stream =
            self.js.get_stream(&self.stream.name).await.map_err(|e| {
                Error::Unavailable(anyhow!(e).context("looking up the event stream"))
            })?;
        let created = stream
            .create_consumer(pull::Config {
                durable_name: Some(self.subjects.durable.clone()),
                description: Some("cfgsnap ingesters".into()),
                ack_policy: AckPolicy::Explicit,
                ack_wait: self.ack_wait,
                max_deliver: self.max_deliver,
                filter_subject: self.subjects.snapshot_create_all(),
                max_ack_pending: 1000,
                ..Default::default()
            })
            .await;
        match created {
            Ok(consumer) => Ok(consumer),
            // It exists with settings the server will not change in place:
            // use it as it is rather than not ingest at all.
            Err(create) => match stream.get_consumer(&self.subjects.durable).await {
                Ok(consumer) => {
                    warn!(error.message = %create, durable = %self.subjects.durable, "durable consumer kept with its existing settings");
                    Ok(consumer)
                }
                Err(_) => Err(Error::Unavailable(
                    anyhow!(create).context("creating the durable consumer"),
                )),
            },
        }
    }

    /// Core publish (best effort, no ack).
    pub(crate) async fn publish_core(&self, subject: String, payload: Vec<u8>) -> Result<()> {
        self.client
            .publish(subject, payload.into())
            .await
            .map_err(|e| Error::Unavailable(anyhow!(e).context("publishing a control message")))
    }

    /// Core subscription, in `queue` when given.
    pub(crate) async fn subscribe(
        &self,
        subject: String,
        queue: Option<String>,
    ) -> Result<async_nats::Subscriber> {
        let result = match queue {
            Some(group) => self.client.queue_subscribe(subject, group).await,
            None => self.client.subscribe(subject).await,
        };
        result.map_err(|e| Error::Unavailable(anyhow!(e).context("subscribing")))
    }

    /// Connected, and the server answers a round trip within two seconds.
    pub(crate) async fn ping(&self) -> Result<()> {
        self.require_connected()?;
        self.round_trip().await
    }

    /// Sends a message to itself through the server and waits for it. The
    /// server handles a connection's commands in order, so everything sent
    /// before (a subscription in particular) is in effect for every other
    /// connection afterwards. `flush` only writes the socket.
    pub(crate) async fn round_trip(&self) -> Result<()> {
        let inbox = self.client.new_inbox();
        let mut echo = self.subscribe(inbox.clone(), None).await?;
        self.publish_core(inbox, Vec::new()).await?;
        match tokio::time::timeout(Duration::from_secs(2), echo.next()).await {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(Error::Unavailable(anyhow!("NATS connection closed"))),
            Err(_) => Err(Error::Unavailable(anyhow!("no NATS round trip within 2 s"))),
        }
    }

    pub(crate) fn require_connected(&self) -> Result<()> {
        match self.client.connection_state() {
            async_nats::connection::State::Connected => Ok(()),
            _ => Err(Error::Unavailable(anyhow!("not connected to NATS"))),
        }
    }

    /// Waits until everything published so far reached the server.
    pub(crate) async fn flush(&self) -> Result<()> {
        tokio::time::timeout(Duration::from_secs(2), self.client.flush())
            .await
            .map_err(|_| Error::Unavailable(anyhow!("NATS flush timed out")))?
            .map_err(|e| Error::Unavailable(anyhow!(e).context("flushing")))
    }

    /// Flushes, then drains subscriptions and closes the connection.
    pub(crate) async fn close(&self) -> Result<()> {
        let flushed = self.flush().await;
        self.client
            .drain()
            .await
            .map_err(|e| Error::Unavailable(anyhow!(e).context("draining the connection")))?;
        flushed
    }
}

fn log_event(event: Event) {
    match event {
        Event::Connected => info!("NATS connection (re)established"),
        Event::Disconnected => warn!("NATS connection lost; reconnecting"),
        Event::SlowConsumer(sid) => warn!(sid, "NATS slow consumer: messages dropped"),
        Event::Closed | Event::Draining => info!(event = %event, "NATS connection closing"),
        other => warn!(event = %other, "NATS connection event"),
    }
}

/// The URL without user info, for logs.
fn redact(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((_, host)) => format!("{scheme}://***@{host}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts_credentials() {
        assert_eq!(super::redact("nats://u:p@h:4222"), "nats://***@h:4222");
        assert_eq!(super::redact("nats://h:4222"), "nats://h:4222");
    }
}
