//! Infrastructure a fault test may break: its own `nats-server` (JetStream,
//! file storage in a tempdir) and `redis-server` on free loopback ports,
//! stopped and started again on the same port; a TCP relay in front of the
//! machine's PostgreSQL that can cut every connection and refuse new ones;
//! and `cfgsnap serve` as a child process that can be killed.
//!
//! The servers are the real Debian binaries (`scripts/test.sh` installs
//! them); a missing one fails the test with that instruction.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tempfile::TempDir;
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::task::JoinSet;

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind port 0")
        .port()
}

/// The path of an installed server binary, or a failure that says how to get it.
fn server_binary(candidates: &[&str], package: &str) -> PathBuf {
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{} is not installed: `apt-get install {package}` (scripts/test.sh does it)",
                candidates[0]
            )
        })
}

/// Waits (bounded) until `port` accepts connections, or `up` is false and
/// it refuses them.
pub async fn await_port(port: u16, up: bool, what: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let open = TcpStream::connect(("127.0.0.1", port)).await.is_ok();
        if open == up {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} on port {port} did not {} within 30 s",
            if up { "come up" } else { "go down" }
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) use cfgsnap_testkit::serve::{ServeProcess, signal};

/// A server process that can be stopped and started again on its port.
struct Restartable {
    program: PathBuf,
    args: Vec<String>,
    port: u16,
    name: &'static str,
    child: Option<Child>,
}

impl Restartable {
    async fn start(&mut self) {
        let child = Command::new(&self.program)
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", self.name));
        self.child = Some(child);
        await_port(self.port, true, self.name).await;
    }

    /// SIGTERM, as a service manager's restart does; waits for the exit.
    async fn stop(&mut self) {
        let mut child = self.child.take().expect("the server runs");
        signal(&child, "TERM");
        tokio::time::timeout(Duration::from_secs(30), child.wait())
            .await
            .unwrap_or_else(|_| panic!("{} did not stop within 30 s", self.name))
            .expect("wait for the server");
        await_port(self.port, false, self.name).await;
    }
}

/// A `nats-server -js` of the test's own.
pub struct NatsServer {
    server: Restartable,
    _dir: TempDir,
}

impl NatsServer {
    /// Starts it on a free port with JetStream file storage in a tempdir.
    pub async fn start() -> NatsServer {
        let program = server_binary(
            &["/usr/sbin/nats-server", "/usr/bin/nats-server"],
            "nats-server",
        );
        let dir = tempfile::tempdir().expect("tempdir for JetStream");
        let port = free_port();
        let args = vec![
            "-a".into(),
            "127.0.0.1".into(),
            "-p".into(),
            port.to_string(),
            "-js".into(),
            "-sd".into(),
            dir.path().display().to_string(),
        ];
        let mut server = Restartable {
            program,
            args,
            port,
            name: "nats-server",
            child: None,
        };
        server.start().await;
        NatsServer { server, _dir: dir }
    }

    /// `nats://127.0.0.1:{port}`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.server.port)
    }

    /// Stops the server gracefully (its JetStream store is kept).
    pub async fn stop(&mut self) {
        self.server.stop().await;
    }

    /// Starts it again on the same port and store.
    pub async fn start_again(&mut self) {
        self.server.start().await;
    }
}

/// A `redis-server` of the test's own, keeping nothing on disk.
pub struct RedisServer {
    server: Restartable,
}

impl RedisServer {
    /// Starts it on a free port.
    pub async fn start() -> RedisServer {
        let program = server_binary(&["/usr/bin/redis-server"], "redis-server");
        let port = free_port();
        let args = [
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let mut server = Restartable {
            program,
            args,
            port,
            name: "redis-server",
            child: None,
        };
        server.start().await;
        RedisServer { server }
    }

    /// `redis://127.0.0.1:{port}`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.server.port)
    }

    /// Stops the server (its keys are gone: it keeps nothing on disk).
    pub async fn stop(&mut self) {
        self.server.stop().await;
    }

    /// Starts it again, empty, on the same port.
    pub async fn start_again(&mut self) {
        self.server.start().await;
    }
}

/// A TCP relay from a loopback port to `upstream`. [`Relay::cut`] drops
/// every relayed connection and closes the port (clients see what they see
/// of a server that went away: resets, then refused connections);
/// [`Relay::restore`] listens again on the same port.
pub struct Relay {
    port: u16,
    upstream: SocketAddr,
    running: Arc<Mutex<Option<JoinSet<()>>>>,
}

impl Relay {
    /// Relays a free port to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Relay {
        let relay = Relay {
            port: free_port(),
            upstream,
            running: Arc::new(Mutex::new(None)),
        };
        relay.restore().await;
        relay
    }

    /// The relay's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Drops every connection and stops listening.
    pub async fn cut(&self) {
        let tasks = self.running.lock().expect("relay state").take();
        if let Some(mut tasks) = tasks {
            tasks.shutdown().await;
        }
        await_port(self.port, false, "the relay").await;
    }

    /// Listens again (after [`Relay::cut`], or at start).
    pub async fn restore(&self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("bind the relay port");
        let mut tasks = JoinSet::new();
        let upstream = self.upstream;
        tasks.spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                connections.spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(upstream).await {
                        // Either side closing, or a cut, ends the relay of
                        // this connection; none of that is an error here.
                        tokio::io::copy_bidirectional(&mut client, &mut server)
                            .await
                            .ok();
                    }
                });
                // Finished connections are reaped as new ones arrive.
                while connections.try_join_next().is_some() {}
            }
        });
        *self.running.lock().expect("relay state") = Some(tasks);
    }
}
