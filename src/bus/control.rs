//! Control messages between nodes on core subjects: attempt reports
//! (`{control}.attempt.{tenant}.{device}`) and host-key-reset notices
//! (`{control}.hostkey_reset.{device}`), best effort; unchanged claims
//! (`{control}.unchanged.{tenant}.{device}`, request-reply); and the bus as
//! the executors' [`SnapshotSink`].

use std::time::Duration;

use anyhow::{Context as _, anyhow};
use async_nats::{Request, RequestErrorKind};
use tracing::{debug, warn};

use super::subscription::ControlInner;
use super::{Bus, Error, HostKeyReset, Result, SnapshotEvent, Subscription, UnchangedReply};
use crate::backup::{AttemptReport, AttemptStatus, Outcome, SnapshotSink};

/// How long a poller waits for the ingesters to confirm an unchanged
/// export before it publishes the export in full: a batch's linger plus
/// a commit, with room for a loaded store.
pub const CLAIM_TIMEOUT: Duration = Duration::from_secs(5);

impl Bus {
    /// Publishes an attempt report on `{control_subject}.attempt.{tenant}.{device}`
    /// (core NATS, no ack).
    ///
    /// # Errors
    /// [`Error::Unavailable`](super::Error::Unavailable) when it could not be handed to the connection.
    pub async fn publish_attempt(&self, report: &AttemptReport) -> Result<()> {
        let subject = self
            .subjects()
            .attempt(&report.tenant_id, &report.device_id);
        match self {
            Bus::Nats(n) => {
                let payload =
                    serde_json::to_vec(report).context("serializing an attempt report")?;
                n.publish_core(subject, payload).await
            }
            Bus::Local(l) => {
                l.publish_attempt(subject, report.clone());
                Ok(())
            }
        }
    }

    /// Subscribes to all attempt reports. On NATS the subscribers share
    /// them in the queue group `{durable}`, so each is recorded once; in
    /// effect for every publisher once it returns.
    ///
    /// # Errors
    /// [`Error::Unavailable`](super::Error::Unavailable) when NATS refuses the subscription.
    pub async fn subscribe_attempts(&self) -> Result<Subscription<AttemptReport>> {
        let inner = match self {
            Bus::Nats(n) => {
                let subject = n.subjects.attempt_all();
                let subscriber = n
                    .subscribe(subject, Some(n.subjects.durable.clone()))
                    .await?;
                n.round_trip().await?;
                ControlInner::Nats(subscriber)
            }
            Bus::Local(l) => ControlInner::Local(l.subscribe_attempts()),
        };
        Ok(Subscription {
            inner,
            kind: "attempt",
        })
    }

    /// Tells every poller that `notice.device_id`'s host key was reset, on
    /// `{control_subject}.hostkey_reset.{device}`, and flushes.
    ///
    /// # Errors
    /// [`Error::Unavailable`](super::Error::Unavailable) when it could not be sent.
    pub async fn publish_hostkey_reset(&self, notice: &HostKeyReset) -> Result<()> {
        let subject = self.subjects().hostkey_reset(&notice.device_id);
        match self {
            Bus::Nats(n) => {
                let payload = serde_json::to_vec(notice).context("serializing a host-key reset")?;
                n.publish_core(subject, payload).await?;
                n.flush().await
            }
            Bus::Local(l) => {
                l.publish_hostkey_reset(subject, notice.clone());
                Ok(())
            }
        }
    }

    /// Subscribes to host-key-reset notices (every subscriber gets each);
    /// in effect for every publisher once it returns.
    ///
    /// # Errors
    /// [`Error::Unavailable`](super::Error::Unavailable) when NATS refuses the subscription.
    pub async fn subscribe_hostkey_resets(&self) -> Result<Subscription<HostKeyReset>> {
        let inner = match self {
            Bus::Nats(n) => {
                let subscriber = n.subscribe(n.subjects.hostkey_reset_all(), None).await?;
                n.round_trip().await?;
                ControlInner::Nats(subscriber)
            }
            Bus::Local(l) => ControlInner::Local(l.subscribe_hostkey_resets()),
        };
        Ok(Subscription {
            inner,
            kind: "hostkey_reset",
        })
    }
}

