//! The notification outbox (DESIGN.md §14): which targets want an event
//! ([`Routes`], swapped on reload), and the statements that queue a row per
//! wanting target inside the transaction of what caused it — a new version
//! (`config.changed`), a device's failure streak reaching a target's
//! `after_failures` (`backup.failed`, once per streak), the success ending
//! it (`backup.recovered`), a host-key mismatch, and staleness
//! ([`Store::queue_stale`]). The dispatcher's side (claim, outcome, listing)
//! is in `queue`. No routing decision is made outside this file.

use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::Result;
use super::db::{Conn, on_conn};
use crate::backup::changes::Change;
use crate::config::notify::{EventKind, NotifyConfig};

mod moved;
mod queue;
mod stale;

pub use moved::MOVED_AWAY;
pub(crate) use moved::retag_moved_device;
pub use queue::{Claimed, Notification, Outcome};

/// One target's filters, as routing needs them.
#[derive(Debug, Clone)]
struct Route {
    target: String,
    events: Vec<EventKind>,
    tenants: Vec<String>,
    devices: Vec<glob::Pattern>,
    components: Vec<glob::Pattern>,
    status_only: bool,
    after_failures: i32,
}

/// Which targets want which events: the routing part of the configured
/// `[[notifications]]`.
#[derive(Debug, Clone, Default)]
pub struct Routes {
    routes: Vec<Route>,
}

impl Routes {
    /// The routes of `config`'s targets.
    pub fn new(config: &NotifyConfig) -> Routes {
        let routes = config
            .targets
            .iter()
            .map(|t| Route {
                target: t.name.clone(),
                events: t.events.clone(),
                tenants: t.tenants.clone(),
                devices: t.devices.clone(),
                components: t.components.clone(),
                status_only: t.status_only,
                after_failures: i32::try_from(t.after_failures).unwrap_or(i32::MAX),
            })
            .collect();
        Routes { routes }
    }

    /// Whether target `name` receives events of `tenant`; a target no
    /// longer configured does (the dispatcher decides about its rows).
    fn receives_tenant(&self, name: &str, tenant: &str) -> bool {
        self.routes
            .iter()
            .find(|r| r.target == name)
            .is_none_or(|r| r.tenants.is_empty() || r.tenants.iter().any(|t| t == tenant))
    }

    /// Whether any target receives `kind` at all (skips the extra reads).
    pub(crate) fn wants(&self, kind: EventKind) -> bool {
        self.routes.iter().any(|r| r.events.contains(&kind))
    }
}

/// The store's current routes, replaced as a whole on reload.
#[derive(Debug, Clone, Default)]
pub(crate) struct RouteCell(Arc<RwLock<Arc<Routes>>>);

