//! HTTP abuse against a whole embedded node: hostile ids on every route,
//! oversized bodies and headers, a flood of invalid tokens beside a real
//! user, and slow or idle clients. Always a clear 4xx, never a 5xx, never a
//! hang; the node keeps serving.

use std::time::{Duration, Instant};

use cfgsnap::api::Role;
use futures_util::future::join_all;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use routeros_sim::DeviceSpec;
use serde_json::json;
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;

use super::{RawResponse, raw_exchange, within};
use crate::api::isolation::tenant_routes;
use crate::app::{Infra, SECRET, Stack, TestApp, spawn_app, token};
use crate::helpers::start_simulator;

const LIMIT: Duration = Duration::from_secs(120);
const EXCHANGE: Duration = Duration::from_secs(15);

/// Starts an embedded node for one simulated device `dev-0` of `t1`, with
/// scheduled runs pushed an hour away.
async fn node() -> (Infra, routeros_sim::Simulator, TestApp) {
    let infra = Infra::new(Stack::Embedded).await;
    let sim = start_simulator(vec![DeviceSpec::default()]).await;
    let toml = infra
        .config(&sim, "")
        .replace("jitter = \"0s\"", "jitter = \"1h\"");
    let app = spawn_app(&toml).await;
    (infra, sim, app)
}

/// Path segments as they go on the wire: special characters of NATS
/// subjects and paths, encoded slashes and dot segments, unicode (encoded
/// and raw), NUL, numbers out of range and 10 KB strings.
fn hostile_segments() -> Vec<String> {
    vec![
        ".".into(),
        "a.b".into(),
        "*".into(),
        "a*b".into(),
        ">".into(),
        "a>b".into(),
        "%3E".into(),
        "%2F".into(),
        "a%2Fb".into(),
        "%2e%2e".into(),
        "%2E%2E%2F%2E%2E".into(),
        "%C3%A9".into(),
        "caf\u{e9}".into(),
        "\u{1F600}".into(),
        "%F0%9F%98%80".into(),
        "%00".into(),
        "a%20b".into(),
        "%ff%fe".into(),
        "a".repeat(10 * 1024),
        "9".repeat(10 * 1024),
        "%2e".repeat(1024),
    ]
}

/// Asserts `resp` is a 4xx; one from the API is a problem document.
fn assert_clear_4xx(resp: &RawResponse, what: &str) {
    assert!(
        (400..500).contains(&resp.status),
        "{what}: got {} instead of a 4xx",
        resp.status
    );
    // Only the HTTP layer's own refusals (head too large) may be bare.
    if !matches!(resp.status, 400 | 431) || !resp.body.is_empty() {
        assert!(
            resp.head.contains("content-type: application/problem+json"),
            "{what}: {} without a problem document",
            resp.status
        );
        assert!(resp.body.contains("\"code\""), "{what}: no code");
    }
}

fn request(method: &str, path: &str, extra_headers: &str) -> Vec<u8> {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\n{extra_headers}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .into_bytes()
}

