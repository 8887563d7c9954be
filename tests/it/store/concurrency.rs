//! Concurrent ingests for one device: the device row serializes them, so a
//! redelivered event is stored once and the history never forks.

use cfgsnap::backup::normalize::sha256_hex;
use cfgsnap::store::snapshot::{Ingested, NewSnapshot};
use tokio::task::JoinSet;

use super::{TestStore, apply_patch, config, corpus, days_ago, snapshot};

const TASKS: usize = 8;
const ROUNDS: i64 = 3;

on_both_stacks!(
    with TestStore;
    the_same_event_from_eight_tasks_is_created_once,
    eight_different_events_at_once_chain_their_diffs_without_a_fork,
);

/// Ingests every event in its own task, all at once.
async fn ingest_all(t: &TestStore, events: Vec<NewSnapshot>) -> Vec<Ingested> {
    let mut tasks = JoinSet::new();
    for event in events {
        let store = t.store.clone();
        tasks.spawn(async move { store.ingest(&event).await.map_err(|e| e.to_string()) });
    }
    let mut results = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined.expect("ingest task") {
            Ok(ingested) => results.push(ingested),
            Err(e) => panic!("a concurrent ingest failed: {e}"),
        }
    }
    results
}

async fn the_same_event_from_eight_tasks_is_created_once(t: &TestStore) {
    // Arrange: a large predecessor, so each ingest spends a while diffing
    // against it between reading the newest snapshot and inserting; a few
    // rounds, as a lost race shows only sometimes.
    let base = corpus("defm-mikrobackups__rawconf_anna_latest.rsc");
    let mut expected = vec![
        t.ingest_new(&snapshot("t1", "r1", &base, days_ago(9)))
            .await,
    ];
    for round in 1..=ROUNDS {
        let text = format!("{base}{}", config(&format!("round-{round}")));
        let event = snapshot("t1", "r1", &text, days_ago(9 - round));

        // Act
        let results = ingest_all(t, vec![event; TASKS]).await;

        // Assert
        let created: Vec<i64> = results
            .iter()
            .filter(|r| matches!(r, Ingested::Created { .. }))
            .filter_map(Ingested::snapshot_id)
            .collect();
        let [id] = created[..] else {
            panic!("round {round}: expected exactly one Created, got {results:?}");
        };
        let duplicate = Ingested::Duplicate { snapshot_id: id };
        let duplicates = results.iter().filter(|r| **r == duplicate).count();
        assert_eq!(
            duplicates,
            TASKS - 1,
            "round {round}: the others are duplicates"
        );
        expected.insert(0, id);
    }
    assert_eq!(t.snapshot_ids("t1", "r1").await, expected);
    let actions = t.audit_actions("t1", "r1").await;
    let count = |action: &str| actions.iter().filter(|a| *a == action).count();
    assert_eq!(count("config_snapshot_created"), 1 + ROUNDS as usize);
    assert_eq!(count("config_diff_generated"), ROUNDS as usize);
    assert_eq!(
        count("config_snapshot_skipped_duplicate"),
        ROUNDS as usize * (TASKS - 1)
    );
}

async fn eight_different_events_at_once_chain_their_diffs_without_a_fork(t: &TestStore) {
    // Arrange: one collection time, so arrival order decides and none is stale.
    let at = days_ago(1);
    let texts: Vec<String> = (0..TASKS).map(|i| config(&format!("c{i}"))).collect();
    let events = texts
        .iter()
        .map(|text| snapshot("t1", "r1", text, at))
        .collect();

    // Act
    let results = ingest_all(t, events).await;

    // Assert: all stored, each diff against the snapshot right before it.
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Ingested::Created { .. })),
        "all created: {results:?}"
    );
    let list = t
        .store
        .list_snapshots("t1", "r1", 100, None)
        .await
        .expect("list_snapshots");
    assert_eq!(list.len(), TASKS);
    let chain: Vec<Option<i64>> = list.iter().map(|s| s.previous_snapshot_id).collect();
    let expected: Vec<Option<i64>> = list
        .iter()
        .skip(1)
        .map(|s| Some(s.id))
        .chain([None])
        .collect();
    assert_eq!(
        chain, expected,
        "previous_snapshot_id of each, newest first"
    );
    for pair in list.windows(2) {
        let (new, old) = (&pair[0], &pair[1]);
        let old_text = t
            .store
            .snapshot_content("t1", "r1", old.id)
            .await
            .expect("content");
        let diff = t
            .store
            .snapshot_diff("t1", "r1", new.id, None)
            .await
            .expect("diff");
        assert_eq!(
            sha256_hex(&apply_patch(&old_text, &diff)),
            new.sha256_hash,
            "the stored diff of {} leads from {} to it",
            new.id,
            old.id
        );
    }
    assert_eq!(t.raw_count("snapshot_diff").await, TASKS as i64 - 1);
}
