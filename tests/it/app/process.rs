//! `cfgsnap serve` as a process, the way the README runs it: it starts on a
//! configuration file, answers /healthz and /readyz, serves a trigger with a
//! token from `cfgsnap token`, reloads on SIGHUP and exits 0 on SIGTERM.

use std::time::Duration;

use cfgsnap_testkit::serve::{ServeOptions, ServeProcess, signal};
use routeros_sim::DeviceSpec;
use serde_json::Value;
use tokio::process::Command;

use super::{Infra, Stack};
use crate::helpers::CFGSNAP as BIN;
use crate::helpers::start_simulator;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_starts_serves_a_trigger_reloads_on_sighup_and_exits_cleanly_on_sigterm() {
    // Arrange
    let infra = Infra::new(Stack::Embedded).await;
    let sim = start_simulator(vec![DeviceSpec::default()]).await;
    let config = infra.dir.path().join("config.toml");
    std::fs::write(
        &config,
        infra
            .config(&sim, "")
            .replace("jitter = \"0s\"", "jitter = \"1h\""),
    )
    .expect("config");
    let log = infra.dir.path().join("serve.log");
    let options = ServeOptions {
        show_log: true,
        ..ServeOptions::default()
    };
    let node = ServeProcess::start_with(BIN, &config, log.clone(), &options).await;
    let (mut child, port) = (node.child, node.port.expect("the api role serves"));
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();

    // Act + Assert: health and readiness.
    assert_eq!(
        http.get(format!("{base}/healthz"))
            .send()
            .await
            .expect("healthz")
            .status(),
        200
    );
    assert_eq!(
        http.get(format!("{base}/readyz"))
            .send()
            .await
            .expect("readyz")
            .status(),
        200
    );

    // A token minted by the CLI with the configured secret works for a trigger.
    let minted = Command::new(BIN)
        .args(["token", "--config"])
        .arg(&config)
        .args(["--sub", "alice", "--tenant", "t1", "--role", "operator"])
        .output()
        .await
        .expect("cfgsnap token runs");
    assert!(
        minted.status.success(),
        "cfgsnap token: {}",
        String::from_utf8_lossy(&minted.stderr)
    );
    let token = String::from_utf8(minted.stdout)
        .expect("utf-8")
        .trim()
        .to_owned();
    let resp = http
        .post(format!(
            "{base}/api/tenants/t1/devices/dev-0/config-snapshot/trigger"
        ))
        .bearer_auth(&token)
        .send()
        .await
        .expect("trigger");
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["status"], "success");

    // SIGHUP with a broken file is refused and the node keeps serving.
    let good = std::fs::read_to_string(&config).expect("read");
    std::fs::write(&config, format!("{good}\nunknown_key = 1\n")).expect("write");
    signal(&child, "HUP");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("configuration reload refused")
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the bad reload was not reported"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        http.get(format!("{base}/healthz"))
            .send()
            .await
            .expect("healthz")
            .status(),
        200
    );

    // SIGTERM: a clean exit.
    signal(&child, "TERM");
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("exits within 30 s of SIGTERM")
        .expect("wait");
    assert!(status.success(), "exit status {status:?}");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        !text.contains(super::SECRET),
        "the JWT secret must never be logged"
    );
    assert!(!text.contains(&token), "tokens must never be logged");
    sim.shutdown().await;
    infra.finish().await;
}
