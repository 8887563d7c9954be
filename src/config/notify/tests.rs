//! The notification settings: every problem at once, secrets resolved.

use super::*;
use crate::config::Settings;

#[test]
fn malformed_notification_settings_report_every_problem_at_once() {
    let toml = r#"
[notify]
concurrency = 0

[[notifications]]
name = "a"
kind = "pager"
events = ["config.changed", "config.exploded"]
devices = ["[unclosed"]
colour = "red"

[[notifications]]
name = "a"
kind = "webhook"
url = "ftp://hooks.example/x"
events = ["backup.failed"]
after_failures = 0

[[notifications]]
name = "mail"
kind = "email"
events = []
to = ["not-an-address"]
smtp_tls = "sometimes"
"#;
    let err = Settings::from_toml(toml).expect_err("invalid");
    let text = err.to_string();
    for expected in [
        "notifications[0].colour: unknown key",
        "notify.concurrency",
        "notifications[0].kind: unknown kind \"pager\"",
        "unknown event \"config.exploded\"",
        "notifications[0].devices: \"[unclosed\" is not a glob",
        "notifications[1].name: \"a\" is used twice",
        "notifications[1].url: must be an http(s) URL",
        "notifications[1]: a webhook needs exactly one of secret_env and secret_file",
        "notifications[1].after_failures",
        "notifications[2].events: name at least one event",
        "\"not-an-address\" is not an email address",
        "notifications[2].from: required",
        "notifications[2].smtp_host: required",
        "notifications[2].smtp_tls: \"sometimes\"",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

#[test]
fn valid_targets_resolve_with_their_secrets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("whsec");
    let old = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let new = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    std::fs::write(&path, format!("{old} {new}\n")).expect("write");
    let toml = format!(
        r#"
[notify]
allow_hosts = ["Hooks.Internal"]
[[notifications]]
name = "hook"
kind = "webhook"
url = "https://hooks.example/x"
events = ["config.changed"]
secret_file = "{}"
devices = ["edge-*"]
[[notifications]]
name = "chat"
kind = "teams"
url = "https://example.webhook.office.com/x"
events = ["backup.failed"]
"#,
        path.display()
    );
    let config = Settings::from_toml(&toml)
        .expect("parses")
        .notify_config()
        .expect("valid");
    assert_eq!(config.options.allow_hosts, ["hooks.internal"]);
    let Endpoint::Webhook { keys, .. } = &config.targets[0].endpoint else {
        panic!("a webhook");
    };
    assert_eq!(keys.len(), 2, "both secrets while rotating");
    assert!(
        !format!("{config:?}").contains("MfKQ9r8G"),
        "no secret in Debug"
    );
    assert!(config.targets[0].devices[0].matches("edge-7"));
    assert_eq!(config.targets[1].after_failures, 3);
}

#[test]
fn an_smtp_ca_file_must_hold_a_certificate_and_needs_tls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key_only = dir.path().join("key.pem");
    std::fs::write(
        &key_only,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .expect("write");
    let target = |n: u8, tls: &str, file: &std::path::Path| {
        format!(
            "[[notifications]]\nname = \"m{n}\"\nkind = \"email\"\nevents = [\"config.changed\"]\n\
             to = [\"noc@example.com\"]\nfrom = \"cfgsnap@example.com\"\nsmtp_host = \"mx.example\"\n\
             smtp_tls = \"{tls}\"\nsmtp_ca_file = \"{}\"\n",
            file.display()
        )
    };
    let toml = [
        target(0, "starttls", &key_only),
        target(1, "none", &key_only),
        target(2, "tls", &dir.path().join("missing.pem")),
    ]
    .concat();
    let text = Settings::from_toml(&toml)
        .expect("parses")
        .notify_config()
        .expect_err("invalid")
        .to_string();
    for expected in [
        "notifications[0].smtp_ca_file: ",
        "holds no PEM certificate",
        "notifications[1].smtp_ca_file: needs smtp_tls",
        "notifications[2].smtp_ca_file: ",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}
