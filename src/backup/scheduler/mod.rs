//! The backup scheduler: runs every enabled device's backup once per interval,
//! with jitter, backoff, blocking, a concurrency cap and a fleet reload.
//!
//! Owns *when* backups run, never *how* (the [`Executor`]) nor where results
//! are stored (the [`SnapshotSink`]'s `report`). Entry points:
//! [`Scheduler::spawn`] and the returned [`SchedulerHandle`] (`reload`,
//! `unblock`). Layout: `due` and `schedule` (the pure due-time math and
//! per-device state), `task` (one task per device), `clock` (instants to UTC).
//!
//! Task model: one tokio task per device, asleep until its due time. 10,000
//! devices are 10,000 idle tasks and timer entries (a few hundred bytes
//! each; the large collection future is boxed only while it runs), and each
//! device's state lives in its own task, so reload and unblock touch only the
//! devices they name. A `Semaphore` of `max_concurrent` permits caps the
//! running backups; it is FIFO, so due devices queue and are never dropped.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::Rng as _;
use secrecy::ExposeSecret as _;
use sha2::{Digest as _, Sha256};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument as _, info, info_span};

use super::{Auth, Device, Executor, SnapshotSink};
use crate::id::DeviceId;
use crate::lock::Locker;

mod clock;
mod due;
mod schedule;
mod task;
#[cfg(test)]
mod tests;

pub use clock::WallClock;

use task::{Controls, DeviceTask, Shared};

/// What the scheduler needs from `[backup]` and the node.
#[derive(Debug, Clone)]
pub struct SchedulerSettings {
    /// `[backup].interval`: time between runs of devices without their own.
    pub interval: Duration,
    /// `[backup].jitter`: a device's first run (at start, when added or
    /// changed) is at a uniformly random offset in `[0, jitter]`.
    pub jitter: Duration,
    /// `[backup].max_concurrent`: backups running at once (at least 1).
    pub max_concurrent: usize,
    /// This node's name in reports.
    pub poller_id: String,
    /// Wall clock of reports and of the `last_success` check;
    /// [`WallClock::system`] outside tests.
    pub clock: WallClock,
}

/// The backup scheduler. See the module documentation.
#[derive(Debug)]
pub struct Scheduler;

impl Scheduler {
    /// Starts one task per enabled device on `tracker` and returns once they
    /// are spawned. Must be called inside a Tokio runtime.
    ///
    /// Every attempt goes through `executor` with `Trigger::Scheduled`; pass
    /// the locking `Pipeline`. Each attempt that reached the executor is
    /// reported through `sink.report`. On `shutdown`, no new backup starts,
    /// backups in flight finish and are reported, and every task ends, so
    /// `tracker.wait()` returns once the caller closes the tracker.
    pub fn spawn<E: Executor, S: SnapshotSink>(
        executor: Arc<E>,
        sink: Arc<S>,
        locker: Locker,
        devices: Vec<Device>,
        settings: SchedulerSettings,
        shutdown: CancellationToken,
        tracker: &TaskTracker,
    ) -> SchedulerHandle {
        let shared = Shared::new(
            executor,
            sink,
            locker,
            settings.max_concurrent,
            settings.interval,
            settings.poller_id,
            settings.clock,
        );
        let handle = SchedulerHandle {
            inner: Arc::new(Inner {
                spawner: Box::new(Spawner {
                    shared: Arc::new(shared),
                    tracker: tracker.clone(),
                }),
                shutdown,
                jitter: settings.jitter,
                slots: Mutex::default(),
            }),
        };
        let summary = handle.reload(devices);
        info!(devices = summary.added, "scheduler started");
        handle
    }
}

/// Controls a running scheduler. Cheap to clone.
#[derive(Clone)]
pub struct SchedulerHandle {
    inner: Arc<Inner>,
}

/// What a [`SchedulerHandle::reload`] did, counted in enabled devices.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReloadSummary {
    /// Newly scheduled (new, or newly enabled).
    pub added: usize,
    /// Stopped (gone, or disabled).
    pub removed: usize,
    /// Restarted because a field differs.
    pub changed: usize,
    /// Kept with their timers and state.
    pub unchanged: usize,
}

impl SchedulerHandle {
    /// Replaces the fleet (SIGHUP): added and newly enabled devices start
    /// (first run within the jitter); removed and disabled ones stop; changed
    /// ones (any field, credentials included) restart with a fresh state, so
    /// a new password lifts an `auth_failed` block; unchanged ones keep their
    /// timers, backoff and blocks. A backup in flight of a removed or
    /// changed device is not cancelled: it finishes and is reported, and a
    /// restarted device's next run waits for it. Device ids are unique (config
    /// validation); of duplicates the last one counts. After shutdown this
    /// does nothing.
    pub fn reload(&self, devices: Vec<Device>) -> ReloadSummary {
        let inner = &self.inner;
        let mut summary = ReloadSummary::default();
        let mut slots = inner.slots();
        if inner.shutdown.is_cancelled() {
            return summary;
        }
        let wanted: HashMap<DeviceId, Device> = devices
            .into_iter()
            .filter(|d| d.enabled)
            .map(|d| (d.id.clone(), d))
            .collect();
        slots.retain(|id, slot| {
            let keep = wanted.contains_key(id);
            if !keep {
                slot.controls.stop.cancel();
                summary.removed += 1;
            }
            keep
        });
        let now = Instant::now();
        for (id, device) in wanted {
            let fingerprint = fingerprint(&device);
            let gate = match slots.get(&id) {
                Some(slot) if slot.fingerprint == fingerprint => {
                    summary.unchanged += 1;
                    continue;
                }
                Some(slot) => {
                    slot.controls.stop.cancel();
                    summary.changed += 1;
                    slot.controls.gate.clone()
                }
                None => {
                    summary.added += 1;
                    Arc::default()
                }
            };
            let slot = inner.start(device, fingerprint, gate, now);
            slots.insert(id, slot);
        }
        summary
    }

