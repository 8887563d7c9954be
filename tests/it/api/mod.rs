//! The HTTP API against a real store (SQLite in a tempdir, or a fresh
//! PostgreSQL database per test) and the in-process lock, served by
//! `build_server` on port 0. Every scenario runs on both backends.
//!
//! [`spawn_api`] is the one place that builds the server (until `app.rs`
//! exists); [`TestApi`] has one method per endpoint returning the raw
//! response, so assertions stay in the tests. Config text never appears in
//! assertion messages.

mod auth;
mod client;
mod devices;
mod history;
pub(crate) mod isolation;
mod ops;
mod trigger;

use std::sync::Arc;

use actix_web::dev::ServerHandle;
use cfgsnap::api::{self, AppState, AuthConfig, Role};
use cfgsnap::backup::Trigger;
use cfgsnap::backup::normalize::sha256_hex;
use cfgsnap::bus::Bus;
use cfgsnap::bus::responder::{Responder, ResponderOptions, spawn_responder};
use cfgsnap::config::{Fleet, Settings};
use cfgsnap::id::{DeviceId, TenantId};
use cfgsnap::lock::Locker;
use cfgsnap::metrics::Metrics;
use cfgsnap::store::Store;
use cfgsnap::store::snapshot::{Ingested, NewSnapshot};
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use serde_json::Value;
use tempfile::TempDir;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::bus::TestExecutor;

/// The HS256 secret of the default configuration.
pub const SECRET: &[u8] = b"test-secret-0123456789abcdef-0123456789";
/// Tenants and devices of the test fleet (device ids are unique across tenants).
pub const TENANT_A: &str = "tenant-a";
pub const TENANT_B: &str = "tenant-b";
pub const DEV_A1: &str = "dev-a1";
pub const DEV_A2: &str = "dev-a2";
pub const DEV_B1: &str = "dev-b1";
/// `dev-a1`'s display name: unsafe characters on purpose (download names).
pub const DEV_A1_NAME: &str = "core 1/lab\"x";

/// Which store the API runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A running API and what tests need around it.
pub struct TestApi {
    /// `http://127.0.0.1:{port}`.
    pub address: String,
    pub client: reqwest::Client,
    pub store: Store,
    pub fleet_tx: watch::Sender<Arc<Fleet>>,
    /// The local bus the API sends triggers on.
    pub bus: Bus,
    /// The state handed to the server (metrics, limiter, auth).
    pub state: AppState,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    handle: ServerHandle,
    /// The PostgreSQL database of this test, dropped with it.
    database: Option<String>,
    _dir: TempDir,
}

impl Drop for TestApi {
    fn drop(&mut self) {
        self.shutdown.cancel();
        // `stop` sends the command at once; the future only awaits its end.
        drop(self.handle.stop(false));
        if let Some(name) = self.database.take() {
            crate::pg::drop_test_database(name);
        }
    }
}

fn test_settings(dir: &TempDir, store_url: &str) -> Settings {
    let d = dir.path().display();
    let toml = format!(
        r#"
[auth]
jwt_secret_file = "{d}/jwt.secret"
trigger_rate_per_minute = 10
[store]
url = "{store_url}"
encryption_key_file = "{d}/master.key"
[bus]
url = "local"
trigger_timeout = "5s"
[backup]
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
"#
    );
    Settings::from_toml(&toml).expect("test settings parse")
}

/// Starts the API on `backend` with the test fleet; `configure` may change
/// the settings first (auth keys, rate limit, …).
pub async fn spawn_api(backend: Backend, configure: impl FnOnce(&mut Settings)) -> TestApi {
    crate::helpers::init_tracing();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("jwt.secret"), [SECRET, b"\n"].concat()).expect("secret");
    let (database, store_url) = match backend {
        Backend::Sqlite => (
            None,
            format!("sqlite://{}/cfgsnap.db", dir.path().display()),
        ),
        Backend::Postgres => {
            let (name, url) = crate::pg::create_test_database().await;
            (Some(name), url)
        }
    };
    let mut settings = test_settings(&dir, &store_url);
    configure(&mut settings);
    let fleet = settings.validate().expect("test fleet is valid");
    let store = Store::connect(&settings.store)
        .await
        .expect("store connects");
    store.sync_fleet(&fleet).await.expect("fleet synced");
    let locker = Locker::connect(&settings.lock.url, &settings.lock.key_prefix).expect("locker");
    let auth = AuthConfig::from_settings(&settings.auth).expect("auth config");
    let bus = Bus::connect(&settings.bus).await.expect("local bus");
    let (fleet_tx, fleet_rx) = watch::channel(Arc::new(fleet));
    let state = AppState::new(
        &settings,
        store.clone(),
        locker,
        Some(bus.clone()),
        fleet_rx,
        auth,
        Metrics::new(),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    let port = listener.local_addr().expect("local addr").port();
    let server = api::build_server(state.clone(), listener).expect("server builds");
    let handle = server.handle();
    tokio::spawn(server);
    TestApi {
        address: format!("http://127.0.0.1:{port}"),
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client"),
        store,
        fleet_tx,
        bus,
        state,
        shutdown: CancellationToken::new(),
        tracker: TaskTracker::new(),
        handle,
        database,
        _dir: dir,
    }
}

impl TestApi {
    /// Starts a trigger responder on the API's bus that runs `executor`
    /// for the devices of `fleet` (the API's own fleet when `None`).
    pub async fn respond(&self, executor: Arc<TestExecutor>, fleet: Option<Fleet>) {
        let fleet = match fleet {
            Some(f) => watch::channel(Arc::new(f)).1,
            None => self.fleet_tx.subscribe(),
        };
        let responder = Responder {
            executor,
            fleet,
            sink: Arc::new(self.bus.clone()),
            options: ResponderOptions {
                max_concurrent: 4,
                poller_id: "api-test".into(),
            },
        };
        spawn_responder(&self.bus, responder, self.shutdown.clone(), &self.tracker)
            .await
            .expect("responder subscribes");
    }

    /// A valid token minted with the default HS256 secret.
    pub fn token(&self, sub: &str, tenant: &str, role: Role) -> String {
        AuthConfig::hs256(SECRET, None, None)
            .expect("secret")
            .mint_token(
                sub,
                &TenantId::parse(tenant).expect("tenant"),
                role,
                std::time::Duration::from_secs(600),
            )
            .expect("minted")
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

/// Runs each named `async fn(Backend)` once on SQLite and once on PostgreSQL.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        $(mod $name {
            #[tokio::test]
            async fn sqlite() { super::$name(crate::api::Backend::Sqlite).await }
            #[tokio::test]
            async fn postgres() { super::$name(crate::api::Backend::Postgres).await }
        })*
    };
}
pub(crate) use both_backends;
