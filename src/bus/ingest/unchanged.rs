//! Group commit of unchanged snapshot events (issue #21): events whose hash
//! is the device's newest ([`Store::is_probably_unchanged`]) wait here a
//! little ([`Batching::linger`], at most [`Batching::max`] of them), and
//! the batch is recorded in one transaction by
//! [`Store::record_unchanged`]. Each caller gets its own answer once the
//! batch committed, so an event is still acknowledged only after what it
//! causes is committed. The batching task ends, after its last batch,
//! when every [`Batcher`] clone is dropped.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio_util::task::TaskTracker;
use tracing::{Instrument as _, info_span};

use crate::metrics::Metrics;
use crate::store::snapshot::{Ingested, NewSnapshot};
use crate::store::{self, Store};

/// How long and how many events a batch collects.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Batching {
    /// Most events in one transaction.
    pub(crate) max: usize,
    /// How long the first event of a batch waits for others.
    pub(crate) linger: Duration,
}

/// What became of an event handed to the [`Batcher`].
pub(crate) enum Unchanged {
    /// Recorded as a duplicate of the device's newest snapshot.
    Recorded(Ingested),
    /// Not a duplicate after all (or an event the full path must judge):
    /// here it is back, for [`Store::ingest`].
    Changed(NewSnapshot),
    /// The batch failed; retry the event later (from its payload, which
    /// the caller still holds).
    Failed { reason: String, transient: bool },
}

struct Entry {
    snap: NewSnapshot,
    reply: oneshot::Sender<Unchanged>,
}

/// Hands events to the batching task. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Batcher {
    tx: mpsc::Sender<Entry>,
    /// Cuts the open batch's linger short.
    flush: Arc<Notify>,
}

impl Batcher {
    /// Starts the batching task on `tracker`.
    pub(crate) fn spawn(
        store: Store,
        batching: Batching,
        metrics: Option<Metrics>,
        tracker: &TaskTracker,
    ) -> Batcher {
        let max = batching.max.max(1);
        let (tx, rx) = mpsc::channel(max);
        let flush = Arc::new(Notify::new());
        let span = info_span!("bus.ingest.unchanged");
        tracker.spawn(
            run(
                store,
                metrics,
                rx,
                Batching { max, ..batching },
                Arc::clone(&flush),
            )
            .instrument(span),
        );
        Batcher { tx, flush }
    }

    /// Records the open batch now, without waiting out its linger (an
    /// event that must wait for it is next, or the node stops). With no
    /// batch open, the next one goes at once.
    pub(crate) fn flush_now(&self) {
        self.flush.notify_one();
    }

    /// Waits until every event in `waiting` is recorded, cutting the open
    /// batch's linger short first: an event that is not unchanged is next,
    /// or the loop ends.
    pub(crate) async fn finish<F: Future<Output = ()>>(&self, waiting: &mut FuturesUnordered<F>) {
        if !waiting.is_empty() {
            self.flush_now();
        }
        while waiting.next().await.is_some() {}
    }

    /// Records `snap` with the batch it joins; returns once that batch is
    /// committed (or failed).
    pub(crate) async fn record(&self, snap: NewSnapshot) -> Unchanged {
        self.record_with(snap, false).await
    }

    /// [`record`](Self::record), and the batch `snap` joins is committed
    /// without waiting out its linger: someone waits for this answer (a
    /// manual backup), not only for the batch.
    pub(crate) async fn record_now(&self, snap: NewSnapshot) -> Unchanged {
        self.record_with(snap, true).await
    }

    async fn record_with(&self, snap: NewSnapshot, now: bool) -> Unchanged {
        let (reply, answer) = oneshot::channel();
        if let Err(mpsc::error::SendError(entry)) = self.tx.send(Entry { snap, reply }).await {
            // The task is gone (shutdown): the full path still works.
            return Unchanged::Changed(entry.snap);
        }
        if now {
            self.flush_now();
        }
        match answer.await {
            Ok(done) => done,
            // The task dropped the entry without answering: it only does
            // so when its runtime goes away.
            Err(_) => Unchanged::Failed {
                reason: "the unchanged-event batch was dropped".into(),
                transient: true,
            },
        }
    }
}

