//! The HTTP API of a node built by `App::build` with the api role alone, on
//! both stacks (SQLite with the in-process bus and locks; PostgreSQL, NATS
//! and Redis). Tests seed the store directly and answer triggers with a
//! scripted responder on the node's bus.
//!
//! [`spawn_api`] is the one place that starts the node; [`TestApi`] has one
//! method per endpoint returning the raw response, so assertions stay in the
//! tests. Config text never appears in assertion messages.

mod auth;
mod client;
mod devices;
mod history;
pub(crate) mod isolation;
mod ops;
mod own_account;
mod search;
mod secrets;
mod semantic;
mod signin;
mod trigger;
mod users;

use std::sync::Arc;

use cfgsnap::api::{AppState, Role};
use cfgsnap::backup::Trigger;
use cfgsnap::backup::normalize::sha256_hex;
use cfgsnap::bus::Bus;
use cfgsnap::bus::responder::{Responder, ResponderOptions, spawn_responder};
use cfgsnap::config::{Fleet, Settings};
use cfgsnap::id::{DeviceId, TenantId};
use cfgsnap::store::Store;
use cfgsnap::store::snapshot::{Ingested, NewSnapshot};
use cfgsnap_testkit::{Infra, TestNode};
pub use cfgsnap_testkit::{Stack, on_both_stacks};
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use serde_json::Value;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::bus::ScriptedExecutor;

/// The HS256 secret of the nodes (the test kit's).
pub const SECRET: &[u8] = cfgsnap_testkit::infra::SECRET.as_bytes();
/// Tenants and devices of the test fleet (device ids are unique across tenants).
pub const TENANT_A: &str = "tenant-a";
pub const TENANT_B: &str = "tenant-b";
pub const DEV_A1: &str = "dev-a1";
pub const DEV_A2: &str = "dev-a2";
pub const DEV_B1: &str = "dev-b1";
/// `dev-a1`'s display name: unsafe characters on purpose (download names).
pub const DEV_A1_NAME: &str = "core 1/lab\"x";

/// A node serving the API alone (no scheduler, responder or ingester of its
/// own) and what tests need around it.
pub struct TestApi {
    /// `http://127.0.0.1:{port}`.
    pub address: String,
    pub client: reqwest::Client,
    pub store: Store,
    /// The node's bus; triggers go out on it.
    pub bus: Bus,
    /// The state the node's handlers share (metrics, limiter, background).
    pub state: AppState,
    fleet: watch::Receiver<Arc<Fleet>>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    // Dropped in this order: the node stops before its infrastructure goes.
    _node: TestNode,
    _infra: Infra,
}

impl Drop for TestApi {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The test fleet and an API-only node on `infra`.
fn test_settings(infra: &Infra) -> Settings {
    let toml = format!(
        r#"
[server]
listen = "127.0.0.1:0"
shutdown_timeout = "5s"
[roles]
api = true
scheduler = false
responder = false
ingester = false
retention = false
{auth}{store}{bus}{lock}[backup]
known_hosts_file = "{d}/known_hosts.json"
[[credentials]]
name = "c"
username = "admin"
password = "admin"
[[tenants]]
id = "{TENANT_A}"
[[tenants]]
id = "{TENANT_B}"
[[devices]]
id = "{DEV_A1}"
tenant = "{TENANT_A}"
name = '{DEV_A1_NAME}'
host = "127.0.0.1"
credentials = "c"
[[devices]]
id = "{DEV_A2}"
tenant = "{TENANT_A}"
host = "127.0.0.1"
credentials = "c"
[[devices]]
id = "{DEV_B1}"
tenant = "{TENANT_B}"
host = "127.0.0.1"
credentials = "c"
"#,
        auth = infra.auth_section("trigger_rate_per_minute = 10"),
        store = infra.store_section(),
        bus = infra.bus_section("5s"),
        lock = infra.lock_section(),
        d = infra.dir.path().display(),
    );
    Settings::from_toml(&toml).expect("test settings parse")
}

/// Starts an API node on `stack` with the test fleet, built by `App::build`;
/// `configure` may change the settings first (auth keys, rate limit, …).
pub async fn spawn_api(stack: Stack, configure: impl FnOnce(&mut Settings)) -> TestApi {
    let infra = Infra::new(stack).await;
    let mut settings = test_settings(&infra);
    configure(&mut settings);
    let node = TestNode::start_with(settings).await;
    TestApi {
        address: node.address.clone(),
        client: node.client.clone(),
        store: node.store().clone(),
        bus: node.bus.clone(),
        state: node.api_state.clone().expect("the api role serves"),
        fleet: node.fleet.clone(),
        shutdown: CancellationToken::new(),
        tracker: TaskTracker::new(),
        _node: node,
        _infra: infra,
    }
}

impl TestApi {
    /// Starts a trigger responder on the node's bus that runs `executor` for
    /// the devices of `fleet` (the node's own fleet when `None`): one more
    /// poller on the bus, as a remote one would be.
    pub async fn respond(&self, executor: Arc<ScriptedExecutor>, fleet: Option<Fleet>) {
        let fleet = match fleet {
            Some(f) => watch::channel(Arc::new(f)).1,
            None => self.fleet.clone(),
        };
        let responder = Responder {
            executor,
            fleet,
            sink: Arc::new(self.bus.clone()),
            options: ResponderOptions {
                max_concurrent: 4,
                poller_id: "api-test".into(),
                silent_outside_fleet: false,
            },
        };
        spawn_responder(&self.bus, responder, self.shutdown.clone(), &self.tracker)
            .await
            .expect("responder subscribes");
    }

