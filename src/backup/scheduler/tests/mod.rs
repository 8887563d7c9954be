//! Tests of the scheduler's task loop on a paused tokio clock, with the local
//! locker, a scripted [`RecordingExecutor`] and a [`RecordingSink`]. By theme:
//! `timing` (intervals, jitter, skip), `failure` (backoff, blocks, locks),
//! `fleet` (concurrency, reload, disabled devices, shutdown).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{Scheduler, SchedulerHandle, SchedulerSettings, WallClock};
use crate::backup::{
    AttemptReport, Auth, Credentials, Device, Error, ErrorKind, Executor, Outcome, Result,
    SnapshotSink, Trigger,
};
use crate::id::{DeviceId, TenantId};
use crate::lock::Locker;

mod failure;
mod fleet;
mod timing;

const SEC: Duration = Duration::from_secs(1);
const MIN: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

/// A programmed executor result.
#[derive(Debug, Clone, Copy)]
enum Res {
    Ok,
    /// A success the store recorded already (a confirmed unchanged export).
    Recorded,
    Locked,
    Fail(ErrorKind),
}

impl Res {
    fn into_result(self, device: &Device, trigger: Trigger) -> Result<Outcome> {
        let kind = match self {
            Res::Ok => return Ok(outcome(device, trigger)),
            Res::Recorded => {
                return Ok(Outcome {
                    recorded: true,
                    ..outcome(device, trigger)
                });
            }
            Res::Locked => return Err(Error::LockHeld),
            Res::Fail(kind) => kind,
        };
        Err(match kind {
            ErrorKind::AuthFailed => Error::AuthRejected {
                username: "admin".into(),
            },
            ErrorKind::HostkeyMismatch => Error::HostKeyMismatch {
                pinned: "SHA256:old".into(),
                presented: "SHA256:new".into(),
            },
            ErrorKind::Unreachable => Error::DeviceUnreachable {
                reason: "connection refused".into(),
                source: None,
            },
            ErrorKind::Timeout => Error::TimedOut {
                stage: "command",
                after: MIN,
            },
            ErrorKind::LockUnavailable => Error::LockUnavailable(anyhow::anyhow!("refused")),
            other => Error::CommandFailed(format!("scripted {other}")),
        })
    }
}

fn outcome(device: &Device, trigger: Trigger) -> Outcome {
    Outcome {
        device_id: device.id.clone(),
        tenant_id: device.tenant.clone(),
        sha256_hash: "ab".repeat(32),
        config_text: "/system identity\nset name=r\n".into(),
        routeros_version: Some("7.15".into()),
        collected_at: chrono::Utc::now(),
        warnings: Vec::new(),
        trigger,
        raw_bytes: 28,
        duration: Duration::ZERO,
        host_key_fingerprint: "SHA256:x".into(),
        recorded: false,
    }
}

/// Counts calls per device (instant and host), tracks the concurrency seen,
/// returns scripted results (then the device's fallback, else success) and,
/// when gated, lets each call through only with one permit of the gate.
/// Each call takes `run_time` of (paused) time.
#[derive(Default)]
struct RecordingExecutor {
    run_time: Duration,
    calls: Mutex<HashMap<String, Vec<(Instant, String)>>>,
    script: Mutex<HashMap<String, VecDeque<Res>>>,
    fallback: Mutex<HashMap<String, Res>>,
    running: AtomicUsize,
    max_running: AtomicUsize,
    gate: Option<Arc<Semaphore>>,
}

impl RecordingExecutor {
    fn gated() -> (Self, Arc<Semaphore>) {
        let gate = Arc::new(Semaphore::new(0));
        let exec = Self {
            gate: Some(gate.clone()),
            ..Self::default()
        };
        (exec, gate)
    }

    fn script(&self, id: &str, results: impl IntoIterator<Item = Res>) {
        let mut script = self.script.lock().expect("script");
        script.entry(id.into()).or_default().extend(results);
    }

    fn always(&self, id: &str, res: Res) {
        self.fallback
            .lock()
            .expect("fallback")
            .insert(id.into(), res);
    }

    fn calls(&self, id: &str) -> Vec<Instant> {
        let calls = self.calls.lock().expect("calls");
        calls
            .get(id)
            .map_or_else(Vec::new, |c| c.iter().map(|(at, _)| *at).collect())
    }

    fn hosts(&self, id: &str) -> Vec<String> {
        let calls = self.calls.lock().expect("calls");
        calls
            .get(id)
            .map_or_else(Vec::new, |c| c.iter().map(|(_, h)| h.clone()).collect())
    }

    fn total(&self) -> usize {
        self.calls
            .lock()
            .expect("calls")
            .values()
            .map(Vec::len)
            .sum()
    }

