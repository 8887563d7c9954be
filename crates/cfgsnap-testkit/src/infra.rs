//! The infrastructure of one test or benchmark run: a directory, a store
//! (SQLite file or scratch PostgreSQL database), subject, stream, bucket and
//! Redis key names unique to the run, and the `config.toml` sections that
//! point a node at them. [`Infra::finish`] removes what the run left on the
//! servers.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use cfgsnap::api::Role;
use routeros_sim::Simulator;
use tempfile::TempDir;

use crate::pg::ScratchDb;
use crate::service::{NATS_URL, PG_SERVER, REDIS_URL};
use crate::stack::Stack;

/// The HS256 secret of every node an [`Infra`] configures (in `jwt-secret`).
pub const SECRET: &str = "app-test-secret-0123456789abcdef-0123456789";

/// One run's directory, store and names.
pub struct Infra {
    /// The stack the names are for.
    pub stack: Stack,
    /// Holds the SQLite file, master key, JWT secret and whatever the caller adds.
    pub dir: TempDir,
    /// `store.url`.
    pub store_url: String,
    /// `store.encryption_key_file`.
    pub master_key: PathBuf,
    /// The PostgreSQL database on the served stack.
    pub database: Option<ScratchDb>,
    /// 10 hex digits in every name of the run.
    pub tag: String,
    /// Whether the served stack's leftovers are removed already.
    cleaned: bool,
}

impl Infra {
    /// Fresh names and, on the served stack, a fresh database on the test
    /// server; panics, saying what to start, when a server is missing.
    pub async fn new(stack: Stack) -> Infra {
        crate::init_tracing();
        match Infra::try_new(stack, PG_SERVER).await {
            Ok(infra) => infra,
            Err(e) => panic!("setting up the test infrastructure: {e:#}"),
        }
    }

    /// Fresh names and, on the served stack, a fresh database on `pg_server`.
    ///
    /// # Errors
    /// When the database cannot be created or a file cannot be written.
    pub async fn try_new(stack: Stack, pg_server: &str) -> anyhow::Result<Infra> {
        let dir = tempfile::tempdir().context("creating the run's directory")?;
        let (store_url, database) = match stack {
            Stack::Embedded => (
                format!("sqlite://{}/cfgsnap.db", dir.path().display()),
                None,
            ),
            Stack::Served => {
                let db = ScratchDb::create(pg_server).await.with_context(|| {
                    format!("PostgreSQL must run at {pg_server} with trust auth")
                })?;
                (db.url(), Some(db))
            }
        };
        let master_key = dir.path().join("master.key");
        Infra::assemble(stack, dir, store_url, master_key, database)
    }

    /// The embedded bus and locks over an existing store (`store_url`, sealed
    /// with `master_key`), which [`Infra::finish`] leaves alone.
    ///
    /// # Errors
    /// When a file cannot be written.
    pub fn on_store(store_url: &str, master_key: &Path) -> anyhow::Result<Infra> {
        let dir = tempfile::tempdir().context("creating the run's directory")?;
        let (url, key) = (store_url.to_owned(), master_key.to_owned());
        Infra::assemble(Stack::Embedded, dir, url, key, None)
    }

    fn assemble(
        stack: Stack,
        dir: TempDir,
        store_url: String,
        master_key: PathBuf,
        database: Option<ScratchDb>,
    ) -> anyhow::Result<Infra> {
        std::fs::write(dir.path().join("jwt-secret"), SECRET).context("writing the JWT secret")?;
        Ok(Infra {
            stack,
            dir,
            store_url,
            master_key,
            database,
            tag: format!("{:010x}", rand::random::<u64>() & 0xff_ffff_ffff),
            cleaned: false,
        })
    }

    /// A token for `sub` of `tenant` with `role`, for the nodes configured here.
    pub fn token(&self, sub: &str, tenant: &str, role: Role) -> String {
        crate::token::mint(SECRET.as_bytes(), sub, tenant, role)
    }

    /// `[auth]` with the run's JWT secret file, followed by `extra` lines.
    pub fn auth_section(&self, extra: &str) -> String {
        let d = self.dir.path().display();
        format!("[auth]\njwt_secret_file = \"{d}/jwt-secret\"\n{extra}\n")
    }

    /// `[store]` with the run's store and master key file.
    pub fn store_section(&self) -> String {
        format!(
            "[store]\nurl = \"{}\"\nencryption_key_file = \"{}\"\n",
            self.store_url,
            self.master_key.display()
        )
    }

    /// `[bus]` with the run's names, waiting `trigger_timeout` for responders.
    pub fn bus_section(&self, trigger_timeout: &str) -> String {
        let (t, upper) = (&self.tag, self.tag.to_uppercase());
        format!(
            r#"[bus]
url = "{bus}"
trigger_timeout = "{trigger_timeout}"
trigger_subject = "t{t}.config.backup.trigger"
queue_group = "t{t}-responders"
snapshot_subject = "t{t}.config.snapshot"
stream = "T{upper}_SNAPSHOTS"
durable = "t{t}-ingest"
object_bucket = "T{upper}_OBJECTS"
control_subject = "t{t}.cfgsnap.control"
"#,
            bus = self.stack.bus_url(),
        )
    }

