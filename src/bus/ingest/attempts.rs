//! The attempt-report loop: records the reports of backup attempts in the
//! devices' backup state, many per transaction (collected for up to
//! [`ATTEMPT_LINGER`]), and what was received when it stops. Reports whose
//! subject does not match their ids are skipped.

use std::time::Duration;

use futures_util::FutureExt as _;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::backup::{AttemptReport, AttemptStatus, ErrorKind};
use crate::bus::{Bus, Subscription};
use crate::store::Store;
use crate::store::device::Attempt;

/// Most attempt reports recorded in one transaction.
const ATTEMPT_BATCH: usize = 64;

/// How long the first report of a batch waits for others: a pass over a
/// fleet reports a few backups at a time, and each transaction costs a
/// commit (an fsync on SQLite) however few rows it writes. What a crash
/// can lose is the backup state of this long (README: "What a crash
/// loses"); never a configuration.
const ATTEMPT_LINGER: Duration = Duration::from_millis(200);

/// Records attempt reports until `shutdown`: each report that arrives, with
/// those that follow within [`ATTEMPT_LINGER`] (up to [`ATTEMPT_BATCH`]),
/// in one transaction. On `shutdown` the reports already received are
/// recorded before it returns.
pub(crate) async fn run_attempts(
    store: Store,
    bus: Bus,
    mut reports: Subscription<AttemptReport>,
    shutdown: CancellationToken,
) {
    loop {
        let next = tokio::select! {
            () = shutdown.cancelled() => break,
            next = reports.next() => next,
        };
        let Some(first) = next else {
            return;
        };
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + ATTEMPT_LINGER;
        let mut ended = false;
        while batch.len() < ATTEMPT_BATCH {
            tokio::select! {
                next = reports.next() => match next {
                    Some(report) => batch.push(report),
                    None => {
                        ended = true;
                        break;
                    }
                },
                () = tokio::time::sleep_until(deadline) => break,
                () = shutdown.cancelled() => break,
            }
        }
        record_batch(&store, &bus, &batch).await;
        if ended {
            return;
        }
    }
    drain(&store, &bus, &mut reports).await;
}

/// Records the reports already received, without waiting for new ones.
async fn drain(store: &Store, bus: &Bus, reports: &mut Subscription<AttemptReport>) {
    loop {
        let mut batch = Vec::new();
        while batch.len() < ATTEMPT_BATCH {
            match reports.next().now_or_never() {
                Some(Some(report)) => batch.push(report),
                Some(None) | None => break,
            }
        }
        if batch.is_empty() {
            return;
        }
        record_batch(store, bus, &batch).await;
    }
}

/// Records the reports whose subject matches their ids; best effort.
async fn record_batch(store: &Store, bus: &Bus, batch: &[(String, AttemptReport)]) {
    let valid: Vec<_> = batch
        .iter()
        .filter(|(subject, report)| {
            let ids = (report.tenant_id.as_str(), report.device_id.as_str());
            let matches = bus.subjects().parse_attempt(subject) == Some(ids);
            if !matches {
                warn!(subject = %subject, "attempt report does not match its subject; skipped");
            }
            matches
        })
        .map(|(_, report)| (report, to_attempt(report)))
        .collect();
    let rows: Vec<_> = valid
        .iter()
        .map(|(report, attempt)| (report.device_id.as_str(), report.at, attempt))
        .collect();
    if rows.is_empty() {
        return;
    }
    if let Err(e) = store.record_attempts(&rows).await {
        warn!(error.message = %e, error.cause_chain = ?e, reports = rows.len(), "recording attempts failed");
    }
}

/// The store's view of an attempt report.
pub fn to_attempt(report: &AttemptReport) -> Attempt {
    match report.status {
        AttemptStatus::Success => Attempt::Success,
        AttemptStatus::Locked => Attempt::Locked,
        AttemptStatus::Failed => Attempt::Failed {
            error_kind: report
                .error_kind
                .unwrap_or(ErrorKind::Internal)
                .as_str()
                .to_owned(),
            next_attempt_at: report.next_attempt_at,
            blocked_reason: report.blocked_reason.map(|k| k.as_str().to_owned()),
        },
    }
}
