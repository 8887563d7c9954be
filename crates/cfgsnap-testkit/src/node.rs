//! A whole node in process: settings (or TOML) in, `App::build` as `cfgsnap
//! serve` calls it, `run_until_stopped` on a task of the test's runtime.
//! [`TestNode`] keeps what tests and benchmarks reach for around the HTTP API:
//! the node's store, bus, API state and fleet.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use cfgsnap::api::AppState;
use cfgsnap::app::App;
use cfgsnap::bus::Bus;
use cfgsnap::config::{Fleet, Settings};
use cfgsnap::store::Store;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A running node.
pub struct TestNode {
    /// `http://127.0.0.1:{port}`; empty when the node does not serve the API.
    pub address: String,
    /// A client that follows no redirects.
    pub client: reqwest::Client,
    /// The node's store, when a role opens it.
    pub store: Option<Store>,
    /// The node's bus.
    pub bus: Bus,
    /// The API's shared state, when the node serves the API.
    pub api_state: Option<AppState>,
    /// The node's fleet, following reloads.
    pub fleet: watch::Receiver<Arc<Fleet>>,
    port: Option<u16>,
    stop: CancellationToken,
    done: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestNode {
    /// Builds a node from `toml` and runs it until [`TestNode::stop`].
    ///
    /// # Errors
    /// An invalid configuration, or a node that cannot be built.
    pub async fn try_start(toml: &str) -> anyhow::Result<TestNode> {
        let settings = Settings::from_toml(toml).map_err(|e| anyhow::anyhow!("{e}"))?;
        TestNode::try_start_with(settings).await
    }

    /// Builds a node from `settings` and runs it until [`TestNode::stop`].
    ///
    /// # Errors
    /// A node that cannot be built.
    pub async fn try_start_with(settings: Settings) -> anyhow::Result<TestNode> {
        crate::init_tracing();
        let app = App::build(settings).await.context("building the node")?;
        let port = app.port();
        let mut node = TestNode {
            address: port
                .map(|port| format!("http://127.0.0.1:{port}"))
                .unwrap_or_default(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .context("building the HTTP client")?,
            store: app.store().cloned(),
            bus: app.bus().clone(),
            api_state: app.api_state().cloned(),
            fleet: app.fleet(),
            port,
            stop: CancellationToken::new(),
            done: None,
        };
        let stop = node.stop.clone().cancelled_owned();
        node.done = Some(tokio::spawn(app.run_until_stopped(stop)));
        Ok(node)
    }

    /// [`TestNode::try_start`] for tests: panics when the node cannot start.
    pub async fn start(toml: &str) -> TestNode {
        match TestNode::try_start(toml).await {
            Ok(node) => node,
            Err(e) => panic!("the node did not start: {e:#}"),
        }
    }

    /// [`TestNode::try_start_with`] for tests: panics when the node cannot start.
    pub async fn start_with(settings: Settings) -> TestNode {
        match TestNode::try_start_with(settings).await {
            Ok(node) => node,
            Err(e) => panic!("the node did not start: {e:#}"),
        }
    }

    /// The HTTP port, when the node serves the API.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// The store; panics when no role of the node opens one.
    pub fn store(&self) -> &Store {
        self.store
            .as_ref()
            .expect("a node with the api or ingester role")
    }

    /// Stops the node and waits (at most a minute) for its shutdown.
    ///
    /// # Errors
    /// When it fails or does not stop in time.
    pub async fn try_stop(mut self) -> anyhow::Result<()> {
        self.stop.cancel();
        let done = self
            .done
            .take()
            .context("BUG: the node runs until stopped")?;
        tokio::time::timeout(Duration::from_secs(60), done)
            .await
            .context("the node did not stop within a minute")?
            .context("the node's task panicked")?
    }

    /// [`TestNode::try_stop`] for tests: panics unless the node stops cleanly.
    pub async fn stop(self) {
        if let Err(e) = self.try_stop().await {
            panic!("the node did not stop cleanly: {e:#}");
        }
    }
}

impl Drop for TestNode {
    /// A node the test did not stop is told to stop (and not waited for).
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
