//! Bus tests against the machine's NATS (nats://127.0.0.1:4222, JetStream
//! on) and the local twin, sharing test bodies where behaviour is shared.
//!
//! Each test isolates itself with unique subjects, stream, durable and
//! bucket names, and deletes its stream and bucket when done (also when it
//! panics, from `Drop`). Config text never goes into assertion messages.

/// Generates `mod $body { nats, local }` tests running `$body(backend)`.
macro_rules! on_both_backends {
    ($($body:ident),* $(,)?) => {$(
        mod $body {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn nats() {
                let body = super::$body(crate::bus::Backend::Nats);
                crate::helpers::within(crate::bus::TEST_LIMIT, body).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn local() {
                let body = super::$body(crate::bus::Backend::Local);
                crate::helpers::within(crate::bus::TEST_LIMIT, body).await;
            }
        }
    )*};
}

mod contract;
mod events;
mod large;
mod outage;
mod trigger;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cfgsnap::backup::normalize::sha256_hex;
use cfgsnap::backup::{self, Device, Executor, Outcome, SnapshotSink, Trigger};
use cfgsnap::bus::Bus;
use cfgsnap::config::{BusSettings, Fleet, Settings, StoreSettings};
use cfgsnap::store::Store;
use chrono::Utc;
use rand::Rng as _;
use tempfile::TempDir;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Deadline of every bus test, so that a hang fails instead of stalling.
pub const TEST_LIMIT: Duration = Duration::from_secs(180);

pub const NATS_URL: &str = "nats://127.0.0.1:4222";
const START_NATS: &str = "start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server";

/// Which bus a test body runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Nats,
    Local,
}

/// Fails the test, saying how to start NATS, when it is not reachable.
pub async fn require_nats() {
    let connect = tokio::net::TcpStream::connect("127.0.0.1:4222");
    match tokio::time::timeout(Duration::from_secs(2), connect).await {
        Ok(Ok(_)) => {}
        _ => panic!(
            "NATS is not reachable at {NATS_URL} (JetStream needed); start it with: {START_NATS}"
        ),
    }
}

/// Waits until the server has handled everything `client` sent before
/// (a subscription in particular): a message to itself through the server.
/// `Client::flush` only writes the socket.
pub async fn sync(client: &async_nats::Client) {
    use futures_util::StreamExt as _;
    let inbox = client.new_inbox();
    let mut echo = client.subscribe(inbox.clone()).await.expect("subscribes");
    client
        .publish(inbox, Vec::new().into())
        .await
        .expect("publishes");
    let echoed = tokio::time::timeout(Duration::from_secs(5), echo.next()).await;
    assert!(matches!(echoed, Ok(Some(_))), "no round trip through NATS");
}

/// A random suffix for per-test names.
pub fn suffix() -> String {
    let n: u64 = rand::thread_rng().r#gen();
    format!("{n:016x}")
}

/// Bus settings with names unique to one test.
pub fn settings(backend: Backend) -> BusSettings {
    let s = suffix();
    BusSettings {
        url: match backend {
            Backend::Nats => NATS_URL.into(),
            Backend::Local => "local".into(),
        },
        trigger_timeout: Duration::from_secs(5),
        trigger_subject: format!("test.{s}.backup.trigger"),
        queue_group: format!("responders-{s}"),
        snapshot_subject: format!("test.{s}.snapshot"),
        stream: format!("SNAP_{s}"),
        durable: format!("ingest-{s}"),
        object_bucket: format!("objects-{s}"),
        max_deliver: 5,
        ack_wait: Duration::from_secs(30),
        control_subject: format!("test.{s}.control"),
    }
}

/// A connected bus with a shutdown token and task tracker; deletes its
/// stream and bucket on drop.
pub struct TestBus {
    pub bus: Bus,
    pub settings: BusSettings,
    pub shutdown: CancellationToken,
    pub tracker: TaskTracker,
}

impl TestBus {
    pub async fn start(backend: Backend) -> TestBus {
        crate::helpers::init_tracing();
        if backend == Backend::Nats {
            require_nats().await;
        }
        Self::with_settings(settings(backend)).await
    }

    pub async fn with_settings(settings: BusSettings) -> TestBus {
        let bus = Bus::connect(&settings).await.expect("bus connects");
        TestBus {
            bus,
            settings,
            shutdown: CancellationToken::new(),
            tracker: TaskTracker::new(),
        }
    }

    /// Another connection to the same bus (NATS), or the same bus (local).
    pub async fn second(&self) -> Bus {
        match self.bus {
            Bus::Nats(_) => Bus::connect(&self.settings).await.expect("connects"),
            Bus::Local(_) => self.bus.clone(),
        }
    }

    /// Cancels the tasks and waits for them (bounded).
    pub async fn stop(&self) {
        self.shutdown.cancel();
        self.tracker.close();
        let waited = tokio::time::timeout(Duration::from_secs(30), self.tracker.wait()).await;
        assert!(waited.is_ok(), "bus tasks did not stop within 30 s");
    }
}

