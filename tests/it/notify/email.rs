//! Email targets against a real Exim ([`crate::exim`]): a changed
//! configuration arrives in the mailbox as a plain-text mail with the
//! subject, the summary, the changes and the redacted diff, over STARTTLS
//! with a login and over implicit TLS, the server's certificate checked
//! against the target's `smtp_ca_file`. A wrong password and an untrusted
//! certificate leave the row pending with the reason, and no mail; so does
//! a server that answers a byte at a time, within the attempt's bound.

use cfgsnap::store::outbox::Notification;
use cfgsnap_testkit::on_both_stacks;

use super::secrets::{NEW_SECRET, OLD_SECRET, change_r1};
use super::{Dispatch, notify_config, notify_section, wait_rows};
use crate::exim::Exim;
use crate::store::TestStore;

const USER: &str = "cfgsnap-mailer";
const PASSWORD: &str = "Smtp-Pa55-9931";

/// An email target `mail` for `config.changed` with the diff, to two
/// recipients whose local parts are unique to `test`, through `exim`.
fn mail_target(test: &str, port: u16, tls: &str, extra: &str) -> String {
    format!(
        "{}[[notifications]]\nname = \"mail\"\nkind = \"email\"\nevents = [\"config.changed\"]\n\
         to = [\"noc-{test}@example.com\", \"ops-{test}@example.com\"]\n\
         from = \"cfgsnap@example.com\"\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {port}\n\
         smtp_tls = \"{tls}\"\ninclude_diff = true\n{extra}\n",
        notify_section(""),
    )
}

/// `smtp_ca_file` and a login with [`PASSWORD`] (or `password`) from a file
/// in `dir`.
fn ca_and_login(exim: &Exim, dir: &std::path::Path, password: &str) -> String {
    let file = dir.join("smtp-password");
    std::fs::write(&file, password).expect("write the SMTP password");
    format!(
        "smtp_ca_file = \"{}\"\nsmtp_username = \"{USER}\"\nsmtp_password_file = \"{}\"\n",
        exim.ca_file.display(),
        file.display()
    )
}

/// Asserts that the mailbox holds the mail of `change_r1` once per
/// recipient (Exim appends a copy per delivery) and what it holds (checked,
/// never printed: the diff is configuration text).
fn assert_change_mails(mails: &[String], test: &str, row: &Notification) {
    assert_eq!(mails.len(), 2, "one delivery per recipient");
    let mut envelopes: Vec<&str> = mails
        .iter()
        .filter_map(|m| m.lines().find_map(|l| l.strip_prefix("Envelope-to: ")))
        .collect();
    envelopes.sort_unstable();
    assert_eq!(
        envelopes,
        [
            format!("noc-{test}@example.com"),
            format!("ops-{test}@example.com")
        ]
    );
    for mail in mails {
        assert_change_mail(mail, test, row);
    }
}

fn assert_change_mail(mail: &str, test: &str, row: &Notification) {
    assert!(
        mail.contains("Subject: [cfgsnap] router-r1 (r1): configuration changed, +3 -1"),
        "subject"
    );
    assert!(
        mail.contains(&format!(
            "To: noc-{test}@example.com, ops-{test}@example.com"
        )),
        "recipients"
    );
    assert!(
        mail.contains(&format!("Message-ID: <{}@cfgsnap>", row.webhook_id)),
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
        "the mail holds a device secret"
    );
}

async fn a_changed_config_arrives_in_the_mailbox_over_starttls_with_login(t: &TestStore) {
    // Arrange
    let exim = Exim::start(Some((USER, PASSWORD))).await;
    let test = format!("starttls-{:?}", t.stack).to_lowercase();
    let toml = mail_target(
        &test,
        exim.port,
        "starttls",
        &ca_and_login(&exim, t.dir.path(), PASSWORD),
    );
    let dispatch = Dispatch::start(&t.store, notify_config(&toml));
    // Act
    change_r1(t).await;
    let rows = wait_rows(&t.store, "t1", |r| {
        !r.is_empty() && r.iter().all(|n| n.status == "delivered")
    })
    .await;
    let mails = exim.wait_for(2).await;
    dispatch.stop().await;
    // Assert: one mail, in the mailbox once per recipient, over TLS after a login.
    assert_eq!(rows.len(), 1, "one notification");
    assert_change_mails(&mails, &test, &rows[0]);
    let log = exim.log();
    assert!(
        log.contains("P=esmtpsa") && log.contains(&format!("A=plain:{USER}")),
        "received over TLS with a login (esmtpsa, plain)"
    );
    assert!(!log.contains(PASSWORD), "the password is in exim's log");
}

