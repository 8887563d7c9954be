//! `cfgsnap user`: local accounts from the shell (DESIGN.md §11): add, set a
//! password, disable, enable, delete and list. Passwords come from `prompt`
//! (terminal without echo, or one line of stdin, never argv); no password or
//! hash is ever printed. Changes are audited as `cli:<OS user>`.
//! Entry points: [`UserCmd`] and [`run`].

use std::io::Write as _;

use anyhow::Context as _;
use clap::Subcommand;

use super::Exit;
use super::prompt::read_password;
use crate::account::{Role, Username, password};
use crate::config::{Fleet, Settings};
use crate::id::TenantId;
use crate::store::account::{AccountChange, NewAccount};
use crate::store::{self, Store};

/// The `user` subcommands.
#[derive(Debug, Subcommand)]
pub enum UserCmd {
    /// Create an account; its password is read from the terminal or stdin.
    Add {
        /// Sign-in name: 1 to 64 of A-Z a-z 0-9 . _ @ -.
        #[arg(value_parser = parse_username)]
        username: Username,
        /// viewer, operator, admin or super_admin.
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// The account's tenant (one of `[[tenants]]`); none for super_admin.
        #[arg(long, value_parser = super::token::parse_tenant)]
        tenant: Option<TenantId>,
    },
    /// Set an account's password (read from the terminal or stdin); ends its sessions.
    Passwd {
        /// Sign-in name.
        #[arg(value_parser = parse_username)]
        username: Username,
    },
    /// Disable an account: it cannot sign in and its sessions end.
    Disable {
        /// Sign-in name.
        #[arg(value_parser = parse_username)]
        username: Username,
    },
    /// Enable a disabled account.
    Enable {
        /// Sign-in name.
        #[arg(value_parser = parse_username)]
        username: Username,
    },
    /// Delete an account and its sessions.
    Delete {
        /// Sign-in name.
        #[arg(value_parser = parse_username)]
        username: Username,
    },
    /// List accounts by name: a table, or JSON lines with `--json`.
    List {
        /// Only this tenant's accounts.
        #[arg(long, value_parser = super::token::parse_tenant)]
        tenant: Option<TenantId>,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a `user` subcommand against the configured store.
///
/// # Errors
/// Unexpected failures: an unreachable store, a broken terminal or stdout.
pub(super) async fn run(settings: &Settings, fleet: &Fleet, cmd: UserCmd) -> anyhow::Result<Exit> {
    if let UserCmd::Add { role, tenant, .. } = &cmd
        && let Some(exit) = check_tenant(fleet, *role, tenant.as_ref())
    {
        return Ok(exit);
    }
    let store = Store::connect(&settings.store).await?;
    let result = dispatch(&store, cmd).await;
    store.close().await;
    result
}

async fn dispatch(store: &Store, cmd: UserCmd) -> anyhow::Result<Exit> {
    match cmd {
        UserCmd::Add {
            username,
            role,
            tenant,
        } => add(store, username, role, tenant).await,
        UserCmd::Passwd { username } => passwd(store, &username).await,
        UserCmd::Disable { username } => set_disabled(store, &username, true).await,
        UserCmd::Enable { username } => set_disabled(store, &username, false).await,
        UserCmd::Delete { username } => delete(store, &username).await,
        UserCmd::List { tenant, json } => list(store, tenant.as_ref(), json).await,
    }
}

/// A `super_admin` has no tenant, every other role one of the configured
/// tenants. `Some(exit)` when the arguments break that rule.
fn check_tenant(fleet: &Fleet, role: Role, tenant: Option<&TenantId>) -> Option<Exit> {
    match (role, tenant) {
        (Role::SuperAdmin, Some(_)) => {
            eprintln!("error[usage]: a super_admin has no tenant: leave out --tenant");
            Some(Exit::Usage)
        }
        (Role::SuperAdmin, None) => None,
        (role, None) => {
            eprintln!("error[usage]: --tenant is required for role {role}");
            Some(Exit::Usage)
        }
        (_, Some(id)) if fleet.tenants.iter().any(|t| t.id == *id) => None,
        (_, Some(id)) => {
            eprintln!(
                "error[not_found]: no tenant {:?} in the configuration's [[tenants]]",
                id.as_str()
            );
            Some(Exit::Failed)
        }
    }
}

async fn add(
    store: &Store,
    username: Username,
    role: Role,
    tenant: Option<TenantId>,
) -> anyhow::Result<Exit> {
    if exists(store, username.as_str()).await? {
        return Ok(report(&store::Error::AccountExists, &username));
    }
    let Some(password_hash) = new_password_hash().await? else {
        return Ok(Exit::Failed);
    };
    let new = NewAccount {
        username,
        tenant_id: tenant.map(|t| t.as_str().to_owned()),
        role,
        password_hash,
    };
    match store.create_account(&new, Some(&actor())).await {
        Ok(account) => {
            let place = account
                .tenant_id
                .map_or_else(|| "all tenants".to_owned(), |t| format!("tenant {t}"));
            println!(
                "created user {} ({}, {place})",
                account.username, account.role
            );
            Ok(Exit::Ok)
        }
        Err(e) => outcome(e, &new.username),
    }
}

async fn passwd(store: &Store, username: &Username) -> anyhow::Result<Exit> {
    if !exists(store, username.as_str()).await? {
        return Ok(report(&store::Error::AccountNotFound, username));
    }
    let Some(password_hash) = new_password_hash().await? else {
        return Ok(Exit::Failed);
    };
    let change = AccountChange {
        password_hash: Some(password_hash),
        ..AccountChange::default()
    };
    match store
        .update_account(username.as_str(), &change, Some(&actor()))
        .await
    {
        Ok(_) => {
            println!("changed the password of {username}; its sessions have ended");
            Ok(Exit::Ok)
        }
        Err(e) => outcome(e, username),
    }
}

async fn set_disabled(store: &Store, username: &Username, disabled: bool) -> anyhow::Result<Exit> {
    let change = AccountChange {
        disabled: Some(disabled),
        ..AccountChange::default()
    };
    match store
        .update_account(username.as_str(), &change, Some(&actor()))
        .await
    {
        Ok(_) if disabled => {
            println!("disabled user {username}; its sessions have ended");
            Ok(Exit::Ok)
        }
        Ok(_) => {
            println!("enabled user {username}");
            Ok(Exit::Ok)
        }
        Err(e) => outcome(e, username),
    }
}

async fn delete(store: &Store, username: &Username) -> anyhow::Result<Exit> {
    match store
        .delete_account(username.as_str(), Some(&actor()))
        .await
    {
        Ok(_) => {
            println!("deleted user {username} and its sessions");
            Ok(Exit::Ok)
        }
        Err(e) => outcome(e, username),
    }
}

/// One listed account: what `list --json` prints per line, never a hash.
#[derive(serde::Serialize)]
struct Listed<'a> {
    username: &'a str,
    tenant_id: Option<&'a str>,
    role: Role,
    disabled: bool,
    created_at: chrono::DateTime<chrono::Utc>,
}

async fn list(store: &Store, tenant: Option<&TenantId>, json: bool) -> anyhow::Result<Exit> {
    let accounts = store.list_accounts(tenant.map(TenantId::as_str)).await?;
    let mut out = std::io::stdout().lock();
    if !json {
        writeln!(
            out,
            "{:<24}  {:<16}  {:<11}  {:<8}  CREATED",
            "USERNAME", "TENANT", "ROLE", "DISABLED"
        )?;
    }
    for a in &accounts {
        let listed = Listed {
            username: &a.username,
            tenant_id: a.tenant_id.as_deref(),
            role: a.role,
            disabled: a.disabled,
            created_at: a.created_at,
        };
        if json {
            writeln!(out, "{}", serde_json::to_string(&listed)?)?;
        } else {
            writeln!(
                out,
                "{:<24}  {:<16}  {:<11}  {:<8}  {}",
                listed.username,
                listed.tenant_id.unwrap_or("-"),
                listed.role.as_str(),
                if listed.disabled { "yes" } else { "no" },
                listed.created_at.format("%Y-%m-%dT%H:%M:%SZ"),
            )?;
        }
    }
    Ok(Exit::Ok)
}

async fn exists(store: &Store, username: &str) -> anyhow::Result<bool> {
    match store.account(username).await {
        Ok(_) => Ok(true),
        Err(store::Error::AccountNotFound) => Ok(false),
        Err(e) => Err(anyhow::Error::new(e).context("reading the account")),
    }
}

/// Reports the store's refusals on stderr; anything else is unexpected.
fn outcome(e: store::Error, username: &Username) -> anyhow::Result<Exit> {
    match e {
        store::Error::AccountNotFound
        | store::Error::AccountExists
        | store::Error::InvalidAccount(_)
        | store::Error::LastSuperAdmin => Ok(report(&e, username)),
        e => Err(anyhow::Error::new(e).context("changing the account")),
    }
}

fn report(e: &store::Error, username: &Username) -> Exit {
    match e {
        store::Error::AccountNotFound => eprintln!("error[not_found]: no user {username}"),
        store::Error::AccountExists => eprintln!("error[exists]: user {username} exists"),
        store::Error::LastSuperAdmin => eprintln!(
            "error[last_super_admin]: {username} is the last enabled super_admin; \
             add another super_admin first"
        ),
        e => eprintln!("error[invalid_account]: {e}"),
    }
    Exit::Failed
}

/// The audit actor of CLI changes: `cli:$USER`, or `cli` when `$USER` is
/// unset or not shaped like a user name.
pub(super) fn actor() -> String {
    std::env::var("USER")
        .ok()
        .and_then(|u| Username::parse(&u).ok())
        .map_or_else(|| "cli".to_owned(), |u| format!("cli:{u}"))
}

/// Reads a new password and hashes it on the blocking pool. `None` after
/// telling stderr why the password was refused (never echoing it).
async fn new_password_hash() -> anyhow::Result<Option<String>> {
    let read = tokio::task::spawn_blocking(read_password)
        .await
        .context("BUG: reading the password panicked")?;
    let password = match read {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error[invalid_password]: {e}");
            return Ok(None);
        }
    };
    let hash = tokio::task::spawn_blocking(move || password::hash(&password))
        .await
        .context("BUG: hashing the password panicked")??;
    Ok(Some(hash))
}

fn parse_username(s: &str) -> Result<Username, String> {
    Username::parse(s).map_err(|e| e.to_string())
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse()
}
