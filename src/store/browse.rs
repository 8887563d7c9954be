//! Queries for browsing a tenant's history page by page (the web UI and the
//! device list's filters): devices filtered by text and status in id or
//! name order with keyset cursors, snapshots and their change summaries by
//! id, the tenant-wide feed of changed versions, filtered audit events, and
//! two versions' texts masked together for a side-by-side diff.

use std::str::FromStr;

use super::audit::AuditEvent;
use super::db::on_db;
use super::device::{DeviceState, STATE_SELECT};
use super::history::{ChangeSummary, META_COLUMNS, Secrets, SnapshotMeta};
use super::{MAX_PAGE, Result, Store};
use crate::backup::redact;
use crate::telemetry::spawn_blocking_with_tracing;

/// A device's backup status as the fleet shows it; each device has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceStatus {
    /// Its last backup succeeded (or it has succeeded and the last attempt
    /// found another backup running).
    Ok,
    /// Its last backup failed; scheduled retries go on.
    Failing,
    /// Scheduled retries stopped (`auth_failed`, `hostkey_mismatch`).
    Blocked,
    /// No backup has succeeded yet, and none failed last.
    Never,
}

impl DeviceStatus {
    /// All, in the order the fleet offers them.
    pub const ALL: [DeviceStatus; 4] = [Self::Ok, Self::Failing, Self::Blocked, Self::Never];

    /// The name used in query strings: `ok`, `failing`, `blocked`, `never`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Failing => "failing",
            Self::Blocked => "blocked",
            Self::Never => "never",
        }
    }

    /// The status of a listed device.
    pub fn of(device: &DeviceState) -> DeviceStatus {
        if device.blocked_reason.is_some() {
            Self::Blocked
        } else if device.last_status.as_deref() == Some("failed") {
            Self::Failing
        } else if device.last_success_at.is_none() {
            Self::Never
        } else {
            Self::Ok
        }
    }

    /// The SQL condition on `device d` matching this status (the same rule
    /// as [`DeviceStatus::of`]).
    fn condition(self) -> &'static str {
        match self {
            Self::Blocked => "d.blocked_reason IS NOT NULL",
            Self::Failing => "d.blocked_reason IS NULL AND d.last_status = 'failed'",
            Self::Never => {
                "d.blocked_reason IS NULL AND COALESCE(d.last_status, '') <> 'failed' \
                 AND d.last_success_at IS NULL"
            }
            Self::Ok => {
                "d.blocked_reason IS NULL AND COALESCE(d.last_status, '') <> 'failed' \
                 AND d.last_success_at IS NOT NULL"
            }
        }
    }
}

impl FromStr for DeviceStatus {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| "status must be one of ok, failing, blocked, never".to_owned())
    }
}

/// The order of a device listing; ties go by id.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DeviceOrder {
    /// By device id (the API's order).
    #[default]
    Id,
    /// By display name, then id.
    Name,
    /// Trouble first: blocked, failing, never backed up, then ok.
    Status,
    /// Stalest first: never succeeded, then the oldest last success.
    LastSuccess,
    /// Newest change first: by the newest version's id (versions are
    /// numbered in the order they are recorded), devices without one last.
    LastChange,
}

