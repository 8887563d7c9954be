//! `cfgsnap device move` takes the device's notifications along: its
//! delivery history belongs to the new tenant (as sent), its pending rows
//! are delivered under the new tenant (link and diff), and a pending row for
//! a target that does not receive the new tenant is given up in the old one.

use cfgsnap::store::outbox::{MOVED_AWAY, Outcome};
use cfgsnap_testkit::on_both_stacks;
use chrono::Utc;

use super::secrets::{NEW_SECRET, change_r1, export_with};
use super::{
    Dispatch, Receiver, WHSEC, notify_config, notify_section, secret_file, verify, webhook_target,
};
use crate::ops::{cfgsnap, stderr, stdout, write_config};
use crate::store::{TestStore, snapshot};

async fn a_moved_devices_notifications_follow_it_unless_a_target_leaves_the_new_tenant_out(
    t: &TestStore,
) {
    // Arrange: two delivered rows (history), then a change with two pending
    // rows, one for a target of t1 only.
    let receiver = Receiver::start(&[]).await;
    let secret = secret_file(t.dir.path());
    let toml = format!(
        "{}{}{}",
        notify_section(""),
        webhook_target(
            "everyone",
            &receiver.url("/everyone"),
            r#""config.changed""#,
            &secret,
            "include_diff = true"
        ),
        webhook_target(
            "t1-only",
            &receiver.url("/t1-only"),
            r#""config.changed""#,
            &secret,
            "tenants = [\"t1\"]"
        ),
    );
    let config = notify_config(&toml);
    t.store.set_notify_routes(&config);
    change_r1(t).await;
    let claimed = t
        .store
        .claim_notifications(10, 60_000)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 2, "one row per target");
    for row in &claimed {
        t.store
            .record_delivery(row, &Outcome::Delivered)
            .await
            .expect("record");
    }
    t.ingest_new(&snapshot(
        "t1",
        "r1",
        &export_with(NEW_SECRET, 4),
        Utc::now(),
    ))
    .await;
    let config_path = write_config(t);
    let mut text = std::fs::read_to_string(&config_path).expect("read the configuration");
    text.push_str(&toml);
    std::fs::write(&config_path, text).expect("write the configuration");

    // Act
    let out = cfgsnap(&config_path, &["device", "move", "r1", "--to", "t2"]).await;

    // Assert: history and the pending row of `everyone` belong to t2.
    assert!(out.status.success(), "move: {}", stderr(&out));
    assert!(
        stdout(&out).contains("1 pending notification(s) of the device were given up"),
        "{}",
        stdout(&out)
    );
    let in_t2 = t
        .store
        .list_notifications("t2", None, 50)
        .await
        .expect("t2's rows");
    let states: Vec<(&str, &str)> = in_t2
        .iter()
        .map(|n| (n.target.as_str(), n.status.as_str()))
        .collect();
    assert_eq!(
        states,
        [
            ("everyone", "pending"),
            ("t1-only", "delivered"),
            ("everyone", "delivered")
        ]
    );
    let data = |payload: &str| -> serde_json::Value {
        serde_json::from_str(payload).expect("JSON payload")
    };
    assert_eq!(
        data(&in_t2[0].payload)["tenant_id"],
        "t2",
        "pending: retagged"
    );
    assert_eq!(
        data(&in_t2[1].payload)["tenant_id"],
        "t1",
        "history: as sent"
    );
    // The t1-only target's pending row is given up and stays in t1.
    let in_t1 = t
        .store
        .list_notifications("t1", None, 50)
        .await
        .expect("t1's rows");
    assert_eq!(in_t1.len(), 1, "only the given-up row stays in t1");
    assert_eq!(in_t1[0].target, "t1-only");
    assert_eq!(in_t1[0].status, "failed");
    assert_eq!(in_t1[0].last_error.as_deref(), Some(MOVED_AWAY));
    // The pending row is delivered under t2: its link and its diff.
    let dispatch = Dispatch::start(&t.store, config);
    let requests = receiver.wait_for(1).await;
    dispatch.stop().await;
    assert_eq!(requests.len(), 1, "nothing for the t1-only target");
    assert_eq!(requests[0].path, "/everyone");
    verify(WHSEC, &requests[0]).expect("signed");
    let body = requests[0].json();
    assert_eq!(body["data"]["tenant_id"], "t2");
    assert_eq!(
        body["data"]["url"],
        "https://cfgsnap.example/ui/t/t2/devices/r1"
    );
    assert!(
        body["data"]["diff"]
            .as_str()
            .is_some_and(|d| d.contains("+add")),
        "the diff, read under the new tenant"
    );
}

on_both_stacks!(
    with TestStore;
    a_moved_devices_notifications_follow_it_unless_a_target_leaves_the_new_tenant_out,
);
