//! The dispatcher's side of the outbox: claiming due rows with a lease
//! (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so nodes sharing the database
//! take disjoint rows; a lease that runs out makes a row due again, which is
//! how a crashed node's rows get delivered), recording each delivery's
//! [`Outcome`] (a final failure with its audit event in one transaction),
//! and listing rows.

use chrono::Utc;
use serde::Serialize;
use serde_json::json;

use crate::store::audit::{Action, insert_audit};
use crate::store::db::{Db, on_db};
use crate::store::{MAX_PAGE, Result, Store};

/// A row claimed for delivery.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Claimed {
    /// Row id.
    pub notification_id: i64,
    /// The `webhook-id` of every attempt.
    pub webhook_id: String,
    /// Target name.
    pub target: String,
    /// Event type, e.g. `config.changed`.
    pub event_type: String,
    /// Tenant.
    pub tenant_id: String,
    /// Device.
    pub device_id: String,
    /// The event's data (JSON).
    pub payload: String,
    /// Attempts made before this one.
    pub attempts: i32,
    /// When the event was queued (ms since the epoch).
    pub created_ms: i64,
    /// The claim; outcomes apply only while it holds.
    pub lease_token: String,
}

/// How one delivery attempt ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Accepted (2xx, or the mail server took it).
    Delivered,
    /// Failed; try again at `next_ms`.
    Retry {
        /// Next attempt, ms since the epoch.
        next_ms: i64,
        /// What went wrong (no secret).
        error: String,
    },
    /// Not attempted (its target is disabled for now); due again at `next_ms`.
    Defer {
        /// Next look, ms since the epoch.
        next_ms: i64,
    },
    /// Given up: `failed`, with an audit event of `action`.
    Failed {
        /// What went wrong (no secret).
        error: String,
        /// `NotificationFailed` or `NotificationTargetDisabled`.
        action: Action,
    },
    /// Leave the row for a later claim (shutdown mid-delivery).
    Release,
}

/// One outbox row as listed.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, PartialEq, Eq)]
pub struct Notification {
    /// Row id.
    pub notification_id: i64,
    /// `webhook-id`.
    pub webhook_id: String,
    /// Target name.
    pub target: String,
    /// Event type.
    pub event_type: String,
    /// Tenant.
    pub tenant_id: String,
    /// Device.
    pub device_id: String,
    /// Event data (JSON text).
    pub payload: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    /// Attempts made.
    pub attempts: i32,
    /// Queued at (ms).
    pub created_ms: i64,
    /// Next attempt (ms).
    pub next_attempt_ms: i64,
    /// Last failure.
    pub last_error: Option<String>,
    /// Delivered at (ms).
    pub delivered_ms: Option<i64>,
}

const CLAIM_PG: &str = "UPDATE notification SET lease_until_ms = $1, lease_token = $2 \
     WHERE notification_id IN (SELECT notification_id FROM notification \
     WHERE status = 'pending' AND next_attempt_ms <= $3 \
     AND (lease_until_ms IS NULL OR lease_until_ms < $3) \
     ORDER BY next_attempt_ms LIMIT $4 FOR UPDATE SKIP LOCKED) \
     RETURNING notification_id, webhook_id, target, event_type, tenant_id, device_id, \
     payload, attempts, created_ms, lease_token";

// SQLite has one writer at a time: the statement is the claim.
const CLAIM_SQLITE: &str = "UPDATE notification SET lease_until_ms = $1, lease_token = $2 \
     WHERE notification_id IN (SELECT notification_id FROM notification \
     WHERE status = 'pending' AND next_attempt_ms <= $3 \
     AND (lease_until_ms IS NULL OR lease_until_ms < $3) \
     ORDER BY next_attempt_ms LIMIT $4) \
     RETURNING notification_id, webhook_id, target, event_type, tenant_id, device_id, \
     payload, attempts, created_ms, lease_token";

impl Store {
    /// Claims up to `limit` due rows for `lease_ms`; another claim skips
    /// them until the lease runs out.
    ///
    /// # Errors
    /// Database failures.
    pub async fn claim_notifications(&self, limit: usize, lease_ms: i64) -> Result<Vec<Claimed>> {
        let now = Utc::now().timestamp_millis();
        let token = format!("{:032x}", rand::random::<u128>());
        let sql = match &self.db {
            Db::Postgres(_) => CLAIM_PG,
            Db::Sqlite(_) => CLAIM_SQLITE,
        };
        let rows = on_db!(&self.db, |pool| {
            sqlx::query_as::<_, Claimed>(sql)
                .bind(now.saturating_add(lease_ms))
                .bind(&token)
                .bind(now)
                .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                .fetch_all(pool)
                .await?
        });
        Ok(rows)
    }