impl DeviceOrder {
    /// Every order with its query-string name, as the fleet offers them.
    pub const ALL: [(DeviceOrder, &'static str); 5] = [
        (Self::Name, "name"),
        (Self::Id, "id"),
        (Self::Status, "status"),
        (Self::LastSuccess, "last_success"),
        (Self::LastChange, "last_change"),
    ];

    /// The order a query-string name stands for.
    pub fn parse(name: &str) -> Option<DeviceOrder> {
        Self::ALL.iter().find(|(_, n)| *n == name).map(|(o, _)| *o)
    }

    /// The sort key of device `d` (an alias of `device`) before its id, as
    /// an ascending SQL expression, or `None` when the id alone orders.
    /// Keys never are NULL, so keyset comparisons stay total.
    fn key(self, d: &str, backend: &str) -> Option<String> {
        Some(match self {
            Self::Id => return None,
            Self::Name => format!("{d}.name"),
            Self::Status => format!(
                "(CASE WHEN {d}.blocked_reason IS NOT NULL THEN 0 \
                 WHEN {d}.last_status = 'failed' THEN 1 \
                 WHEN {d}.last_success_at IS NULL THEN 2 ELSE 3 END)"
            ),
            // SQLite keeps times as RFC 3339 text in UTC, which sorts as time.
            Self::LastSuccess if backend == "postgres" => {
                format!("COALESCE({d}.last_success_at, '-infinity'::timestamptz)")
            }
            Self::LastSuccess => format!("COALESCE({d}.last_success_at, '')"),
            // The expression of `device_last_change_idx`, so both backends
            // walk that index instead of sorting the tenant's devices.
            Self::LastChange => format!("(0 - COALESCE({d}.newest_snapshot_id, 0))"),
        })
    }
}

/// Which devices of a tenant to list.
#[derive(Debug, Clone, Default)]
pub struct DeviceQuery {
    /// Case-insensitive substring of the id, name or host.
    pub q: Option<String>,
    /// Only devices in this status.
    pub status: Option<DeviceStatus>,
    /// The order.
    pub order: DeviceOrder,
    /// Only devices after this device id in the order (next page).
    pub after: Option<String>,
    /// Only devices before this device id in the order (previous page);
    /// ignored when `after` is set.
    pub before: Option<String>,
    /// At most this many (capped at [`MAX_PAGE`]); all when `None`.
    pub limit: Option<u32>,
}

/// A value bound to a built statement.
enum Bind {
    Text(String),
    Int(i64),
}

/// Appends `$n` for the next bind and returns it.
fn placeholder(binds: &mut Vec<Bind>, value: Bind) -> String {
    binds.push(value);
    format!("${}", binds.len())
}

/// `text` as a `LIKE` pattern matching it anywhere, with `\` escaping.
fn contains_pattern(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('%');
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// `a, b, c` placeholders for `ids`.
fn id_list(binds: &mut Vec<Bind>, ids: &[i64]) -> String {
    let list: Vec<String> = ids
        .iter()
        .map(|id| placeholder(binds, Bind::Int(*id)))
        .collect();
    list.join(", ")
}

macro_rules! bind_all {
    ($query:expr, $binds:expr) => {{
        let mut query = $query;
        for bind in $binds {
            query = match bind {
                Bind::Text(s) => query.bind(s.clone()),
                Bind::Int(i) => query.bind(*i),
            };
        }
        query
    }};
}

impl Store {
    /// A tenant's devices with their backup state, as `query` selects them.
    /// With `before`, the page before that device, still in ascending order.
    ///
    /// # Errors
    /// Database failures.
    pub async fn query_devices(
        &self,
        tenant_id: &str,
        query: &DeviceQuery,
    ) -> Result<Vec<DeviceState>> {
        let mut binds = vec![Bind::Text(tenant_id.to_owned())];
        let mut sql = format!("{STATE_SELECT} WHERE d.tenant_id = $1");
        if let Some(q) = query.q.as_deref().filter(|q| !q.is_empty()) {
            let p = placeholder(&mut binds, Bind::Text(contains_pattern(q)));
            sql.push_str(&format!(
                " AND (LOWER(d.device_id) LIKE {p} ESCAPE '\\' OR LOWER(d.name) LIKE {p} ESCAPE '\\' \
                 OR LOWER(d.host) LIKE {p} ESCAPE '\\')"
            ));
        }
        if let Some(status) = query.status {
            sql.push_str(&format!(" AND ({})", status.condition()));
        }
        let (cursor, backwards) = match (&query.after, &query.before) {
            (Some(after), _) => (Some(after), false),
            (None, Some(before)) => (Some(before), true),
            (None, None) => (None, false),
        };
        let cmp = if backwards { "<" } else { ">" };
        let key = query.order.key("d", self.backend());
        if let Some(cursor) = cursor {
            let p = placeholder(&mut binds, Bind::Text(cursor.clone()));
            sql.push_str(&match &key {
                None => format!(" AND d.device_id {cmp} {p}"),
                Some(key) => {
                    let at = format!(
                        "(SELECT {} FROM device c WHERE c.device_id = {p})",
                        query.order.key("c", self.backend()).unwrap_or_default()
                    );
                    format!(" AND ({key} {cmp} {at} OR ({key} = {at} AND d.device_id {cmp} {p}))")
                }
            });
        }
        let dir = if backwards { "DESC" } else { "ASC" };
        sql.push_str(&match &key {
            None => format!(" ORDER BY d.device_id {dir}"),
            Some(key) => format!(" ORDER BY {key} {dir}, d.device_id {dir}"),
        });
        if let Some(limit) = query.limit {
            let p = placeholder(&mut binds, Bind::Int(i64::from(limit.clamp(1, MAX_PAGE))));
            sql.push_str(&format!(" LIMIT {p}"));
        }
        let mut rows = on_db!(&self.db, |pool| {
            bind_all!(
                sqlx::query_as::<_, DeviceState>(sqlx::AssertSqlSafe(sql)),
                &binds
            )
            .fetch_all(pool)
            .await?
        });
        if backwards {
            rows.reverse();
        }
        Ok(rows)
    }

    /// The metadata of a tenant's snapshots with these ids (any device),
    /// in no particular order; unknown ids are left out.
    ///
    /// # Errors
    /// Database failures.
    pub async fn snapshots_by_id(&self, tenant_id: &str, ids: &[i64]) -> Result<Vec<SnapshotMeta>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut binds = vec![Bind::Text(tenant_id.to_owned())];
        let list = id_list(&mut binds, ids);
        let sql = format!(
            "SELECT {META_COLUMNS} FROM snapshot s \
             LEFT JOIN snapshot_diff d ON d.snapshot_id = s.snapshot_id \
             WHERE s.tenant_id = $1 AND s.snapshot_id IN ({list})"
        );
        let rows = on_db!(&self.db, |pool| {
            bind_all!(
                sqlx::query_as::<_, SnapshotMeta>(sqlx::AssertSqlSafe(sql)),
                &binds
            )
            .fetch_all(pool)
            .await?
        });
        Ok(rows)
    }

    /// The per-component change summaries of a tenant's snapshots with
    /// these ids, in the order they were recorded.
    ///
    /// # Errors
    /// Database failures.
    pub async fn changes_of(&self, tenant_id: &str, ids: &[i64]) -> Result<Vec<ChangeSummary>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut binds = vec![Bind::Text(tenant_id.to_owned())];
        let list = id_list(&mut binds, ids);
        let sql = format!(
            "SELECT c.snapshot_id, c.component, c.summary, \
             CAST(c.lines_added AS BIGINT) AS lines_added, \
             CAST(c.lines_removed AS BIGINT) AS lines_removed \
             FROM config_change c WHERE c.tenant_id = $1 AND c.snapshot_id IN ({list}) \
             ORDER BY c.config_change_id"
        );
        let rows = on_db!(&self.db, |pool| {
            bind_all!(
                sqlx::query_as::<_, ChangeSummary>(sqlx::AssertSqlSafe(sql)),
                &binds
            )
            .fetch_all(pool)
            .await?
        });
        Ok(rows)
    }

