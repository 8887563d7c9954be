//! Subscriptions over either backend: trigger requests for responders
//! ([`TriggerSubscription`], [`IncomingRequest`]) and control messages
//! ([`Subscription`]: attempt reports, host-key-reset notices).

use anyhow::anyhow;
use futures_util::StreamExt as _;
use serde::de::DeserializeOwned;
use tokio::sync::{broadcast, oneshot};
use tracing::warn;

use super::local::LocalTriggerReceiver;
use super::wire::from_json;
use super::{Error, Result};

/// A responder's subscription to the trigger subject in the queue group.
pub struct TriggerSubscription {
    pub(crate) inner: TriggerInner,
}

pub(crate) enum TriggerInner {
    Nats {
        subscriber: async_nats::Subscriber,
        client: async_nats::Client,
    },
    Local(LocalTriggerReceiver),
}

impl TriggerSubscription {
    /// The next request; `None` when the subscription ended (after
    /// [`TriggerSubscription::drain`], or when the connection closed).
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn next(&mut self) -> Option<IncomingRequest> {
        match &mut self.inner {
            TriggerInner::Nats { subscriber, client } => {
                let message = subscriber.next().await?;
                Some(IncomingRequest {
                    payload: message.payload.to_vec(),
                    reply: match message.reply {
                        Some(subject) => Replier::Nats {
                            client: client.clone(),
                            subject,
                        },
                        None => Replier::None,
                    },
                })
            }
            TriggerInner::Local(receiver) => {
                let request = receiver.next().await?;
                Some(IncomingRequest {
                    payload: request.payload,
                    reply: request.reply.map_or(Replier::None, Replier::Local),
                })
            }
        }
    }

    /// Stops taking new requests: requests already received (NATS) or
    /// queued (local) are still returned by `next`, then `None`.
    pub async fn drain(&mut self) {
        match &mut self.inner {
            TriggerInner::Nats { subscriber, .. } => {
                if let Err(e) = subscriber.drain().await {
                    warn!(error.message = %e, "draining the trigger subscription failed");
                }
            }
            TriggerInner::Local(receiver) => receiver.leave(),
        }
    }
}

/// One trigger request as received.
pub struct IncomingRequest {
    payload: Vec<u8>,
    reply: Replier,
}

enum Replier {
    Nats {
        client: async_nats::Client,
        subject: async_nats::Subject,
    },
    Local(oneshot::Sender<Vec<u8>>),
    None,
}

impl IncomingRequest {
    /// The request body as sent.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// Whether the sender waits for a reply (NATS requests without a reply
    /// subject are plain publishes).
    pub fn expects_reply(&self) -> bool {
        !matches!(self.reply, Replier::None)
    }

    /// Sends the reply.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when it cannot be sent; a local requester that
    /// gave up (timed out) is not an error.
    pub async fn respond(self, reply: Vec<u8>) -> Result<()> {
        match self.reply {
            Replier::Nats { client, subject } => client
                .publish(subject, reply.into())
                .await
                .map_err(|e| Error::Unavailable(anyhow!(e).context("publishing a trigger reply"))),
            Replier::Local(tx) => {
                // The requester may have timed out and gone: nothing to do.
                let _gone = tx.send(reply).is_err();
                Ok(())
            }
            Replier::None => Ok(()),
        }
    }
}

/// A subscription to control messages of type `T`: JSON on NATS, values
/// on the local bus.
pub struct Subscription<T> {
    pub(crate) inner: ControlInner<T>,
    pub(crate) kind: &'static str,
}

pub(crate) enum ControlInner<T> {
    Nats(async_nats::Subscriber),
    Local(broadcast::Receiver<(String, T)>),
}

impl<T: DeserializeOwned + Clone> Subscription<T> {
    /// The next message as `(subject, value)`; malformed messages and (on
    /// the local bus) messages lost to lag are logged and skipped. `None`
    /// when the subscription ended.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn next(&mut self) -> Option<(String, T)> {
        loop {
            let message = match &mut self.inner {
                ControlInner::Nats(subscriber) => subscriber.next().await?,
                ControlInner::Local(receiver) => match receiver.recv().await {
                    Ok(message) => return Some(message),
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        warn!(kind = self.kind, lost = n, "control subscriber lagged");
                        continue;
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
            };
            match from_json::<T>(&message.payload) {
                Ok(value) => return Some((message.subject.to_string(), value)),
                Err(reason) => {
                    warn!(kind = self.kind, subject = %message.subject, reason = %reason, "malformed control message skipped");
                }
            }
        }
    }
}
