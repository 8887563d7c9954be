//! Unit tests of the loader and of `validate`: every kind of mistake is
//! reported with its key path, all at once, without secret values.

use super::*;

const BASE: &str = r#"
[[credentials]]
name = "lab"
username = "admin"
password_env = "PATH"

[[tenants]]
id = "t1"

[[devices]]
id = "r1"
tenant = "t1"
host = "127.0.0.1"
credentials = "lab"
"#;

fn problems(toml: &str) -> Vec<String> {
    match Settings::from_toml(toml) {
        Err(e) => e.problems,
        Ok(s) => match s.validate() {
            Err(e) => e.problems,
            Ok(_) => Vec::new(),
        },
    }
}

fn has(problems: &[String], prefix: &str, needle: &str) -> bool {
    problems
        .iter()
        .any(|p| p.starts_with(prefix) && p.contains(needle))
}

#[test]
fn the_shipped_config_validates_with_a_warning_for_its_inline_password() {
    // Arrange
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml");

    // Act
    let fleet = Settings::load(&path)
        .expect("shipped config.toml loads")
        .validate()
        .expect("shipped config.toml validates");

    // Assert
    assert_eq!(fleet.devices.len(), 3);
    assert_eq!(fleet.tenants.len(), 1);
    assert!(fleet.warnings.iter().any(|w| w.contains("inline password")));
}

#[test]
fn worker_threads_takes_zero_to_the_limit_and_refuses_the_rest_with_its_key() {
    for (value, problem) in [
        ("0", None),
        ("4", None),
        ("1024", None),
        ("1025", Some("must be at most 1024")),
        ("-1", Some("")),
        ("\"two\"", Some("")),
    ] {
        // Act
        let toml = format!("[server]\nworker_threads = {value}\n{BASE}");
        let p = problems(&toml);

        // Assert
        // Refused on load itself: `main` sizes the runtime before it validates.
        assert_eq!(
            Settings::from_toml(&toml).is_ok(),
            problem.is_none(),
            "{value}"
        );
        match problem {
            None => assert!(p.is_empty(), "{value}: {p:?}"),
            Some(needle) => assert!(has(&p, "server.worker_threads", needle), "{value}: {p:?}"),
        }
    }
}

#[test]
fn a_minimal_config_gets_the_documented_defaults() {
    let settings = Settings::from_toml(BASE).expect("loads");
    let fleet = settings.validate().expect("validates");
    assert_eq!(settings.backup.interval, Duration::from_secs(6 * 3600));
    assert_eq!(settings.backup.max_config_bytes, 33_554_432);
    assert_eq!(settings.server.worker_threads, 1);
    assert_eq!(settings.bus.url, "local");
    assert_eq!(settings.store.url, "sqlite://data/cfgsnap.db");
    assert_eq!(settings.auth.trigger_rate_per_minute, 10);
    assert_eq!(
        settings.auth.session_idle_timeout,
        Duration::from_secs(3600)
    );
    assert_eq!(
        settings.auth.session_absolute_timeout,
        Duration::from_secs(12 * 3600)
    );
    assert_eq!(settings.auth.access_token_ttl, Duration::from_secs(15 * 60));
    assert_eq!(
        settings.auth.reveal_secrets_role,
        crate::account::Role::Admin
    );
    assert!(
        !settings.ui.insecure_cookies,
        "cookies are Secure unless asked"
    );
    assert_eq!(fleet.devices[0].port, 22);
    assert!(fleet.devices[0].enabled);
    assert_eq!(fleet.devices[0].name, "r1");
}

#[test]
fn unknown_keys_are_all_reported_with_their_paths() {
    // Arrange
    let toml = format!(
        "{BASE}\nhostname = \"x\"\n[backup]\nintervall = \"1h\"\n[server]\nlisten = \"127.0.0.1:1\"\nport = 3\n"
    )
    .replace("host = \"127.0.0.1\"", "host = \"127.0.0.1\"\nprot = 22");

    // Act
    let p = problems(&toml);

    // Assert
    assert!(has(&p, "backup.intervall", "unknown key"), "{p:?}");
    assert!(has(&p, "server.port", "unknown key"), "{p:?}");
    assert!(has(&p, "devices[0].prot", "unknown key"), "{p:?}");
}

#[test]
fn every_semantic_mistake_is_reported_at_once() {
    // Arrange
    let toml = r#"
[store]
url = "mysql://db"
[bus]
url = "amqp://x"
[backup]
interval = "0s"
job_timelimit = "5s"
max_concurrent = 0
[[credentials]]
name = "two-sources"
username = "u"
password = "p"
password_env = "PATH"
[[credentials]]
name = "unset-env"
username = "u"
password_env = "CFGSNAP_TEST_VARIABLE_THAT_IS_NEVER_SET"
[[credentials]]
name = "missing-key"
username = "u"
key_file = "/nonexistent/id_ed25519"
[[tenants]]
id = "t1"
[[tenants]]
id = "t1"
[[devices]]
id = "bad.id"
tenant = "t1"
host = "h"
credentials = "unset-env"
[[devices]]
id = "r2"
tenant = "nobody"
host = "h"
credentials = "nope"
[[devices]]
id = "r2"
tenant = "t1"
host = "has space"
port = 0
credentials = "two-sources"
"#;

    // Act
    let p = problems(toml);

    // Assert
    for (prefix, needle) in [
        ("store.url", "must start with"),
        ("bus.url", "must start with"),
        ("backup.interval", "greater than zero"),
        ("backup.job_timelimit", "at least"),
        ("backup.max_concurrent", "at least 1"),
        ("credentials[0]", "only one of"),
        ("credentials[1].password_env", "is not set"),
        ("credentials[2].key_file", "/nonexistent/id_ed25519"),
        ("tenants[1].id", "duplicate"),
        ("devices[0].id", "may only contain"),
        ("devices[1].tenant", "no [[tenants]]"),
        (
            "devices[1].credentials",
            "no [[credentials]] named \"nope\"",
        ),
        ("devices[2].id", "duplicate device id"),
        ("devices[2].host", "host name"),
        ("devices[2].port", "between 1 and 65535"),
    ] {
        assert!(
            has(&p, prefix, needle),
            "missing {prefix}: {needle} in {p:?}"
        );
    }
}

