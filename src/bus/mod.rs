//! Transport between the HTTP API, the backup executors and the ingester
//! (DESIGN.md §1, §3): trigger request-reply, snapshot events, attempt
//! reports and host-key-reset notices, over NATS/JetStream ([`NatsBus`]) or
//! in process ([`LocalBus`]) with the same semantics. It never touches SSH
//! and reaches the store only from the ingester.
//!
//! Entry points: [`Bus::connect`], [`responder::spawn_responder`],
//! [`ingest::spawn_ingester`]. Layout: `wire` and `json` (the JSON),
//! `subject` (every name), `nats/` (NATS; `nats/object` for configs beyond
//! `max_payload`), `local`, `subscription`, `control` (attempt reports,
//! host-key resets, the [`SnapshotSink`](crate::backup::SnapshotSink)
//! impl), `responder`, `ownership` (devices listed by two partitions),
//! `ingest/` (the ingester and its loops), `codec` (gzip).

use std::time::Duration;

use crate::config::BusSettings;
use anyhow::{Context as _, anyhow};

pub mod codec;
mod control;
pub mod ingest;
mod json;
mod local;
mod nats;
pub mod ownership;
pub mod responder;
mod subject;
mod subscription;
pub mod wire;

pub use local::LocalBus;
pub use nats::{EventStream, NatsBus, StreamLimits};
pub use subject::Subjects;
pub use subscription::{IncomingRequest, Subscription, TriggerSubscription};
pub use wire::{
    ConfigRef, ContentEncoding, HostKeyReset, SnapshotEvent, TriggerReply, TriggerRequest,
    UnchangedReply, UnchangedStatus,
};

use local::LocalPayload;
use subscription::TriggerInner;

/// This node's name when `roles.node_id` is unset: the host name, else `cfgsnap`.
pub fn default_poller_id() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "cfgsnap".to_owned())
}

/// Result type of the bus module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A failed bus operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `[bus]` names an unknown backend or invalid subjects.
    #[error("invalid bus settings: {0}")]
    InvalidSettings(String),
    /// Nobody subscribes to the trigger subject (answered at once: 503).
    #[error("no responder is listening for triggers")]
    NoResponders,
    /// A responder exists but did not reply in time (504).
    #[error("no reply within {}", humantime::format_duration(*.0))]
    TimedOut(Duration),
    /// The request cannot be sent as it is.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The reply is not a §3.1 reply.
    #[error("invalid reply: {0}")]
    InvalidReply(String),
    /// The event cannot be published as it is.
    #[error("invalid event: {0}")]
    InvalidEvent(String),
    /// The transport failed (connection lost, no stream ack, queue full);
    /// retrying later may succeed.
    #[error("bus unavailable")]
    Unavailable(#[source] anyhow::Error),
    /// Anything else.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// How a snapshot event went out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    /// The stream already had this `Nats-Msg-Id` (a republish): dropped.
    pub duplicate: bool,
    /// Which field carried the text.
    pub encoding: ContentEncoding,
}

/// The bus: NATS or in process, picked once from `bus.url`. Clones share
/// the connection.
#[derive(Clone)]
pub enum Bus {
    /// NATS with JetStream.
    Nats(NatsBus),
    /// The in-process twin.
    Local(LocalBus),
}

impl Bus {
    /// `local` builds the in-process bus; `nats://…` (or `tls://…`)
    /// connects, uses the stream that captures `{snapshot_subject}.>` as it
    /// is (or creates `{stream}` when none does) and opens the object store
    /// bucket.
    ///
    /// # Errors
    /// [`Error::InvalidSettings`] for a bad URL scheme or names;
    /// [`Error::Unavailable`] when NATS or JetStream cannot be reached.
    pub async fn connect(settings: &BusSettings) -> Result<Bus> {
        let subjects = Subjects::new(settings).map_err(Error::InvalidSettings)?;
        let url = settings.url.trim();
        if url == "local" {
            return Ok(Bus::Local(LocalBus::new(settings, subjects)));
        }
        if url.starts_with("nats://") || url.starts_with("tls://") {
            return Ok(Bus::Nats(NatsBus::connect(settings, subjects).await?));
        }
        Err(Error::InvalidSettings(
            "bus.url must be \"local\" or a nats:// URL".into(),
        ))
    }

    /// The names in use.
    pub fn subjects(&self) -> &Subjects {
        match self {
            Bus::Nats(n) => &n.subjects,
            Bus::Local(l) => l.subjects(),
        }
    }

    /// The JetStream stream that carries the snapshot events; `None` on
    /// the local bus.
    pub fn event_stream(&self) -> Option<&EventStream> {
        match self {
            Bus::Nats(n) => Some(&n.stream),
            Bus::Local(_) => None,
        }
    }

    /// This node's name in snapshot events (`poller_id`).
    pub fn poller_id(&self) -> &str {
        match self {
            Bus::Nats(n) => &n.poller_id,
            Bus::Local(l) => l.poller_id(),
        }
    }

    /// The same bus, naming this node `poller_id` in events (from
    /// `roles.node_id`; [`default_poller_id`] until set).
    pub fn with_poller_id(self, poller_id: impl Into<String>) -> Bus {
        let id: std::sync::Arc<str> = poller_id.into().into();
        match self {
            Bus::Nats(mut n) => {
                n.poller_id = id;
                Bus::Nats(n)
            }
            Bus::Local(l) => Bus::Local(l.with_poller_id(id)),
        }
    }

