//! Encryption at rest, checked on the bytes the database holds: no plaintext
//! in files or columns, a wrong key is a clear error, tenants have their own
//! keys, and a lost key file is never silently replaced.

use cfgsnap::backup::normalize::sha256_hex;
use cfgsnap::store::Store;
use cfgsnap::store::crypto::MasterKey;

use super::{Stack, TestStore, config, corpus, days_ago, snapshot};

on_both_stacks!(
    with TestStore;
    stored_records_hold_no_plaintext_line_of_the_config,
    a_different_master_key_stops_start_up_with_a_clear_error,
    two_tenants_storing_the_same_text_get_different_ciphertexts,
    a_store_holding_snapshots_refuses_to_start_without_its_key_file,
);

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A corpus export with a marker line unique to this run.
fn marked_export() -> (String, String) {
    let marker = format!(
        "/system identity set name=marker-{:016x}",
        rand::random::<u64>()
    );
    let text = format!(
        "{}{marker}\n",
        corpus("kaihendry-mikrotik-configs__sunny.rsc")
    );
    (text, marker)
}

async fn stored_records_hold_no_plaintext_line_of_the_config(t: &TestStore) {
    // Arrange: two versions, so there is a stored diff holding the marker too.
    let (text, marker) = marked_export();
    let changed = text.replace(
        "/ip firewall filter\n",
        "/ip firewall filter\nadd chain=input\n",
    );
    assert_ne!(text, changed, "the export has a filter section");
    t.ingest_new(&snapshot("t1", "r1", &text, days_ago(2)))
        .await;
    t.ingest_new(&snapshot("t1", "r1", &changed, days_ago(1)))
        .await;
    // Lines long enough not to occur by chance in binary data or the schema.
    let lines: Vec<&str> = changed.lines().filter(|l| l.len() >= 24).collect();
    assert!(lines.len() > 20, "the export has long lines");

    // Act: the bytes at rest.
    let snapshots = t.raw_records("snapshot").await;
    let diffs = t.raw_records("snapshot_diff").await;
    let at_rest: Vec<u8> = match t.stack {
        Stack::Embedded => {
            let db = t.sqlite_file();
            let mut bytes = std::fs::read(&db).expect("database file");
            let mut wal = db.into_os_string();
            wal.push("-wal");
            bytes.extend(std::fs::read(&wal).expect("-wal file (WAL mode)"));
            bytes
        }
        Stack::Served => snapshots
            .iter()
            .chain(&diffs)
            .flat_map(|r| r.2.clone())
            .collect(),
    };

    // Assert: the records are there (their nonces are), their text is not.
    assert_eq!((snapshots.len(), diffs.len()), (2, 1));
    for (id, nonce, _) in snapshots.iter().chain(&diffs) {
        if t.stack == Stack::Embedded {
            assert!(
                contains(&at_rest, nonce),
                "record {id} is in the scanned bytes"
            );
        }
    }
    assert!(
        !contains(&at_rest, marker.as_bytes()),
        "marker line stored in clear"
    );
    let leaked = lines
        .iter()
        .filter(|l| contains(&at_rest, l.as_bytes()))
        .count();
    assert_eq!(leaked, 0, "config lines stored in clear");
    let diff = t
        .store
        .snapshot_diff("t1", "r1", snapshots[1].0, None)
        .await
        .expect("diff");
    assert!(
        diff.contains("+add chain=input"),
        "the stored diff decrypts"
    );
}

async fn a_different_master_key_stops_start_up_with_a_clear_error(t: &TestStore) {
    // Arrange
    let first = t
        .ingest_new(&snapshot("t1", "r1", &config("a"), days_ago(2)))
        .await;
    let second = t
        .ingest_new(&snapshot("t1", "r1", &config("b"), days_ago(1)))
        .await;
    let other_key = t.dir.path().join("other.key");
    MasterKey::load_or_generate(&other_key).expect("another key file");

    // Act
    let reopened = Store::connect(&t.settings_with_key_file(&other_key)).await;

    // Assert: refused at start-up, not garbage later, and nothing changed.
    let err = reopened.expect_err("a store must not open with a key that cannot read its data");
    assert!(
        format!("{err:#}").contains("master key")
            || format!("{:?}", anyhow::Error::new(err)).contains("master key"),
        "the error must name the master key"
    );
    assert_eq!(
        t.snapshot_ids("t1", "r1").await,
        [second, first],
        "nothing stored"
    );
}

async fn two_tenants_storing_the_same_text_get_different_ciphertexts(t: &TestStore) {
    // Arrange
    let text = config("shared");

    // Act
    let mine = t
        .ingest_new(&snapshot("t1", "r1", &text, days_ago(1)))
        .await;
    let theirs = t
        .ingest_new(&snapshot("t2", "x1", &text, days_ago(1)))
        .await;

    // Assert
    let records = t.raw_records("snapshot").await;
    let content = |id: i64| {
        let record = records.iter().find(|r| r.0 == id).expect("raw record");
        record.2.clone()
    };
    assert_ne!(
        content(mine),
        content(theirs),
        "same ciphertext for two tenants"
    );
    for (tenant, device, id) in [("t1", "r1", mine), ("t2", "x1", theirs)] {
        let opened = t
            .store
            .snapshot_content(tenant, device, id)
            .await
            .expect("content");
        assert_eq!(
            sha256_hex(&opened),
            sha256_hex(&text),
            "{tenant} reads its text"
        );
    }
}

async fn a_store_holding_snapshots_refuses_to_start_without_its_key_file(t: &TestStore) {
    // Arrange
    assert!(
        t.key_file().exists(),
        "a fresh store generates its key file"
    );
    t.ingest_new(&snapshot("t1", "r1", &config("a"), days_ago(1)))
        .await;
    std::fs::remove_file(t.key_file()).expect("remove the key file");

    // Act
    let result = Store::connect(&t.settings).await;

    // Assert
    let error = match result {
        Ok(_) => panic!("the store started without its key"),
        Err(e) => e.to_string(),
    };
    assert!(
        error.contains("missing"),
        "the error says the key is missing: {error}"
    );
    assert!(!t.key_file().exists(), "no new key replaces the lost one");
}