    /// Records how the delivery of a claimed row ended; nothing when the
    /// claim was lost (its lease ran out and another node took the row).
    ///
    /// # Errors
    /// Database failures.
    pub async fn record_delivery(&self, row: &Claimed, outcome: &Outcome) -> Result<()> {
        let now = Utc::now().timestamp_millis();
        let (status, attempts, next, error, delivered) = match outcome {
            Outcome::Delivered => ("delivered", 1, now, None, Some(now)),
            Outcome::Retry { next_ms, error } => ("pending", 1, *next_ms, Some(error), None),
            Outcome::Defer { next_ms } => ("pending", 0, *next_ms, None, None),
            Outcome::Failed { error, .. } => ("failed", 1, now, Some(error), None),
            Outcome::Release => ("pending", 0, now, None, None),
        };
        let mut tx = self.db.begin_write().await?;
        let updated =
            on_conn_update(&mut tx, row, (status, attempts, next, error, delivered)).await?;
        if updated && let Outcome::Failed { error, action } = outcome {
            let detail = json!({
                "notification_id": row.notification_id,
                "webhook_id": row.webhook_id,
                "target": row.target,
                "event_type": row.event_type,
                "attempts": row.attempts + 1,
                "error": error,
            });
            let (tenant, device) = (Some(row.tenant_id.as_str()), Some(row.device_id.as_str()));
            insert_audit(tx.conn(), tenant, device, *action, None, &detail).await?;
        }
        tx.commit().await
    }

    /// A tenant's notifications, newest first, of one status when given.
    ///
    /// # Errors
    /// Database failures.
    pub async fn list_notifications(
        &self,
        tenant_id: &str,
        status: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Notification>> {
        let rows = on_db!(&self.db, |pool| {
            sqlx::query_as::<_, Notification>(
                "SELECT notification_id, webhook_id, target, event_type, tenant_id, device_id, \
                 payload, status, attempts, created_ms, next_attempt_ms, last_error, delivered_ms \
                 FROM notification WHERE tenant_id = $1 AND ($2 IS NULL OR status = $2) \
                 ORDER BY notification_id DESC LIMIT $3",
            )
            .bind(tenant_id)
            .bind(status)
            .bind(i64::from(limit.clamp(1, MAX_PAGE)))
            .fetch_all(pool)
            .await?
        });
        Ok(rows)
    }

    /// Queues a tenant's notification for delivery again, now, whatever its
    /// state: a failed one gets another `retry_for`, a delivered one is sent
    /// once more. Its `webhook-id` stays, so receivers can tell.
    ///
    /// # Errors
    /// [`Error::NotificationNotFound`](crate::store::Error::NotificationNotFound)
    /// when the row is not the tenant's.
    pub async fn redeliver_notification(
        &self,
        tenant_id: &str,
        notification_id: i64,
    ) -> Result<()> {
        let now = Utc::now().timestamp_millis();
        let updated = on_db!(&self.db, |pool| {
            sqlx::query(
                "UPDATE notification SET status = 'pending', next_attempt_ms = $3, \
                 created_ms = $3, lease_until_ms = NULL, lease_token = NULL \
                 WHERE tenant_id = $1 AND notification_id = $2",
            )
            .bind(tenant_id)
            .bind(notification_id)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected()
        });
        match updated {
            0 => Err(crate::store::Error::NotificationNotFound),
            _ => Ok(()),
        }
    }

    /// Rows not yet delivered or failed, and the age of the oldest (ms).
    ///
    /// # Errors
    /// Database failures.
    pub async fn pending_notifications(&self) -> Result<(i64, Option<i64>)> {
        let (count, oldest): (i64, Option<i64>) = on_db!(&self.db, |pool| {
            sqlx::query_as(
                "SELECT COUNT(*), MIN(created_ms) FROM notification WHERE status = 'pending'",
            )
            .fetch_one(pool)
            .await?
        });
        let now = Utc::now().timestamp_millis();
        Ok((count, oldest.map(|o| now.saturating_sub(o))))
    }
}

type Update<'a> = (&'a str, i32, i64, Option<&'a String>, Option<i64>);

async fn on_conn_update(
    tx: &mut crate::store::db::Tx,
    row: &Claimed,
    (status, attempts, next, error, delivered): Update<'_>,
) -> Result<bool> {
    let updated = crate::store::db::on_conn!(tx.conn(), |c| {
        sqlx::query(
            "UPDATE notification SET status = $3, attempts = attempts + $4, \
             next_attempt_ms = $5, last_error = COALESCE($6, last_error), \
             delivered_ms = $7, lease_until_ms = NULL, lease_token = NULL \
             WHERE notification_id = $1 AND lease_token = $2",
        )
        .bind(row.notification_id)
        .bind(&row.lease_token)
        .bind(status)
        .bind(attempts)
        .bind(next)
        .bind(error)
        .bind(delivered)
        .execute(c)
        .await?
        .rows_affected()
    });
    Ok(updated == 1)
}