    /// Lifts an `auth_failed` or `hostkey_mismatch` block (after an admin
    /// reset the host key): the device runs right away. Does nothing to a
    /// device that is not blocked. Returns false when the device is not
    /// scheduled here (unknown, disabled, or after shutdown).
    pub fn unblock(&self, device: &DeviceId) -> bool {
        match self.inner.slots().get(device) {
            Some(slot) if !slot.controls.stop.is_cancelled() => {
                slot.controls.unblock.notify_one();
                true
            }
            _ => false,
        }
    }
}

impl fmt::Debug for SchedulerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SchedulerHandle")
            .field("devices", &self.inner.slots().len())
            .finish_non_exhaustive()
    }
}

struct Inner {
    spawner: Box<dyn Spawn>,
    shutdown: CancellationToken,
    jitter: Duration,
    slots: Mutex<HashMap<DeviceId, Slot>>,
}

impl Inner {
    /// Spawns a device's task, first due within the jitter from `now`.
    fn start(
        &self,
        device: Device,
        fingerprint: Fingerprint,
        gate: Arc<tokio::sync::Mutex<()>>,
        now: Instant,
    ) -> Slot {
        let controls = Controls {
            stop: self.shutdown.child_token(),
            unblock: Arc::default(),
            gate,
        };
        let fraction = rand::thread_rng().gen_range(0.0..=1.0);
        let first_due = due::first_due(now, self.jitter, fraction);
        self.spawner.spawn(device, controls.clone(), first_due);
        Slot {
            fingerprint,
            controls,
        }
    }

    fn slots(&self) -> MutexGuard<'_, HashMap<DeviceId, Slot>> {
        // Every update under this lock is a single map operation or a token
        // cancel, so a panic cannot leave it half-changed: ignore poisoning.
        self.slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A scheduled device as the registry sees it.
struct Slot {
    fingerprint: Fingerprint,
    controls: Controls,
}

/// Spawns device tasks. Erases the executor and sink types, so that
/// [`SchedulerHandle`] is one type whatever the backends are.
trait Spawn: Send + Sync {
    fn spawn(&self, device: Device, controls: Controls, first_due: Instant);
}

struct Spawner<E, S> {
    shared: Arc<Shared<E, S>>,
    tracker: TaskTracker,
}

impl<E: Executor, S: SnapshotSink> Spawn for Spawner<E, S> {
    fn spawn(&self, device: Device, controls: Controls, first_due: Instant) {
        let span = info_span!("backup.scheduler", device_id = %device.id);
        let task = DeviceTask::new(self.shared.clone(), device, controls);
        self.tracker.spawn(task.run(first_due).instrument(span));
    }
}

/// SHA-256 over every field of a device, so that reload notices any change.
type Fingerprint = [u8; 32];

fn fingerprint(device: &Device) -> Fingerprint {
    let mut h = Sha256::new();
    let c = &device.credentials;
    for field in [
        device.id.as_str(),
        device.tenant.as_str(),
        &device.name,
        &device.host,
        &c.name,
        &c.username,
    ] {
        put(&mut h, field.as_bytes());
    }
    put(&mut h, &device.port.to_le_bytes());
    put(&mut h, &[u8::from(device.enabled)]);
    match device.interval {
        Some(interval) => put(&mut h, &interval.as_nanos().to_le_bytes()),
        None => put(&mut h, b"default"),
    }
    // The secrets are hashed, never kept: a changed password must count as a
    // change (it lifts an auth block).
    match &c.auth {
        Auth::Password(password) => {
            put(&mut h, b"password");
            put(&mut h, password.expose_secret().as_bytes());
        }
        Auth::Key { path, passphrase } => {
            put(&mut h, b"key");
            put(&mut h, path.as_os_str().as_encoded_bytes());
            match passphrase {
                Some(p) => put(&mut h, p.expose_secret().as_bytes()),
                None => put(&mut h, b"no passphrase"),
            }
        }
    }
    h.finalize().into()
}

/// Length-prefixed, so that field boundaries cannot shift.
fn put(h: &mut Sha256, bytes: &[u8]) {
    h.update((bytes.len() as u64).to_le_bytes());
    h.update(bytes);
}
