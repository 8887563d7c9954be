//! The node's small background tasks: retention on its interval, pruning of
//! the trigger rate limiter, host-key resets reaching pollers and the
//! scheduler; and the demo's JWT secret file.

use std::time::Duration;

use anyhow::Context as _;
use base64::Engine as _;
use rand::RngCore as _;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument as _, info, info_span, warn};

use super::HostKeyStore;
use crate::api::{LoginLimiter, TriggerLimiter};
use crate::backup::scheduler::SchedulerHandle;
use crate::bus::Bus;
use crate::config::{AuthSettings, StoreSettings};
use crate::store::Store;

/// Runs retention now and then every `retention_interval` until `shutdown`.
pub(super) fn spawn_retention(
    store: Store,
    settings: &StoreSettings,
    shutdown: CancellationToken,
    tracker: &TaskTracker,
) {
    let (every, days, keep) = (
        settings.retention_interval,
        settings.retention_days,
        settings.keep_min,
    );
    let task = async move {
        loop {
            if let Err(e) = store.apply_retention(chrono::Utc::now(), days, keep).await {
                warn!(error.message = %e, error.cause_chain = ?e, "retention failed; retrying at the next interval");
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
        }
    };
    tracker.spawn(task.instrument(info_span!("store.retention_task")));
}

/// Drops idle callers from the trigger limiter every minute, so its memory
/// stays bounded by the callers of the last minute.
pub(super) fn spawn_limiter_pruning(
    limiter: TriggerLimiter,
    logins: LoginLimiter,
    shutdown: CancellationToken,
    tracker: &TaskTracker,
) {
    tracker.spawn(async move {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(Duration::from_secs(60)) => {
                    limiter.prune();
                    logins.prune();
                }
            }
        }
    });
}

/// Applies host-key resets announced on the bus: a poller that pins keys in
/// a file forgets the device's key, and the scheduler lifts its block.
pub(super) async fn spawn_hostkey_resets(
    bus: &Bus,
    host_keys: HostKeyStore,
    scheduler: Option<SchedulerHandle>,
    shutdown: CancellationToken,
    tracker: &TaskTracker,
) -> anyhow::Result<()> {
    let mut notices = bus
        .subscribe_hostkey_resets()
        .await
        .context("subscribing to host-key resets")?;
    let task = async move {
        loop {
            let next = tokio::select! {
                () = shutdown.cancelled() => return,
                next = notices.next() => next,
            };
            let Some((_, notice)) = next else { return };
            match &host_keys {
                HostKeyStore::File(file) => {
                    if let Err(e) = file.forget(&notice.device_id).await {
                        warn!(error.message = %e, device_id = %notice.device_id, "forgetting a pinned host key failed");
                    }
                }
                HostKeyStore::Store(store) => {
                    store.forget_pinned_host_key(notice.device_id.as_str());
                }
            }
            if let Some(s) = &scheduler
                && s.unblock(&notice.device_id)
            {
                info!(device_id = %notice.device_id, "host key reset: scheduled backups resume");
            }
        }
    };
    tracker.spawn(task.instrument(info_span!("app.hostkey_resets")));
    Ok(())
}

/// Creates `auth.jwt_secret_file` with a random secret when it does not
/// exist, so the shipped demo configuration runs as is. Production sets
/// `jwt_secret_env` or provides the file.
pub fn ensure_jwt_secret_file(auth: &AuthSettings) -> anyhow::Result<()> {
    let Some(path) = &auth.jwt_secret_file else {
        return Ok(());
    };
    if auth.jwt_secret_env.is_some() || auth.jwt_public_key_file.is_some() || path.exists() {
        return Ok(());
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut secret = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut secret);
    let text = base64::engine::general_purpose::STANDARD.encode(secret);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    std::io::Write::write_all(&mut file, text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    warn!(path = %path.display(), "generated a new JWT secret file; mint tokens with `cfgsnap token`");
    Ok(())
}