impl Drop for TestBus {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if !matches!(self.bus, Bus::Nats(_)) {
            return;
        }
        let stream = self.settings.stream.clone();
        let bucket = self.settings.object_bucket.clone();
        // Best effort, on a thread of its own: Drop cannot await.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                if let Ok(client) = async_nats::connect(NATS_URL).await {
                    let js = async_nats::jetstream::new(client);
                    let _stream = js.delete_stream(&stream).await.is_ok();
                    let _bucket = js.delete_object_store(&bucket).await.is_ok();
                }
            });
        });
        let _joined = cleanup.join().is_ok();
    }
}

/// A SQLite store in a tempdir with tenants `t1`, `t2` and the given
/// `(tenant, device)` pairs.
pub struct TestStore {
    pub dir: TempDir,
    pub store: Store,
    pub fleet: Arc<Fleet>,
}

impl TestStore {
    pub async fn start(devices: &[(&str, &str)]) -> TestStore {
        let dir = tempfile::tempdir().expect("tempdir");
        let settings = StoreSettings {
            url: format!("sqlite://{}/db", dir.path().display()),
            encryption_key_file: Some(dir.path().join("key")),
            ..Default::default()
        };
        let store = Store::connect(&settings).await.expect("store connects");
        let fleet = Arc::new(fleet(devices));
        store.sync_fleet(&fleet).await.expect("fleet syncs");
        TestStore { dir, store, fleet }
    }

    /// Snapshots stored for `device` of `tenant`, newest first.
    pub async fn snapshots(&self, tenant: &str, device: &str) -> Vec<String> {
        let list = self.store.list_snapshots(tenant, device, 500, None).await;
        list.expect("listing works")
            .into_iter()
            .map(|s| s.sha256_hash)
            .collect()
    }

    /// Audit actions of `tenant`, newest first, with their details.
    pub async fn audit(&self, tenant: &str) -> Vec<(String, serde_json::Value)> {
        let events = self.store.list_audit(tenant, 500, None).await;
        let events = events.expect("audit lists");
        events
            .into_iter()
            .map(|e| (e.action.as_str().to_owned(), e.detail_json()))
            .collect()
    }
}

/// A validated fleet with tenants `t1`, `t2` and the given devices.
pub fn fleet(devices: &[(&str, &str)]) -> Fleet {
    let mut toml = String::from(
        "[[credentials]]\nname = \"c\"\nusername = \"admin\"\npassword_env = \"PATH\"\n\
         [[tenants]]\nid = \"t1\"\n[[tenants]]\nid = \"t2\"\n",
    );
    for (tenant, device) in devices {
        toml.push_str(&format!(
            "[[devices]]\nid = \"{device}\"\ntenant = \"{tenant}\"\nhost = \"127.0.0.1\"\ncredentials = \"c\"\n"
        ));
    }
    Settings::from_toml(&toml)
        .expect("parses")
        .validate()
        .expect("validates")
}

/// A small RouterOS-like export, distinct per `seed`.
pub fn config_text(seed: &str) -> String {
    format!(
        "# software id = TEST\n/interface bridge\nadd name=bridge-{seed}\n/ip address\nadd address=10.0.0.1/24 interface=bridge-{seed}\n"
    )
}

/// The outcome of a backup of `device` that collected `text`.
pub fn outcome(device: &Device, text: &str) -> Outcome {
    Outcome {
        device_id: device.id.clone(),
        tenant_id: device.tenant.clone(),
        sha256_hash: sha256_hex(text),
        config_text: text.to_owned(),
        routeros_version: Some("7.15".into()),
        collected_at: Utc::now(),
        warnings: Vec::new(),
        trigger: Trigger::Manual,
        raw_bytes: text.len(),
        duration: Duration::from_millis(5),
        host_key_fingerprint: "SHA256:test".into(),
    }
}

type Respond = Box<dyn Fn(&Device) -> backup::Result<Outcome> + Send + Sync>;

/// An [`Executor`] that answers from a closure, optionally waits on a gate
/// (a slow device) and publishes successes to a sink (like the real one).
pub struct TestExecutor {
    respond: Respond,
    pub gate: Option<Arc<Notify>>,
    pub sink: Option<Bus>,
    pub runs: AtomicUsize,
    pub last_trigger: Mutex<HashMap<String, Trigger>>,
}

impl TestExecutor {
    pub fn new(
        respond: impl Fn(&Device) -> backup::Result<Outcome> + Send + Sync + 'static,
    ) -> Self {
        Self {
            respond: Box::new(respond),
            gate: None,
            sink: None,
            runs: AtomicUsize::new(0),
            last_trigger: Mutex::new(HashMap::new()),
        }
    }

    /// Succeeds with [`config_text`] of the device id.
    pub fn succeeding() -> Self {
        Self::new(|d| Ok(outcome(d, &config_text(d.id.as_str()))))
    }

    pub fn runs(&self) -> usize {
        self.runs.load(Ordering::SeqCst)
    }
}

impl Executor for TestExecutor {
    async fn run(&self, device: &Device, trigger: Trigger) -> backup::Result<Outcome> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        self.last_trigger
            .lock()
            .expect("not poisoned")
            .insert(device.id.to_string(), trigger);
        if let Some(gate) = &self.gate {
            gate.notified().await;
        }
        let outcome = (self.respond)(device)?;
        if let Some(sink) = &self.sink {
            sink.publish(&outcome)
                .await
                .map_err(backup::Error::PublishFailed)?;
        }
        Ok(outcome)
    }
}

/// Polls `check` every 50 ms until it holds or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
