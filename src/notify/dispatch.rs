//! The dispatcher: on a node with the ingester role, claims due outbox rows
//! (as many as it has free delivery slots, `[notify] concurrency`), delivers
//! each on a task of its own and records the outcome; every minute or so it
//! also queues `backup.stale` for devices without a recent success. A reload
//! swaps targets, guard and HTTP client and re-enables targets disabled by a
//! 410. On shutdown it claims nothing more and hands back the rows in
//! flight (their leases end; a later claim delivers them, same `webhook-id`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument as _, info_span, warn};

use super::deliver::{Ctx, deliver};
use crate::config::Fleet;
use crate::config::notify::NotifyConfig;
use crate::metrics::Metrics;
use crate::store::Store;
use crate::store::audit::Action;
use crate::store::outbox::{Claimed, Outcome};

/// The stale sweep runs every this many poll intervals.
const STALE_SWEEP_POLLS: u32 = 60;

/// The targets in force, shared by the store's routing and the dispatcher,
/// replaced as a whole on reload.
#[derive(Clone)]
pub struct Notifier {
    tx: watch::Sender<Arc<NotifyConfig>>,
}

impl Notifier {
    /// A notifier for `config`.
    pub fn new(config: NotifyConfig) -> Notifier {
        let (tx, _) = watch::channel(Arc::new(config));
        Notifier { tx }
    }

    /// Switches to `config`: events committed from now on are routed to its
    /// targets, and the dispatcher delivers with it.
    pub fn apply(&self, store: Option<&Store>, config: NotifyConfig) {
        if let Some(store) = store {
            store.set_notify_routes(&config);
        }
        self.tx.send_replace(Arc::new(config));
    }

    fn subscribe(&self) -> watch::Receiver<Arc<NotifyConfig>> {
        self.tx.subscribe()
    }
}

/// What the dispatcher needs besides the store.
pub struct DispatcherParts {
    /// The targets, following reloads.
    pub notifier: Notifier,
    /// The fleet, for the stale thresholds.
    pub fleet: watch::Receiver<Arc<Fleet>>,
    /// `[backup] interval`, for devices without one of their own.
    pub backup_interval: Duration,
    /// Deliveries by kind and result, queue depth, oldest pending.
    pub metrics: Metrics,
}

/// Spawns the dispatcher on `tracker`; it runs until `shutdown`.
///
/// # Errors
/// When the HTTP client cannot be built (no TLS roots).
pub fn spawn_dispatcher(
    store: Store,
    parts: DispatcherParts,
    shutdown: CancellationToken,
    tracker: &TaskTracker,
) -> anyhow::Result<()> {
    let config = parts.notifier.subscribe();
    let ctx = Arc::new(Ctx::new(store, config.borrow().clone())?);
    let task = run(ctx, config, parts, shutdown);
    tracker.spawn(task.instrument(info_span!("notify.dispatcher")));
    Ok(())
}

async fn run(
    mut ctx: Arc<Ctx>,
    mut config: watch::Receiver<Arc<NotifyConfig>>,
    parts: DispatcherParts,
    shutdown: CancellationToken,
) {
    let mut slots = Arc::new(Semaphore::new(ctx.config.options.concurrency));
    let mut tasks = JoinSet::new();
    let mut next_sweep = Instant::now();
    while !shutdown.is_cancelled() {
        // `changed()` below marks the value seen: compare, not `has_changed`.
        let latest = config.borrow_and_update().clone();
        if !Arc::ptr_eq(&latest, &ctx.config) {
            match Ctx::new(ctx.store.clone(), latest) {
                Ok(fresh) => {
                    ctx = Arc::new(fresh);
                    slots = Arc::new(Semaphore::new(ctx.config.options.concurrency));
                }
                Err(e) => {
                    warn!(error.message = %e, "building the notification client failed; keeping the previous one")
                }
            }
        }
        let options = &ctx.config.options;
        if Instant::now() >= next_sweep {
            sweep_stale(&ctx, &parts).await;
            next_sweep = Instant::now() + options.poll_interval * STALE_SWEEP_POLLS;
        }
        let full = claim(&ctx, &slots, &mut tasks, &parts.metrics, &shutdown).await;
        let poll = options.poll_interval;
        tokio::select! {
            () = shutdown.cancelled() => {}
            () = tokio::time::sleep(poll), if !full => {}
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            Ok(()) = config.changed() => {}
        }
    }
    // Rows in flight see the cancellation and are handed back.
    while tasks.join_next().await.is_some() {}
}

