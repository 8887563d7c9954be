//! The whole node, built by `App::build` from a TOML configuration and
//! served on port 0, against in-process simulated devices: once on the
//! embedded stack (SQLite, local bus and locks) and once on the served one
//! (NATS with JetStream, Redis, PostgreSQL), with names isolated per test.
//!
//! [`spawn_app`] builds a node with the test kit's [`TestNode`] (on
//! `App::build`); [`TestApp`] offers the HTTP calls the tests need.

mod node;
pub(crate) mod process;
mod quickstart;
mod shared_stream;
mod trigger;

use std::time::Duration;

use cfgsnap::api::Role;
pub use cfgsnap_testkit::infra::SECRET;
pub use cfgsnap_testkit::{Infra, Stack, TestNode, on_both_stacks};
use serde_json::Value;

/// A running node and the HTTP calls the tests make to it.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    node: Option<TestNode>,
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
    let node = TestNode::start(toml).await;
    TestApp {
        address: node.address.clone(),
        client: reqwest::Client::new(),
        node: Some(node),
    }
}

impl TestApp {
    /// A client for a node started by the test itself (its stop is the
    /// test's business).
    pub fn attach(port: u16) -> TestApp {
        TestApp {
            address: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::new(),
            node: None,
        }
    }

    /// Stops the node and waits for its shutdown.
    pub async fn stop(mut self) {
        if let Some(node) = self.node.take() {
            node.stop().await;
        }
    }

    /// A token of tenant `t1` with `role`.
    pub fn token(&self, role: Role) -> String {
        token("tester", "t1", role)
    }

    /// The node's `/metrics` text.
    pub async fn metrics(&self) -> String {
        let url = format!("{}/metrics", self.address);
        let resp = self.client.get(url).send().await.expect("metrics");
        resp.text().await.expect("metrics text")
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

    /// `GET …/config-snapshots/{sid}/content` of `device` as stored (by an
    /// admin, who sees secrets): status and body.
    pub async fn content(&self, device: &str, sid: i64) -> (u16, String) {
        let resp = self
            .client
            .get(format!(
                "{}/api/tenants/t1/devices/{device}/config-snapshots/{sid}/content",
                self.address
            ))
            .bearer_auth(self.token(Role::Admin))
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
    cfgsnap_testkit::token::mint(SECRET.as_bytes(), sub, tenant, role)
}

/// `dev-0` … `dev-{n-1}`.
pub fn device_ids(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("dev-{i}")).collect()
}
