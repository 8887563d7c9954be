//! Local accounts (DESIGN.md §11): create, read, change and delete them,
//! with their audit events in the same transaction. Password hashes enter
//! as PHC strings and leave only through [`Store::credentials`], for the
//! sign-in check. Changes that must end sessions (a new password, a
//! disabled account) end them in the same transaction; deleting an account
//! deletes its sessions. Sessions themselves are `session.rs`.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};

use super::audit::{Action, insert_audit};
use super::db::{Conn, on_conn, on_db};
use super::record::UnknownName;
use super::{Error, Result, Store};
use crate::account::{Role, Username};

/// An account as listed: never its password hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Account {
    /// Row id (sessions refer to it).
    #[serde(skip)]
    pub account_id: i64,
    /// The sign-in name, unique across tenants.
    pub username: String,
    /// The tenant; `None` for a `super_admin`.
    pub tenant_id: Option<String>,
    /// What the account may do.
    #[sqlx(try_from = "String")]
    pub role: Role,
    /// A disabled account cannot sign in and has no session.
    pub disabled: bool,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// Reads a stored role name.
impl TryFrom<String> for Role {
    type Error = UnknownName;

    fn try_from(value: String) -> std::result::Result<Self, UnknownName> {
        value
            .parse()
            .map_err(|_| UnknownName::new("account role", value))
    }
}

/// A new account. A `super_admin` has no tenant; every other role has one.
#[derive(Debug, Clone)]
pub struct NewAccount {
    /// The sign-in name.
    pub username: Username,
    /// The tenant (checked against the configuration by the caller).
    pub tenant_id: Option<String>,
    /// The role.
    pub role: Role,
    /// The Argon2id PHC string of its password.
    pub password_hash: String,
}

/// What [`Store::update_account`] changes; `None` leaves a field alone.
#[derive(Debug, Clone, Default)]
pub struct AccountChange {
    /// A new role (not `super_admin`, which has no tenant).
    pub role: Option<Role>,
    /// Disable or enable.
    pub disabled: Option<bool>,
    /// A new password's PHC string.
    pub password_hash: Option<String>,
}

const ACCOUNT_COLUMNS: &str =
    "account_id, username, tenant_id, role, disabled, created_at, updated_at";

impl Store {
    /// Creates an account and audits it, by `actor` when a person did.
    ///
    /// # Errors
    /// [`Error::AccountExists`] for a taken user name; [`Error::InvalidAccount`]
    /// when role and tenant do not fit; database failures.
    pub async fn create_account(&self, new: &NewAccount, actor: Option<&str>) -> Result<Account> {
        if (new.role == Role::SuperAdmin) != new.tenant_id.is_none() {
            return Err(Error::InvalidAccount(
                "a super_admin has no tenant; every other role has one",
            ));
        }
        let mut tx = self.db.begin_write().await?;
        let account = insert_account(tx.conn(), new).await?;
        let detail = json!({ "username": account.username, "role": account.role });
        let tenant = account.tenant_id.as_deref();
        insert_audit(tx.conn(), tenant, None, Action::UserCreated, actor, &detail).await?;
        tx.commit().await?;
        Ok(account)
    }

    /// The account named `username`.
    ///
    /// # Errors
    /// [`Error::AccountNotFound`]; database failures.
    pub async fn account(&self, username: &str) -> Result<Account> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM account WHERE username = $1");
        let row = on_db!(&self.db, |pool| {
            sqlx::query_as::<_, Account>(sqlx::AssertSqlSafe(sql))
                .bind(username)
                .fetch_optional(pool)
                .await?
        });
        row.ok_or(Error::AccountNotFound)
    }

    /// The account named `username` with its password hash, for sign-in.
    ///
    /// # Errors
    /// Database failures; an unknown user is `Ok(None)`.
    pub async fn credentials(&self, username: &str) -> Result<Option<(Account, String)>> {
        let sql =
            format!("SELECT {ACCOUNT_COLUMNS}, password_hash FROM account WHERE username = $1");
        let row = on_db!(&self.db, |pool| {
            sqlx::query_as::<_, WithHash>(sqlx::AssertSqlSafe(sql))
                .bind(username)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(|r| (r.account, r.password_hash)))
    }

    /// The accounts of `tenant` (every account when `None`), by name.
    ///
    /// # Errors
    /// Database failures.
    pub async fn list_accounts(&self, tenant: Option<&str>) -> Result<Vec<Account>> {
        let sql = format!(
            "SELECT {ACCOUNT_COLUMNS} FROM account \
             WHERE ($1 IS NULL OR tenant_id = $1) ORDER BY username"
        );
        let rows = on_db!(&self.db, |pool| {
            sqlx::query_as::<_, Account>(sqlx::AssertSqlSafe(sql))
                .bind(tenant)
                .fetch_all(pool)
                .await?
        });
        Ok(rows)
    }

    /// Changes an account and audits it. A new password or disabling ends
    /// every session of the account at once.
    ///
    /// # Errors
    /// [`Error::AccountNotFound`]; [`Error::LastSuperAdmin`] when the change
    /// would leave no enabled `super_admin`; [`Error::InvalidAccount`] for a
    /// role that does not fit the tenant; database failures.
    pub async fn update_account(
        &self,
        username: &str,
        change: &AccountChange,
        actor: Option<&str>,
    ) -> Result<Account> {
        let mut tx = self.db.begin_write().await?;
        let before = lock_account(tx.conn(), username).await?;
        check_role_change(&before, change)?;
        let loses_super_admin =
            before.role == Role::SuperAdmin && !before.disabled && change.disabled == Some(true);
        if loses_super_admin && enabled_super_admins(tx.conn()).await? <= 1 {
            return Err(Error::LastSuperAdmin);
        }
        let after = apply_change(tx.conn(), &before, change).await?;
        if change.password_hash.is_some() || change.disabled == Some(true) {
            end_account_sessions(tx.conn(), before.account_id).await?;
        }
        let detail = change_detail(&before, change);
        let tenant = before.tenant_id.as_deref();
        insert_audit(tx.conn(), tenant, None, Action::UserUpdated, actor, &detail).await?;
        tx.commit().await?;
        Ok(after)
    }

    /// Deletes an account (and its sessions) and audits it.
    ///
    /// # Errors
    /// [`Error::AccountNotFound`]; [`Error::LastSuperAdmin`] for the last
    /// enabled `super_admin`; database failures.
    pub async fn delete_account(&self, username: &str, actor: Option<&str>) -> Result<Account> {
        let mut tx = self.db.begin_write().await?;
        let account = lock_account(tx.conn(), username).await?;
        if account.role == Role::SuperAdmin
            && !account.disabled
            && enabled_super_admins(tx.conn()).await? <= 1
        {
            return Err(Error::LastSuperAdmin);
        }
        on_conn!(tx.conn(), |c| {
            sqlx::query("DELETE FROM account WHERE account_id = $1")
                .bind(account.account_id)
                .execute(c)
                .await?;
        });
        let detail = json!({ "username": account.username, "role": account.role });
        let tenant = account.tenant_id.as_deref();
        insert_audit(tx.conn(), tenant, None, Action::UserDeleted, actor, &detail).await?;
        tx.commit().await?;
        Ok(account)
    }
}

