//! Notifications end to end, against real receivers: an HTTP server on
//! 127.0.0.1 (actix-web) that records every request and verifies webhook
//! signatures with the Standard Webhooks algorithm written here from the
//! specification (not with cfgsnap's signing code), and a real Exim
//! ([`crate::exim`]) delivering mail to a mailbox file. Both are allowed
//! through `[notify] allow_hosts`, as the SSRF guard refuses loopback
//! otherwise. Stores run on both backends (`TestStore`); whole nodes on
//! both stacks.

mod api;
mod backup;
mod chat;
mod crash;
mod email;
mod moved;
mod outbox;
mod secrets;
mod status;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine as _;
use cfgsnap::config::Settings;
use cfgsnap::config::notify::NotifyConfig;
use cfgsnap::notify::{DispatcherParts, Notifier, spawn_dispatcher};
use cfgsnap::store::Store;
use cfgsnap::store::outbox::Notification;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The signing secret of the webhook targets of these tests.
pub const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }
}

/// How the receiver answers the next request.
#[derive(Debug, Clone, Copy)]
pub enum Reply {
    Status(u16),
    /// Never answers (the sender's timeout or death ends it).
    Hang,
}

struct RecvState {
    requests: Mutex<Vec<Received>>,
    script: Mutex<VecDeque<Reply>>,
    count: watch::Sender<usize>,
}

/// An HTTP receiver on 127.0.0.1: answers from its script, then 200.
pub struct Receiver {
    pub addr: SocketAddr,
    state: Arc<RecvState>,
    handle: actix_web::dev::ServerHandle,
}

async fn record(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<Arc<RecvState>>,
) -> HttpResponse {
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let received = Received {
        path: req.path().to_owned(),
        headers,
        body: body.to_vec(),
    };
    let reply = state
        .script
        .lock()
        .expect("script lock")
        .pop_front()
        .unwrap_or(Reply::Status(200));
    let n = {
        let mut list = state.requests.lock().expect("requests lock");
        list.push(received);
        list.len()
    };
    state.count.send_replace(n);
    match reply {
        Reply::Status(code) => {
            HttpResponse::build(actix_web::http::StatusCode::from_u16(code).expect("status"))
                .finish()
        }
        Reply::Hang => std::future::pending().await,
    }
}

impl Receiver {
    /// Starts a receiver answering `script` in order, then 200.
    pub async fn start(script: &[Reply]) -> Receiver {
        let state = Arc::new(RecvState {
            requests: Mutex::new(Vec::new()),
            script: Mutex::new(script.iter().copied().collect()),
            count: watch::channel(0).0,
        });
        let data = web::Data::new(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::to(record))
        })
        .workers(1)
        .disable_signals()
        .bind(("127.0.0.1", 0))
        .expect("the receiver binds");
        let addr = server.addrs()[0];
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        Receiver {
            addr,
            state,
            handle,
        }
    }

    /// `http://127.0.0.1:{port}{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.addr.port())
    }

    /// Waits until `n` requests arrived; returns them all.
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        let mut rx = self.state.count.subscribe();
        rx.wait_for(|c| *c >= n).await.expect("the receiver runs");
        self.requests()
    }

    pub fn requests(&self) -> Vec<Received> {
        self.state.requests.lock().expect("requests lock").clone()
    }

    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}

/// Verifies a webhook as the Standard Webhooks specification says: the
/// timestamp within 5 minutes of now, and one of the space-separated `v1,`
/// signatures equal to base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))
/// with the key the base64 after `whsec_`.
pub fn verify(secret: &str, r: &Received) -> Result<(), String> {
    let id = r.header("webhook-id");
    let ts = r.header("webhook-timestamp");
    if id.is_empty() {
        return Err("no webhook-id".into());
    }
    let ts_num: i64 = ts
        .parse()
        .map_err(|_| "webhook-timestamp is not a number")?;
    if (chrono::Utc::now().timestamp() - ts_num).abs() > 300 {
        return Err("webhook-timestamp outside the tolerance".into());
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = b64
        .decode(secret.strip_prefix("whsec_").ok_or("secret prefix")?)
        .map_err(|_| "secret is not base64")?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|_| "key")?;
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(&r.body);
    let expected = format!("v1,{}", b64.encode(mac.finalize().into_bytes()));
    if r.header("webhook-signature")
        .split(' ')
        .any(|s| s == expected)
    {
        Ok(())
    } else {
        Err("no signature matches".into())
    }
}