    /// A valid token minted with the default HS256 secret.
    pub fn token(&self, sub: &str, tenant: &str, role: Role) -> String {
        cfgsnap_testkit::token::mint(SECRET, sub, tenant, role)
    }

    /// Stores a snapshot of `device` (of `tenant`) with `text`, collected
    /// `minutes_ago`; returns its id.
    pub async fn seed(&self, tenant: &str, device: &str, text: &str, minutes_ago: i64) -> i64 {
        let snap = NewSnapshot {
            tenant_id: TenantId::parse(tenant).expect("tenant"),
            device_id: DeviceId::parse(device).expect("device"),
            sha256_hash: sha256_hex(text),
            collected_at: Utc::now() - ChronoDuration::minutes(minutes_ago),
            trigger: Trigger::Scheduled,
            routeros_version: Some("7.15".into()),
            config_text: text.to_owned(),
            normalization_version: 1,
            poller_id: None,
            warnings: Vec::new(),
        };
        match self.store.ingest(&snap).await.expect("ingest") {
            Ingested::Created { snapshot_id, .. } => snapshot_id,
            other => panic!("expected a new snapshot, got {other:?}"),
        }
    }

    /// Seeds `n` successive versions of `device`'s config (oldest first);
    /// returns their ids, oldest first.
    pub async fn seed_versions(&self, tenant: &str, device: &str, n: usize) -> Vec<i64> {
        let mut ids = Vec::new();
        for i in 0..n {
            let minutes_ago = i64::try_from(n - i).expect("small");
            ids.push(
                self.seed(tenant, device, &config_text(i), minutes_ago)
                    .await,
            );
        }
        ids
    }
}

/// Version `i` of a small RouterOS export: each version adds a firewall rule.
pub fn config_text(i: usize) -> String {
    let mut text = String::from(
        "# software id = TEST-1234\n/system identity\nset name=r1\n/ip firewall filter\n",
    );
    for r in 0..=i {
        text.push_str(&format!("add action=accept chain=input comment=rule{r}\n"));
    }
    text
}

/// Asserts a problem+json response with `status` and `code`; returns the body.
pub async fn assert_problem(resp: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(
        resp.status().as_u16(),
        status,
        "status of {}",
        resp.url().path()
    );
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(content_type, "application/problem+json");
    let body: Value = resp.json().await.expect("problem body is JSON");
    assert_eq!(body["code"], code, "problem: {body}");
    assert_eq!(body["status"], status, "problem: {body}");
    assert_eq!(
        body["type"],
        format!("https://cfgsnap.dev/problems/{code}"),
        "problem: {body}"
    );
    assert!(
        body["title"].is_string() && body["detail"].is_string(),
        "problem: {body}"
    );
    body
}

/// Parses a JSON success body after checking the status.
pub async fn json_ok(resp: reqwest::Response, status: u16) -> Value {
    let path = resp.url().path().to_owned();
    let got = resp.status().as_u16();
    let body = resp.text().await.expect("body");
    assert_eq!(got, status, "status of {path}: {body}");
    serde_json::from_str(&body).expect("JSON body")
}

/// `DateTime` of an RFC 3339 JSON string.
pub fn time(v: &Value) -> DateTime<Utc> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| panic!("not a timestamp: {v}"))
}