#[test]
fn unknown_keys_and_semantic_mistakes_are_reported_together() {
    // Arrange
    let toml =
        format!("{BASE}\n[backup]\nintervall = \"1h\"\n").replace("id = \"r1\"", "id = \"r 1\"");

    // Act
    let p = problems(&toml);

    // Assert
    assert!(has(&p, "backup.intervall", "unknown key"), "{p:?}");
    assert!(has(&p, "devices[0].id", "may only contain"), "{p:?}");
}

#[test]
fn a_wrong_type_is_reported_with_its_path() {
    let toml = BASE.replace(
        "host = \"127.0.0.1\"",
        "host = \"127.0.0.1\"\nport = \"ssh\"",
    );
    let p = problems(&toml);
    assert!(has(&p, "devices[0].port", ""), "{p:?}");
}

#[test]
fn a_malformed_duration_is_reported_with_its_path() {
    let p = problems(&format!("{BASE}\n[backup]\ninterval = \"soon\"\n"));
    assert!(has(&p, "backup.interval", ""), "{p:?}");
}

#[test]
fn syntax_errors_are_reported_not_panicked_on() {
    for bad in [
        "[[devices]\nid=",
        "= =",
        "[backup]\ninterval = \"1h\"\n[backup]\n",
        "\u{0}",
    ] {
        let p = problems(bad);
        assert!(!p.is_empty(), "{bad:?} must be rejected");
    }
}

#[test]
fn secrets_from_files_are_read_and_never_echoed_in_problems() {
    // Arrange
    let dir = tempfile::tempdir().expect("tempdir");
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "s3cret-marker\n").expect("write");
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").expect("write");
    let ok = BASE.replace(
        "password_env = \"PATH\"",
        &format!("password_file = {:?}", pw),
    );
    let bad = format!(
        "{ok}\n[[credentials]]\nname = \"e\"\nusername = \"u\"\npassword_file = {empty:?}\n"
    );

    // Act
    let fleet = Settings::from_toml(&ok)
        .expect("loads")
        .validate()
        .expect("validates");
    let err = Settings::from_toml(&bad)
        .expect("loads")
        .validate()
        .expect_err("empty file");

    // Assert
    match &fleet.devices[0].credentials.auth {
        crate::backup::Auth::Password(p) => {
            assert!(secrecy::ExposeSecret::expose_secret(p) == "s3cret-marker")
        }
        other => panic!("expected a password, got {other:?}"),
    }
    assert!(!format!("{fleet:?}").contains("s3cret-marker"));
    assert!(has(
        &err.problems,
        "credentials[1].password_file",
        "is empty"
    ));
}

#[test]
fn an_inline_password_does_not_appear_in_debug_output() {
    let toml = BASE.replace("password_env = \"PATH\"", "password = \"inline-marker\"");
    let settings = Settings::from_toml(&toml).expect("loads");
    let fleet = settings.validate().expect("validates");
    assert!(!format!("{settings:?}").contains("inline-marker"));
    assert!(!format!("{fleet:?}").contains("inline-marker"));
}

#[test]
fn the_production_example_has_no_unknown_keys_or_type_errors() {
    // Its secrets come from the environment, so only loading is checked here.
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.production.toml");
    let text = std::fs::read_to_string(path).expect("config.production.toml");
    let settings = Settings::from_toml(&text).expect("loads without unknown keys");
    assert!(settings.store.url.starts_with("postgres://"));
    assert!(settings.bus.url.starts_with("nats://"));
    assert!(settings.lock.url.starts_with("redis://"));
}

#[test]
fn an_endless_secret_file_is_refused_without_reading_it_all() {
    let toml = BASE.replace("password_env = \"PATH\"", "password_file = \"/dev/zero\"");
    let p = problems(&toml);
    assert!(
        has(&p, "credentials[0].password_file", "larger than 64 KiB"),
        "{p:?}"
    );
}

#[test]
fn an_unknown_reveal_role_is_reported_with_the_roles() {
    // Arrange
    let toml = format!("{BASE}\n[auth]\nreveal_secrets_role = \"root\"\n");

    // Act
    let problems = problems(&toml);

    // Assert
    assert!(
        has(&problems, "auth.reveal_secrets_role", "viewer"),
        "{problems:?}"
    );
}

#[test]
fn zero_session_timeouts_and_attempt_limits_are_refused() {
    let toml = format!(
        "{BASE}\n[auth]\nsession_idle_timeout = \"0s\"\naccess_token_ttl = \"0s\"\n\
         login_attempts_per_minute = 0\n"
    );
    let problems = problems(&toml);
    for key in [
        "auth.session_idle_timeout",
        "auth.access_token_ttl",
        "auth.login_attempts_per_minute",
    ] {
        assert!(has(&problems, key, ""), "{key} not reported: {problems:?}");
    }
}
