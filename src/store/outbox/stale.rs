//! `backup.stale`: a device with no successful backup for its threshold
//! gets one notification per stale period; `device.stale_notified_at`
//! records it, and a success after that time starts a new period.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::{Event, base_data, enqueue};
use crate::config::notify::EventKind;
use crate::store::db::{Conn, on_conn, on_db};
use crate::store::{Result, Store};

#[derive(sqlx::FromRow)]
struct StaleRow {
    device_id: String,
    tenant_id: String,
    name: String,
    last_success_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    stale_notified_at: Option<DateTime<Utc>>,
}

impl StaleRow {
    /// Stale at `now` for `threshold`, and not notified in this period.
    fn due(&self, now: DateTime<Utc>, threshold: Duration) -> bool {
        let since = self.last_success_at.unwrap_or(self.created_at);
        let age = now
            .signed_duration_since(since)
            .to_std()
            .unwrap_or_default();
        age >= threshold && self.stale_notified_at.is_none_or(|n| n < since)
    }
}

const SELECT: &str = "SELECT device_id, tenant_id, name, last_success_at, created_at, \
     stale_notified_at FROM device WHERE active = TRUE";

impl Store {
    /// Queues `backup.stale` for every active device of `thresholds` whose
    /// last success (or creation) is older than its threshold, once per
    /// stale period; returns how many devices turned stale.
    ///
    /// # Errors
    /// Database failures (devices queued before the failure stay queued).
    pub async fn queue_stale(
        &self,
        thresholds: &HashMap<String, Duration>,
        now: DateTime<Utc>,
    ) -> Result<usize> {
        let routes = self.outbox.get();
        if !routes.wants(EventKind::BackupStale) {
            return Ok(0);
        }
        let rows = on_db!(&self.db, |pool| {
            sqlx::query_as::<_, StaleRow>(sqlx::AssertSqlSafe(format!(
                "{SELECT} ORDER BY device_id"
            )))
            .fetch_all(pool)
            .await?
        });
        let mut queued = 0;
        for row in rows {
            let Some(&threshold) = thresholds.get(&row.device_id) else {
                continue;
            };
            if !row.due(now, threshold) {
                continue;
            }
            let mut tx = self.db.begin_write().await?;
            // Again under the row lock: another node may have queued it.
            let Some(locked) = lock_row(tx.conn(), &row.device_id).await? else {
                continue;
            };
            if !locked.due(now, threshold) {
                continue;
            }
            mark(tx.conn(), &row.device_id, now).await?;
            let facts = super::Facts {
                tenant_id: locked.tenant_id.clone(),
                name: locked.name.clone(),
                consecutive_failures: 0,
                blocked_reason: None,
                last_error_kind: None,
            };
            let mut data = base_data(&facts, &row.device_id);
            data["last_success_at"] = json!(locked.last_success_at);
            let event = Event {
                kind: EventKind::BackupStale,
                tenant_id: &locked.tenant_id,
                device_id: &row.device_id,
                components: &[],
                status_only: false,
                failures: (0, 0),
                data,
            };
            enqueue(tx.conn(), &routes, &event).await?;
            tx.commit().await?;
            queued += 1;
        }
        Ok(queued)
    }
}

async fn lock_row(conn: Conn<'_>, device_id: &str) -> Result<Option<StaleRow>> {
    let sql = format!("{SELECT} AND device_id = $1{}", conn.for_update());
    let row = on_conn!(conn, |c| {
        sqlx::query_as::<_, StaleRow>(sqlx::AssertSqlSafe(sql))
            .bind(device_id)
            .fetch_optional(c)
            .await?
    });
    Ok(row)
}

async fn mark(conn: Conn<'_>, device_id: &str, now: DateTime<Utc>) -> Result<()> {
    on_conn!(conn, |c| {
        sqlx::query("UPDATE device SET stale_notified_at = $2 WHERE device_id = $1")
            .bind(device_id)
            .bind(now)
            .execute(c)
            .await?;
    });
    Ok(())
}
