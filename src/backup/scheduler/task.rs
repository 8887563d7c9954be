//! One task per scheduled device: sleep until due → wait for the device's gate
//! and a concurrency permit → read `last_success` → run the executor → report
//! → reschedule, as `schedule.rs` decides. The task's token (a child of the
//! shutdown token) stops it only between attempts: an attempt in flight always
//! finishes and is reported.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::{Mutex, Notify, OwnedMutexGuard, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::clock::WallClock;
use super::due::recently_succeeded;
use super::schedule::{DeviceSchedule, Event, Verdict};
use crate::backup::{AttemptReport, Device, Executor, SnapshotSink, Trigger};
use crate::lock::Locker;

/// How long a report may take; a hung sink must not stall the device.
const REPORT_TIMEOUT: Duration = Duration::from_secs(30);

/// What every device task shares.
pub(super) struct Shared<E, S> {
    pub(super) executor: Arc<E>,
    pub(super) sink: Arc<S>,
    pub(super) locker: Locker,
    /// `max_concurrent` permits; tokio's semaphore is FIFO, so devices that
    /// wait are served in the order they came due.
    pub(super) permits: Arc<Semaphore>,
    /// `[backup].interval`, for devices without their own.
    pub(super) interval: Duration,
    pub(super) poller_id: String,
    pub(super) clock: WallClock,
    /// Whether the lock backend was last seen down: logs only the changes,
    /// not one line per device and retry.
    lock_down: AtomicBool,
}

impl<E, S> Shared<E, S> {
    pub(super) fn new(
        executor: Arc<E>,
        sink: Arc<S>,
        locker: Locker,
        max_concurrent: usize,
        interval: Duration,
        poller_id: String,
        clock: WallClock,
    ) -> Self {
        Self {
            executor,
            sink,
            locker,
            permits: Arc::new(Semaphore::new(max_concurrent.max(1))),
            interval,
            poller_id,
            clock,
            lock_down: AtomicBool::new(false),
        }
    }

    fn lock_backend_down(&self, e: &(dyn std::error::Error + 'static)) {
        if !self.lock_down.swap(true, Ordering::Relaxed) {
            warn!(error.message = %e, error.cause_chain = ?e, "lock backend unavailable: scheduled backups wait until it answers");
        }
    }

    fn lock_backend_up(&self) {
        if self.lock_down.swap(false, Ordering::Relaxed) {
            info!("lock backend answers again: scheduled backups resume");
        }
    }
}

/// The handles through which the registry controls one device's task.
#[derive(Clone)]
pub(super) struct Controls {
    /// Stops the task between attempts.
    pub(super) stop: CancellationToken,
    /// Lifts a block (`notify_one` keeps the wake-up if the task is busy).
    pub(super) unblock: Arc<Notify>,
    /// Held during an attempt and shared by successive tasks of one device,
    /// so a restarted device waits for its predecessor's run in flight.
    pub(super) gate: Arc<Mutex<()>>,
}

/// The task of one device.
pub(super) struct DeviceTask<E, S> {
    shared: Arc<Shared<E, S>>,
    device: Device,
    controls: Controls,
    schedule: DeviceSchedule,
}

impl<E: Executor, S: SnapshotSink> DeviceTask<E, S> {
    pub(super) fn new(shared: Arc<Shared<E, S>>, device: Device, controls: Controls) -> Self {
        let schedule = DeviceSchedule::new(device.interval.unwrap_or(shared.interval));
        Self {
            shared,
            device,
            controls,
            schedule,
        }
    }

    /// Runs the device's schedule until its token is cancelled.
    pub(super) async fn run(mut self, first_due: Instant) {
        let mut due = Some(first_due);
        loop {
            let Some(at) = self.wait_until_due(due).await else {
                return;
            };
            debug!(late_by = ?at.elapsed(), "device due");
            let Some(guards) = self.acquire().await else {
                return;
            };
            let started = Instant::now();
            // Boxed, like the report below: these futures are large and live
            // only while they run, not in each of 10,000 sleeping tasks.
            let (event, success) = Box::pin(self.attempt()).await;
            let sha256_hash = success.as_ref().map(|(hash, _)| hash.clone());
            // The store recorded it with the export: nothing to report.
            let recorded = success.is_some_and(|(_, recorded)| recorded);
            drop(guards);
            let decision = self.schedule.after(event, started, Instant::now());
            if let Some(kind) = decision.report.and_then(|v| v.blocked_reason) {
                warn!(blocked_reason = %kind, "scheduled backups blocked until the device is unblocked or its configuration changes");
            }
            let stopped = self.controls.stop.is_cancelled();
            if let Some(verdict) = decision.report.filter(|_| !recorded) {
                Box::pin(self.report(verdict, started, sha256_hash, stopped)).await;
            }
            if stopped || self.controls.stop.is_cancelled() {
                return;
            }
            due = decision.next_due;
        }
    }