async fn a_changed_config_arrives_in_the_mailbox_over_implicit_tls(t: &TestStore) {
    // Arrange
    let exim = Exim::start(Some((USER, PASSWORD))).await;
    let toml = mail_target(
        "smtps",
        exim.tls_port,
        "tls",
        &ca_and_login(&exim, t.dir.path(), PASSWORD),
    );
    let dispatch = Dispatch::start(&t.store, notify_config(&toml));
    // Act
    change_r1(t).await;
    let rows = wait_rows(&t.store, "t1", |r| {
        !r.is_empty() && r.iter().all(|n| n.status == "delivered")
    })
    .await;
    let mails = exim.wait_for(2).await;
    dispatch.stop().await;
    // Assert
    assert_change_mails(&mails, "smtps", &rows[0]);
    assert!(exim.log().contains("P=esmtpsa"), "received over TLS");
}

/// Waits until the row has failed at least once; returns its last error.
async fn first_error(t: &TestStore) -> String {
    let rows = wait_rows(&t.store, "t1", |r| r.iter().any(|n| n.attempts >= 1)).await;
    assert_eq!(rows[0].status, "pending", "retried later, not given up");
    rows[0].last_error.clone().unwrap_or_default()
}

async fn a_wrong_smtp_password_leaves_the_mail_pending_with_the_reason(t: &TestStore) {
    // Arrange
    let exim = Exim::start(Some((USER, PASSWORD))).await;
    let wrong = "Not-The-Pa55word";
    let toml = mail_target(
        "badlogin",
        exim.port,
        "starttls",
        &ca_and_login(&exim, t.dir.path(), wrong),
    );
    let dispatch = Dispatch::start(&t.store, notify_config(&toml));
    // Act
    change_r1(t).await;
    let error = first_error(t).await;
    dispatch.stop().await;
    // Assert
    assert!(error.contains("535"), "the server's refusal: {error}");
    assert!(!error.contains(wrong), "the password is in the error");
    assert!(exim.mails().is_empty(), "no mail without a login");
}

async fn a_server_certificate_from_an_untrusted_ca_is_refused_before_the_login(t: &TestStore) {
    // Arrange: the login, but no smtp_ca_file.
    let exim = Exim::start(Some((USER, PASSWORD))).await;
    let file = t.dir.path().join("smtp-password");
    std::fs::write(&file, PASSWORD).expect("write the SMTP password");
    let login = format!(
        "smtp_username = \"{USER}\"\nsmtp_password_file = \"{}\"\n",
        file.display()
    );
    let toml = mail_target("untrusted", exim.port, "starttls", &login);
    let dispatch = Dispatch::start(&t.store, notify_config(&toml));
    // Act
    change_r1(t).await;
    let error = first_error(t).await;
    dispatch.stop().await;
    // Assert
    assert!(
        error.to_lowercase().contains("certificate"),
        "a certificate error: {error}"
    );
    assert!(exim.mails().is_empty(), "no mail to an untrusted server");
    assert!(
        !exim.log().contains("A=plain"),
        "no login to an untrusted server"
    );
}

async fn a_server_that_drips_its_greeting_ends_the_attempt_within_its_bound(t: &TestStore) {
    // Arrange: an SMTP server that sends its greeting a byte every 200 ms,
    // so no single read ever waits long enough for the client's timeout.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                use tokio::io::AsyncWriteExt as _;
                for byte in b"220 slow.example ESMTP ".iter().cycle() {
                    if socket.write_all(&[*byte]).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
            });
        }
    });
    let toml = format!(
        "{}[[notifications]]\nname = \"mail\"\nkind = \"email\"\nevents = [\"config.changed\"]\n\
         to = [\"noc@example.com\"]\nfrom = \"cfgsnap@example.com\"\nsmtp_host = \"127.0.0.1\"\n\
         smtp_port = {port}\nsmtp_tls = \"none\"\n",
        notify_section("timeout = \"1s\"")
    );
    let dispatch = Dispatch::start(&t.store, notify_config(&toml));
    // Act
    change_r1(t).await;
    let error = first_error(t).await;
    dispatch.stop().await;
    server.abort();
    // Assert: the attempt ended at twice the timeout, and is retried.
    assert!(
        error.contains("no complete answer within 2s"),
        "the attempt's bound: {error}"
    );
}

on_both_stacks!(with TestStore;
    a_changed_config_arrives_in_the_mailbox_over_starttls_with_login,
    a_changed_config_arrives_in_the_mailbox_over_implicit_tls,
    a_wrong_smtp_password_leaves_the_mail_pending_with_the_reason,
    a_server_certificate_from_an_untrusted_ca_is_refused_before_the_login,
    a_server_that_drips_its_greeting_ends_the_attempt_within_its_bound,
);
