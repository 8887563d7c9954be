//! The ingester (DESIGN.md §3.2, §7): consumes snapshot events and stores
//! them, and records attempt reports in the devices' backup state.
//!
//! Per event: parse → subject matches the payload (`create.{tenant}.{device}`,
//! or the other system's `create.{device}` with the tenant in the payload)
//! → resolve the text (plain, gzip, object store) → [`Store::ingest`] (the
//! tenant must own the device) → ack only after the commit. Malformed or poison events are terminated and audited
//! `snapshot_event_rejected` (reason and subject, never the text). Other
//! failures are retried with backoff; on NATS the delivery that reaches
//! `max_deliver` is audited and terminated, unless the store was merely
//! unavailable: then the event is re-queued at the end of the stream.
//! Locally, transient store errors are retried until the store returns
//! (the event exists nowhere else).
//!
//! Entry point: [`spawn_ingester`]. Layout: `event` decides about one
//! event, `pull` (NATS) and `queue` (local) are the event loops,
//! `unchanged` the group commit of unchanged events (the common case),
//! `claims` (NATS) the answers to pollers' unchanged claims, events
//! without their text, `attempts` the attempt-report loop, `options` the
//! tuning.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument as _, info, info_span, warn};

use super::{Bus, Result};
use crate::store::Store;

mod attempts;
mod claims;
mod event;
mod options;
mod pull;
mod queue;
mod unchanged;

pub use attempts::to_attempt;
pub use event::UNKNOWN_TENANT;
pub use options::IngestOptions;

use event::Ingester;
use unchanged::{Batcher, Batching};

/// How long the first unchanged event of a batch waits for others on NATS.
/// The lanes go on meanwhile (each lets up to `pull::LANE_UNCHANGED` wait);
/// nothing is acked before its batch commits, so a crash loses nothing.
const UNCHANGED_LINGER: Duration = Duration::from_millis(100);
/// The same on the local bus, where the queue goes on meanwhile: a pass
/// over a fleet then costs a commit (an fsync) every half second, not one
/// per backup. An event that is not unchanged cuts it short, so a new
/// version is never held up by it. What a crash can lose (README: "What a
/// crash loses"): the success of the unchanged backups of this long, never
/// a configuration.
const LOCAL_UNCHANGED_LINGER: Duration = Duration::from_millis(500);
/// Most unchanged events recorded in one transaction on the local bus
/// (also how many it holds in flight).
const LOCAL_UNCHANGED_BATCH: usize = 128;

/// Starts the ingester on `bus`: the event loop (a NATS durable pull
/// consumer `{durable}`, or the local queue) and the attempt-report loop.
/// Several ingesters on one durable share the events. Both loops stop
/// taking work on `shutdown` and finish the events in hand.
///
/// # Errors
/// When the consumer or the attempt subscription cannot be created.
pub async fn spawn_ingester(
    bus: &Bus,
    store: Store,
    options: IngestOptions,
    shutdown: CancellationToken,
    tracker: &TaskTracker,
) -> Result<()> {
    // What tells an unchanged export from a new version before any work:
    // without it every event takes the full path, which is correct too.
    match store.load_newest_hashes().await {
        Ok(devices) => info!(devices, "newest hashes loaded"),
        Err(e) => {
            warn!(error.message = %e, error.cause_chain = ?e, "loading the newest hashes failed; unchanged events take the full path until ingested once")
        }
    }
    let batching = Batching {
        max: match bus {
            Bus::Nats(_) => options.lanes.max(1) * pull::LANE_UNCHANGED,
            Bus::Local(_) => LOCAL_UNCHANGED_BATCH,
        },
        linger: match bus {
            Bus::Nats(_) => UNCHANGED_LINGER,
            Bus::Local(_) => LOCAL_UNCHANGED_LINGER,
        },
    };
    let ingester = Ingester {
        bus: bus.clone(),
        store: store.clone(),
        unchanged: Batcher::spawn(store.clone(), batching, options.metrics.clone(), tracker),
        options,
    };
    let attempts = bus.subscribe_attempts().await?;
    match bus {
        Bus::Nats(nats) => {
            let consumer = nats.ingest_consumer().await?;
            let claims = nats
                .subscribe(
                    nats.subjects.unchanged_all(),
                    Some(nats.subjects.durable.clone()),
                )
                .await?;
            nats.round_trip().await?;
            let span = info_span!("bus.ingest.claims");
            tracker.spawn(
                claims::run_claims(
                    ingester.clone(),
                    nats.client.clone(),
                    claims,
                    shutdown.clone(),
                )
                .instrument(span),
            );
            let span = info_span!("bus.ingest", backend = "nats");
            tracker.spawn(
                pull::run_nats(ingester, nats.clone(), consumer, shutdown.clone()).instrument(span),
            );
        }
        Bus::Local(local) => {
            let span = info_span!("bus.ingest", backend = "local");
            tracker.spawn(
                queue::run_local(ingester, local.clone(), shutdown.clone()).instrument(span),
            );
        }
    }
    let span = info_span!("bus.attempts");
    tracker.spawn(attempts::run_attempts(store, bus.clone(), attempts, shutdown).instrument(span));
    Ok(())
}