async fn healthy(app: &TestApp) {
    let resp = app
        .client
        .get(format!("{}/healthz", app.address))
        .send()
        .await
        .expect("healthz answers");
    assert_eq!(resp.status(), 200, "the node still serves");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_ids_on_every_route_get_a_4xx_problem_and_never_a_5xx() {
    within(LIMIT, async {
        // Arrange
        let (infra, sim, app) = node().await;
        let auth = format!(
            "Authorization: Bearer {}\r\n",
            token("root", "t1", Role::SuperAdmin)
        );
        let mut cases = Vec::new();
        for bad in hostile_segments() {
            let in_tenant = tenant_routes(&bad, "dev-0", "1");
            let in_device = tenant_routes("t1", &bad, "1").into_iter().skip(1).take(9);
            let in_snapshot = tenant_routes("t1", "dev-0", &bad)
                .into_iter()
                .skip(5)
                .take(4);
            cases.extend(in_tenant.into_iter().chain(in_device).chain(in_snapshot));
            let in_query = [
                format!("/api/tenants/t1/devices/dev-0/config-snapshots?limit={bad}"),
                format!("/api/tenants/t1/devices/dev-0/config-snapshots?before={bad}"),
                format!("/api/tenants/t1/devices/dev-0/config-snapshots/1/diff?against={bad}"),
                format!("/api/tenants/t1/audit-events?before={bad}"),
            ]
            .map(|p| ("GET", p));
            cases.extend(in_query);
        }
        // Valid tenant and device ids, but not snapshot ids or cursors.
        for bad in ["-1", "0", "1.5", "99999999999999999999999"] {
            cases.extend(
                tenant_routes("t1", "dev-0", bad)
                    .into_iter()
                    .skip(5)
                    .take(4),
            );
            let query = format!("/api/tenants/t1/devices/dev-0/config-snapshots?limit={bad}");
            cases.push(("GET", query));
        }

        for (method, path) in &cases {
            for headers in ["", auth.as_str()] {
                // Act
                let resp =
                    raw_exchange(&app.address, &request(method, path, headers), EXCHANGE).await;

                // Assert
                let shown: String = path.chars().take(90).collect();
                assert_clear_4xx(
                    &resp,
                    &format!("{method} {shown} (auth: {})", !headers.is_empty()),
                );
            }
        }
        healthy(&app).await;
        app.stop().await;
        sim.shutdown().await;
        infra.finish().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_and_headers_get_a_4xx_and_never_a_5xx_or_a_hang() {
    within(LIMIT, async {
        // Arrange
        let (infra, sim, app) = node().await;
        let operator = token("olivia", "t1", Role::Operator);
        let trigger = "/api/tenants/t1/devices/dev-0/config-snapshot/trigger";
        let megabyte = vec![b'x'; 1024 * 1024];
        let mut chunked = format!(
            "POST {trigger} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
             Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
            token("vera", "t1", Role::Viewer)
        )
        .into_bytes();
        for piece in megabyte.chunks(64 * 1024) {
            chunked.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
            chunked.extend_from_slice(piece);
            chunked.extend_from_slice(b"\r\n");
        }
        chunked.extend_from_slice(b"0\r\n\r\n");
        let big_header = format!(
            "Authorization: Bearer {operator}\r\nX-Filler: {}\r\n",
            "h".repeat(100 * 1024)
        );
        let big_token = format!("Authorization: Bearer {}\r\n", "t".repeat(100 * 1024));
        let many_headers: String = (0..500).map(|i| format!("X-H{i}: v\r\n")).collect();
        let ten_kb_token = format!("Authorization: Bearer {}\r\n", "e".repeat(10 * 1024));

        // Act + Assert: a 1 MB body with its length announced is refused.
        let resp = app
            .client
            .post(format!("{}{trigger}", app.address))
            .bearer_auth(&operator)
            .body(megabyte.clone())
            .send()
            .await
            .expect("sent");
        assert_eq!(resp.status(), 413);
        // Streamed (chunked) by a caller who may not trigger: refused, not read.
        let resp = raw_exchange(&app.address, &chunked, EXCHANGE).await;
        assert_clear_4xx(&resp, "1 MB chunked body");
        // Heads too large for the server, each on its own connection.
        for (what, headers) in [
            ("100 KB header", big_header.as_str()),
            ("100 KB token", big_token.as_str()),
            ("500 headers", many_headers.as_str()),
        ] {
            let resp = raw_exchange(
                &app.address,
                &request("GET", "/api/tenants/t1/devices", headers),
                EXCHANGE,
            )
            .await;
            assert!(
                matches!(resp.status, 400 | 413 | 431),
                "{what}: got {}",
                resp.status
            );
            assert_clear_4xx(&resp, what);
        }
        // A large but acceptable head with a garbage token: 401 problem.
        let resp = raw_exchange(
            &app.address,
            &request("GET", "/api/tenants/t1/devices", &ten_kb_token),
            EXCHANGE,
        )
        .await;
        assert_eq!(resp.status, 401, "10 KB garbage token");
        assert_clear_4xx(&resp, "10 KB garbage token");
        healthy(&app).await;
        app.stop().await;
        sim.shutdown().await;
        infra.finish().await;
    })
    .await;
}

/// Invalid tokens of many kinds: garbage, wrong signature, expired, `alg:
/// none`, unknown role, another tenant's forged claims.
fn invalid_tokens() -> Vec<String> {
    cfgsnap::api::auth::install_crypto_provider();
    let now = chrono::Utc::now().timestamp();
    let sign = |claims: serde_json::Value, secret: &[u8]| {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret),
        )
        .expect("test token signs")
    };
    let valid = json!({"sub": "eve", "tenant_id": "t1", "role": "admin", "exp": now + 600});
    let mut expired = valid.clone();
    expired["exp"] = json!(now - 3600);
    let mut god = valid.clone();
    god["role"] = json!("god");
    let none = format!(
        "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.",
        base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            valid.to_string()
        )
    );
    vec![
        "garbage".into(),
        "a.b.c".into(),
        "....".into(),
        sign(valid.clone(), b"not-the-secret-0123456789abcdef-0123456789"),
        sign(expired, SECRET.as_bytes()),
        sign(god, SECRET.as_bytes()),
        none,
        "\u{e9}\u{1F600}".into(),
        "x".repeat(4096),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_invalid_tokens_leaves_a_real_users_requests_served() {
    within(LIMIT, async {
        // Arrange
        let (infra, sim, app) = node().await;
        let viewer = token("alice", "t1", Role::Viewer);
        let bad = invalid_tokens();
        let url = format!("{}/api/tenants/t1/devices", app.address);
        let trigger = format!(
            "{}/api/tenants/t1/devices/dev-0/config-snapshot/trigger",
            app.address
        );

        // Act: 500 invalid requests, 50 at a time, each batch with 5 real ones.
        let mut refused = 0;
        let mut served = 0;
        for batch in 0..10 {
            let invalid = (0..50).map(|i| {
                let token = bad[(batch * 50 + i) % bad.len()].clone();
                let target = if i % 2 == 0 {
                    url.clone()
                } else {
                    trigger.clone()
                };
                let client = app.client.clone();
                async move {
                    let req = if target.ends_with("/trigger") {
                        client.post(target)
                    } else {
                        client.get(target)
                    };
                    req.header("authorization", format!("Bearer {token}"))
                        .send()
                        .await
                        .expect("invalid request answered")
                        .status()
                        .as_u16()
                }
            });
            let valid = (0..5).map(|_| {
                let (client, url, viewer) = (app.client.clone(), url.clone(), viewer.clone());
                async move {
                    let started = Instant::now();
                    let status = client
                        .get(url)
                        .bearer_auth(viewer)
                        .send()
                        .await
                        .expect("valid request answered")
                        .status()
                        .as_u16();
                    (status, started.elapsed())
                }
            });
            let (invalid, valid) = tokio::join!(join_all(invalid), join_all(valid));

            // Assert
            for status in invalid {
                assert_eq!(status, 401, "an invalid token must get 401");
                refused += 1;
            }
            for (status, took) in valid {
                assert_eq!(
                    status, 200,
                    "the real user's request failed during the flood"
                );
                assert!(
                    took < Duration::from_secs(10),
                    "the real user waited {took:?}"
                );
                served += 1;
            }
        }
        assert_eq!((refused, served), (500, 50));
        // Nothing of the flood spent the real operator's trigger quota.
        let resp = app.trigger("dev-0").await;
        assert_eq!(resp.status(), 201, "a real trigger after the flood");
        app.stop().await;
        sim.shutdown().await;
        infra.finish().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_clients_do_not_block_others_and_are_cut_off() {
    within(LIMIT, async {
        // Arrange: 20 connections that never send, one that trickles a head.
        let (infra, sim, app) = node().await;
        let addr = app.address.trim_start_matches("http://").to_owned();
        let mut idle = Vec::new();
        for _ in 0..20 {
            idle.push(TcpStream::connect(&addr).await.expect("connect"));
        }
        let trickle_addr = addr.clone();
        let trickler = tokio::spawn(async move {
            let started = Instant::now();
            let mut socket = TcpStream::connect(&trickle_addr).await.expect("connect");
            let head = format!(
                "GET /healthz HTTP/1.1\r\nHost: x\r\n{}",
                "X-Slow: y\r\n".repeat(40)
            );
            for byte in head.bytes() {
                if socket.write_all(&[byte]).await.is_err() {
                    return (true, started.elapsed());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                if started.elapsed() > Duration::from_secs(20) {
                    break;
                }
            }
            (false, started.elapsed())
        });
        let viewer = token("alice", "t1", Role::Viewer);

        // Act: a real user's requests while those connections hang around.
        for _ in 0..30 {
            let started = Instant::now();
            let resp = app
                .client
                .get(format!("{}/api/tenants/t1/devices", app.address))
                .bearer_auth(&viewer)
                .send()
                .await
                .expect("answered");

            // Assert
            assert_eq!(resp.status(), 200);
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "blocked by slow clients"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // The server cuts the trickler off (408 or close) well before its head ends.
        let (cut_off, after) = trickler.await.expect("trickler task");
        assert!(cut_off, "a head trickled over {after:?} was never cut off");
        assert!(after < Duration::from_secs(20));
        // Idle connections get a 408 or are closed, not kept forever.
        for socket in idle {
            let resp = super::read_answer(socket, EXCHANGE).await;
            assert!(
                matches!(resp.status, 0 | 408),
                "idle connection: {}",
                resp.status
            );
        }
        healthy(&app).await;
        app.stop().await;
        sim.shutdown().await;
        infra.finish().await;
    })
    .await;
}
