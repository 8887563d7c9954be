//! A whole cfgsnap node for the benchmarks, built with `App::build` from a
//! TOML configuration and served on port 0: on the embedded stack (SQLite,
//! local bus and locks) or the served one (NATS, Redis, PostgreSQL on
//! 127.0.0.1) with per-run subject, stream, bucket and key names and a fresh
//! database, all removed by [`Infra::finish`]. Secrets stay in their files.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use cfgsnap::api::{AuthConfig, Role};
use cfgsnap::app::App;
use cfgsnap::config::Settings;
use cfgsnap::id::TenantId;

use crate::pg::ScratchDb;
use crate::scratch::Scratch;

/// The NATS server of the served stack.
pub const NATS_URL: &str = "nats://127.0.0.1:4222";
/// The Redis server of the served stack.
pub const REDIS_URL: &str = "redis://127.0.0.1:6379";

/// Which infrastructure the node runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Stack {
    /// SQLite, in-process bus and locks.
    Embedded,
    /// NATS (JetStream), Redis, PostgreSQL on 127.0.0.1.
    Served,
}

/// The infrastructure of one node: store URL, names, secrets' files.
pub struct Infra {
    stack: Stack,
    tag: String,
    dir: PathBuf,
    store_url: String,
    database: Option<ScratchDb>,
    master_key: PathBuf,
    secret: String,
}

impl Infra {
    /// Fresh names (and, on the served stack, a fresh database on `pg_server`).
    ///
    /// # Errors
    /// When the database cannot be created or a file cannot be written.
    pub async fn new(stack: Stack, scratch: &Scratch, pg_server: &str) -> anyhow::Result<Infra> {
        let tag = format!("{:010x}", rand::random::<u64>() & 0xff_ffff_ffff);
        let dir = scratch.path(&format!("node-{tag}"));
        std::fs::create_dir_all(&dir)?;
        let secret = hex::encode(rand::random::<[u8; 32]>());
        std::fs::write(dir.join("jwt-secret"), &secret).context("writing the JWT secret")?;
        let (store_url, database) = match stack {
            Stack::Embedded => (format!("sqlite://{}/cfgsnap.db", dir.display()), None),
            Stack::Served => {
                let db = ScratchDb::create(pg_server).await?;
                (db.url(), Some(db))
            }
        };
        Ok(Infra {
            stack,
            tag,
            master_key: dir.join("master.key"),
            dir,
            store_url,
            database,
            secret,
        })
    }

    /// The embedded bus and locks on an existing store (`store_url`, sealed
    /// with `master_key`), which [`Infra::finish`] leaves alone.
    ///
    /// # Errors
    /// When a file cannot be written.
    pub fn with_store(
        scratch: &Scratch,
        store_url: &str,
        master_key: &Path,
    ) -> anyhow::Result<Infra> {
        let tag = format!("{:010x}", rand::random::<u64>() & 0xff_ffff_ffff);
        let dir = scratch.path(&format!("node-{tag}"));
        std::fs::create_dir_all(&dir)?;
        let secret = hex::encode(rand::random::<[u8; 32]>());
        std::fs::write(dir.join("jwt-secret"), &secret).context("writing the JWT secret")?;
        Ok(Infra {
            stack: Stack::Embedded,
            tag,
            dir,
            store_url: store_url.to_owned(),
            database: None,
            master_key: master_key.to_owned(),
            secret,
        })
    }

    /// A token of tenant `tenant` for `sub` with `role`, valid for an hour.
    ///
    /// # Errors
    /// Never with the generated secret; kept for the signature.
    pub fn token(&self, sub: &str, tenant: &str, role: Role) -> anyhow::Result<String> {
        let auth = AuthConfig::hs256(self.secret.as_bytes(), None, None)?;
        Ok(auth.mint_token(
            sub,
            &TenantId::parse(tenant)?,
            role,
            Duration::from_secs(3_600),
        )?)
    }