    /// `nats` or `local`.
    pub fn backend(&self) -> &'static str {
        match self {
            Bus::Nats(_) => "nats",
            Bus::Local(_) => "local",
        }
    }

    /// Deliveries of one event before the ingesters give up (`bus.max_deliver`).
    pub fn max_deliver(&self) -> i64 {
        match self {
            Bus::Nats(n) => n.max_deliver,
            Bus::Local(l) => l.max_deliver(),
        }
    }

    /// Asks a responder to back a device up and waits up to `timeout`.
    ///
    /// # Errors
    /// [`Error::NoResponders`] at once when nobody listens,
    /// [`Error::TimedOut`] when the responder did not answer in time,
    /// [`Error::InvalidReply`] for a reply that is not §3.1 JSON.
    pub async fn request_trigger(
        &self,
        request: &TriggerRequest,
        timeout: Duration,
    ) -> Result<TriggerReply> {
        let payload = serde_json::to_vec(request).context("serializing a trigger request")?;
        let reply = self.request_trigger_raw(payload, timeout).await?;
        wire::from_json(&reply).map_err(Error::InvalidReply)
    }

    /// [`Bus::request_trigger`] with raw bytes both ways (tools, tests).
    ///
    /// # Errors
    /// As [`Bus::request_trigger`].
    pub async fn request_trigger_raw(
        &self,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>> {
        match self {
            Bus::Nats(n) => n.request(payload, timeout).await,
            Bus::Local(l) => l.request(payload, timeout).await,
        }
    }

    /// Joins the responders' queue group on the trigger subject; once it
    /// returns, requests from any connection reach this member.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when NATS refuses the subscription.
    pub async fn subscribe_triggers(&self) -> Result<TriggerSubscription> {
        let inner = match self {
            Bus::Nats(n) => {
                let subscriber = n
                    .subscribe(
                        n.subjects.trigger.clone(),
                        Some(n.subjects.queue_group.clone()),
                    )
                    .await?;
                n.round_trip().await?;
                TriggerInner::Nats {
                    subscriber,
                    client: n.client.clone(),
                }
            }
            Bus::Local(l) => TriggerInner::Local(l.subscribe_triggers()),
        };
        Ok(TriggerSubscription { inner })
    }

    /// Publishes a snapshot event to `{snapshot_subject}.create.{tenant}.{device}`
    /// and returns once the stream acknowledged it (or the local queue took
    /// it). Text beyond `max_payload` travels gzip'd or via the object store.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when it was not accepted (retry later);
    /// [`Error::InvalidEvent`] for an event that can never be sent.
    pub async fn publish_snapshot(&self, event: &SnapshotEvent) -> Result<Published> {
        match self {
            Bus::Nats(n) => n.publish_snapshot(event).await,
            Bus::Local(_) => self.publish_owned_snapshot(event.clone()).await,
        }
    }

    /// [`publish_snapshot`](Self::publish_snapshot) of an event the caller
    /// gives away: the local queue takes it without copying its text.
    ///
    /// # Errors
    /// As [`publish_snapshot`](Self::publish_snapshot).
    pub async fn publish_owned_snapshot(&self, event: SnapshotEvent) -> Result<Published> {
        match self {
            Bus::Nats(n) => n.publish_snapshot(&event).await,
            Bus::Local(l) => {
                let encoding = event
                    .encoding()
                    .ok_or_else(|| Error::InvalidEvent("no single text field is set".into()))?;
                let subject = l
                    .subjects()
                    .snapshot_create(&event.tenant_id, &event.device_id);
                l.enqueue(subject, LocalPayload::Event(Box::new(event)))
                    .await?;
                Ok(Published {
                    duplicate: false,
                    encoding,
                })
            }
        }
    }

    /// Publishes raw bytes as a snapshot event on `subject`, without a
    /// message id (tools, tests: what another publisher might send).
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] when `subject` is outside the stream,
    /// [`Error::Unavailable`] when it was not accepted.
    pub async fn publish_snapshot_raw(&self, subject: &str, payload: Vec<u8>) -> Result<()> {
        let prefix = format!("{}.", self.subjects().snapshot);
        if !subject.starts_with(&prefix) {
            return Err(Error::InvalidRequest(format!(
                "subject must start with {prefix}"
            )));
        }
        match self {
            Bus::Nats(n) => {
                let unavailable =
                    |e: anyhow::Error| Error::Unavailable(e.context("publishing a raw event"));
                n.js.publish(subject.to_owned(), payload.into())
                    .await
                    .map_err(|e| unavailable(anyhow!(e)))?
                    .await
                    .map_err(|e| unavailable(anyhow!(e)))?;
                Ok(())
            }
            Bus::Local(l) => {
                l.enqueue(subject.to_owned(), LocalPayload::Raw(payload))
                    .await
            }
        }
    }

    /// Readiness: NATS is connected and answers a round trip.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when it does not.
    pub async fn ping(&self) -> Result<()> {
        match self {
            Bus::Nats(n) => n.ping().await,
            Bus::Local(_) => Ok(()),
        }
    }

    /// Waits until everything published reached the server.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when NATS does not confirm within 2 s.
    pub async fn flush(&self) -> Result<()> {
        match self {
            Bus::Nats(n) => n.flush().await,
            Bus::Local(_) => Ok(()),
        }
    }

    /// Shutdown: flushes, drains the subscriptions and closes the connection.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the flush or drain failed.
    pub async fn close(&self) -> Result<()> {
        match self {
            Bus::Nats(n) => n.close().await,
            Bus::Local(_) => Ok(()),
        }
    }
}