impl RouteCell {
    /// The routes in force now.
    pub(crate) fn get(&self) -> Arc<Routes> {
        match self.0.read() {
            Ok(r) => r.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn set(&self, routes: Routes) {
        let mut slot = match self.0.write() {
            Ok(w) => w,
            Err(poisoned) => poisoned.into_inner(),
        };
        *slot = Arc::new(routes);
    }
}

impl super::Store {
    /// Routes later events to `config`'s targets (at start and on reload).
    pub fn set_notify_routes(&self, config: &NotifyConfig) {
        self.outbox.set(Routes::new(config));
    }
}

/// What an event is about, for routing and for its row.
struct Event<'a> {
    kind: EventKind,
    tenant_id: &'a str,
    device_id: &'a str,
    /// The changed components (`config.changed`).
    components: &'a [String],
    /// A `config.changed` version that differs only in status comments.
    status_only: bool,
    /// Consecutive failures before and after the state change.
    failures: (i32, i32),
    data: Value,
}

impl Route {
    fn accepts(&self, e: &Event<'_>) -> bool {
        let opts = glob::MatchOptions::new();
        self.events.contains(&e.kind)
            && (self.tenants.is_empty() || self.tenants.iter().any(|t| t == e.tenant_id))
            && (self.devices.is_empty()
                || self
                    .devices
                    .iter()
                    .any(|g| g.matches_with(e.device_id, opts)))
            && match e.kind {
                // Status comments come and go with link and hardware
                // state: no alarm unless the target asks for them.
                EventKind::ConfigChanged => {
                    (!e.status_only || self.status_only)
                        && (self.components.is_empty()
                            || e.components
                                .iter()
                                .any(|c| self.components.iter().any(|g| g.matches_with(c, opts))))
                }
                // Exactly at the threshold: once per streak.
                EventKind::BackupFailed => e.failures.1 == self.after_failures,
                // Only a streak this target heard about ends with a recovery.
                EventKind::BackupRecovered => e.failures.0 >= self.after_failures,
                EventKind::HostkeyMismatch | EventKind::BackupStale => true,
            }
    }
}

/// A fresh `webhook-id`: fixed for the row, so every retry carries it.
fn new_webhook_id() -> String {
    format!("msg_{:032x}", rand::random::<u128>())
}

/// Queues one row per target that accepts `event`.
async fn enqueue(mut conn: Conn<'_>, routes: &Routes, event: &Event<'_>) -> Result<()> {
    let now = Utc::now().timestamp_millis();
    let payload = event.data.to_string();
    for route in routes.routes.iter().filter(|r| r.accepts(event)) {
        on_conn!(conn.reborrow(), |c| {
            sqlx::query(
                "INSERT INTO notification (webhook_id, target, event_type, tenant_id, \
                 device_id, payload, status, attempts, created_ms, next_attempt_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $7)",
            )
            .bind(new_webhook_id())
            .bind(&route.target)
            .bind(event.kind.as_str())
            .bind(event.tenant_id)
            .bind(event.device_id)
            .bind(&payload)
            .bind(now)
            .execute(c)
            .await?;
        });
    }
    Ok(())
}

/// The device's row as events need it.
#[derive(sqlx::FromRow)]
struct Facts {
    tenant_id: String,
    name: String,
    consecutive_failures: i32,
    blocked_reason: Option<String>,
    last_error_kind: Option<String>,
}

/// Reads (and on PostgreSQL locks) the device's row; with `older_than`,
/// only when its last attempt is older (as the success of an ingest).
async fn facts(
    conn: Conn<'_>,
    device_id: &str,
    older_than: Option<DateTime<Utc>>,
) -> Result<Option<Facts>> {
    let sql = format!(
        "SELECT tenant_id, name, consecutive_failures, blocked_reason, last_error_kind \
         FROM device WHERE device_id = $1 \
         AND ($2 IS NULL OR last_attempt_at IS NULL OR last_attempt_at < $2){}",
        conn.for_update()
    );
    let row = on_conn!(conn, |c| {
        sqlx::query_as::<_, Facts>(sqlx::AssertSqlSafe(sql))
            .bind(device_id)
            .bind(older_than)
            .fetch_optional(c)
            .await?
    });
    Ok(row)
}

fn base_data(f: &Facts, device_id: &str) -> Value {
    json!({
        "tenant_id": f.tenant_id,
        "device_id": device_id,
        "device_name": f.name,
        "snapshot_id": null,
        "previous_snapshot_id": null,
        "sha256_hash": null,
        "lines_added": null,
        "lines_removed": null,
        "changes": [],
        "error_kind": null,
    })
}

/// A new version of a device's configuration, as ingest stored it.
pub(crate) struct Changed<'a> {
    pub(crate) device_id: &'a str,
    pub(crate) snapshot_id: i64,
    pub(crate) previous_snapshot_id: i64,
    pub(crate) sha256_hash: &'a str,
    pub(crate) lines_added: u32,
    pub(crate) lines_removed: u32,
    pub(crate) changes: &'a [Change],
    /// Differs from its predecessor only in status comments.
    pub(crate) status_only: bool,
}

