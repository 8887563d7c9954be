//! Errors as the ingester sees them: an event that can never be stored is
//! `InvalidSnapshot` (terminated), and only passing conditions are transient
//! (nak'ed and retried).

use cfgsnap::store::Error;

use super::{TestStore, config, days_ago, snapshot};

on_both_stacks!(
    with TestStore;
    an_event_with_a_nul_character_in_a_text_field_is_invalid,
    a_statement_the_database_refuses_is_not_a_transient_error,
);

async fn an_event_with_a_nul_character_in_a_text_field_is_invalid(t: &TestStore) {
    // Arrange: PostgreSQL cannot store NUL in TEXT, so such an event would
    // fail on every delivery.
    let good = snapshot("t1", "r1", &config("a"), days_ago(1));
    let mut version = good.clone();
    version.routeros_version = Some("7.15\0".to_owned());
    let mut poller = good.clone();
    poller.poller_id = Some("poller\0".to_owned());
    let mut warning = good.clone();
    warning.warnings = vec!["partial export: #error exporting /ip socks\0".to_owned()];

    for (case, event) in [
        ("version", version),
        ("poller", poller),
        ("warning", warning),
    ] {
        // Act
        let result = t.store.ingest(&event).await;

        // Assert
        assert!(
            matches!(result, Err(Error::InvalidSnapshot(_))),
            "{case}: expected InvalidSnapshot, got {:?}",
            result.map_err(|e| e.to_string())
        );
    }
    assert!(
        t.snapshot_ids("t1", "r1").await.is_empty(),
        "nothing stored"
    );
}

async fn a_statement_the_database_refuses_is_not_a_transient_error(t: &TestStore) {
    // Arrange: a NUL in a bound text parameter, which PostgreSQL refuses
    // with 22021 (character_not_in_repertoire) and SQLite just compares.
    let tenant = "t1\0";

    // Act
    let device = t.store.get_device(tenant, "r1").await;
    let snapshots = t.store.list_snapshots(tenant, "r1", 10, None).await;

    // Assert: whatever the outcome, retrying cannot change it.
    for (query, transient) in [
        ("get_device", device.is_err_and(|e| e.is_transient())),
        ("list_snapshots", snapshots.is_err_and(|e| e.is_transient())),
    ] {
        assert!(!transient, "{query}: a refused statement is not transient");
    }
}
