//! Persistence: PostgreSQL or SQLite behind one [`Store`], with encryption at
//! rest (`crypto/`), snapshot ingest (`snapshot/`), the read side of
//! snapshots (`history`), devices, their pinned host keys and backup state
//! (`device`), the audit log (`audit`), retention (`retention`), what search
//! reads (`search`), the notification outbox (`outbox`), and local
//! accounts and their sign-in sessions (`account`, `session`), operations
//! over every sealed record (`sealed`: key rotation in `rekey`, device moves
//! in `moving`, checks and backups in `verify`); `db`
//! holds the pool, transaction and connection of either backend, `record`
//! how sealed records are bound to their rows. All SQL of cfgsnap lives
//! under this module.
//!
//! Every query takes the tenant it serves and filters by it, so a query for
//! tenant A never returns tenant B's rows. Queries are written once and run on
//! both backends through `on_db!`/`on_conn!`, which instantiate the same code
//! for each backend; `$1` placeholders work on both. Statements that take
//! part in a transaction take a connection, so their caller decides the
//! transaction's boundary.

use std::future::Future;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context as _;
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};

use crate::config::StoreSettings;

pub mod account;
pub mod audit;
pub mod browse;
pub mod crypto;
mod db;
pub mod device;
pub mod history;
pub mod moving;
pub mod outbox;
mod pins;
mod record;
pub mod rekey;
pub mod retention;
mod sealed;
pub mod search;
pub mod session;
pub mod snapshot;
pub mod verify;

use crypto::{Cipher, CryptoError, Keyring, MasterKey};
use db::{Db, on_db};

pub use record::UnknownName;
pub use sealed::SealedTable;

/// Largest page a listing returns.
pub const MAX_PAGE: u32 = 500;

/// Result type of the store module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

static PG_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");
static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

/// A failed store operation. Messages never contain config or diff text.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No such snapshot for this tenant and device.
    #[error("snapshot not found")]
    SnapshotNotFound,
    /// No such device for this tenant.
    #[error("device not found")]
    DeviceNotFound,
    /// A snapshot event that can never be stored (poison): bad fields,
    /// a hash that does not match the text, an unknown device.
    #[error("invalid snapshot: {0}")]
    InvalidSnapshot(String),
    /// No such notification for this tenant.
    #[error("notification not found")]
    NotificationNotFound,
    /// No account of that name.
    #[error("account not found")]
    AccountNotFound,
    /// The user name is taken.
    #[error("an account of that name exists")]
    AccountExists,
    /// Role and tenant do not fit together.
    #[error("invalid account: {0}")]
    InvalidAccount(&'static str),
    /// The change would leave no enabled super_admin.
    #[error("the last enabled super_admin cannot be disabled or deleted")]
    LastSuperAdmin,
    /// The database could not be reached or is busy; retrying may succeed.
    #[error("store unavailable")]
    Unavailable(#[source] sqlx::Error),
    /// SQLite could not write for lack of space on its filesystem; retrying
    /// succeeds once space is freed, and nothing written so far is lost.
    #[error("store unavailable: the filesystem holding the database is full")]
    DiskFull(#[source] sqlx::Error),
    /// A record could not be decrypted (wrong master key or corruption).
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// Anything else.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl Error {
    /// Whether retrying later may succeed (a nak rather than a terminate).
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Unavailable(_) | Error::DiskFull(_))
    }

    /// Whether PostgreSQL aborted the transaction for a deadlock or a
    /// serialization failure: running it again right away succeeds.
    fn is_conflict(&self) -> bool {
        match self {
            Error::Unavailable(sqlx::Error::Database(db)) => {
                db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                    .is_some()
                    && matches!(db.code().as_deref(), Some("40001" | "40P01"))
            }
            _ => false,
        }
    }
}

/// Transactions run at most this often when PostgreSQL aborts them for a
/// conflict ([`retry_conflicts`]).
const CONFLICT_ATTEMPTS: u32 = 3;