impl Bus {
    /// Asks the ingesters (queue group `{durable}`) to record `claim`, an
    /// event without text, as unchanged, and waits up to `timeout` for the
    /// answer. On the local bus there is nobody to ask (the event costs no
    /// copy there): [`Error::NoResponders`].
    ///
    /// # Errors
    /// [`Error::NoResponders`] when no ingester listens (one of an older
    /// version, or none), [`Error::TimedOut`], [`Error::InvalidReply`],
    /// [`Error::Unavailable`] when NATS is.
    pub async fn claim_unchanged(
        &self,
        claim: &SnapshotEvent,
        timeout: Duration,
    ) -> Result<UnchangedReply> {
        let Bus::Nats(n) = self else {
            return Err(Error::NoResponders);
        };
        if claim.encoding().is_some() {
            return Err(Error::InvalidRequest(
                "an unchanged claim carries no text".into(),
            ));
        }
        n.require_connected()?;
        let payload = serde_json::to_vec(claim).context("serializing an unchanged claim")?;
        let subject = n.subjects.unchanged(&claim.tenant_id, &claim.device_id);
        let request = Request::new()
            .payload(payload.into())
            .timeout(Some(timeout));
        let reply = n
            .client
            .send_request(subject, request)
            .await
            .map_err(|e| match e.kind() {
                RequestErrorKind::NoResponders => Error::NoResponders,
                RequestErrorKind::TimedOut => Error::TimedOut(timeout),
                _ => Error::Unavailable(anyhow!(e).context("sending an unchanged claim")),
            })?;
        super::wire::from_json(&reply.payload).map_err(Error::InvalidReply)
    }
}

/// The bus as the executors' sink: events carry the bus's `poller_id`
/// ([`Bus::with_poller_id`]); reports go out best effort.
impl SnapshotSink for Bus {
    async fn publish(&self, outcome: &Outcome) -> anyhow::Result<()> {
        let event = SnapshotEvent::from_outcome(outcome, Some(self.poller_id().to_owned()));
        self.publish_owned_snapshot(event).await?;
        Ok(())
    }

    /// Only on NATS, and only when the event stream is cfgsnap's own: on a
    /// stream shared with the other system (DESIGN.md §3.2) its backend
    /// reads every event, so every backup is published in full there.
    async fn confirm_unchanged(&self, outcome: &Outcome) -> bool {
        if !self.event_stream().is_some_and(|s| s.owned) {
            return false;
        }
        let claim = SnapshotEvent::claim_from_outcome(outcome, Some(self.poller_id().to_owned()));
        match self.claim_unchanged(&claim, CLAIM_TIMEOUT).await {
            Ok(reply) if reply.status == super::UnchangedStatus::Recorded => true,
            Ok(reply) => {
                debug!(device_id = %outcome.device_id, reason = ?reply.reason, "unchanged export not confirmed; publishing it in full");
                false
            }
            Err(e) => {
                debug!(device_id = %outcome.device_id, error.message = %e, "unchanged claim unanswered; publishing the export in full");
                false
            }
        }
    }

    /// On the local bus a success is not reported: the one ingester is this
    /// process's, and it records the success with the event (as the device's
    /// latest success, `backup.recovered` included), so a report would write
    /// the same row again. On NATS the ingester may be of an older version,
    /// or none may run while the event waits in the stream: there every
    /// attempt is reported.
    async fn report(&self, report: &AttemptReport) {
        if matches!(self, Bus::Local(_)) && report.status == AttemptStatus::Success {
            return;
        }
        if let Err(e) = self.publish_attempt(report).await {
            warn!(error.message = %e, error.cause_chain = ?e, device_id = %report.device_id, "publishing an attempt report failed");
        }
    }
}
