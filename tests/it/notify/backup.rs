//! `config.changed` after real backups: a node (both stacks) backs up a
//! simulated RouterOS device whose export changes every time, through the
//! HTTP trigger, SSH, the bus and ingest; the signed webhook reaches the
//! receiver once, for the second version.

use cfgsnap_testkit::fleet::start_simulator;
use cfgsnap_testkit::{Infra, Stack, on_both_stacks};
use routeros_sim::DeviceSpec;

use super::{Receiver, WHSEC, notify_section, secret_file, verify, webhook_target};
use crate::app::spawn_app;

async fn a_changed_config_is_announced_by_a_signed_webhook(stack: Stack) {
    // Arrange
    let infra = Infra::new(stack).await;
    let sim = start_simulator(vec![DeviceSpec::default().with_change_every(1)]).await;
    let receiver = Receiver::start(&[]).await;
    // Backups run on the triggers only.
    let extra = format!(
        "[roles]\nscheduler = false\n{}{}",
        notify_section(""),
        webhook_target(
            "ops",
            &receiver.url("/hooks/cfgsnap"),
            r#""config.changed""#,
            &secret_file(infra.dir.path()),
            ""
        )
    );
    let app = spawn_app(&infra.config(&sim, &extra)).await;
    // Act: two backups, two versions.
    assert_eq!(app.trigger("dev-0").await.status(), 201);
    assert_eq!(app.trigger("dev-0").await.status(), 201);
    let requests = receiver.wait_for(1).await;
    // Assert
    let snapshots = app.snapshots("dev-0").await;
    assert_eq!(snapshots.len(), 2);
    let r = &requests[0];
    assert_eq!(r.path, "/hooks/cfgsnap");
    verify(WHSEC, r).expect("the signature verifies");
    assert!(r.header("webhook-id").starts_with("msg_"));
    let body = r.json();
    assert_eq!(body["type"], "config.changed");
    assert!(body["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')));
    let data = &body["data"];
    assert_eq!(data["tenant_id"], "t1");
    assert_eq!(data["device_id"], "dev-0");
    assert_eq!(data["device_name"], "router 0");
    assert_eq!(data["snapshot_id"], snapshots[0]["id"]);
    assert_eq!(data["previous_snapshot_id"], snapshots[1]["id"]);
    assert_eq!(data["sha256_hash"], snapshots[0]["sha256_hash"]);
    assert!(data["lines_added"].as_i64().unwrap_or(0) >= 1);
    assert_eq!(data["changes"][0]["component"], "ip/firewall/address-list");
    assert_eq!(data["url"], "https://cfgsnap.example/ui/t/t1/devices/dev-0");
    assert!(data.get("diff").is_none(), "no diff unless include_diff");
    app.stop().await;
    assert_eq!(receiver.requests().len(), 1, "one change, one notification");
    receiver.stop().await;
    sim.shutdown().await;
    infra.finish().await;
}

on_both_stacks!(a_changed_config_is_announced_by_a_signed_webhook);