/// Queues `config.changed` for a new version that has a predecessor.
pub(crate) async fn config_changed(
    mut conn: Conn<'_>,
    routes: &Routes,
    c: &Changed<'_>,
) -> Result<()> {
    if !routes.wants(EventKind::ConfigChanged) {
        return Ok(());
    }
    let Some(f) = facts(conn.reborrow(), c.device_id, None).await? else {
        return Ok(());
    };
    let mut data = base_data(&f, c.device_id);
    data["snapshot_id"] = json!(c.snapshot_id);
    data["previous_snapshot_id"] = json!(c.previous_snapshot_id);
    data["sha256_hash"] = json!(c.sha256_hash);
    data["lines_added"] = json!(c.lines_added);
    data["lines_removed"] = json!(c.lines_removed);
    data["changes"] = c
        .changes
        .iter()
        .map(|ch| json!({"component": ch.component, "summary": ch.summary}))
        .collect();
    let components: Vec<String> = c.changes.iter().map(|ch| ch.component.clone()).collect();
    let event = Event {
        kind: EventKind::ConfigChanged,
        tenant_id: &f.tenant_id,
        device_id: c.device_id,
        components: &components,
        status_only: c.status_only,
        failures: (f.consecutive_failures, f.consecutive_failures),
        data,
    };
    enqueue(conn, routes, &event).await
}

/// Before a success resets the device's failure count: queues
/// `backup.recovered` for the targets that were told of the streak. With
/// `older_than`, only when the success is newer than the last attempt (as
/// the update that follows).
pub(crate) async fn before_success(
    mut conn: Conn<'_>,
    routes: &Routes,
    device_id: &str,
    older_than: Option<DateTime<Utc>>,
) -> Result<()> {
    if !routes.wants(EventKind::BackupRecovered) {
        return Ok(());
    }
    let Some(f) = facts(conn.reborrow(), device_id, older_than).await? else {
        return Ok(());
    };
    if f.consecutive_failures == 0 {
        return Ok(());
    }
    let mut data = base_data(&f, device_id);
    data["error_kind"] = json!(f.last_error_kind);
    data["consecutive_failures"] = json!(f.consecutive_failures);
    let event = Event {
        kind: EventKind::BackupRecovered,
        tenant_id: &f.tenant_id,
        device_id,
        components: &[],
        status_only: false,
        failures: (f.consecutive_failures, 0),
        data,
    };
    enqueue(conn, routes, &event).await
}

/// Before a failure is counted: queues `backup.failed` for the targets
/// whose `after_failures` the streak reaches now, and `hostkey.mismatch`
/// at once when the device is not blocked for it already.
pub(crate) async fn before_failure(
    mut conn: Conn<'_>,
    routes: &Routes,
    device_id: &str,
    error_kind: &str,
) -> Result<()> {
    let mismatch = error_kind == "hostkey_mismatch";
    if !(routes.wants(EventKind::BackupFailed)
        || mismatch && routes.wants(EventKind::HostkeyMismatch))
    {
        return Ok(());
    }
    let Some(f) = facts(conn.reborrow(), device_id, None).await? else {
        return Ok(());
    };
    let failures = (
        f.consecutive_failures,
        f.consecutive_failures.saturating_add(1),
    );
    let mut data = base_data(&f, device_id);
    data["error_kind"] = json!(error_kind);
    data["consecutive_failures"] = json!(failures.1);
    let mut event = Event {
        kind: EventKind::BackupFailed,
        tenant_id: &f.tenant_id,
        device_id,
        components: &[],
        status_only: false,
        failures,
        data,
    };
    enqueue(conn.reborrow(), routes, &event).await?;
    if mismatch && f.blocked_reason.as_deref() != Some("hostkey_mismatch") {
        event.kind = EventKind::HostkeyMismatch;
        enqueue(conn, routes, &event).await?;
    }
    Ok(())
}
