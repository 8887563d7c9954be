//! A stage of the node's shutdown: a group of tasks stopped together, with
//! a bound on how long they may take. Past it the node goes on with its
//! shutdown and leaves what still runs to the process's exit, so a backend
//! that is down can never hold a stopping node (DESIGN.md: bounded shutdown).

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::warn;

/// A group of tasks stopped together.
pub(super) struct Stage {
    /// Asks the tasks to start nothing new and finish what they hold.
    pub(super) token: CancellationToken,
    pub(super) tracker: TaskTracker,
    /// Cuts short what they still hold once the grace period is over.
    pub(super) abort: CancellationToken,
}

impl Stage {
    pub(super) fn new() -> Self {
        Self {
            token: CancellationToken::new(),
            tracker: TaskTracker::new(),
            abort: CancellationToken::new(),
        }
    }

    /// Stops the tasks and waits for them until `hard`; `false` when some
    /// were still running then (they are left to the process's exit).
    pub(super) async fn stop_until(&self, hard: Instant) -> bool {
        self.token.cancel();
        self.tracker.close();
        tokio::time::timeout_at(hard, self.tracker.wait())
            .await
            .is_ok()
    }

    /// Like [`Stage::stop_until`], but what is still running at `deadline`
    /// is aborted (backups end with `Cancelled` and release their locks);
    /// what does not end by `hard` either (a lock or publish call stuck on a
    /// backend that is down) is left to the process's exit.
    pub(super) async fn stop_by(&self, deadline: Instant, hard: Instant) -> bool {
        self.token.cancel();
        self.tracker.close();
        if tokio::time::timeout_at(deadline, self.tracker.wait())
            .await
            .is_ok()
        {
            return true;
        }
        warn!("backups still running at the shutdown timeout: cancelling them");
        self.abort.cancel();
        tokio::time::timeout_at(hard, self.tracker.wait())
            .await
            .is_ok()
    }
}
