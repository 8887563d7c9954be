//! `Pipeline`: the full backup of DESIGN.md §1 around any [`Executor`]:
//! lock the device → run the inner executor (SSH collection) → publish the
//! snapshot (a backup succeeds only once its snapshot is durably handed over)
//! → record the success beside the lock → unlock, whatever happened.
//!
//! An export whose hash the device's previous backup handed over (the lock
//! says which, [`LockGuard::published`]) is first offered to the sink as
//! unchanged ([`SnapshotSink::confirm_unchanged`]): where the store confirms
//! it is still the device's newest, the text is not sent again (issue #21).
//!
//! The lock's TTL is `command_timeout + 30 s`; while a long export runs it is
//! extended every third of its TTL, so it never lapses under a live job but
//! frees the device soon after a holder dies. An abort token (the node's
//! shutdown deadline) cuts a job short and still releases its lock.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{instrument, warn};

use super::{Device, Error, Executor, Outcome, Result, SnapshotSink, Trigger};
use crate::id::DeviceId;
use crate::lock::{LockGuard, Locker};

/// How long a publish may take before the backup fails with `publish_failed`.
pub const PUBLISH_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a success stays recorded for other schedulers (`last_success`).
pub const SUCCESS_MEMORY: Duration = Duration::from_secs(7 * 24 * 3600);

/// The lock TTL DESIGN.md §3.3 asks for: `command_timeout + 30 s`.
pub fn lock_ttl(command_timeout: Duration) -> Duration {
    command_timeout + Duration::from_secs(30)
}

/// The devices whose newest collected export has not been handed over to
/// the sink (publish failed, timed out or was cut short by shutdown):
/// what a stopping node reports as not handed over. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Handover {
    pending: Arc<Mutex<BTreeSet<DeviceId>>>,
}

impl Handover {
    fn collected(&self, device: &DeviceId) {
        self.lock().insert(device.clone());
    }

    fn handed_over(&self, device: &DeviceId) {
        self.lock().remove(device);
    }

