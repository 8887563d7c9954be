//! Diffs and change summaries of real exports (tests/corpus/routeros), edited
//! the way an operator would: a rule added, an address changed, a rule removed.

use cfgsnap::backup::normalize::sha256_hex;
use cfgsnap::store::history::ChangeSummary;
use cfgsnap::store::snapshot::Ingested;

use super::{TestStore, apply_patch, corpus, days_ago, snapshot};

/// A v7 export with `/ip address` and `/ip firewall filter` sections.
const EXPORT: &str = "kaihendry-mikrotik-configs__praze.rsc";
const ADDED_RULE: &str = "add action=drop chain=forward comment=cfgsnap-it src-address=192.0.2.66";

on_both_stacks!(
    with TestStore;
    an_added_firewall_rule_shows_in_the_history_and_in_the_stored_diff,
    a_diff_against_another_snapshot_is_computed_on_demand,
    the_first_snapshot_diffs_against_an_empty_predecessor,
    a_changed_address_and_a_removed_rule_are_summarized_as_modified_and_removed,
    a_100k_line_config_with_one_changed_line_is_stored_and_summarized,
);

/// The index of the menu line `menu` in `lines`.
fn menu_index(lines: &[&str], menu: &str) -> usize {
    lines
        .iter()
        .position(|l| *l == menu)
        .unwrap_or_else(|| panic!("{EXPORT} has a {menu} section"))
}

fn join(lines: &[&str]) -> String {
    lines.iter().flat_map(|l| [*l, "\n"]).collect()
}

/// `text` with [`ADDED_RULE`] as the first rule of `/ip firewall filter`.
fn with_added_rule(text: &str) -> String {
    let mut lines: Vec<&str> = text.lines().collect();
    let at = menu_index(&lines, "/ip firewall filter") + 1;
    lines.insert(at, ADDED_RULE);
    join(&lines)
}

/// `text` with its first `/ip address` entry disabled.
fn with_modified_address(text: &str) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let at = menu_index(&text.lines().collect::<Vec<_>>(), "/ip address") + 1;
    assert!(
        lines[at].starts_with("add "),
        "an address entry follows /ip address"
    );
    lines[at] = lines[at].replacen("add ", "add disabled=yes ", 1);
    lines.iter().flat_map(|l| [l.as_str(), "\n"]).collect()
}

/// `text` without the first `/ip firewall filter` rule, and the number of
/// physical lines that rule spans (continuations).
fn without_first_filter_rule(text: &str) -> (String, usize) {
    let mut lines: Vec<&str> = text.lines().collect();
    let at = menu_index(&lines, "/ip firewall filter") + 1;
    let mut removed = 0;
    loop {
        let line = lines.remove(at);
        removed += 1;
        if !line.ends_with('\\') {
            break;
        }
    }
    (join(&lines), removed)
}

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

/// Counts the `+` and `-` lines of a unified diff, headers excluded.
fn count_changed(diff: &str) -> (usize, usize) {
    let body = diff
        .lines()
        .filter(|l| !l.starts_with("+++") && !l.starts_with("---"));
    body.fold((0, 0), |(added, removed), l| match l.as_bytes().first() {
        Some(b'+') => (added + 1, removed),
        Some(b'-') => (added, removed + 1),
        _ => (added, removed),
    })
}

async fn an_added_firewall_rule_shows_in_the_history_and_in_the_stored_diff(t: &TestStore) {
    // Arrange
    let base = corpus(EXPORT);
    let changed = with_added_rule(&base);
    t.ingest_new(&snapshot("t1", "r1", &base, days_ago(2)))
        .await;

    // Act
    let ingested = t.ingest(&snapshot("t1", "r1", &changed, days_ago(1))).await;

    // Assert
    let Ingested::Created {
        snapshot_id: id,
        lines_added: 1,
        lines_removed: 0,
    } = ingested
    else {
        panic!("expected Created with 1 line added, got {ingested:?}");
    };
    let history = t
        .store
        .config_history("t1", "r1", 50, None)
        .await
        .expect("history");
    assert_eq!(history.len(), 1, "the first snapshot is no change");
    assert_eq!(history[0].snapshot_id, id);
    assert_eq!((history[0].lines_added, history[0].lines_removed), (1, 0));
    assert_eq!(
        rows(&history[0].changes),
        [("ip/firewall/filter", "Added 1 firewall filter rule", 1, 0)]
    );
    let diff = t
        .store
        .snapshot_diff("t1", "r1", id, None)
        .await
        .expect("diff");
    assert!(
        diff.lines().any(|l| l == format!("+{ADDED_RULE}")),
        "the diff adds the rule"
    );
    assert_eq!(count_changed(&diff), (1, 0));
    assert_eq!(
        sha256_hex(&apply_patch(&base, &diff)),
        sha256_hex(&changed),
        "diff applies"
    );
    let events = t
        .store
        .list_audit("t1", 50, None)
        .await
        .expect("list_audit");
    let generated = events
        .iter()
        .find(|e| e.action.as_str() == "config_diff_generated")
        .expect("config_diff_generated audited");
    assert_eq!(
        generated.detail_json()["changes"][0],
        "Added 1 firewall filter rule"
    );
}