    /// The configuration of a node with `roles` (a `[roles]` body) backing up
    /// `devices` (`(id, port)` on 127.0.0.1, tenant `bench`) with `key`.
    pub fn config(&self, roles: &str, devices: &[(String, u16)], key: &Path) -> String {
        let (d, t) = (self.dir.display(), &self.tag);
        let upper = t.to_uppercase();
        let (bus, lock) = match self.stack {
            Stack::Embedded => ("local", "local"),
            Stack::Served => (NATS_URL, REDIS_URL),
        };
        let mut toml = format!(
            r#"
[server]
listen = "127.0.0.1:0"
shutdown_timeout = "10s"
[roles]
{roles}
node_id = "bench"
[auth]
jwt_secret_file = "{d}/jwt-secret"
trigger_rate_per_minute = 1000000
[store]
url = "{url}"
encryption_key_file = "{master_key}"
[bus]
url = "{bus}"
trigger_timeout = "60s"
trigger_subject = "b{t}.config.backup.trigger"
queue_group = "b{t}-responders"
snapshot_subject = "b{t}.config.snapshot"
stream = "B{upper}_SNAPSHOTS"
durable = "b{t}-ingest"
object_bucket = "B{upper}_OBJECTS"
control_subject = "b{t}.cfgsnap.control"
[lock]
url = "{lock}"
key_prefix = "b{t}:backup:device:"
[backup]
interval = "24h"
jitter = "0s"
max_concurrent = {concurrent}
connect_timeout = "60s"
command_timeout = "60s"
job_timelimit = "120s"
command = "{command}"
known_hosts_file = "{d}/known_hosts.json"
[log]
level = "error"
[[credentials]]
name = "bench"
username = "admin"
key_file = "{key}"
[[tenants]]
id = "bench"
"#,
            url = self.store_url,
            master_key = self.master_key.display(),
            concurrent = devices.len().max(1),
            command = crate::collect::EXPORT,
            key = key.display(),
        );
        for (id, port) in devices {
            toml.push_str(&format!(
                "[[devices]]\nid = \"{id}\"\ntenant = \"bench\"\nname = \"{id}\"\nhost = \"127.0.0.1\"\nport = {port}\ncredentials = \"bench\"\n"
            ));
        }
        toml
    }

    /// Removes what the node left on the servers: the database, the stream,
    /// the object bucket and the Redis keys under its prefix (best effort,
    /// reported on stderr).
    pub async fn finish(self) {
        if let Some(db) = self.database
            && let Err(e) = db.drop_now().await
        {
            eprintln!("warning: {e:#}");
        }
        if self.stack == Stack::Served {
            let upper = self.tag.to_uppercase();
            match async_nats::connect(NATS_URL).await {
                Ok(client) => {
                    let js = async_nats::jetstream::new(client);
                    if let Err(e) = js.delete_stream(format!("B{upper}_SNAPSHOTS")).await {
                        eprintln!("warning: deleting the bench stream: {e}");
                    }
                    // The bucket exists only if a config was too large for a message.
                    let _ = js.delete_object_store(format!("B{upper}_OBJECTS")).await;
                }
                Err(e) => eprintln!("warning: connecting to NATS for cleanup: {e}"),
            }
            if let Err(e) = delete_keys(&format!("b{}:", self.tag)).await {
                eprintln!("warning: deleting the bench's Redis keys: {e:#}");
            }
        }
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

/// A running node.
pub struct Node {
    port: u16,
    stop: CancellationToken,
    done: JoinHandle<anyhow::Result<()>>,
}

impl Node {
    /// Builds a node from `toml` and serves it until [`Node::stop`].
    ///
    /// # Errors
    /// When the configuration is invalid or the node cannot be built.
    pub async fn start(toml: &str) -> anyhow::Result<Node> {
        let settings = Settings::from_toml(toml).map_err(|e| anyhow::anyhow!("{e}"))?;
        let app = App::build(settings).await.context("building the node")?;
        let port = app.port().context("the node serves no HTTP")?;
        let stop = CancellationToken::new();
        let done = tokio::spawn(app.run_until_stopped(stop.clone().cancelled_owned()));
        Ok(Node { port, stop, done })
    }

    /// The HTTP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the node and waits (at most a minute) for its shutdown.
    ///
    /// # Errors
    /// When it fails or does not stop in time.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(60), self.done)
            .await
            .context("the node did not stop within a minute")??
    }
}