/// An account row with its hash.
#[derive(sqlx::FromRow)]
struct WithHash {
    #[sqlx(flatten)]
    account: Account,
    password_hash: String,
}

async fn insert_account(conn: Conn<'_>, new: &NewAccount) -> Result<Account> {
    let sql = format!(
        "INSERT INTO account (username, tenant_id, role, password_hash, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $5) RETURNING {ACCOUNT_COLUMNS}"
    );
    let inserted = on_conn!(conn, |c| {
        sqlx::query_as::<_, Account>(sqlx::AssertSqlSafe(sql))
            .bind(new.username.as_str())
            .bind(new.tenant_id.as_deref())
            .bind(new.role.as_str())
            .bind(&new.password_hash)
            .bind(Utc::now())
            .fetch_one(c)
            .await
    });
    inserted.map_err(|e| match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => Error::AccountExists,
        _ => Error::from(e),
    })
}

/// Reads the account for a change in this transaction (row-locked on
/// PostgreSQL; SQLite's write transaction holds the lock already).
async fn lock_account(mut conn: Conn<'_>, username: &str) -> Result<Account> {
    let sql = format!(
        "SELECT {ACCOUNT_COLUMNS} FROM account WHERE username = $1{}",
        conn.for_update()
    );
    let row = on_conn!(conn.reborrow(), |c| {
        sqlx::query_as::<_, Account>(sqlx::AssertSqlSafe(sql))
            .bind(username)
            .fetch_optional(c)
            .await?
    });
    row.ok_or(Error::AccountNotFound)
}

/// Roles move within a tenant: to or from `super_admin` would change
/// whether the account has a tenant.
fn check_role_change(before: &Account, change: &AccountChange) -> Result<()> {
    match change.role {
        Some(role) if (role == Role::SuperAdmin) != (before.role == Role::SuperAdmin) => Err(
            Error::InvalidAccount("a super_admin has no tenant: create the account anew"),
        ),
        _ => Ok(()),
    }
}

async fn enabled_super_admins(conn: Conn<'_>) -> Result<i64> {
    let n = on_conn!(conn, |c| {
        sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM account WHERE role = 'super_admin' AND NOT disabled",
        )
        .fetch_one(c)
        .await?
    });
    Ok(n)
}

async fn apply_change(conn: Conn<'_>, before: &Account, change: &AccountChange) -> Result<Account> {
    let sql = format!(
        "UPDATE account SET role = $1, disabled = $2, \
         password_hash = COALESCE($3, password_hash), updated_at = $4 \
         WHERE account_id = $5 RETURNING {ACCOUNT_COLUMNS}"
    );
    let after = on_conn!(conn, |c| {
        sqlx::query_as::<_, Account>(sqlx::AssertSqlSafe(sql))
            .bind(change.role.unwrap_or(before.role).as_str())
            .bind(change.disabled.unwrap_or(before.disabled))
            .bind(change.password_hash.as_deref())
            .bind(Utc::now())
            .bind(before.account_id)
            .fetch_one(c)
            .await?
    });
    Ok(after)
}

/// What changed, for the audit log: names of fields, never the hash.
fn change_detail(before: &Account, change: &AccountChange) -> Value {
    let mut detail = json!({ "username": before.username });
    if let Some(role) = change.role {
        detail["role"] = json!({ "from": before.role, "to": role });
    }
    if let Some(disabled) = change.disabled {
        detail["disabled"] = json!(disabled);
    }
    if change.password_hash.is_some() {
        detail["password_changed"] = json!(true);
    }
    detail
}

/// Ends every open session of an account, in the caller's transaction:
/// sessions belong to the account, so their end is part of its change.
async fn end_account_sessions(conn: Conn<'_>, account_id: i64) -> Result<()> {
    on_conn!(conn, |c| {
        sqlx::query("UPDATE session SET ended_at = $1 WHERE account_id = $2 AND ended_at IS NULL")
            .bind(Utc::now())
            .bind(account_id)
            .execute(c)
            .await?;
    });
    Ok(())
}
