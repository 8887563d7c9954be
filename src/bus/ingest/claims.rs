//! The unchanged-claim loop (NATS only, issue #21): a poller whose export
//! has the hash the device's previous backup handed over sends the event
//! without its text on `{control}.unchanged.{tenant}.{device}`; an ingester
//! of the queue group `{durable}` records it as a duplicate of the device's
//! newest snapshot, with the unchanged events of its batch, and answers
//! `recorded` once that is committed (a manual backup's claim at once, a
//! scheduled one's with its batch). Whatever it cannot confirm (a hash
//! that is not the device's newest as the store says, an unknown device or
//! tenant, a malformed claim, a failed commit) it answers `publish`, and the
//! poller publishes the event in full, so nothing is lost to a claim.

use async_nats::{Client, Message, Subscriber};
use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::event::Ingester;
use super::unchanged::Unchanged;
use crate::backup::Trigger;
use crate::bus::wire::{self, SnapshotEvent, UnchangedReply};
use crate::metrics::IngestResult;
use crate::store::snapshot::Ingested;

/// Claims answered at once; more wait in the subscription.
const IN_HAND: usize = 256;

/// Answers claims until `shutdown`, then those in hand (their batch is cut
/// short). The subscription is dropped first, so later claims find another
/// ingester or none (and their events are published in full).
pub(crate) async fn run_claims(
    ingester: Ingester,
    client: Client,
    mut claims: Subscriber,
    shutdown: CancellationToken,
) {
    let mut in_hand = FuturesUnordered::new();
    loop {
        tokio::select! {
            Some(()) = in_hand.next(), if !in_hand.is_empty() => {}
            () = shutdown.cancelled() => break,
            next = claims.next(), if in_hand.len() < IN_HAND => match next {
                Some(message) => in_hand.push(answer(&ingester, &client, message)),
                None => break,
            },
        }
    }
    if let Err(e) = claims.unsubscribe().await {
        warn!(error.message = %e, "leaving the unchanged-claim group failed");
    }
    ingester.unchanged.finish(&mut in_hand).await;
}

/// Judges one claim and replies (a claim without a reply subject is
/// ignored: nobody would learn the answer).
async fn answer(ingester: &Ingester, client: &Client, message: Message) {
    let Some(reply_to) = message.reply.clone() else {
        return;
    };
    let reply = judge(ingester, message.subject.as_str(), &message.payload).await;
    let payload = match serde_json::to_vec(&reply) {
        Ok(payload) => payload,
        Err(e) => {
            warn!(error.message = %e, "serializing an unchanged-claim reply failed");
            return;
        }
    };
    // A lost reply makes the poller publish in full: a duplicate later.
    if let Err(e) = client.publish(reply_to, payload.into()).await {
        warn!(error.message = %e, "answering an unchanged claim failed");
    }
}

/// What to answer to a claim on `subject`.
async fn judge(ingester: &Ingester, subject: &str, payload: &[u8]) -> UnchangedReply {
    let claim = match wire::from_json::<SnapshotEvent>(payload) {
        Ok(claim) => claim,
        Err(reason) => return UnchangedReply::publish(format!("malformed claim: {reason}")),
    };
    if claim.encoding().is_some() {
        return UnchangedReply::publish("a claim carries no text: publish the event");
    }
    let subjects = ingester.bus.subjects();
    if subject != subjects.unchanged(&claim.tenant_id, &claim.device_id) {
        return UnchangedReply::publish(
            "subject does not match the claim's tenant_id and device_id",
        );
    }
    let snap = claim.to_new_snapshot(String::new());
    if !ingester.is_probably_unchanged(&snap) {
        return UnchangedReply::publish("not the device's newest hash on this ingester");
    }
    // A manual backup's caller waits for the answer: its batch goes now.
    let recorded = match snap.trigger {
        Trigger::Manual => ingester.unchanged.record_now(snap).await,
        Trigger::Scheduled => ingester.unchanged.record(snap).await,
    };
    match recorded {
        Unchanged::Recorded(Ingested::Duplicate { snapshot_id }) => {
            if let Some(metrics) = &ingester.options.metrics {
                metrics.ingest(IngestResult::Duplicate);
            }
            UnchangedReply::recorded(snapshot_id)
        }
        Unchanged::Recorded(_) | Unchanged::Changed(_) => {
            UnchangedReply::publish("not the device's newest snapshot in the store")
        }
        Unchanged::Failed { .. } => UnchangedReply::publish("the store could not record it now"),
    }
}
