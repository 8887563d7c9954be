//! The admin API over the outbox: deliveries listed with their state, a
//! delivery sent again with the same `webhook-id`, bad input refused.

use cfgsnap::api::Role;
use cfgsnap_testkit::fleet::start_simulator;
use cfgsnap_testkit::{Infra, Stack, on_both_stacks};
use routeros_sim::DeviceSpec;
use serde_json::Value;

use super::{Receiver, notify_section, secret_file, webhook_target};
use crate::app::{TestApp, spawn_app, token};

async fn get(app: &TestApp, query: &str, role: Role) -> (u16, Value) {
    let resp = app
        .client
        .get(format!(
            "{}/api/tenants/t1/notifications{query}",
            app.address
        ))
        .bearer_auth(token("admin", "t1", role))
        .send()
        .await
        .expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn redeliver(app: &TestApp, nid: &str) -> u16 {
    app.client
        .post(format!(
            "{}/api/tenants/t1/notifications/{nid}/redeliver",
            app.address
        ))
        .bearer_auth(token("admin", "t1", Role::Admin))
        .send()
        .await
        .expect("request")
        .status()
        .as_u16()
}

async fn deliveries_are_listed_and_can_be_sent_again(stack: Stack) {
    // Arrange: one change delivered.
    let infra = Infra::new(stack).await;
    let sim = start_simulator(vec![DeviceSpec::default().with_change_every(1)]).await;
    let receiver = Receiver::start(&[]).await;
    let extra = format!(
        "[roles]\nscheduler = false\n{}{}",
        notify_section(""),
        webhook_target(
            "ops",
            &receiver.url("/hook"),
            r#""config.changed""#,
            &secret_file(infra.dir.path()),
            ""
        )
    );
    let app = spawn_app(&infra.config(&sim, &extra)).await;
    assert_eq!(app.trigger("dev-0").await.status(), 201);
    assert_eq!(app.trigger("dev-0").await.status(), 201);
    receiver.wait_for(1).await;
    let item = loop {
        let (status, body) = get(&app, "?status=delivered", Role::Admin).await;
        assert_eq!(status, 200);
        if let Some(item) = body["items"].as_array().and_then(|i| i.first()) {
            break item.clone();
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    // Act
    let nid = item["id"].as_i64().expect("an id").to_string();
    let redelivered = redeliver(&app, &nid).await;
    let requests = receiver.wait_for(2).await;
    // Assert
    assert_eq!(item["event_type"], "config.changed");
    assert_eq!(item["target"], "ops");
    assert_eq!(item["attempts"], 1);
    assert!(item["delivered_at"].is_string());
    assert_eq!(redelivered, 204);
    assert_eq!(
        requests[1].header("webhook-id"),
        item["webhook_id"].as_str().unwrap_or("?")
    );
    assert_eq!(get(&app, "?status=bogus", Role::Admin).await.0, 400);
    assert_eq!(get(&app, "?limit=0", Role::Admin).await.0, 400);
    assert_eq!(get(&app, "", Role::Operator).await.0, 403);
    assert_eq!(redeliver(&app, "999999").await, 404);
    assert_eq!(redeliver(&app, "abc").await, 400);
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(r#"cfgsnap_notifications_total{kind="webhook",result="delivered"} 2"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("cfgsnap_notifications_pending "),
        "{metrics}"
    );
    app.stop().await;
    receiver.stop().await;
    sim.shutdown().await;
    infra.finish().await;
}

on_both_stacks!(deliveries_are_listed_and_can_be_sent_again);
