//! The servers of the served stack on this machine, and checks that fail with
//! the command that starts a missing one (a test never skips silently).
//! `scripts/test.sh` starts all of them.

use std::time::Duration;

/// NATS with JetStream.
pub const NATS_URL: &str = "nats://127.0.0.1:4222";
/// Redis.
pub const REDIS_URL: &str = "redis://127.0.0.1:6379";
/// The PostgreSQL server (trust auth for `postgres`), without a database.
pub const PG_SERVER: &str = "postgres://postgres@127.0.0.1:5432";

/// How to start NATS as the tests expect it.
pub const START_NATS: &str = "start-stop-daemon --start --oknodo --background --exec \
     /usr/sbin/nats-server -- -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server";
/// How to start PostgreSQL as the tests expect it.
pub const START_POSTGRES: &str = "scripts/test.sh (pg_ctlcluster <version> main start, \
     with 'host all all 127.0.0.1/32 trust' in pg_hba.conf)";

/// Fails, saying how to start NATS, when nothing listens on its port.
pub async fn require_nats() {
    require("NATS (JetStream on)", 4222, START_NATS).await;
}

async fn require(what: &str, port: u16, start: &str) {
    let connect = tokio::net::TcpStream::connect(("127.0.0.1", port));
    match tokio::time::timeout(Duration::from_secs(2), connect).await {
        Ok(Ok(_)) => {}
        _ => panic!("{what} is not reachable on 127.0.0.1:{port}; start it with: {start}"),
    }
}