    /// `t{tag}.`: what the run's subjects start with; the other system's
    /// subject families under it are the run's own.
    pub fn subject_prefix(&self) -> String {
        format!("t{}.", self.tag)
    }

    /// `DEVICE_EVENTS_{TAG}`: the name the run gives the stream the other
    /// system's pollers create (`DEVICE_EVENTS`), so runs never meet a real
    /// one; [`Infra::finish`] deletes it.
    pub fn foreign_stream(&self) -> String {
        format!("DEVICE_EVENTS_{}", self.tag.to_uppercase())
    }

    /// `[lock]` with the run's key prefix.
    pub fn lock_section(&self) -> String {
        format!(
            "[lock]\nurl = \"{}\"\nkey_prefix = \"t{}:backup:device:\"\n",
            self.stack.lock_url(),
            self.tag
        )
    }

    /// The configuration of a node on this infrastructure backing up
    /// `sim`'s devices (`dev-{i}` of tenant `t1`, password login with credentials
    /// `sim`; credentials `wrong` hold a wrong password; tenant `t2` is
    /// empty), followed by `extra` (whole sections, e.g. `[roles]`).
    pub fn config(&self, sim: &Simulator, extra: &str) -> String {
        let d = self.dir.path().display();
        let mut toml = format!(
            r#"
[server]
listen = "127.0.0.1:0"
shutdown_timeout = "5s"
{auth}{store}{bus}{lock}[backup]
interval = "1h"
jitter = "0s"
max_concurrent = 8
connect_timeout = "5s"
command_timeout = "5s"
job_timelimit = "20s"
known_hosts_file = "{d}/known_hosts.json"
[[credentials]]
name = "sim"
username = "admin"
password = "admin"
[[credentials]]
name = "wrong"
username = "admin"
password = "not-the-password"
[[tenants]]
id = "t1"
[[tenants]]
id = "t2"
"#,
            auth = self.auth_section(""),
            store = self.store_section(),
            bus = self.bus_section("10s"),
            lock = self.lock_section(),
        );
        for (i, addr) in sim.addrs().iter().enumerate() {
            toml.push_str(&format!(
                "[[devices]]\nid = \"dev-{i}\"\ntenant = \"t1\"\nname = \"router {i}\"\n\
                 host = \"127.0.0.1\"\nport = {}\ncredentials = \"sim\"\n",
                addr.port()
            ));
        }
        // `extra` may not reopen a section (TOML allows keys only once), so
        // callers put whole sections there.
        toml.push_str(extra);
        toml
    }

    /// Removes what the run left on the servers: the database, the streams
    /// (its own and the other system's), the object bucket and the Redis
    /// keys under its prefix (best effort, reported on stderr). Call it
    /// after the nodes stopped; dropping the `Infra` does the same on a
    /// thread of its own.
    pub async fn finish(mut self) {
        if let Some(db) = self.database.take()
            && let Err(e) = db.drop_now().await
        {
            eprintln!("warning: {e:#}");
        }
        self.cleaned = true;
        if self.stack == Stack::Served {
            remove_names(&self.tag).await;
        }
    }
}

impl Drop for Infra {
    fn drop(&mut self) {
        if self.cleaned || self.stack != Stack::Served || std::thread::panicking() {
            return;
        }
        let tag = self.tag.clone();
        let cleanup =
            std::thread::spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime.block_on(remove_names(&tag)),
                    Err(e) => eprintln!("warning: no runtime to clean up run {tag}: {e}"),
                }
            });
        if cleanup.join().is_err() {
            eprintln!("warning: cleaning up a run panicked");
        }
    }
}

/// Deletes the streams, object bucket and Redis keys of run `tag`.
async fn remove_names(tag: &str) {
    let upper = tag.to_uppercase();
    match async_nats::connect(NATS_URL).await {
        Ok(client) => {
            let js = async_nats::jetstream::new(client);
            // Either may not exist: a run that never connected a bus, or
            // never sent a config too large for one message.
            js.delete_stream(format!("T{upper}_SNAPSHOTS")).await.ok();
            js.delete_stream(format!("DEVICE_EVENTS_{upper}"))
                .await
                .ok();
            js.delete_object_store(format!("T{upper}_OBJECTS"))
                .await
                .ok();
        }
        Err(e) => eprintln!("warning: connecting to NATS for cleanup: {e}"),
    }
    if let Err(e) = delete_keys(&format!("t{tag}:")).await {
        eprintln!("warning: deleting the run's Redis keys: {e:#}");
    }
}

/// Deletes the Redis keys starting with `prefix` (the locks' `last_success`
/// records); a bounded SCAN, never `KEYS`.
async fn delete_keys(prefix: &str) -> anyhow::Result<()> {
    use deadpool_redis::redis;
    let client = redis::Client::open(REDIS_URL)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let mut cursor = 0u64;
    for _ in 0..100_000 {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1_000)
            .query_async(&mut conn)
            .await?;
        if !keys.is_empty() {
            let _: u64 = redis::cmd("DEL").arg(&keys).query_async(&mut conn).await?;
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
    anyhow::bail!("SCAN did not finish")
}
