//! The served stack's processes as the `unchanged` benchmark counts them: a
//! private nats-server (JetStream) and redis-server per run on free loopback
//! ports, so their CPU is the run's alone; the PostgreSQL backends serving
//! the run's database on the shared server, found in `pg_stat_activity`;
//! CPU times read from `/proc/<pid>/stat`.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context as _;
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Row as _};
use tokio::process::{Child, Command};
use tokio::sync::Mutex;

use crate::machine::{children_cpu_time_of_stat_line, cpu_time};

/// Which server.
#[derive(Debug, Clone, Copy)]
pub enum ServerKind {
    /// `nats-server -js`.
    Nats,
    /// `redis-server`, no persistence.
    Redis,
}

/// A server process of this run, killed when dropped.
pub struct PrivateServer {
    kind: ServerKind,
    port: u16,
    child: Child,
}

impl PrivateServer {
    /// Starts the server on a free port with its data under `dir`, and waits
    /// until it accepts connections.
    ///
    /// # Errors
    /// When it cannot be started or does not listen within 10 s.
    pub async fn start(kind: ServerKind, dir: &Path) -> anyhow::Result<PrivateServer> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut command = match kind {
            ServerKind::Nats => {
                let mut c = Command::new("nats-server");
                c.args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
                    .arg(dir.join("jetstream"));
                c
            }
            ServerKind::Redis => {
                let mut c = Command::new("redis-server");
                c.args(["--bind", "127.0.0.1", "--port", &port.to_string()])
                    .args(["--save", "", "--appendonly", "no", "--dir"])
                    .arg(dir);
                c
            }
        };
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {kind:?} (is it installed?)"))?;
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Ok(PrivateServer { kind, port, child });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        anyhow::bail!("{kind:?} did not listen on port {port}")
    }

    /// Its URL for `bus.url` / `lock.url`.
    pub fn url(&self) -> String {
        match self.kind {
            ServerKind::Nats => format!("nats://127.0.0.1:{}", self.port),
            ServerKind::Redis => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    /// Its process id, for [`own_cpu`].
    pub fn pid(&self) -> String {
        self.child.id().map(|p| p.to_string()).unwrap_or_default()
    }

    /// Redis: forgets the `last_success` records a previous pass left,
    /// which would make the next pass skip every device, as if an interval
    /// had passed. The rest stays, as in a fleet between two passes: the
    /// hashes each device's last backup handed over in particular
    /// (`…:published`, which let an unchanged export skip the stream).
    ///
    /// # Errors
    /// When `redis-cli` fails.
    pub async fn forget_last_successes(&self) -> anyhow::Result<()> {
        if let ServerKind::Redis = self.kind {
            let script = "local n = 0 \
                for _, k in ipairs(redis.call('KEYS', ARGV[1])) do redis.call('DEL', k) n = n + 1 end \
                return n";
            let status = Command::new("redis-cli")
                .args([
                    "-p",
                    &self.port.to_string(),
                    "EVAL",
                    script,
                    "0",
                    "*:last_success",
                ])
                .stdout(Stdio::null())
                .status()
                .await
                .context("running redis-cli")?;
            anyhow::ensure!(
                status.success(),
                "redis-cli EVAL (forgetting last successes) failed"
            );
        }
        Ok(())
    }
}

/// CPU time (user + system) of a live process.
pub fn own_cpu(pid: &str) -> Duration {
    if pid.is_empty() {
        return Duration::ZERO;
    }
    cpu_time(pid)
}

/// CPU time of a process's reaped children (sshd's per-connection
/// processes, once they exited).
pub fn children_cpu(pid: &str) -> Duration {
    if pid.is_empty() {
        return Duration::ZERO;
    }
    let line = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    children_cpu_time_of_stat_line(&line)
}

/// The backends serving one database, and the CPU each was last seen with.
pub struct PgBackends {
    pool: PgPool,
    seen: Mutex<std::collections::BTreeMap<i32, Duration>>,
}

impl PgBackends {
    /// Watches the database at `url` (through one connection of its own,
    /// which is not counted).
    ///
    /// # Errors
    /// When the database cannot be reached.
    pub async fn connect(url: &str) -> anyhow::Result<PgBackends> {
        let pool = PgPoolOptions::new().max_connections(1).connect(url).await?;
        Ok(PgBackends {
            pool,
            seen: Mutex::default(),
        })
    }

    /// Reads the CPU of the database's other backends; returns the sum of
    /// what every backend seen so far was last seen with.
    pub async fn sample(&self) -> Duration {
        let rows = sqlx::query(
            "SELECT pid FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .fetch_all(&self.pool)
        .await
        .unwrap_or_default();
        let mut seen = self.seen.lock().await;
        for row in rows {
            let Ok(pid) = row.try_get::<i32, _>("pid") else {
                continue;
            };
            let cpu = cpu_time(&pid.to_string());
            let entry = seen.entry(pid).or_default();
            *entry = (*entry).max(cpu);
        }
        seen.values().sum()
    }
}