    /// Sleeps until `due` (forever while blocked), handling unblocks.
    /// Returns the due time reached, or `None` once stopped.
    async fn wait_until_due(&mut self, mut due: Option<Instant>) -> Option<Instant> {
        loop {
            let at = due;
            let sleep = async move {
                match at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                () = self.controls.stop.cancelled() => return None,
                () = self.controls.unblock.notified() => {
                    if let Some(now) = self.schedule.unblock(Instant::now()) {
                        info!("device unblocked: scheduled backups resume");
                        due = Some(now);
                    }
                }
                () = sleep => return at,
            }
        }
    }

    /// Waits for the device's gate and a concurrency permit; `None` once
    /// stopped (then nothing starts).
    async fn acquire(&self) -> Option<(OwnedMutexGuard<()>, OwnedSemaphorePermit)> {
        let wait = async {
            let gate = self.controls.gate.clone().lock_owned().await;
            let permit = self.shared.permits.clone().acquire_owned().await.ok()?;
            Some((gate, permit))
        };
        tokio::select! {
            biased;
            () = self.controls.stop.cancelled() => None,
            got = wait => got,
        }
    }

    /// One attempt: skip if another node succeeded recently (or if that
    /// cannot be read: fail closed), else run the executor.
    /// With a success, its hash and whether the store recorded it already.
    async fn attempt(&self) -> (Event, Option<(String, bool)>) {
        let shared = &self.shared;
        match shared.locker.last_success(&self.device.id).await {
            Err(e) => {
                shared.lock_backend_down(&e);
                return (Event::LockBackendDown, None);
            }
            Ok(last) => {
                shared.lock_backend_up();
                if recently_succeeded(last, shared.clock.now(), self.schedule.interval()) {
                    debug!("skipped: backed up within half the interval");
                    return (Event::RecentSuccess, None);
                }
            }
        }
        let result = shared.executor.run(&self.device, Trigger::Scheduled).await;
        let event = Event::of(&result);
        match (&result, event) {
            (Ok(outcome), _) => {
                info!(sha256_hash = %outcome.sha256_hash, "scheduled backup succeeded");
            }
            (Err(_), Event::Locked) => {
                info!("device locked by another backup: trying again shortly");
            }
            (Err(_), Event::Cancelled) => info!("backup cancelled by the shutdown deadline"),
            (Err(e), Event::LockBackendDown) => shared.lock_backend_down(e),
            (Err(e), _) => {
                warn!(error.message = %e, error.cause_chain = ?e, error_kind = %e.kind(), "scheduled backup failed");
            }
        }
        let success = result.ok().map(|o| (o.sha256_hash, o.recorded));
        (event, success)
    }

    /// Reports the attempt, best effort. A stopped task (device removed or
    /// changed, or shutdown) schedules nothing more, so it reports no
    /// `next_attempt_at`.
    async fn report(
        &self,
        verdict: Verdict,
        started: Instant,
        sha256_hash: Option<String>,
        stopped: bool,
    ) {
        let clock = self.shared.clock;
        let report = AttemptReport {
            device_id: self.device.id.clone(),
            tenant_id: self.device.tenant.clone(),
            at: clock.at(started),
            trigger: Trigger::Scheduled,
            status: verdict.status,
            error_kind: verdict.error_kind,
            sha256_hash,
            next_attempt_at: verdict
                .next_attempt_at
                .filter(|_| !stopped)
                .map(|at| clock.at(at)),
            blocked_reason: verdict.blocked_reason,
            poller_id: self.shared.poller_id.clone(),
        };
        let sent = tokio::time::timeout(REPORT_TIMEOUT, self.shared.sink.report(&report)).await;
        if sent.is_err() {
            warn!(
                "reporting the attempt timed out after {}",
                humantime::format_duration(REPORT_TIMEOUT)
            );
        }
    }
}