    /// The tenant's changed versions (snapshots with a diff against a
    /// predecessor), newest first, ids below `before`, optionally of one
    /// device and with a change in one component.
    ///
    /// # Errors
    /// Database failures.
    pub async fn recent_changes(
        &self,
        tenant_id: &str,
        (device, component): (Option<&str>, Option<&str>),
        limit: u32,
        before: Option<i64>,
    ) -> Result<Vec<SnapshotMeta>> {
        let mut binds = vec![
            Bind::Text(tenant_id.to_owned()),
            Bind::Int(before.unwrap_or(i64::MAX)),
        ];
        let mut sql = format!(
            "SELECT {META_COLUMNS} FROM snapshot s \
             JOIN snapshot_diff d ON d.snapshot_id = s.snapshot_id \
             WHERE s.tenant_id = $1 AND s.snapshot_id < $2"
        );
        if let Some(device) = device {
            let p = placeholder(&mut binds, Bind::Text(device.to_owned()));
            sql.push_str(&format!(" AND s.device_id = {p}"));
        }
        if let Some(component) = component {
            let p = placeholder(&mut binds, Bind::Text(component.to_owned()));
            sql.push_str(&format!(
                " AND EXISTS (SELECT 1 FROM config_change c \
                 WHERE c.snapshot_id = s.snapshot_id AND c.component = {p})"
            ));
        }
        let p = placeholder(&mut binds, Bind::Int(i64::from(limit.clamp(1, MAX_PAGE))));
        sql.push_str(&format!(" ORDER BY s.snapshot_id DESC LIMIT {p}"));
        let rows = on_db!(&self.db, |pool| {
            bind_all!(
                sqlx::query_as::<_, SnapshotMeta>(sqlx::AssertSqlSafe(sql)),
                &binds
            )
            .fetch_all(pool)
            .await?
        });
        Ok(rows)
    }

