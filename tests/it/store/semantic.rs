//! Change summaries derived from the semantic diff at ingest, on both
//! stacks: two versions collected from the simulator over SSH by the real
//! executor, and an operator's edit of a real corpus export. Messages print
//! components and summaries only, never export text.

use cfgsnap::id::DeviceId;
use cfgsnap::store::history::ChangeSummary;
use cfgsnap::store::snapshot::NewSnapshot;

use super::{TestStore, corpus, days_ago, snapshot};
use crate::helpers::{ScratchSshExecutor, corpus_device, sim_device, start_simulator, test_limits};

/// A v7 export with `/ip address` and `/ip firewall filter` sections.
const EXPORT: &str = "kaihendry-mikrotik-configs__praze.rsc";

on_both_stacks!(
    with TestStore;
    two_versions_collected_from_the_simulator_are_summarized_item_by_item,
    an_edited_property_of_a_corpus_export_is_summarized_with_its_item,
);

fn rows(changes: &[ChangeSummary]) -> Vec<(&str, &str, i64, i64)> {
    changes
        .iter()
        .map(|c| {
            (
                c.component.as_str(),
                c.summary.as_str(),
                c.lines_added,
                c.lines_removed,
            )
        })
        .collect()
}

async fn two_versions_collected_from_the_simulator_are_summarized_item_by_item(t: &TestStore) {
    // Arrange: every export of the device replaces its `sim-change` entry.
    let sim = start_simulator(vec![corpus_device(EXPORT).with_change_every(1)]).await;
    let executor = ScratchSshExecutor::new(test_limits()).await;
    let device = sim_device(&sim, 0);
    let r1 = DeviceId::parse("r1").expect("valid device id");

    // Act
    for _ in 0..2 {
        let outcome = executor.run(&device).await.expect("backup succeeds");
        let mut snap = NewSnapshot::from_outcome(&outcome, None);
        snap.device_id = r1.clone();
        t.ingest_new(&snap).await;
    }

    // Assert
    let history = t
        .store
        .config_history("t1", "r1", 50, None)
        .await
        .expect("history");
    let [entry] = &history[..] else {
        panic!("one change expected, got {}", history.len());
    };
    assert_eq!(
        rows(&entry.changes),
        [
            (
                "ip/firewall/address-list",
                "Added 1 firewall address-list rule",
                1,
                0
            ),
            (
                "ip/firewall/address-list",
                "Removed 1 firewall address-list rule",
                0,
                1
            ),
        ]
    );
    sim.shutdown().await;
}

async fn an_edited_property_of_a_corpus_export_is_summarized_with_its_item(t: &TestStore) {
    // Arrange: the first `/ip address` entry is disabled.
    let base = corpus(EXPORT);
    let mut lines: Vec<String> = base.lines().map(str::to_owned).collect();
    let address = lines
        .iter()
        .position(|l| l == "/ip address")
        .expect("an /ip address section")
        + 1;
    assert!(lines[address].starts_with("add "), "an address follows");
    lines[address] = lines[address].replacen("add ", "add disabled=yes ", 1);
    let changed: String = lines.iter().flat_map(|l| [l.as_str(), "\n"]).collect();
    t.ingest_new(&snapshot("t1", "r1", &base, days_ago(2)))
        .await;

    // Act
    t.ingest_new(&snapshot("t1", "r1", &changed, days_ago(1)))
        .await;

    // Assert
    let history = t
        .store
        .config_history("t1", "r1", 50, None)
        .await
        .expect("history");
    let [change] = &history[0].changes[..] else {
        panic!("one summary expected, got {}", history[0].changes.len());
    };
    assert_eq!(change.component, "ip/address");
    assert!(
        change.summary.starts_with("Modified ") && change.summary.ends_with(": disabled"),
        "the summary names the item and the property"
    );
    assert_eq!((change.lines_added, change.lines_removed), (1, 1));
}