async fn run(
    store: Store,
    metrics: Option<Metrics>,
    mut rx: mpsc::Receiver<Entry>,
    batching: Batching,
    cut: Arc<Notify>,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + batching.linger;
        while batch.len() < batching.max {
            tokio::select! {
                // Events already queued join before the deadline is looked at,
                // so a zero linger still takes what is waiting.
                biased;
                next = rx.recv() => match next {
                    Some(entry) => batch.push(entry),
                    None => break,
                },
                () = tokio::time::sleep_until(deadline) => break,
                () = cut.notified() => break,
            }
        }
        flush(&store, metrics.as_ref(), batch).await;
    }
}

async fn flush(store: &Store, metrics: Option<&Metrics>, batch: Vec<Entry>) {
    let snaps: Vec<&NewSnapshot> = batch.iter().map(|e| &e.snap).collect();
    let results = store.record_unchanged(&snaps).await;
    drop(snaps);
    match results {
        Ok(results) => {
            if let Some(metrics) = metrics {
                metrics.unchanged_batch();
            }
            for (entry, result) in batch.into_iter().zip(results) {
                let answer = match result {
                    Some(ingested) => Unchanged::Recorded(ingested),
                    None => Unchanged::Changed(entry.snap),
                };
                // A caller that went away (shutdown) needs no answer.
                entry.reply.send(answer).ok();
            }
        }
        Err(e) => {
            let reason = error_text(&e);
            let transient = e.is_transient();
            for entry in batch {
                let answer = Unchanged::Failed {
                    reason: reason.clone(),
                    transient,
                };
                entry.reply.send(answer).ok();
            }
        }
    }
}

fn error_text(e: &store::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::Utc;
    use tokio_util::task::TaskTracker;

    use super::{Batcher, Batching, Unchanged};
    use crate::backup::Trigger;
    use crate::config::StoreSettings;
    use crate::id::{DeviceId, TenantId};
    use crate::store::Store;
    use crate::store::snapshot::NewSnapshot;

    fn claim(device: &str) -> NewSnapshot {
        NewSnapshot {
            tenant_id: TenantId::parse("t1").expect("id"),
            device_id: DeviceId::parse(device).expect("id"),
            sha256_hash: "ab".repeat(32),
            collected_at: Utc::now(),
            trigger: Trigger::Manual,
            routeros_version: None,
            config_text: String::new(),
            normalization_version: 1,
            poller_id: None,
            warnings: Vec::new(),
        }
    }

    #[tokio::test]
    async fn record_now_does_not_wait_out_the_linger_of_its_batch() {
        // Arrange: a batch that would wait an hour for more events.
        let dir = tempfile::tempdir().expect("tempdir");
        let settings = StoreSettings {
            url: format!("sqlite://{}/db", dir.path().display()),
            encryption_key_file: Some(dir.path().join("key")),
            ..Default::default()
        };
        let store = Store::connect(&settings).await.expect("store");
        let tracker = TaskTracker::new();
        let batching = Batching {
            max: 100,
            linger: Duration::from_secs(3600),
        };
        let batcher = Batcher::spawn(store, batching, None, &tracker);

        // Act: a plain event opens the batch, a manual claim joins it.
        let plain = batcher.record(claim("r1"));
        let manual = batcher.record_now(claim("r2"));
        let answers = tokio::time::timeout(Duration::from_secs(30), async {
            tokio::join!(plain, manual)
        })
        .await;

        // Assert: both answered (unknown devices go back to the full path)
        // long before the hour.
        let (plain, manual) = answers.expect("the batch was cut short");
        assert!(matches!(plain, Unchanged::Changed(_)));
        assert!(matches!(manual, Unchanged::Changed(_)));
    }
}
