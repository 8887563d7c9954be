//! Email targets: a changed configuration arrives over SMTP as a plain-text
//! mail with the summary, the changes and the redacted diff; the
//! `Message-ID` carries the notification's id.

use cfgsnap_testkit::on_both_stacks;

use super::secrets::{NEW_SECRET, OLD_SECRET, change_r1};
use super::{Dispatch, SmtpSink, notify_config, notify_section, wait_rows};
use crate::store::TestStore;

async fn a_changed_config_arrives_as_a_mail_with_the_redacted_diff(t: &TestStore) {
    // Arrange
    let sink = SmtpSink::start().await;
    let toml = format!(
        "{}[[notifications]]\nname = \"mail\"\nkind = \"email\"\nevents = [\"config.changed\"]\n\
         to = [\"noc@example.com\", \"ops@example.com\"]\nfrom = \"cfgsnap@example.com\"\n\
         smtp_host = \"127.0.0.1\"\nsmtp_port = {}\nsmtp_tls = \"none\"\ninclude_diff = true\n",
        notify_section(""),
        sink.port
    );
    let dispatch = Dispatch::start(&t.store, notify_config(&toml));
    // Act
    change_r1(t).await;
    let mails = sink.wait_for(1).await;
    let rows = wait_rows(&t.store, "t1", |r| {
        r.iter().all(|n| n.status == "delivered")
    })
    .await;
    dispatch.stop().await;
    // Assert (the mail holds a diff: only checked, never printed)
    let mail = &mails[0];
    assert!(
        mail.contains("Subject: [cfgsnap] router-r1 (r1): configuration changed, +3 -1"),
        "subject"
    );
    assert!(
        mail.contains("To: noc@example.com, ops@example.com"),
        "recipients"
    );
    assert!(
        mail.contains(&format!("Message-ID: <{}@cfgsnap>", rows[0].webhook_id)),
        "message id"
    );
    assert!(
        mail.contains("ip/firewall/filter: Added 2 firewall filter rules"),
        "changes"
    );
    assert!(
        mail.contains("https://cfgsnap.example/ui/t/t1/devices/r1"),
        "link"
    );
    assert!(
        mail.contains("password=******** (changed)"),
        "the redacted diff"
    );
    assert!(
        !mail.contains(OLD_SECRET) && !mail.contains(NEW_SECRET),
        "the mail holds a secret"
    );
}

on_both_stacks!(with TestStore; a_changed_config_arrives_as_a_mail_with_the_redacted_diff);
