//! Property tests of the loader on arbitrary and TOML-ish text: it never
//! panics, and a configuration it refuses comes with at least one problem,
//! each a non-empty line. File and environment sources named by generated
//! keys point nowhere (`/nonexistent/…`, `CFGSNAP_PROP_…`), so the
//! properties read no real file.

use proptest::prelude::*;

use super::*;

/// A TOML value of any type, some of them the right one for some key.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        "\"[a-z0-9 ./:_-]{0,20}\"".prop_map(|s| s),
        "\"/nonexistent/[a-z]{1,8}\"".prop_map(|s| s),
        "\"CFGSNAP_PROP_[A-Z]{1,8}\"".prop_map(|s| s),
        "\"[0-9]{1,4}(ms|s|m|h|d|x)?\"".prop_map(|s| s),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<bool>().prop_map(|b| b.to_string()),
        Just("1.5".to_owned()),
        Just("[]".to_owned()),
        Just("[1, \"a\"]".to_owned()),
        Just("{ a = 1 }".to_owned()),
        Just("\"nats://127.0.0.1:4222\"".to_owned()),
        Just("\"sqlite://data/x.db\"".to_owned()),
        Just("\"postgres://u@h/db\"".to_owned()),
        Just("\"127.0.0.1:0\"".to_owned()),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "listen",
        "shutdown_timeout",
        "worker_threads",
        "api",
        "scheduler",
        "node_id",
        "jwt_secret_env",
        "jwt_secret_file",
        "issuer",
        "trigger_rate_per_minute",
        "session_idle_timeout",
        "access_token_ttl",
        "login_attempts_per_minute",
        "reveal_secrets_role",
        "insecure_cookies",
        "url",
        "encryption_key_env",
        "encryption_key_file",
        "retention_days",
        "keep_min",
        "trigger_timeout",
        "interval",
        "jitter",
        "max_concurrent",
        "max_config_bytes",
        "command",
        "name",
        "username",
        "password",
        "password_env",
        "password_file",
        "key_file",
        "id",
        "tenant",
        "host",
        "port",
        "credentials",
        "enabled",
        "level",
        "format",
        "bogus",
        "a.b",
        "\"quoted key\"",
    ])
    .prop_map(str::to_owned)
}

fn table() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "[server]",
        "[roles]",
        "[auth]",
        "[store]",
        "[bus]",
        "[lock]",
        "[backup]",
        "[log]",
        "[[credentials]]",
        "[[tenants]]",
        "[[devices]]",
        "[nonsense]",
        "[[server]]",
        "[devices]",
    ])
    .prop_map(str::to_owned)
}

/// Lines of TOML-ish text: tables, assignments, and broken lines.
fn toml_ish() -> impl Strategy<Value = String> {
    let line = prop_oneof![
        2 => table(),
        6 => (key(), value()).prop_map(|(k, v)| format!("{k} = {v}")),
        1 => "[\\[\\]a-z =\"'.#{}0-9\\\\]{0,30}",
        1 => "\\PC{0,30}",
    ];
    prop_oneof![
        4 => prop::collection::vec(line, 0..40).prop_map(|l| l.join("\n")),
        1 => any::<String>(),
    ]
}

/// Loads and validates `text` as the service would, the problems on failure.
fn load(text: &str) -> Result<Fleet, ConfigError> {
    Settings::from_toml(text).and_then(|s| s.validate())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_toml_ish_text_never_panics_the_loader_and_refusals_name_problems(
        text in toml_ish(),
    ) {
        // Act
        let result = load(&text);

        // Assert
        if let Err(e) = result {
            prop_assert!(!e.problems.is_empty(), "a refusal without a problem");
            prop_assert!(e.problems.iter().all(|p| !p.trim().is_empty()));
            prop_assert!(e.to_string().lines().count() > e.problems.len());
        }
    }

    #[test]
    fn a_wrong_value_in_a_valid_configuration_is_reported_not_panicked_on(
        key in key(),
        value in value(),
        section in 0usize..4,
    ) {
        // Arrange: a valid configuration with one extra key in one section.
        let sections = ["[backup]", "[[credentials]]", "[[tenants]]", "[[devices]]"];
        let base = "[[credentials]]\nname = \"lab\"\nusername = \"admin\"\npassword = \"x\"\n\
                    [[tenants]]\nid = \"t1\"\n\
                    [[devices]]\nid = \"r1\"\ntenant = \"t1\"\nhost = \"127.0.0.1\"\ncredentials = \"lab\"\n";
        let header = sections[section];
        let at = base.find(header).map_or(base.len(), |i| i + header.len() + 1);
        let text = format!("{}{key} = {value}\n{}", &base[..at], &base[at..]);

        // Act
        let result = load(&text);

        // Assert
        if let Err(e) = result {
            prop_assert!(!e.problems.is_empty());
        }
    }
}
