//! Sign-in sessions (DESIGN.md §11): the server-side half of a sign-in.
//! A session is found by its public id (the `sid` of access tokens) or by
//! the SHA-256 of its cookie secret, and only while it is open: not ended,
//! not past its absolute expiry, used within the idle timeout, its account
//! enabled. Use is recorded at most once a minute per session, so reads do
//! not turn every request into a write.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::account::Account;
use super::db::on_db;
use super::{Result, Store};

/// How stale `last_seen_at` may get before a request records its use.
const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// A session as its owner sees it: never its secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Session {
    /// The public id (`sid`).
    pub session_id: String,
    /// When it began.
    pub created_at: DateTime<Utc>,
    /// When it was last used (to the minute).
    pub last_seen_at: DateTime<Utc>,
    /// When it ends whatever happens.
    pub expires_at: DateTime<Utc>,
}

/// An open session with its account and CSRF token.
#[derive(Debug, Clone)]
pub struct OpenSession {
    /// The session.
    pub session: Session,
    /// Whose it is.
    pub account: Account,
    /// The CSRF token bound to it.
    pub csrf_token: String,
}

/// A session to begin.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// Its public id.
    pub session_id: String,
    /// The account signing in.
    pub account_id: i64,
    /// SHA-256 (hex) of the cookie secret.
    pub secret_hash: String,
    /// Its CSRF token.
    pub csrf_token: String,
    /// Its absolute expiry.
    pub expires_at: DateTime<Utc>,
}

/// A session joined with its account: the account's columns keep their
/// names (`created_at`, …), the session's that clash are renamed.
#[derive(sqlx::FromRow)]
struct Row {
    session_id: String,
    session_created_at: DateTime<Utc>,
    last_seen_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    csrf_token: String,
    #[sqlx(flatten)]
    account: Account,
}

const OPEN_SESSION_SQL: &str = "SELECT s.session_id, s.created_at AS session_created_at, \
     s.last_seen_at, s.expires_at, \
     s.csrf_token, a.account_id, a.username, a.tenant_id, a.role, a.disabled, a.created_at, \
     a.updated_at \
     FROM session s JOIN account a ON a.account_id = s.account_id \
     WHERE s.ended_at IS NULL AND s.expires_at > $2 AND s.last_seen_at > $3 AND NOT a.disabled";

/// Which key finds a session.
#[derive(Debug, Clone, Copy)]
pub enum SessionKey<'a> {
    /// The public id, from an access token's `sid`.
    Id(&'a str),
    /// The SHA-256 (hex) of the cookie secret.
    SecretHash(&'a str),
}

impl Store {
    /// Begins a session.
    ///
    /// # Errors
    /// Database failures.
    pub async fn create_session(&self, new: &NewSession) -> Result<()> {
        let now = Utc::now();
        on_db!(&self.db, |pool| {
            sqlx::query(
                "INSERT INTO session (session_id, account_id, secret_hash, csrf_token, \
                 created_at, last_seen_at, expires_at) VALUES ($1, $2, $3, $4, $5, $5, $6)",
            )
            .bind(&new.session_id)
            .bind(new.account_id)
            .bind(&new.secret_hash)
            .bind(&new.csrf_token)
            .bind(now)
            .bind(new.expires_at)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// The open session `key` finds, idle for less than `idle`, with its
    /// account; records the use.
    ///
    /// # Errors
    /// Database failures; no open session is `Ok(None)`.
    pub async fn open_session(
        &self,
        key: SessionKey<'_>,
        idle: Duration,
    ) -> Result<Option<OpenSession>> {
        let now = Utc::now();
        let idle_since = now - chrono::Duration::from_std(idle).unwrap_or(chrono::Duration::MAX);
        let (column, value) = match key {
            SessionKey::Id(id) => ("s.session_id", id),
            SessionKey::SecretHash(hash) => ("s.secret_hash", hash),
        };
        let sql = format!("{OPEN_SESSION_SQL} AND {column} = $1");
        let row = on_db!(&self.db, |pool| {
            sqlx::query_as::<_, Row>(sqlx::AssertSqlSafe(sql))
                .bind(value)
                .bind(now)
                .bind(idle_since)
                .fetch_optional(pool)
                .await?
        });
        let Some(row) = row else {
            return Ok(None);
        };
        let touch = chrono::Duration::from_std(TOUCH_EVERY).unwrap_or(chrono::Duration::zero());
        if row.last_seen_at < now - touch {
            self.touch_session(&row.session_id, now).await?;
        }
        Ok(Some(OpenSession {
            session: Session {
                session_id: row.session_id,
                created_at: row.session_created_at,
                last_seen_at: row.last_seen_at,
                expires_at: row.expires_at,
            },
            account: row.account,
            csrf_token: row.csrf_token,
        }))
    }

    async fn touch_session(&self, session_id: &str, now: DateTime<Utc>) -> Result<()> {
        on_db!(&self.db, |pool| {
            sqlx::query("UPDATE session SET last_seen_at = $1 WHERE session_id = $2")
                .bind(now)
                .bind(session_id)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Ends a session; `false` when it was not open.
    ///
    /// # Errors
    /// Database failures.
    pub async fn end_session(&self, session_id: &str) -> Result<bool> {
        let done = on_db!(&self.db, |pool| {
            sqlx::query(
                "UPDATE session SET ended_at = $1 WHERE session_id = $2 AND ended_at IS NULL",
            )
            .bind(Utc::now())
            .bind(session_id)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(done > 0)
    }

    /// The sessions of an account that have not ended, newest first
    /// (expired ones included until they are cleaned up).
    ///
    /// # Errors
    /// Database failures.
    pub async fn list_sessions(&self, account_id: i64) -> Result<Vec<Session>> {
        let rows = on_db!(&self.db, |pool| {
            sqlx::query_as::<_, Session>(
                "SELECT session_id, created_at, last_seen_at, expires_at FROM session \
                 WHERE account_id = $1 AND ended_at IS NULL AND expires_at > $2 \
                 ORDER BY created_at DESC",
            )
            .bind(account_id)
            .bind(Utc::now())
            .fetch_all(pool)
            .await?
        });
        Ok(rows)
    }
}
