//! The web UI in a real browser: `cfgsnap serve` as a process on each stack,
//! simulated RouterOS devices (one with a hostile name, a hostile config
//! line and a secret, changing on every export), a webhook target nobody
//! answers (for the deliveries page), accounts of each role in its store,
//! and Debian's Chromium driven over WebDriver (chromedriver on a free
//! port). Every page visited is saved as a PNG under
//! `$CARGO_TARGET_TMPDIR/ui-screenshots/{stack}/`, in both themes and at
//! phone width for the fleet, device and diff pages.
//!
//! `pages` checks the HTML itself (well-formed, a title and a `main`
//! landmark, the security headers) and the form posts the browser never
//! makes (no CSRF token, another origin, a viewer's).

mod browser;
mod pages;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use cfgsnap::account::{Password, Role, Username, password};
use cfgsnap::config::Settings;
use cfgsnap::store::Store;
use cfgsnap::store::account::NewAccount;
use cfgsnap_testkit::serve::ServeProcess;
use fantoccini::{Client, ClientBuilder, Locator};
use routeros_sim::{DeviceSpec, Export, Simulator};
use serde_json::json;
use tokio::process::{Child, Command};

use crate::app::{Infra, Stack};
use crate::helpers::CFGSNAP as BIN;
use crate::helpers::start_simulator;

/// Every account's password.
pub const PASSWORD: &str = "ui-test-password-1";
/// A device name that would run script if it were not escaped.
pub const HOSTILE_NAME: &str =
    r#"<script>window.__xss=1</script>"><img src=x onerror="window.__xss=2">"#;
/// A configuration value that would run script if it were not escaped.
pub const HOSTILE_LINE: &str =
    r#"set name="<script>window.__xss=3</script>\"><img src=x onerror=window.__xss=4>""#;

/// A served node with its simulator and accounts.
pub struct Env {
    pub infra: Infra,
    pub sim: Simulator,
    pub node: ServeProcess,
    pub base: String,
    /// A value only the export's secret holds (never in an assertion message).
    pub secret: String,
}

impl Env {
    /// Starts three simulated devices and `cfgsnap serve` on `stack`, and
    /// adds `ada` (admin), `olga` (operator) and `vic` (viewer) in `t1`
    /// and `root` (super_admin).
    pub async fn start(stack: Stack) -> Env {
        let infra = Infra::new(stack).await;
        let dir = infra.dir.path().to_owned();
        let secret = format!("uisecret{}", rand::random::<u32>());
        let export = format!(
            "# 2024-05-01 10:00:00 by RouterOS 7.16\r\n/interface bridge\r\nadd name=bridge1\r\n\
             /ip address\r\nadd address=10.0.0.1/24 interface=bridge1\r\n\
             /radius\r\nadd address=10.0.0.9 secret={secret} service=login\r\n\
             /system identity\r\n{HOSTILE_LINE}\r\n"
        );
        let sim = start_simulator(vec![
            DeviceSpec::default()
                .with_export(Export::Text(export))
                .with_change_every(1),
            DeviceSpec::default(),
            DeviceSpec::default(),
        ])
        .await;
        let name = HOSTILE_NAME.replace('\\', "\\\\").replace('"', "\\\"");
        let toml = infra
            .config(
                &sim,
                &format!("[ui]\ninsecure_cookies = true\n{}", failing_hook(&dir)),
            )
            .replace("name = \"router 0\"", &format!("name = \"{name}\""));
        let config = dir.join("config.toml");
        std::fs::write(&config, &toml).expect("config");
        let node = ServeProcess::start(BIN, &config, dir.join("serve.log"), true).await;
        let base = format!(
            "http://127.0.0.1:{}",
            node.port.expect("the api role serves")
        );
        add_accounts(&config).await;
        Env {
            infra,
            sim,
            node,
            base,
            secret,
        }
    }

    /// Stops everything.
    pub async fn finish(self) {
        self.node.kill().await;
        self.sim.shutdown().await;
        self.infra.finish().await;
    }
}

