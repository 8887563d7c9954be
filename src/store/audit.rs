//! The append-only audit log: the actions of DESIGN.md §7, written inside the
//! transaction of what they record where there is one, else best effort.
//! Details are small JSON objects and never hold config or diff text.

use chrono::{DateTime, Utc};
use serde::{Serialize, Serializer};
use serde_json::Value;
use tracing::warn;

use super::db::{Conn, on_conn, on_db};
use super::record::UnknownName;
use super::{MAX_PAGE, Result, Store};

/// What an audit event records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// A new snapshot was stored.
    SnapshotCreated,
    /// An event equal to the newest snapshot stored nothing.
    SnapshotSkippedDuplicate,
    /// An event older than the newest snapshot stored nothing.
    SnapshotStale,
    /// A diff against the previous snapshot was stored.
    DiffGenerated,
    /// A caller triggered a backup.
    ManualTrigger,
    /// A host key was pinned on first use.
    HostKeyPinned,
    /// An admin reset a pinned host key.
    HostKeyReset,
    /// Retention deleted snapshots.
    DeletedRetention,
    /// A snapshot event was malformed or could never be stored.
    EventRejected,
    /// Someone signed in.
    LoginSucceeded,
    /// A sign-in was refused (unknown user, wrong password, disabled).
    LoginFailed,
    /// Sign-ins were refused for too many attempts.
    LoginRateLimited,
    /// Someone signed out.
    Logout,
    /// An account was created.
    UserCreated,
    /// An account's role, password or state changed.
    UserUpdated,
    /// An account was deleted.
    UserDeleted,
    /// A caller explicitly asked for a configuration with its secrets.
    SecretsRevealed,
    /// A device and its history moved to another tenant (`cfgsnap device move`).
    DeviceMoved,
    /// The stored records were re-sealed under a new master key (`cfgsnap key rotate`).
    MasterKeyRotated,
    /// A previous master key no record uses was deleted (`cfgsnap key retire`).
    MasterKeyRetired,
    /// A notification was given up after its retries (or refused for good).
    NotificationFailed,
    /// A target answered 410 Gone: disabled until the next reload.
    NotificationTargetDisabled,
}

impl Action {
    /// Every action, for parsing a stored name.
    pub const ALL: [Action; 22] = [
        Action::SnapshotCreated,
        Action::SnapshotSkippedDuplicate,
        Action::SnapshotStale,
        Action::DiffGenerated,
        Action::ManualTrigger,
        Action::HostKeyPinned,
        Action::HostKeyReset,
        Action::DeletedRetention,
        Action::EventRejected,
        Action::LoginSucceeded,
        Action::LoginFailed,
        Action::LoginRateLimited,
        Action::Logout,
        Action::UserCreated,
        Action::UserUpdated,
        Action::UserDeleted,
        Action::SecretsRevealed,
        Action::DeviceMoved,
        Action::MasterKeyRotated,
        Action::MasterKeyRetired,
        Action::NotificationFailed,
        Action::NotificationTargetDisabled,
    ];

    /// The stored name, e.g. `config_snapshot_created`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::SnapshotCreated => "config_snapshot_created",
            Action::SnapshotSkippedDuplicate => "config_snapshot_skipped_duplicate",
            Action::SnapshotStale => "config_snapshot_stale",
            Action::DiffGenerated => "config_diff_generated",
            Action::ManualTrigger => "config_backup_manual_trigger",
            Action::HostKeyPinned => "ssh_host_key_pinned",
            Action::HostKeyReset => "ssh_host_key_reset",
            Action::DeletedRetention => "config_snapshot_deleted_retention",
            Action::EventRejected => "snapshot_event_rejected",
            Action::LoginSucceeded => "login_succeeded",
            Action::LoginFailed => "login_failed",
            Action::LoginRateLimited => "login_rate_limited",
            Action::Logout => "logout",
            Action::UserCreated => "user_created",
            Action::UserUpdated => "user_updated",
            Action::UserDeleted => "user_deleted",
            Action::SecretsRevealed => "config_secrets_revealed",
            Action::DeviceMoved => "device_moved",
            Action::MasterKeyRotated => "master_key_rotated",
            Action::MasterKeyRetired => "master_key_retired",
            Action::NotificationFailed => "notification_failed",
            Action::NotificationTargetDisabled => "notification_target_disabled",
        }
    }
}