/// Runs `op`, and again (up to [`CONFLICT_ATTEMPTS`] in all) while
/// PostgreSQL aborts it for a deadlock or serialization failure. A fleet
/// sync locks every device row in table order, an attempt batch its
/// devices in id order: when the two meet, PostgreSQL aborts one of them,
/// which then runs again once the other has committed.
async fn retry_conflicts<T, F, Fut>(what: &str, mut op: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut attempt = 1;
    loop {
        match op().await {
            Err(e) if e.is_conflict() && attempt < CONFLICT_ATTEMPTS => {
                tracing::info!(
                    attempt,
                    "{what} met a concurrent transaction; running it again"
                );
                attempt += 1;
            }
            done => return done,
        }
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        if is_disk_full(&e) {
            Error::DiskFull(e)
        } else if is_transient(&e) {
            Error::Unavailable(e)
        } else {
            Error::Unexpected(anyhow::Error::new(e))
        }
    }
}

/// SQLite's `FULL` (a write found no space) and `IOERR_SHMSIZE` (the WAL
/// index could not grow, which on a full filesystem comes first).
fn is_disk_full(e: &sqlx::Error) -> bool {
    const SQLITE_FULL: i32 = 13;
    const SQLITE_IOERR_SHMSIZE: i32 = 4874;
    let sqlx::Error::Database(db) = e else {
        return false;
    };
    db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some()
        && matches!(
            db.code().unwrap_or_default().parse::<i32>(),
            Ok(c) if c & 0xff == SQLITE_FULL || c == SQLITE_IOERR_SHMSIZE
        )
}

/// Connection loss, pool exhaustion, lock contention, a full disk: states
/// that pass, as opposed to a query that will always fail.
fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                // SQLite: 5 BUSY, 6 LOCKED, 13 FULL (and their extended
                // codes). Only for SQLite: some numeric PostgreSQL codes
                // share the low byte (22021, 42501).
                return matches!(code.parse::<i32>().map(|c| c & 0xff), Ok(5 | 6 | 13));
            }
            // PostgreSQL: class 08 connection, 53 resources, 57P0x shutdown,
            // 40001/40P01 serialization and deadlock.
            code.starts_with("08")
                || code.starts_with("53")
                || code.starts_with("57P0")
                || code == "40001"
                || code == "40P01"
        }
        _ => false,
    }
}

/// The snapshot store: a database pool and the cipher for records at rest.
#[derive(Clone, Debug)]
pub struct Store {
    pub(crate) db: Db,
    pub(crate) cipher: Keyring,
    pub(crate) diff_deadline: Duration,
    /// Which notification targets want which events (`outbox`).
    pub(crate) outbox: outbox::RouteCell,
    /// This node's memory of each device's newest hash (a hint, see
    /// `snapshot::unchanged`); shared by the clones.
    pub(crate) newest: std::sync::Arc<snapshot::NewestHashes>,
    /// This node's memory of pinned host keys (see `device::Pins`); shared
    /// by the clones.
    pub(crate) pins: std::sync::Arc<pins::Pins>,
}

impl Store {
    /// Connects to `settings.url`, applies the migrations and loads the
    /// master key (generating the key file on a fresh store, see
    /// [`load_master_key`]).
    ///
    /// # Errors
    /// A database that cannot be reached or migrated, or a missing or
    /// malformed master key.
    pub async fn connect(settings: &StoreSettings) -> Result<Store> {
        let store = Store::open(settings).await?;
        store.check_master_key().await?;
        Ok(store)
    }

    /// As [`Store::connect`] but without checking that the keys open the
    /// newest snapshot: for the maintenance commands (`key`, `store
    /// verify`), which report every record they cannot open instead.
    ///
    /// # Errors
    /// A database that cannot be reached or migrated, or a missing or
    /// malformed master key.
    pub async fn open(settings: &StoreSettings) -> Result<Store> {
        let db = open_pool(&settings.url).await?;
        migrate(&db).await?;
        let cipher = load_master_key(&db, settings).await?;
        Ok(Store {
            db,
            cipher,
            diff_deadline: Duration::from_secs(2),
            outbox: outbox::RouteCell::default(),
            newest: std::sync::Arc::default(),
            pins: std::sync::Arc::default(),
        })
    }