/// `[notify]` and a webhook target for `config.changed` at a loopback port
/// where nothing listens: its deliveries fail (a retry an hour later), so
/// the deliveries page has attempts and errors to show and to redeliver.
fn failing_hook(dir: &Path) -> String {
    let secret = dir.join("whsec");
    std::fs::write(&secret, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("webhook secret");
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    format!(
        "[notify]\nallow_hosts = [\"127.0.0.1\"]\npoll_interval = \"200ms\"\n\
         retry_initial = \"1h\"\nretry_max = \"1h\"\n\
         [[notifications]]\nname = \"noc-hook\"\nkind = \"webhook\"\n\
         url = \"http://127.0.0.1:{closed}/hook\"\nevents = [\"config.changed\"]\n\
         secret_file = \"{}\"\n",
        secret.display()
    )
}

async fn add_accounts(config: &Path) {
    let settings = Settings::load(config).expect("the test config loads");
    let store = Store::connect(&settings.store)
        .await
        .expect("the store opens");
    for (name, role) in [
        ("ada", Role::Admin),
        ("olga", Role::Operator),
        ("vic", Role::Viewer),
        ("root", Role::SuperAdmin),
    ] {
        let password = Password::new(PASSWORD.to_owned()).expect("a valid password");
        let new = NewAccount {
            username: Username::parse(name).expect("a valid name"),
            tenant_id: (role != Role::SuperAdmin).then(|| "t1".to_owned()),
            role,
            password_hash: password::hash(&password).expect("hashes"),
        };
        store
            .create_account(&new, Some("test"))
            .await
            .expect("account created");
    }
    store.close().await;
}

/// Chromium under chromedriver, and where its screenshots go.
pub struct Browser {
    pub client: Client,
    driver: Child,
    shots: PathBuf,
    pub base: String,
}

impl Browser {
    /// Starts chromedriver on a free port and a headless Chromium session.
    pub async fn start(base: &str, stack: Stack) -> Browser {
        for bin in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
            assert!(
                Path::new(bin).exists(),
                "{bin} is missing: apt-get install chromium chromium-driver (scripts/test.sh does)"
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let driver = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,900", "--force-prefers-color-scheme=light"]
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(client) => break client,
                Err(e) => {
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "no WebDriver session: {e}"
                    );
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };
        let shots = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("ui-screenshots")
            .join(format!("{stack:?}").to_lowercase());
        std::fs::create_dir_all(&shots).expect("screenshot folder");
        eprintln!("screenshots: {}", shots.display());
        Browser {
            client,
            driver,
            shots,
            base: base.to_owned(),
        }
    }

    /// Opens `path` on the node.
    pub async fn open(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .expect("navigates");
    }

    /// The current path and query.
    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.expect("a URL");
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        }
    }

    /// Waits for the element `css`.
    pub async fn wait(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(Duration::from_secs(30))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css} on the page: {e}"))
    }

    /// How many elements match `css`.
    pub async fn count(&self, css: &str) -> usize {
        self.client
            .find_all(Locator::Css(css))
            .await
            .expect("find_all")
            .len()
    }

    /// The text of the element `css`.
    pub async fn text(&self, css: &str) -> String {
        self.wait(css).await.text().await.expect("text")
    }

    /// Clicks `css` and waits for the next document to load.
    pub async fn click(&self, css: &str) {
        self.js("window.__before_click = true").await;
        self.click_in_place(css).await;
        self.settle().await;
    }

    /// Clicks `css` without waiting for a navigation (htmx swaps in place).
    pub async fn click_in_place(&self, css: &str) {
        self.wait(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// Waits until a document not marked before a click finished loading.
    pub async fn settle(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let state = self
                .client
                .execute(
                    "return window.__before_click === undefined && document.readyState",
                    vec![],
                )
                .await
                .unwrap_or_default();
            if state == "complete" {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the page never loaded"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Runs `script` in the page.
    pub async fn js(&self, script: &str) -> serde_json::Value {
        self.client
            .execute(script, vec![])
            .await
            .expect("script runs")
    }

    /// Runs an async `script` whose last argument is the callback.
    pub async fn js_async(&self, script: &str) -> serde_json::Value {
        self.client
            .execute_async(script, vec![])
            .await
            .expect("script runs")
    }

    /// Signs in through the form.
    pub async fn sign_in(&self, user: &str) {
        self.open("/ui/login").await;
        self.wait("#username")
            .await
            .send_keys(user)
            .await
            .expect("types");
        self.wait("#password")
            .await
            .send_keys(PASSWORD)
            .await
            .expect("types");
        self.click("#sign-in").await;
    }

    /// Saves a screenshot `name.png`.
    pub async fn shot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("a screenshot");
        std::fs::write(self.shots.join(format!("{name}.png")), png).expect("screenshot saved");
    }

    /// Resizes the window.
    pub async fn size(&self, width: u32, height: u32) {
        self.client
            .set_window_size(width, height)
            .await
            .expect("resizes");
    }

    /// Ends the session and chromedriver.
    pub async fn finish(mut self) {
        self.client.close().await.expect("session closes");
        self.driver.kill().await.expect("chromedriver stops");
    }
}