async fn a_diff_against_another_snapshot_is_computed_on_demand(t: &TestStore) {
    // Arrange
    let base = corpus(EXPORT);
    let second = with_added_rule(&base);
    let third = with_modified_address(&second);
    let first_id = t
        .ingest_new(&snapshot("t1", "r1", &base, days_ago(3)))
        .await;
    t.ingest_new(&snapshot("t1", "r1", &second, days_ago(2)))
        .await;
    let third_id = t
        .ingest_new(&snapshot("t1", "r1", &third, days_ago(1)))
        .await;

    // Act
    let forward = t
        .store
        .snapshot_diff("t1", "r1", third_id, Some(first_id))
        .await;
    let backward = t
        .store
        .snapshot_diff("t1", "r1", first_id, Some(third_id))
        .await;
    let itself = t
        .store
        .snapshot_diff("t1", "r1", third_id, Some(third_id))
        .await;

    // Assert
    let forward = forward.expect("diff against the first");
    assert_eq!(count_changed(&forward), (2, 1));
    assert_eq!(
        sha256_hex(&apply_patch(&base, &forward)),
        sha256_hex(&third)
    );
    let backward = backward.expect("diff against the third");
    assert_eq!(
        sha256_hex(&apply_patch(&third, &backward)),
        sha256_hex(&base)
    );
    assert!(
        itself.expect("diff against itself").is_empty(),
        "no change, no diff"
    );
}

async fn the_first_snapshot_diffs_against_an_empty_predecessor(t: &TestStore) {
    // Arrange
    let base = corpus(EXPORT);
    let id = t
        .ingest_new(&snapshot("t1", "r1", &base, days_ago(1)))
        .await;

    // Act
    let diff = t
        .store
        .snapshot_diff("t1", "r1", id, None)
        .await
        .expect("diff");

    // Assert
    assert!(diff.starts_with("--- /dev/null\n"), "against nothing");
    assert_eq!(count_changed(&diff), (base.lines().count(), 0));
    assert_eq!(sha256_hex(&apply_patch("", &diff)), sha256_hex(&base));
}

async fn a_changed_address_and_a_removed_rule_are_summarized_as_modified_and_removed(
    t: &TestStore,
) {
    // Arrange
    let base = corpus(EXPORT);
    let (changed, rule_lines) = without_first_filter_rule(&with_modified_address(&base));
    assert!(rule_lines > 1, "the removed rule spans continuation lines");
    t.ingest_new(&snapshot("t1", "r1", &base, days_ago(2)))
        .await;

    // Act
    let id = t
        .ingest_new(&snapshot("t1", "r1", &changed, days_ago(1)))
        .await;

    // Assert: the rule counts once though it spans several physical lines.
    let history = t
        .store
        .config_history("t1", "r1", 50, None)
        .await
        .expect("history");
    let [entry] = &history[..] else {
        panic!("one change expected, got {}", history.len());
    };
    assert_eq!(entry.snapshot_id, id);
    assert_eq!(
        (entry.lines_added, entry.lines_removed),
        (1, 1 + rule_lines as i64)
    );
    // Summaries come from the semantic diff: the address is named (by its
    // address and interface) with the property that changed.
    let [address, filter] = &entry.changes[..] else {
        panic!("two summaries expected, got {}", entry.changes.len());
    };
    assert_eq!(
        (
            address.component.as_str(),
            address.lines_added,
            address.lines_removed
        ),
        ("ip/address", 1, 1)
    );
    assert!(
        address.summary.starts_with("Modified ") && address.summary.ends_with(": disabled"),
        "the address summary names the item and the property"
    );
    assert_eq!(
        rows(std::slice::from_ref(filter)),
        [("ip/firewall/filter", "Removed 1 firewall filter rule", 0, 1)]
    );
    let diff = t
        .store
        .snapshot_diff("t1", "r1", id, None)
        .await
        .expect("diff");
    assert_eq!(sha256_hex(&apply_patch(&base, &diff)), sha256_hex(&changed));
}

async fn a_100k_line_config_with_one_changed_line_is_stored_and_summarized(t: &TestStore) {
    // Arrange
    let lines = 100_000;
    let entry = |i: usize| {
        format!(
            "add address=10.{}.{}.{} comment=entry-{i} list=block-{}\n",
            i / 65536,
            i / 256 % 256,
            i % 256,
            i % 7
        )
    };
    let mut big = String::from("/ip firewall address-list\n");
    (0..lines).for_each(|i| big.push_str(&entry(i)));
    let changed = big.replacen(
        &entry(50_000),
        &entry(50_000).replace("block-", "allow-"),
        1,
    );
    assert_ne!(big, changed);
    t.ingest_new(&snapshot("t1", "r1", &big, days_ago(2))).await;

    // Act
    let ingested = t.ingest(&snapshot("t1", "r1", &changed, days_ago(1))).await;

    // Assert
    let Ingested::Created {
        snapshot_id: id,
        lines_added: 1,
        lines_removed: 1,
    } = ingested
    else {
        panic!("expected Created with one line changed, got {ingested:?}");
    };
    let meta = t
        .store
        .get_snapshot("t1", "r1", id)
        .await
        .expect("get_snapshot");
    assert_eq!(
        (meta.line_count, meta.size_bytes),
        (lines as i64 + 1, changed.len() as i64)
    );
    let history = t
        .store
        .config_history("t1", "r1", 50, None)
        .await
        .expect("history");
    assert_eq!(
        rows(&history[0].changes),
        [(
            "ip/firewall/address-list",
            "Modified allow-6 10.0.195.80: list",
            1,
            1
        )],
        "the entry is matched by content although its list, part of its key, changed"
    );
    let content = t
        .store
        .snapshot_content("t1", "r1", id)
        .await
        .expect("content");
    assert_eq!(sha256_hex(&content), sha256_hex(&changed));
    let diff = t
        .store
        .snapshot_diff("t1", "r1", id, None)
        .await
        .expect("diff");
    assert_eq!(count_changed(&diff), (1, 1));
}