    fn running(&self) -> usize {
        self.running.load(Ordering::SeqCst)
    }

    fn max_running(&self) -> usize {
        self.max_running.load(Ordering::SeqCst)
    }

    fn next_result(&self, id: &str) -> Res {
        let scripted = self
            .script
            .lock()
            .expect("script")
            .get_mut(id)
            .and_then(VecDeque::pop_front);
        scripted
            .or_else(|| self.fallback.lock().expect("fallback").get(id).copied())
            .unwrap_or(Res::Ok)
    }
}

impl Executor for RecordingExecutor {
    async fn run(&self, device: &Device, trigger: Trigger) -> Result<Outcome> {
        let id = device.id.to_string();
        let call = (Instant::now(), device.host.clone());
        self.calls
            .lock()
            .expect("calls")
            .entry(id.clone())
            .or_default()
            .push(call);
        let now_running = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_running.fetch_max(now_running, Ordering::SeqCst);
        if let Some(gate) = &self.gate {
            gate.acquire().await.expect("gate open").forget();
        }
        tokio::time::sleep(self.run_time).await;
        self.running.fetch_sub(1, Ordering::SeqCst);
        self.next_result(&id).into_result(device, trigger)
    }
}

/// Records every report.
#[derive(Default)]
struct RecordingSink {
    reports: Mutex<Vec<AttemptReport>>,
}

impl RecordingSink {
    fn reports(&self, id: &str) -> Vec<AttemptReport> {
        let reports = self.reports.lock().expect("reports");
        reports
            .iter()
            .filter(|r| r.device_id.as_str() == id)
            .cloned()
            .collect()
    }

    fn count(&self) -> usize {
        self.reports.lock().expect("reports").len()
    }
}

impl SnapshotSink for RecordingSink {
    async fn publish(&self, _outcome: &Outcome) -> anyhow::Result<()> {
        Ok(())
    }

    async fn report(&self, report: &AttemptReport) {
        self.reports.lock().expect("reports").push(report.clone());
    }
}

fn device(id: &str) -> Device {
    Device {
        id: DeviceId::parse(id).expect("valid id"),
        tenant: TenantId::parse("t1").expect("valid id"),
        name: id.into(),
        host: format!("{id}.example"),
        port: 22,
        credentials: Credentials {
            name: "default".into(),
            username: "admin".into(),
            auth: Auth::Password("secret".to_owned().into()),
        },
        interval: None,
        enabled: true,
    }
}

fn id(s: &str) -> DeviceId {
    DeviceId::parse(s).expect("valid id")
}

/// The knobs of one test run; `start` spawns the scheduler.
struct Setup {
    interval: Duration,
    jitter: Duration,
    max_concurrent: usize,
    locker: Locker,
    clock: WallClock,
}

impl Setup {
    fn new(interval: Duration, jitter: Duration) -> Self {
        Self {
            interval,
            jitter,
            max_concurrent: 10,
            locker: Locker::connect("local", "backup:device:").expect("local locker"),
            clock: WallClock::following_tokio(),
        }
    }

    fn start(self, exec: RecordingExecutor, devices: Vec<Device>) -> Harness {
        let exec = Arc::new(exec);
        let sink = Arc::new(RecordingSink::default());
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        let t0 = Instant::now();
        let settings = SchedulerSettings {
            interval: self.interval,
            jitter: self.jitter,
            max_concurrent: self.max_concurrent,
            poller_id: "poller-1".into(),
            clock: self.clock,
        };
        let handle = Scheduler::spawn(
            exec.clone(),
            sink.clone(),
            self.locker,
            devices,
            settings,
            shutdown.clone(),
            &tracker,
        );
        Harness {
            exec,
            sink,
            clock: self.clock,
            shutdown,
            tracker,
            handle,
            t0,
        }
    }
}

/// A running scheduler and what the test observes it through.
struct Harness {
    exec: Arc<RecordingExecutor>,
    sink: Arc<RecordingSink>,
    clock: WallClock,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    handle: SchedulerHandle,
    /// When the scheduler was spawned.
    t0: Instant,
}

impl Harness {
    /// Advances the paused clock to `t0 + offset`, firing every timer before.
    async fn advance_to(&self, offset: Duration) {
        tokio::time::sleep_until(self.t0 + offset).await;
    }

    /// The device's call instants as offsets from `t0`.
    fn offsets(&self, id: &str) -> Vec<Duration> {
        self.exec.calls(id).iter().map(|at| *at - self.t0).collect()
    }
}

/// Asserts `at` lies in `[from, from + width]`.
fn assert_within(at: Instant, from: Instant, width: Duration) {
    assert!(
        at >= from && at <= from + width,
        "{:?} after the window's start, window {width:?}",
        at.checked_duration_since(from)
    );
}
