//! Marker secrets never leak: `cfgsnap serve` runs as a process at TRACE,
//! on the embedded stack and on NATS, Redis and PostgreSQL,
//! with a known device password, JWT secret and master key, backing up a
//! device whose export holds a `secret=` line. After successful and failed
//! backups, every read route, error responses and `/metrics`, no log line,
//! no response body and no metric holds any marker. Only `/content`,
//! `/download` and `/diff` with `?reveal=true` for an admin may hold the
//! export's own marker (a viewer's are masked): serving the
//! export is their job.

use std::time::Duration;

use base64::Engine as _;
use cfgsnap::api::Role;
use cfgsnap_testkit::serve::{ServeOptions, ServeProcess};
use rand::RngCore as _;
use routeros_sim::{DeviceSpec, Export};
use serde_json::Value;
use tokio::process::Child;

use super::{raw_exchange, within};
use crate::app::{Infra, Stack, on_both_stacks};
use crate::helpers::CFGSNAP as BIN;
use crate::helpers::start_simulator;
const LIMIT: Duration = Duration::from_secs(180);

fn random_hex() -> String {
    let mut bytes = [0u8; 8];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// The secrets of one run, each unique to it.
struct Markers {
    device_password: String,
    jwt_secret: String,
    master_key: String,
    config: String,
}

impl Markers {
    fn new() -> Markers {
        let mut key = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut key);
        Markers {
            device_password: format!("marker-devpass-{}", random_hex()),
            jwt_secret: format!("marker-jwt-{}-{}", random_hex(), random_hex()),
            master_key: base64::engine::general_purpose::STANDARD.encode(key),
            config: format!("marker-cfg-{}", random_hex()),
        }
    }

    /// (name, value) of every marker that may appear nowhere.
    fn all(&self) -> [(&'static str, &str); 4] {
        [
            ("device password", &self.device_password),
            ("JWT secret", &self.jwt_secret),
            ("master key", &self.master_key),
            ("config secret", &self.config),
        ]
    }

    /// Asserts no marker is in `text`; the config marker is allowed when
    /// `export_allowed`.
    fn assert_absent(&self, what: &str, text: &str, export_allowed: bool) {
        for (name, value) in self.all() {
            if export_allowed && name == "config secret" {
                continue;
            }
            assert!(!text.contains(value), "the {name} leaked into {what}");
        }
    }

    fn token(&self, sub: &str, tenant: &str, role: Role) -> String {
        cfgsnap_testkit::token::mint(self.jwt_secret.as_bytes(), sub, tenant, role)
    }
}

async fn stop(mut child: Child) {
    let pid = child.id().expect("running").to_string();
    let status = std::process::Command::new("kill")
        .args(["-s", "TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -s TERM");
    let exit = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("cfgsnap serve exits after SIGTERM")
        .expect("wait");
    assert!(exit.success(), "cfgsnap serve exit: {exit}");
}

/// Records every response: (what, status, body).
struct Calls {
    base: String,
    http: reqwest::Client,
    seen: Vec<(String, u16, String)>,
}

impl Calls {
    async fn call(&mut self, method: &str, path: &str, token: &str) -> (u16, String) {
        let url = format!("{}{path}", self.base);
        let request = match method {
            "POST" => self.http.post(url),
            _ => self.http.get(url),
        };
        let resp = request
            .header("authorization", format!("Bearer {token}"))
            .send()
            .await
            .expect("answered");
        let status = resp.status().as_u16();
        let body = resp.text().await.expect("body");
        self.seen
            .push((format!("{method} {path}"), status, body.clone()));
        (status, body)
    }

    /// Polls `path` until `ready` holds for its JSON body (bounded).
    async fn until(&mut self, path: &str, token: &str, ready: impl Fn(&Value) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let (_, body) = self.call("GET", path, token).await;
            if serde_json::from_str(&body).is_ok_and(|v: Value| ready(&v)) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{path} never got ready"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

on_both_stacks!(no_marker_secret_reaches_a_log_line_an_error_body_or_a_metric);

async fn no_marker_secret_reaches_a_log_line_an_error_body_or_a_metric(stack: Stack) {
    within(LIMIT, async {
        // Arrange: marker secrets in every place a secret lives.
        let markers = Markers::new();
        let infra = Infra::new(stack).await;
        let dir = infra.dir.path().to_owned();
        let export = format!(
            "# 2024-05-01 10:00:00 by RouterOS 7.16\r\n/radius\r\n\
             add address=10.0.0.9 secret={} service=login\r\n/system identity\r\nset name=r1\r\n",
            markers.config
        );
        let sim = start_simulator(vec![
            DeviceSpec::default()
                .with_credentials("admin", Some(&markers.device_password))
                .with_export(Export::Text(export))
                .with_change_every(2),
            // Refuses the configured password: failed backups send it too.
            DeviceSpec::default().with_credentials("admin", Some("another-password")),
        ])
        .await;
        std::fs::write(dir.join("jwt-secret"), &markers.jwt_secret).expect("jwt secret");
        let key_file = dir.join("master.key");
        std::fs::write(&key_file, format!("{}\n", markers.master_key)).expect("master key");
        std::fs::set_permissions(&key_file, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .expect("key file mode");
        std::fs::write(dir.join("devpass"), &markers.device_password).expect("password");
        let config = dir.join("config.toml");
        let toml = infra.config(&sim, "").replace(
            "password = \"admin\"",
            &format!("password_file = \"{}\"", dir.join("devpass").display()),
        );
        std::fs::write(&config, toml).expect("config");
        let log = dir.join("serve.log");
        let options = ServeOptions {
            rust_log: "trace",
            stdout: Some(dir.join("serve.out")),
            ..ServeOptions::default()
        };
        let node = ServeProcess::start_with(BIN, &config, log.clone(), &options).await;
        let (child, port) = (node.child, node.port.expect("the api role serves"));
        let mut calls = Calls {
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
            seen: Vec::new(),
        };
        let viewer = markers.token("vic", "t1", Role::Viewer);
        let operator = markers.token("olga", "t1", Role::Operator);
        let admin = markers.token("ada", "t1", Role::Admin);
        let dev = "/api/tenants/t1/devices";

        // Act: the scheduled pass (one success, one refused login), then triggers.
        calls
            .until(&format!("{dev}/dev-0/config-snapshots"), &viewer, |v| {
                v["items"].as_array().is_some_and(|i| !i.is_empty())
            })
            .await;
        calls
            .until(&format!("{dev}/dev-1"), &viewer, |v| {
                v["last_error_kind"] == "auth_failed"
            })
            .await;
        let trigger = |d: &str| format!("{dev}/{d}/config-snapshot/trigger");
        assert_eq!(calls.call("POST", &trigger("dev-0"), &operator).await.0, 201);
        assert_eq!(calls.call("POST", &trigger("dev-1"), &operator).await.0, 502);
        calls
            .until(&format!("{dev}/dev-0/config-snapshots"), &viewer, |v| {
                v["items"].as_array().is_some_and(|i| i.len() >= 2)
            })
            .await;
        let (_, page) = calls
            .call("GET", &format!("{dev}/dev-0/config-snapshots"), &viewer)
            .await;
        let page: Value = serde_json::from_str(&page).expect("json");
        let sid = page["items"][0]["id"].as_i64().expect("snapshot id");
        let snap = format!("{dev}/dev-0/config-snapshots/{sid}");
        for path in [
            dev.to_owned(),
            format!("{dev}/dev-0"),
            format!("{dev}/dev-1"),
            snap.clone(),
            format!("{snap}/content"),
            format!("{snap}/download"),
            format!("{snap}/diff"),
            format!("{dev}/dev-0/config-history"),
            "/healthz".to_owned(),
            "/readyz".to_owned(),
            "/metrics".to_owned(),
            "/api/openapi.json".to_owned(),
        ] {
            calls.call("GET", &path, &viewer).await;
        }
        // The export with its secrets, explicitly, as an admin may: the
        // viewer's calls above got it masked.
        for path in [
            format!("{snap}/content?reveal=true"),
            format!("{snap}/download?reveal=true"),
            format!("{snap}/diff?reveal=true"),
        ] {
            calls.call("GET", &path, &admin).await;
        }
        calls.call("GET", "/api/tenants/t1/audit-events?limit=200", &admin).await;
        // Error responses, the secrets themselves sent as tokens included.
        let forged = cfgsnap_testkit::token::mint(
            b"not-the-secret-0123456789abcdef-0123",
            "eve",
            "t1",
            Role::Admin,
        );
        for token in [
            forged.as_str(),
            markers.jwt_secret.as_str(),
            markers.device_password.as_str(),
            "",
        ] {
            calls.call("GET", dev, token).await;
        }
        for (method, path, token) in [
            ("GET", "/api/tenants/t2/devices".to_owned(), &viewer),
            ("GET", format!("{dev}/dev.0"), &viewer),
            ("GET", format!("{dev}/dev-0/config-snapshots/999999"), &viewer),
            ("GET", format!("{dev}/dev-0/config-snapshots/{sid}/diff?against=999999"), &viewer),
            ("GET", format!("{dev}/dev-0/config-snapshots?limit=abc"), &viewer),
            ("POST", trigger("nope"), &operator),
            ("POST", trigger("dev-0"), &viewer),
            ("POST", format!("{dev}/dev-0/ssh-host-key/reset"), &operator),
            ("GET", "/nowhere".to_owned(), &viewer),
        ] {
            calls.call(method, &path, token).await;
        }
        let oversized = format!(
            "GET {dev} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nX-Pad: {}\r\nConnection: close\r\n\r\n",
            markers.jwt_secret,
            "p".repeat(20 * 1024)
        );
        let big = raw_exchange(&calls.base, oversized.as_bytes(), Duration::from_secs(15)).await;
        assert_eq!(big.status, 431);
        calls.seen.push(("oversized head".into(), big.status, big.body));
        stop(child).await;

        // Assert: the export's marker went through the node (the checks bite)…
        let served = |suffix: &str| {
            calls
                .seen
                .iter()
                .any(|(what, _, body)| what.ends_with(suffix) && body.contains(&markers.config))
        };
        assert!(
            served("/content?reveal=true") && served("/download?reveal=true"),
            "the export was not served"
        );
        // …yet reached no response other than the export's own to an admin
        // who asked for it (a viewer's is masked), and no log line.
        for (what, status, body) in &calls.seen {
            let export_route = *status == 200 && what.ends_with("?reveal=true");
            markers.assert_absent(&format!("the response to {what} ({status})"), body, export_route);
        }
        let log_text = std::fs::read_to_string(&log).expect("log");
        let out_text = std::fs::read_to_string(dir.join("serve.out")).expect("stdout");
        assert!(log_text.contains("TRACE"), "the node did not log at TRACE");
        assert!(log_text.lines().count() > 100, "too few log lines to mean anything");
        for (n, line) in log_text.lines().chain(out_text.lines()).enumerate() {
            markers.assert_absent(&format!("log line {}", n + 1), line, false);
        }
        let metrics = calls
            .seen
            .iter()
            .find(|(what, _, _)| what == "GET /metrics")
            .map(|(_, _, body)| body.clone())
            .expect("metrics scraped");
        assert!(metrics.contains("# TYPE"), "not a Prometheus text");
        markers.assert_absent("the metrics", &metrics, false);
        sim.shutdown().await;
        infra.finish().await;
    })
    .await;
}
