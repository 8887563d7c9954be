//! The whole node, built by `App::build` from a TOML configuration and
//! served on port 0, against in-process simulated devices: once on the
//! embedded stack (SQLite, local bus and locks) and once on the served one
//! (NATS with JetStream, Redis, PostgreSQL), with names isolated per test.
//!
//! [`spawn_app`] is the one place that builds a node; [`TestApp`] offers the
//! HTTP calls the tests need and returns raw responses.

mod node;
pub(crate) mod process;
mod quickstart;
mod trigger;

use std::time::Duration;

use cfgsnap::api::{AuthConfig, Role};
use cfgsnap::app::App;
use cfgsnap::config::Settings;
use cfgsnap::id::TenantId;
use cfgsnap::sim::Simulator;
use rand::RngCore as _;
use serde_json::Value;
use tempfile::TempDir;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// HS256 secret of every test node.
pub const SECRET: &str = "app-test-secret-0123456789abcdef-0123456789";

/// Which infrastructure the node runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stack {
    /// SQLite, in-process bus and locks.
    Embedded,
    /// NATS (JetStream), Redis, PostgreSQL on 127.0.0.1.
    Served,
}

/// Generates one `#[tokio::test]` per stack for each shared async test body.
macro_rules! on_both_stacks {
    ($($name:ident),* $(,)?) => {
        $(mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn embedded() {
                super::$name(crate::app::Stack::Embedded).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn served() {
                super::$name(crate::app::Stack::Served).await
            }
        })*
    };
}
pub(crate) use on_both_stacks;

/// The shared infrastructure of one test: database, names, directory.
pub struct Infra {
    pub stack: Stack,
    pub dir: TempDir,
    pub store_url: String,
    pub database: Option<String>,
    pub tag: String,
}

impl Infra {
    /// A fresh database and unique subject/stream/key names.
    pub async fn new(stack: Stack) -> Infra {
        crate::helpers::init_tracing();
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("jwt-secret"), SECRET).expect("jwt secret");
        let mut bytes = [0u8; 5];
        rand::thread_rng().fill_bytes(&mut bytes);
        let tag = hex::encode(bytes);
        let (store_url, database) = match stack {
            Stack::Embedded => (
                format!("sqlite://{}/cfgsnap.db", dir.path().display()),
                None,
            ),
            Stack::Served => {
                let (name, url) = crate::pg::create_test_database().await;
                (url, Some(name))
            }
        };
        Infra {
            stack,
            dir,
            store_url,
            database,
            tag,
        }
    }

    /// The TOML of a node on this infrastructure backing up `sim`'s devices
    /// (`dev-{i}` of tenant `t1`), followed by `extra` lines.
    pub fn config(&self, sim: &Simulator, extra: &str) -> String {
        let d = self.dir.path().display();
        let t = &self.tag;
        let (bus, lock) = match self.stack {
            Stack::Embedded => ("local".to_owned(), "local".to_owned()),
            Stack::Served => (
                "nats://127.0.0.1:4222".to_owned(),
                "redis://127.0.0.1:6379".to_owned(),
            ),
        };
        let upper = t.to_uppercase();
        let mut toml = format!(
            r#"
[server]
listen = "127.0.0.1:0"
shutdown_timeout = "5s"
[auth]
jwt_secret_file = "{d}/jwt-secret"
[store]
url = "{url}"
encryption_key_file = "{d}/master.key"
[bus]
url = "{bus}"
trigger_timeout = "10s"
trigger_subject = "t{t}.config.backup.trigger"
queue_group = "t{t}-responders"
snapshot_subject = "t{t}.config.snapshot"
stream = "T{upper}_SNAPSHOTS"
durable = "t{t}-ingest"
object_bucket = "T{upper}_OBJECTS"
control_subject = "t{t}.cfgsnap.control"
[lock]
url = "{lock}"
key_prefix = "t{t}:backup:device:"
[backup]
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
            url = self.store_url,
        );
        for (i, addr) in sim.addrs().iter().enumerate() {
            toml.push_str(&format!(
                "[[devices]]\nid = \"dev-{i}\"\ntenant = \"t1\"\nname = \"router {i}\"\nhost = \"127.0.0.1\"\nport = {}\ncredentials = \"sim\"\n",
                addr.port()
            ));
        }
        // `extra` may reopen a section; TOML allows keys only once, so tests
        // put whole sections there (e.g. [roles]).
        toml.push_str(extra);
        toml
    }

    /// Drops the PostgreSQL database (best effort; after the nodes stopped).
    pub async fn finish(self) {
        if let Some(name) = self.database {
            crate::pg::drop_test_database(name);
        }
    }
}

/// A running node.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    stop: CancellationToken,
    done: JoinHandle<anyhow::Result<()>>,
}