    /// A tenant's audit events, newest first, ids below `before`,
    /// optionally only one action, actor or device.
    ///
    /// # Errors
    /// Database failures.
    pub async fn query_audit(
        &self,
        tenant_id: &str,
        filter: &AuditFilter,
        limit: u32,
        before: Option<i64>,
    ) -> Result<Vec<AuditEvent>> {
        let mut binds = vec![
            Bind::Text(tenant_id.to_owned()),
            Bind::Int(before.unwrap_or(i64::MAX)),
        ];
        let mut sql = "SELECT audit_event_id, tenant_id, device_id, action, actor, detail, \
             created_at FROM audit_event WHERE tenant_id = $1 AND audit_event_id < $2"
            .to_owned();
        for (column, value) in [
            ("action", &filter.action),
            ("actor", &filter.actor),
            ("device_id", &filter.device),
        ] {
            if let Some(value) = value {
                let p = placeholder(&mut binds, Bind::Text(value.clone()));
                sql.push_str(&format!(" AND {column} = {p}"));
            }
        }
        let p = placeholder(&mut binds, Bind::Int(i64::from(limit.clamp(1, MAX_PAGE))));
        sql.push_str(&format!(" ORDER BY audit_event_id DESC LIMIT {p}"));
        let rows = on_db!(&self.db, |pool| {
            bind_all!(
                sqlx::query_as::<_, AuditEvent>(sqlx::AssertSqlSafe(sql)),
                &binds
            )
            .fetch_all(pool)
            .await?
        });
        Ok(rows)
    }

    /// The texts of two versions of a device (`old` may be `None`: empty),
    /// with secrets as `secrets` says; masked together, so a secret that
    /// changed still differs (`******** (changed)`).
    ///
    /// # Errors
    /// [`super::Error::SnapshotNotFound`] when either is not the tenant's
    /// and device's.
    pub async fn texts_as(
        &self,
        tenant_id: &str,
        device_id: &str,
        (old, new): (Option<i64>, i64),
        secrets: Secrets,
    ) -> Result<(String, String)> {
        let new_text = self.snapshot_content(tenant_id, device_id, new).await?;
        let old_text = match old {
            Some(id) => self.snapshot_content(tenant_id, device_id, id).await?,
            None => String::new(),
        };
        if secrets == Secrets::Shown {
            return Ok((old_text, new_text));
        }
        spawn_blocking_with_tracing(move || redact::redact_pair(&old_text, &new_text))
            .await
            .map_err(|e| super::Error::Unexpected(anyhow::Error::new(e).context("masking secrets")))
    }
}

/// Which audit events to list.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only this action (its stored name).
    pub action: Option<String>,
    /// Only this actor.
    pub actor: Option<String>,
    /// Only this device.
    pub device: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_escape_wildcards_and_fold_case() {
        assert_eq!(contains_pattern("Core_1%"), "%core\\_1\\%%");
        assert_eq!(contains_pattern("a\\b"), "%a\\\\b%");
    }

    #[test]
    fn status_names_round_trip() {
        for s in DeviceStatus::ALL {
            assert_eq!(s.as_str().parse::<DeviceStatus>(), Ok(s));
        }
        assert!("fine".parse::<DeviceStatus>().is_err());
    }
}