/// Claims as many due rows as there are free slots and starts their
/// deliveries; whether every slot got one (more may be due).
async fn claim(
    ctx: &Arc<Ctx>,
    slots: &Arc<Semaphore>,
    tasks: &mut JoinSet<()>,
    metrics: &Metrics,
    shutdown: &CancellationToken,
) -> bool {
    let free = slots.available_permits();
    if free == 0 {
        return true;
    }
    let options = &ctx.config.options;
    // Longer than a delivery can take, so that only a dead node's rows expire.
    let lease = options.timeout * 2 + Duration::from_secs(5);
    let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
    let rows = match ctx.store.claim_notifications(free, lease_ms).await {
        Ok(rows) => rows,
        Err(e) => {
            warn!(error.message = %e, error.cause_chain = ?e, "claiming notifications failed");
            return false;
        }
    };
    let full = rows.len() == free;
    for row in rows {
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            break;
        };
        let span = info_span!("notify.deliver", target = %row.target, webhook_id = %row.webhook_id);
        let task = one(ctx.clone(), row, permit, metrics.clone(), shutdown.clone());
        tasks.spawn(task.instrument(span));
    }
    full
}

async fn one(
    ctx: Arc<Ctx>,
    row: Claimed,
    _slot: OwnedSemaphorePermit,
    metrics: Metrics,
    stop: CancellationToken,
) {
    let outcome = tokio::select! {
        outcome = deliver(&ctx, &row) => outcome,
        () = stop.cancelled() => Outcome::Release,
    };
    metrics.notification(ctx.kind_of(&row.target), result_label(&outcome));
    if let Err(e) = ctx.store.record_delivery(&row, &outcome).await {
        // The lease runs out and the row is delivered again, same webhook-id.
        warn!(error.message = %e, error.cause_chain = ?e, "recording a delivery failed");
    }
}

fn result_label(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Delivered => "delivered",
        Outcome::Retry { .. } => "retry",
        Outcome::Defer { .. } => "deferred",
        Outcome::Failed { action, .. } if *action == Action::NotificationTargetDisabled => "gone",
        Outcome::Failed { .. } => "failed",
        Outcome::Release => "released",
    }
}

/// Queues `backup.stale` where due: threshold `[notify] stale_after`, or
/// three times the device's interval.
async fn sweep_stale(ctx: &Ctx, parts: &DispatcherParts) {
    let stale_after = ctx.config.options.stale_after;
    let thresholds: HashMap<String, Duration> = parts
        .fleet
        .borrow()
        .devices
        .iter()
        .filter(|d| d.enabled)
        .map(|d| {
            let every = d.interval.unwrap_or(parts.backup_interval);
            (d.id.to_string(), stale_after.unwrap_or(every * 3))
        })
        .collect();
    if let Err(e) = ctx.store.queue_stale(&thresholds, chrono::Utc::now()).await {
        warn!(error.message = %e, error.cause_chain = ?e, "checking for stale backups failed");
    }
    match ctx.store.pending_notifications().await {
        Ok((pending, oldest_ms)) => {
            let oldest = Duration::from_millis(u64::try_from(oldest_ms.unwrap_or(0)).unwrap_or(0));
            parts.metrics.notification_queue(pending, oldest);
        }
        Err(e) => warn!(error.message = %e, "reading the notification queue depth failed"),
    }
}