/// Builds a node from `toml` and serves it until [`TestApp::stop`].
pub async fn spawn_app(toml: &str) -> TestApp {
    let app = spawn_node(toml).await;
    assert!(!app.address.is_empty(), "the api role serves HTTP");
    app
}

/// Builds a node from `toml`, with or without the api role (then its
/// `address` is empty), and runs it until [`TestApp::stop`].
pub async fn spawn_node(toml: &str) -> TestApp {
    let settings = Settings::from_toml(toml).expect("test configuration parses");
    let app = App::build(settings).await.expect("the node builds");
    let address = app
        .port()
        .map(|port| format!("http://127.0.0.1:{port}"))
        .unwrap_or_default();
    let stop = CancellationToken::new();
    let done = tokio::spawn(app.run_until_stopped(stop.clone().cancelled_owned()));
    TestApp {
        address,
        client: reqwest::Client::new(),
        stop,
        done,
    }
}

impl TestApp {
    /// A client for a node started by the test itself (its stop is the
    /// test's business).
    pub fn attach(port: u16) -> TestApp {
        TestApp {
            address: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::new(),
            stop: CancellationToken::new(),
            done: tokio::spawn(async { Ok(()) }),
        }
    }

    /// Stops the node and waits for its shutdown.
    pub async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(60), self.done)
            .await
            .expect("the node stops within a minute")
            .expect("the node task does not panic")
            .expect("the node stops cleanly");
    }

    /// A token of tenant `t1` with `role`.
    pub fn token(&self, role: Role) -> String {
        token("tester", "t1", role)
    }

    /// `POST …/config-snapshot/trigger` for `dev-{i}` of `t1`.
    pub async fn trigger(&self, device: &str) -> reqwest::Response {
        self.client
            .post(format!(
                "{}/api/tenants/t1/devices/{device}/config-snapshot/trigger",
                self.address
            ))
            .bearer_auth(self.token(Role::Operator))
            .send()
            .await
            .expect("trigger request")
    }

    /// `GET …/config-snapshots` of `dev-{i}` of `t1`, as JSON.
    pub async fn snapshots(&self, device: &str) -> Vec<Value> {
        let resp = self
            .client
            .get(format!(
                "{}/api/tenants/t1/devices/{device}/config-snapshots",
                self.address
            ))
            .bearer_auth(self.token(Role::Viewer))
            .send()
            .await
            .expect("list request");
        assert_eq!(resp.status(), 200, "listing snapshots");
        let body: Value = resp.json().await.expect("json");
        body["items"].as_array().cloned().unwrap_or_default()
    }

    /// `GET …/audit-events?limit=200` of `t1`: the newest audit events.
    pub async fn audit_events(&self) -> Vec<Value> {
        let resp = self
            .client
            .get(format!(
                "{}/api/tenants/t1/audit-events?limit=200",
                self.address
            ))
            .bearer_auth(self.token(Role::Admin))
            .send()
            .await
            .expect("audit request");
        assert_eq!(resp.status(), 200, "listing audit events");
        let body: Value = resp.json().await.expect("json");
        body["items"].as_array().cloned().unwrap_or_default()
    }

    /// `GET …/devices` of `t1`: the devices with their backup state.
    pub async fn devices(&self) -> Vec<Value> {
        let resp = self
            .client
            .get(format!("{}/api/tenants/t1/devices", self.address))
            .bearer_auth(self.token(Role::Viewer))
            .send()
            .await
            .expect("devices request");
        assert_eq!(resp.status(), 200, "listing devices");
        let body: Value = resp.json().await.expect("json");
        body["items"].as_array().cloned().unwrap_or_default()
    }

    /// `GET …/config-snapshots/{sid}/content` of `device`: status and body.
    pub async fn content(&self, device: &str, sid: i64) -> (u16, String) {
        let resp = self
            .client
            .get(format!(
                "{}/api/tenants/t1/devices/{device}/config-snapshots/{sid}/content",
                self.address
            ))
            .bearer_auth(self.token(Role::Viewer))
            .send()
            .await
            .expect("content request");
        let status = resp.status().as_u16();
        (status, resp.text().await.expect("body"))
    }

    /// Waits (bounded) until every device in `devices` has at least one snapshot.
    pub async fn await_snapshots(&self, devices: &[String]) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(45);
        for d in devices {
            while self.snapshots(d).await.is_empty() {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{d} got no snapshot in time"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// A token for `sub` of `tenant` with `role`, signed with [`SECRET`].
pub fn token(sub: &str, tenant: &str, role: Role) -> String {
    AuthConfig::hs256(SECRET.as_bytes(), None, None)
        .expect("secret long enough")
        .mint_token(
            sub,
            &TenantId::parse(tenant).expect("id"),
            role,
            Duration::from_secs(600),
        )
        .expect("token")
}

/// `dev-0` … `dev-{n-1}`.
pub fn device_ids(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("dev-{i}")).collect()
}