/// The notification settings of `toml` (`[notify]` and `[[notifications]]`).
pub fn notify_config(toml: &str) -> NotifyConfig {
    let settings = Settings::from_toml(toml).expect("the test configuration parses");
    settings
        .notify_config()
        .expect("the notification settings are valid")
}

/// `[notify]` for tests: loopback allowed, fast polls and retries.
pub fn notify_section(extra: &str) -> String {
    format!(
        "[notify]\nallow_hosts = [\"127.0.0.1\"]\npoll_interval = \"100ms\"\n\
         retry_initial = \"100ms\"\nretry_max = \"500ms\"\nbase_url = \"https://cfgsnap.example\"\n{extra}\n"
    )
}

/// A webhook target `name` for `events` at `url`, signing with [`WHSEC`]
/// from the file `secret_file`.
pub fn webhook_target(
    name: &str,
    url: &str,
    events: &str,
    secret_file: &std::path::Path,
    extra: &str,
) -> String {
    format!(
        "[[notifications]]\nname = \"{name}\"\nkind = \"webhook\"\nurl = \"{url}\"\n\
         events = [{events}]\nsecret_file = \"{}\"\n{extra}\n",
        secret_file.display()
    )
}

/// Writes [`WHSEC`] to `dir/whsec` and returns the path.
pub fn secret_file(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("whsec");
    std::fs::write(&path, WHSEC).expect("writing the webhook secret");
    path
}

/// A dispatcher running on `store` with `config`, as a central node runs it.
pub struct Dispatch {
    pub notifier: Notifier,
    token: CancellationToken,
    tracker: TaskTracker,
}

impl Dispatch {
    pub fn start(store: &Store, config: NotifyConfig) -> Dispatch {
        let notifier = Notifier::new(config.clone());
        notifier.apply(Some(store), config);
        let fleet = crate::store::fleet(crate::store::FLEET);
        let (_tx, fleet) = watch::channel(Arc::new(fleet));
        let parts = DispatcherParts {
            notifier: notifier.clone(),
            fleet,
            backup_interval: Duration::from_secs(3600),
            metrics: cfgsnap::metrics::Metrics::new(),
        };
        let (token, tracker) = (CancellationToken::new(), TaskTracker::new());
        spawn_dispatcher(store.clone(), parts, token.clone(), &tracker)
            .expect("the dispatcher starts");
        Dispatch {
            notifier,
            token,
            tracker,
        }
    }

    pub async fn stop(self) {
        self.token.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

/// Waits until `check` holds for the tenant's notifications; returns them.
pub async fn wait_rows(
    store: &Store,
    tenant: &str,
    check: impl Fn(&[Notification]) -> bool,
) -> Vec<Notification> {
    for round in 1u64.. {
        let rows = store
            .list_notifications(tenant, None, 500)
            .await
            .expect("listing notifications");
        if check(&rows) {
            return rows;
        }
        if round % 100 == 0 {
            // Ids, states and errors only: payloads stay out of the output.
            let states: Vec<_> = rows
                .iter()
                .map(|n| {
                    (
                        &n.device_id,
                        &n.status,
                        n.attempts,
                        &n.last_error,
                        n.next_attempt_ms - n.created_ms,
                    )
                })
                .collect();
            eprintln!("still waiting; rows: {states:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    unreachable!("the loop above only returns")
}