    /// Opens the newest stored snapshot, so that a master key that does not
    /// match the data stops start-up with a clear error instead of failing
    /// (and dropping) every later ingest.
    async fn check_master_key(&self) -> Result<()> {
        let newest = on_db!(&self.db, |pool| {
            sqlx::query_as::<_, (String, String, i64)>(
                "SELECT tenant_id, device_id, snapshot_id FROM snapshot \
                 ORDER BY snapshot_id DESC LIMIT 1",
            )
            .fetch_optional(pool)
            .await?
        });
        let Some((tenant, device, id)) = newest else {
            return Ok(());
        };
        match self.snapshot_content(&tenant, &device, id).await {
            Err(Error::Crypto(e)) => Err(Error::Unexpected(anyhow::Error::new(e).context(
                "the configured master key cannot read the stored snapshots; \
                 configure the key they were written with",
            ))),
            other => other.map(|_| ()),
        }
    }

    /// Applies pending migrations (idempotent).
    ///
    /// # Errors
    /// When a migration fails.
    pub async fn migrate(&self) -> Result<()> {
        migrate(&self.db).await
    }

    /// Checks that the database answers.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when it does not.
    pub async fn ping(&self) -> Result<()> {
        on_db!(&self.db, |pool| {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        Ok(())
    }

    /// `postgres` or `sqlite`.
    pub fn backend(&self) -> &'static str {
        match self.db {
            Db::Postgres(_) => "postgres",
            Db::Sqlite(_) => "sqlite",
        }
    }

    /// Closes the pool, waiting for checked-out connections.
    pub async fn close(&self) {
        on_db!(&self.db, |pool| pool.close().await);
    }
}

async fn open_pool(url: &str) -> Result<Db> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await
            .map_err(Error::Unavailable)?;
        return Ok(Db::Postgres(pool));
    }
    let options = SqliteConnectOptions::from_str(url)
        .context("parsing store.url")?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true);
    if let Some(dir) = options.get_filename().parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the database directory {}", dir.display()))?;
    }
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await
        .map_err(|e| {
            if is_disk_full(&e) {
                Error::DiskFull(e)
            } else {
                Error::Unavailable(e)
            }
        })?;
    Ok(Db::Sqlite(pool))
}

async fn migrate(db: &Db) -> Result<()> {
    match db {
        Db::Postgres(pool) => PG_MIGRATOR.run(pool).await,
        Db::Sqlite(pool) => SQLITE_MIGRATOR.run(pool).await,
    }
    .context("applying database migrations")?;
    Ok(())
}

/// The master key from `encryption_key_env` or `encryption_key_file`. A key
/// file that does not exist is generated, but only while the store holds no
/// snapshot: a key lost from a store with data is an error, never silently
/// replaced by a new key that could not read the old records. A key file
/// brings the previous keys kept beside it, and is followed while the node
/// runs (see [`Keyring`]).
async fn load_master_key(db: &Db, settings: &StoreSettings) -> Result<Keyring> {
    match (&settings.encryption_key_env, &settings.encryption_key_file) {
        (Some(var), _) => Ok(Keyring::fixed(Cipher::new(
            MasterKey::from_env(var)?,
            Vec::new(),
        ))),
        (None, Some(path)) => {
            key_from_file(db, path).await?;
            Ok(Keyring::from_key_file(path)?)
        }
        (None, None) => Err(CryptoError::MissingKey.into()),
    }
}

async fn key_from_file(db: &Db, path: &Path) -> Result<MasterKey> {
    if !path.exists() {
        let snapshots: i64 = on_db!(db, |pool| {
            sqlx::query_scalar("SELECT COUNT(*) FROM snapshot")
                .fetch_one(pool)
                .await?
        });
        if snapshots > 0 {
            return Err(Error::Unexpected(anyhow::anyhow!(
                "master key file {} is missing but the store holds {snapshots} encrypted \
                 snapshots; restore the key file",
                path.display()
            )));
        }
    }
    // load_or_generate logs the generation itself (path and key id only).
    let (key, _generated) = MasterKey::load_or_generate(path)?;
    Ok(key)
}
