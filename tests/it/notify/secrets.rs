//! Secrets stay out of notifications: the diff a target includes is
//! redacted (`********`, a changed secret marked as changed) unless the
//! target sets `include_secrets = true`.

use cfgsnap_testkit::on_both_stacks;
use chrono::Utc;

use super::{
    Dispatch, Receiver, WHSEC, notify_config, notify_section, secret_file, verify, webhook_target,
};
use crate::store::{TestStore, snapshot};

pub const OLD_SECRET: &str = "Old-Pa55word-4711";
pub const NEW_SECRET: &str = "New-Pa55word-0815";

/// A small export with a PPP secret's password and a firewall rule count.
pub fn export_with(password: &str, rules: usize) -> String {
    let mut text = format!(
        "/interface bridge\nadd name=bridge\n/ppp secret\nadd name=vpn password={password} service=l2tp\n\
         /ip firewall filter\n"
    );
    for i in 0..rules {
        text.push_str(&format!("add action=accept chain=input comment=rule-{i}\n"));
    }
    text
}

/// Ingests the old, then the changed version of `r1`.
pub async fn change_r1(t: &TestStore) {
    let before = Utc::now() - chrono::Duration::minutes(1);
    t.ingest_new(&snapshot("t1", "r1", &export_with(OLD_SECRET, 1), before))
        .await;
    t.ingest_new(&snapshot(
        "t1",
        "r1",
        &export_with(NEW_SECRET, 3),
        Utc::now(),
    ))
    .await;
}

async fn secrets_leave_only_with_include_secrets(t: &TestStore) {
    // Arrange: two targets with the diff, one of them with secrets.
    let receiver = Receiver::start(&[]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = secret_file(dir.path());
    let toml = format!(
        "{}{}{}",
        notify_section(""),
        webhook_target(
            "redacted",
            &receiver.url("/redacted"),
            r#""config.changed""#,
            &secret,
            "include_diff = true"
        ),
        webhook_target(
            "revealed",
            &receiver.url("/revealed"),
            r#""config.changed""#,
            &secret,
            "include_diff = true\ninclude_secrets = true"
        ),
    );
    let dispatch = Dispatch::start(&t.store, notify_config(&toml));
    // Act
    change_r1(t).await;
    let requests = receiver.wait_for(2).await;
    dispatch.stop().await;
    // Assert (bodies hold secrets: never printed)
    let body = |path: &str| {
        let r = requests
            .iter()
            .find(|r| r.path == path)
            .expect("a request per target");
        verify(WHSEC, r).expect("signed");
        String::from_utf8(r.body.clone()).expect("UTF-8")
    };
    let redacted = body("/redacted");
    assert!(
        !redacted.contains(OLD_SECRET) && !redacted.contains(NEW_SECRET),
        "the redacted payload holds a secret"
    );
    assert!(
        redacted.contains("password=******** (changed)"),
        "the changed secret shows as changed"
    );
    assert!(
        redacted.contains("+add action=accept chain=input comment=rule-2"),
        "the diff is there"
    );
    let revealed = body("/revealed");
    assert!(
        revealed.contains(NEW_SECRET),
        "include_secrets lets the secret through"
    );
    receiver.stop().await;
}

on_both_stacks!(with TestStore; secrets_leave_only_with_include_secrets);