    /// The devices whose newest export was collected and never handed over.
    pub fn pending(&self) -> Vec<DeviceId> {
        self.lock().iter().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<DeviceId>> {
        // A panic while holding the set leaves it consistent: one insert or
        // remove either happened or not.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Lock → run → publish → unlock around an inner executor.
#[derive(Clone)]
pub struct Pipeline<E, S> {
    inner: E,
    locker: Locker,
    sink: S,
    lock_ttl: Duration,
    abort: CancellationToken,
    handover: Handover,
}

impl<E: Executor, S: SnapshotSink> Pipeline<E, S> {
    /// Wraps `inner`; `lock_ttl` is DESIGN.md's `command_timeout + 30 s`.
    pub fn new(inner: E, locker: Locker, sink: S, lock_ttl: Duration) -> Self {
        Self {
            inner,
            locker,
            sink,
            lock_ttl,
            abort: CancellationToken::new(),
            handover: Handover::default(),
        }
    }

    /// The ledger of exports collected and not (yet) handed over.
    pub fn handover(&self) -> Handover {
        self.handover.clone()
    }

    /// Cuts every job short with [`Error::Cancelled`] once `abort` is
    /// cancelled (their locks are released all the same).
    pub fn with_abort(mut self, abort: CancellationToken) -> Self {
        self.abort = abort;
        self
    }

    /// The sink snapshots go to.
    pub fn sink(&self) -> &S {
        &self.sink
    }

    async fn run_locked(
        &self,
        device: &Device,
        trigger: Trigger,
        published: Option<&str>,
    ) -> Result<Outcome> {
        let outcome = self.inner.run(device, trigger).await?;
        // Recorded before the publish, so a publish cut short by shutdown
        // leaves the device on the ledger.
        self.handover.collected(&device.id);
        if published == Some(outcome.sha256_hash.as_str())
            && self.sink.confirm_unchanged(&outcome).await
        {
            self.handover.handed_over(&device.id);
            return Ok(Outcome {
                recorded: true,
                ..outcome
            });
        }
        match tokio::time::timeout(PUBLISH_TIMEOUT, self.sink.publish(&outcome)).await {
            Ok(Ok(())) => self.handover.handed_over(&device.id),
            Ok(Err(e)) => return Err(Error::PublishFailed(e)),
            Err(_) => {
                return Err(Error::PublishFailed(anyhow::anyhow!(
                    "no acknowledgement within {}",
                    humantime::format_duration(PUBLISH_TIMEOUT)
                )));
            }
        }
        Ok(outcome)
    }
}

impl<E: Executor, S: SnapshotSink> Executor for Pipeline<E, S> {
    #[instrument(name = "backup.pipeline", skip_all, fields(device_id = %device.id, trigger = ?trigger))]
    async fn run(&self, device: &Device, trigger: Trigger) -> Result<Outcome> {
        let guard = match self.locker.try_acquire(&device.id, self.lock_ttl).await {
            Ok(Some(guard)) => guard,
            Ok(None) => return Err(Error::LockHeld),
            Err(e) => return Err(Error::LockUnavailable(e.into())),
        };
        let result = tokio::select! {
            result = self.run_locked(device, trigger, guard.published()) => result,
            never = keep_extended(&guard, self.lock_ttl) => match never {},
            () = self.abort.cancelled() => Err(Error::Cancelled),
        };
        // A success is recorded (for the other nodes' schedulers) in the
        // same call that releases the lock.
        let released = match &result {
            Ok(outcome) => {
                guard
                    .release_after_success(
                        outcome.collected_at,
                        SUCCESS_MEMORY,
                        Some(&outcome.sha256_hash),
                    )
                    .await
            }
            Err(_) => guard.release().await,
        };
        if let Err(e) = released {
            warn!(error.message = %e, error.cause_chain = ?e, "releasing the device lock failed (a success is then not recorded); the lock lapses at its TTL");
        }
        result
    }
}

/// Extends `guard` every third of `ttl`, forever (cancelled by the caller's
/// `select!`). A lost or unreachable lock is logged; the job goes on, since
/// stopping an export half-way would not make the device safer.
async fn keep_extended(guard: &LockGuard, ttl: Duration) -> Infallible {
    loop {
        tokio::time::sleep(ttl / 3).await;
        match guard.extend(ttl).await {
            Ok(true) => {}
            Ok(false) => {
                warn!(device_id = %guard.device(), "device lock lost while the backup ran")
            }
            Err(e) => {
                warn!(error.message = %e, device_id = %guard.device(), "extending the device lock failed")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use chrono::Utc;

    use super::*;
    use crate::backup::{AttemptReport, Auth, Credentials};
    use crate::id::{DeviceId, TenantId};

    /// An inner executor that sleeps `delay`, then succeeds or fails.
    struct Stub {
        delay: Duration,
        fail: bool,
        runs: AtomicUsize,
    }

    impl Executor for Stub {
        async fn run(&self, device: &Device, trigger: Trigger) -> Result<Outcome> {
            self.runs.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(self.delay).await;
            if self.fail {
                return Err(Error::CommandFailed("bad command name".into()));
            }
            Ok(Outcome {
                device_id: device.id.clone(),
                tenant_id: device.tenant.clone(),
                sha256_hash: "0".repeat(64),
                config_text: "/ip address\n".into(),
                routeros_version: None,
                collected_at: Utc::now(),
                warnings: Vec::new(),
                trigger,
                raw_bytes: 12,
                duration: self.delay,
                host_key_fingerprint: "SHA256:x".into(),
                recorded: false,
            })
        }
    }

    /// A sink that counts publishes and may refuse them.
    #[derive(Default)]
    struct Sink {
        refuse: bool,
        published: AtomicUsize,
    }

    impl SnapshotSink for Arc<Sink> {
        async fn publish(&self, _outcome: &Outcome) -> anyhow::Result<()> {
            if self.refuse {
                anyhow::bail!("stream unavailable");
            }
            self.published.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }

        async fn report(&self, _report: &AttemptReport) {}
    }

    fn device() -> Device {
        Device {
            id: DeviceId::parse("r1").expect("id"),
            tenant: TenantId::parse("t1").expect("id"),
            name: "r1".into(),
            host: "127.0.0.1".into(),
            port: 22,
            credentials: Credentials {
                name: "c".into(),
                username: "u".into(),
                auth: Auth::Password("p".to_owned().into()),
            },
            interval: None,
            enabled: true,
        }
    }

    fn pipeline(
        delay: Duration,
        fail: bool,
        sink: Arc<Sink>,
    ) -> (Pipeline<Stub, Arc<Sink>>, Locker) {
        let locker = Locker::connect("local", "backup:device:").expect("local");
        let stub = Stub {
            delay,
            fail,
            runs: AtomicUsize::new(0),
        };
        (
            Pipeline::new(
                stub,
                locker.clone(),
                sink,
                lock_ttl(Duration::from_secs(60)),
            ),
            locker,
        )
    }

    async fn is_free(locker: &Locker) -> bool {
        match locker
            .try_acquire(&device().id, Duration::from_secs(1))
            .await
            .expect("local")
        {
            Some(g) => {
                g.release().await.expect("release");
                true
            }
            None => false,
        }
    }

    #[tokio::test]
    async fn a_success_is_published_recorded_and_unlocked() {
        let sink = Arc::new(Sink::default());
        let (p, locker) = pipeline(Duration::ZERO, false, sink.clone());
        p.run(&device(), Trigger::Manual).await.expect("success");
        assert_eq!(sink.published.load(Ordering::SeqCst), 1);
        assert!(
            locker
                .last_success(&device().id)
                .await
                .expect("local")
                .is_some()
        );
        assert!(is_free(&locker).await, "the lock must be released");
        assert!(p.handover().pending().is_empty(), "handed over");
    }

    #[tokio::test]
    async fn a_held_lock_is_lock_held_and_the_device_is_not_touched() {
        let (p, locker) = pipeline(Duration::ZERO, false, Arc::default());
        let held = locker
            .try_acquire(&device().id, Duration::from_secs(60))
            .await
            .expect("local")
            .expect("free");
        let err = p
            .run(&device(), Trigger::Scheduled)
            .await
            .expect_err("locked");
        assert!(matches!(err, Error::LockHeld), "got {err:?}");
        assert_eq!(p.inner.runs.load(Ordering::SeqCst), 0);
        held.release().await.expect("release");
    }

    #[tokio::test]
    async fn a_refused_publish_is_publish_failed_and_still_unlocks() {
        let sink = Arc::new(Sink {
            refuse: true,
            ..Sink::default()
        });
        let (p, locker) = pipeline(Duration::ZERO, false, sink);
        let err = p
            .run(&device(), Trigger::Manual)
            .await
            .expect_err("publish fails");
        assert_eq!(err.kind(), crate::backup::ErrorKind::PublishFailed);
        assert!(
            locker
                .last_success(&device().id)
                .await
                .expect("local")
                .is_none()
        );
        assert!(is_free(&locker).await);
        assert_eq!(p.handover().pending(), [device().id], "not handed over");
    }

    #[tokio::test]
    async fn a_failed_collection_publishes_nothing_and_unlocks() {
        let sink = Arc::new(Sink::default());
        let (p, locker) = pipeline(Duration::ZERO, true, sink.clone());
        let err = p.run(&device(), Trigger::Manual).await.expect_err("fails");
        assert_eq!(err.kind(), crate::backup::ErrorKind::CommandFailed);
        assert_eq!(sink.published.load(Ordering::SeqCst), 0);
        assert!(is_free(&locker).await);
    }

    #[tokio::test(start_paused = true)]
    async fn an_aborted_job_is_cancelled_publishes_nothing_and_unlocks() {
        // Arrange: a job of ten minutes, aborted after one.
        let sink = Arc::new(Sink::default());
        let (p, locker) = pipeline(Duration::from_secs(600), false, sink.clone());
        let abort = CancellationToken::new();
        let p = p.with_abort(abort.clone());
        let job = tokio::spawn(async move { p.run(&device(), Trigger::Scheduled).await });

        // Act
        tokio::time::sleep(Duration::from_secs(60)).await;
        abort.cancel();
        let err = job.await.expect("join").expect_err("cancelled");

        // Assert
        assert!(matches!(err, Error::Cancelled), "got {err:?}");
        assert_eq!(sink.published.load(Ordering::SeqCst), 0);
        assert!(is_free(&locker).await, "the lock is released at once");
    }

    #[tokio::test(start_paused = true)]
    async fn a_job_longer_than_the_lock_ttl_keeps_its_lock_until_it_ends() {
        // Arrange: a job of five TTLs (90 s each).
        let ttl = lock_ttl(Duration::from_secs(60));
        let (p, locker) = pipeline(ttl * 5, false, Arc::default());
        let p = Arc::new(p);
        let job = tokio::spawn({
            let p = p.clone();
            async move { p.run(&device(), Trigger::Scheduled).await }
        });

        // Act: look at the lock after two TTLs.
        tokio::time::sleep(ttl * 2).await;
        let free_midway = is_free(&locker).await;
        job.await.expect("join").expect("success");

        // Assert
        assert!(!free_midway, "the lock lapsed under a live job");
        assert!(is_free(&locker).await, "released at the end");
    }
}