/// Serializes as the stored name ([`Action::as_str`]).
impl Serialize for Action {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// Reads a stored action name ([`Action::as_str`]).
impl TryFrom<String> for Action {
    type Error = UnknownName;

    fn try_from(value: String) -> std::result::Result<Self, UnknownName> {
        Action::ALL
            .into_iter()
            .find(|a| a.as_str() == value)
            .ok_or_else(|| UnknownName::new("audit action", value))
    }
}

/// One audit event as listed.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct AuditEvent {
    /// Event id (cursor).
    #[sqlx(rename = "audit_event_id")]
    pub id: i64,
    /// Tenant, when the event concerns one.
    pub tenant_id: Option<String>,
    /// Device, when the event concerns one.
    pub device_id: Option<String>,
    /// What the event records.
    #[sqlx(try_from = "String")]
    pub action: Action,
    /// Who did it (`sub` of the caller), when a person did.
    pub actor: Option<String>,
    /// JSON details.
    #[serde(skip)]
    pub detail: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

impl AuditEvent {
    /// The details as JSON.
    pub fn detail_json(&self) -> Value {
        serde_json::from_str(&self.detail).unwrap_or(Value::Null)
    }
}

/// Inserts an audit event on `conn`: inside the caller's transaction, or
/// on a pooled connection for an event of its own.
pub(crate) async fn insert_audit(
    conn: Conn<'_>,
    tenant_id: Option<&str>,
    device_id: Option<&str>,
    action: Action,
    actor: Option<&str>,
    detail: &Value,
) -> Result<()> {
    on_conn!(conn, |c| {
        sqlx::query(
            "INSERT INTO audit_event (tenant_id, device_id, action, actor, detail, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(tenant_id)
        .bind(device_id)
        .bind(action.as_str())
        .bind(actor)
        .bind(detail.to_string())
        .bind(Utc::now())
        .execute(c)
        .await?;
    });
    Ok(())
}

impl Store {
    /// Records an audit event outside any transaction.
    ///
    /// # Errors
    /// Database failures.
    pub async fn audit(
        &self,
        tenant_id: Option<&str>,
        device_id: Option<&str>,
        action: Action,
        actor: Option<&str>,
        detail: &Value,
    ) -> Result<()> {
        let mut pooled = self.db.acquire().await?;
        insert_audit(pooled.conn(), tenant_id, device_id, action, actor, detail).await
    }

    /// Records an audit event; a failure is logged at `warn` and swallowed,
    /// for side effects that must not undo what they record.
    pub async fn audit_best_effort(
        &self,
        tenant_id: Option<&str>,
        device_id: Option<&str>,
        action: Action,
        actor: Option<&str>,
        detail: &Value,
    ) {
        if let Err(e) = self
            .audit(tenant_id, device_id, action, actor, detail)
            .await
        {
            warn!(
                error.message = %e,
                error.cause_chain = ?e,
                action = action.as_str(),
                "recording an audit event failed"
            );
        }
    }

    /// A tenant's audit events, newest first, ids below `before` when given.
    ///
    /// # Errors
    /// Database failures.
    pub async fn list_audit(
        &self,
        tenant_id: &str,
        limit: u32,
        before: Option<i64>,
    ) -> Result<Vec<AuditEvent>> {
        let rows = on_db!(&self.db, |pool| {
            sqlx::query_as::<_, AuditEvent>(
                "SELECT audit_event_id, tenant_id, device_id, action, actor, detail, created_at \
                 FROM audit_event WHERE tenant_id = $1 AND audit_event_id < $2 \
                 ORDER BY audit_event_id DESC LIMIT $3",
            )
            .bind(tenant_id)
            .bind(before.unwrap_or(i64::MAX))
            .bind(i64::from(limit.clamp(1, MAX_PAGE)))
            .fetch_all(pool)
            .await?
        });
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_serialize_as_their_stored_names_and_read_back() {
        for a in Action::ALL {
            let json = serde_json::to_value(a).expect("serializes");
            assert_eq!(json, a.as_str());
            assert_eq!(Action::try_from(a.as_str().to_owned()).ok(), Some(a));
        }
        let err = Action::try_from("teleported".to_owned()).expect_err("unknown");
        assert!(err.to_string().contains("teleported"), "{err}");
    }
}
