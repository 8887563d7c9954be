//! Tests of `changes` on whole exports: edits of the real exports in
//! `tests/corpus/routeros/` (which hold real-looking secrets: messages print
//! counts and summaries only), the verbose and compact exports of one device,
//! a generated 100k-line config and a duplicate-heavy pair.

use std::time::{Duration, Instant};

use super::tests::{DEADLINE, apply_patch, corpus, rows};
use super::*;

/// Replaces `from` by `to` in the continuation line `offset` lines below the
/// only line starting with `anchor`, keeping the line endings (LF or CRLF).
fn edit_below(text: &str, anchor: &str, offset: usize, from: &str, to: &str) -> String {
    let mut lines: Vec<String> = text.split_inclusive('\n').map(str::to_owned).collect();
    let starts: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].starts_with(anchor))
        .collect();
    assert!(starts.len() == 1, "edit anchor must start exactly one line");
    let line = &mut lines[starts[0] + offset];
    assert!(
        line.starts_with("    ") && line.contains(from),
        "corpus layout changed"
    );
    *line = line.replacen(from, to, 1);
    lines.concat()
}

/// Replaces the only occurrence of `from` in `text`.
fn replace_once(text: &str, from: &str, to: &str) -> String {
    let found = text.matches(from).count();
    assert!(found == 1, "edit anchor found {found} times");
    text.replacen(from, to, 1)
}

#[test]
fn diff_of_an_edited_corpus_export_reproduces_the_new_export() {
    // Arrange
    let old = corpus("pancho-mk__respaldo.rsc");
    let new = replace_once(&old, "# model = 951Ui-2HnD\n", "").replace("=100Mbps", "=1Gbps");

    // Act
    let diff = diff(&old, &new, "old", "new", DEADLINE);

    // Assert
    assert!(
        apply_patch(&old, &diff.text) == new,
        "patch does not give the new export"
    );
    let count = |sign: char| {
        diff.text
            .lines()
            .skip(2)
            .filter(|l| l.starts_with(sign))
            .count()
    };
    assert_eq!(
        (diff.lines_added as usize, diff.lines_removed as usize),
        (count('+'), count('-'))
    );
}

#[test]
fn adding_a_firewall_filter_rule_is_one_added_firewall_filter_rule() {
    // Arrange
    let old = corpus("sarmadzahoor920-nse-exercise__chr.rsc");
    let rule = "add action=drop chain=input src-address=203.0.113.9 \\\n    comment=test\n";
    let new = replace_once(
        &old,
        "/ip firewall filter\n",
        &format!("/ip firewall filter\n{rule}"),
    );

    // Act
    let changes = summarize(&old, &new, DEADLINE);

    // Assert
    let expected = ("ip/firewall/filter", "Added 1 firewall filter rule", 1, 0);
    assert_eq!(rows(&changes), vec![expected]);
}

#[test]
fn changing_an_address_is_one_modified_ip_address_rule() {
    // Arrange
    let old = corpus("svicmal-asir__Nagasaki.rsc");
    let new = replace_once(&old, "address=10.0.0.1/24", "address=10.0.0.2/24");

    // Act
    let changes = summarize(&old, &new, DEADLINE);

    // Assert
    assert_eq!(
        rows(&changes),
        vec![("ip/address", "Modified 1 ip address rule", 1, 1)]
    );
}

#[test]
fn removing_a_user_is_one_removed_user_rule() {
    // Arrange: exports list no users, so a `/user` section is added to both.
    let base = corpus("pancho-mk__compacto_respaldo.rsc");
    let users = "/user\nadd group=full name=alice\nadd group=read name=bob\n/user group\n";
    let old = replace_once(&base, "/user group\n", users);
    let new = replace_once(&old, "add group=read name=bob\n", "");

    // Act
    let changes = summarize(&old, &new, DEADLINE);

    // Assert
    assert_eq!(rows(&changes), vec![("user", "Removed 1 user rule", 0, 1)]);
}

#[test]
fn terse_lines_carry_their_own_menu() {
    // Arrange
    let old = corpus("romanborodin1-mikrotik__SW1_backup_13-05-2020_17-25.rsc");
    let edited = replace_once(&old, "ranges=192.168.218.2-", "ranges=192.168.218.10-");
    let added = "/ip firewall filter add action=drop chain=input\n";
    let new = format!("{edited}{added}{}", added.replace("input", "forward"));

    // Act
    let changes = summarize(&old, &new, DEADLINE);

    // Assert
    let expected = vec![
        ("ip/pool", "Modified 1 ip pool rule", 1, 1),
        ("ip/firewall/filter", "Added 2 firewall filter rules", 2, 0),
    ];
    assert_eq!(rows(&changes), expected);
}

#[test]
fn a_change_inside_a_wrapped_terse_line_counts_once() {
    // Arrange: a CRLF export whose dhcp-server rule is wrapped over 14 lines.
    let old = corpus("defm-mikrobackups__rawconf_anna_latest.rsc");
    let anchor = "/ip dhcp-server add add-arp=yes address-pool=pool-guest ";
    let new = edit_below(&old, anchor, 4, "GleaseServerName;", "GleaseServer;");

    // Act
    let changes = summarize(&old, &new, DEADLINE);

    // Assert
    let expected = ("ip/dhcp-server", "Modified 1 ip dhcp-server rule", 1, 1);
    assert_eq!(rows(&changes), vec![expected]);
}

#[test]
fn a_change_on_a_continuation_line_of_a_verbose_export_counts_once() {
    // Arrange: the ether1 rule is wrapped over 7 lines.
    let old = corpus("pancho-mk__respaldo.rsc");
    let anchor = "set [ find default-name=ether1 ]";
    let new = edit_below(&old, anchor, 3, "disabled=no", "disabled=yes");

    // Act
    let changes = summarize(&old, &new, DEADLINE);

    // Assert
    let expected = (
        "interface/ethernet",
        "Modified 1 interface ethernet rule",
        1,
        1,
    );
    assert_eq!(rows(&changes), vec![expected]);
}

#[test]
fn lines_before_any_menu_belong_to_system_general() {
    // Arrange
    let old = corpus("pancho-mk__respaldo.rsc");
    let new = replace_once(&old, "# model = 951Ui-2HnD\n", "# model = RB5009UG+S+\n");

    // Act
    let changes = summarize(&old, &new, DEADLINE);

    // Assert
    let expected = ("system/general", "Modified 1 system general rule", 1, 1);
    assert_eq!(rows(&changes), vec![expected]);
}

#[test]
fn identical_inputs_give_no_changes() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus/routeros");
    for entry in std::fs::read_dir(dir).expect("corpus dir") {
        let path = entry.expect("corpus entry").path();
        if path.extension().is_some_and(|ext| ext == "rsc") {
            // Arrange
            let text = std::fs::read_to_string(&path).expect("corpus file");

            // Act
            let changes = summarize(&text, &text, DEADLINE);

            // Assert
            assert!(
                changes.is_empty(),
                "{} changed against itself",
                path.display()
            );
        }
    }
}

#[test]
fn verbose_and_compact_exports_of_one_device_give_a_plausible_summary() {
    // Arrange: the same device exported with `verbose` and without.
    let verbose = corpus("pancho-mk__respaldo.rsc");
    let compact = corpus("pancho-mk__compacto_respaldo.rsc");

    // Act
    let changes = summarize(&verbose, &compact, DEADLINE);

    // Assert: every component is a menu of the exports, and the verbose
    // defaults are removed rather than added.
    let menu_lines = verbose
        .lines()
        .chain(compact.lines())
        .filter(|l| l.starts_with('/'));
    let menus: Vec<String> = menu_lines.map(|l| l[1..].replace(' ', "/")).collect();
    assert!(changes.len() > 10, "the exports differ in many menus");
    for change in &changes {
        let known = change.component == "system/general" || menus.contains(&change.component);
        assert!(known, "unknown component {}", change.component);
        assert!(
            change.lines_added + change.lines_removed > 0,
            "{} is empty",
            change.component
        );
    }
    let removed: u32 = changes.iter().map(|c| c.lines_removed).sum();
    let added: u32 = changes.iter().map(|c| c.lines_added).sum();
    assert!(
        removed > 2 * added,
        "verbose has more lines ({removed} vs {added})"
    );
    let ethernet = changes.iter().find(|c| c.component == "interface/ethernet");
    assert!(
        ethernet.is_some_and(|c| c.summary.starts_with("Modified ")),
        "ethernet differs"
    );
}

/// A verbose config of `sections` sections of 1000 unique wrapped rules over
/// four menus; `edit(section, rule)` may replace a rule's lines.
fn generated_config(sections: usize, edit: impl Fn(usize, usize) -> Option<String>) -> String {
    let menus = [
        "ip firewall filter",
        "ip firewall nat",
        "ip address",
        "interface bridge port",
    ];
    let mut text = String::from("# model = RB5009UG+S+\n");
    for section in 0..sections {
        text.push_str(&format!("/{}\n", menus[section % menus.len()]));
        for rule in 0..1000 {
            let line =
                format!("add chain=c{section} comment=r-{section}-{rule} \\\n    disabled=no\n");
            text.push_str(&edit(section, rule).unwrap_or(line));
        }
    }
    text
}

#[test]
fn a_generated_100k_line_config_with_a_small_change_gives_exact_counts() {
    // Arrange: every 100th rule modified (1 %); in section 0 (filter) one rule
    // is replaced by 8 lines, in section 1 (nat) 5 rules are removed.
    let old = generated_config(50, |_, _| None);
    let new = generated_config(50, |section, rule| match (section, rule) {
        (_, rule) if rule % 100 == 50 => Some(format!("add chain=c{section} comment=e{rule}\n")),
        (0, 10) => Some("add chain=new\n".repeat(8)),
        (1, 20..25) => Some(String::new()),
        _ => None,
    });
    assert!(
        old.lines().count() > 100_000,
        "the generated config is large"
    );

    // Act
    let changes = summarize(&old, &new, DEADLINE);
    let diff = diff(&old, &new, "old", "new", DEADLINE);

    // Assert: 13 sections each for filter and nat, 12 for the others.
    let expected = vec![
        (
            "ip/firewall/filter",
            "Modified 138 firewall filter rules",
            138,
            131,
        ),
        (
            "ip/firewall/nat",
            "Modified 135 firewall nat rules",
            130,
            135,
        ),
        ("ip/address", "Modified 120 ip address rules", 120, 120),
        (
            "interface/bridge/port",
            "Modified 120 bridge port rules",
            120,
            120,
        ),
    ];
    assert_eq!(rows(&changes), expected);
    assert!(
        apply_patch(&old, &diff.text) == new,
        "patch does not give the new config"
    );
}

#[test]
fn a_duplicate_heavy_pair_stops_near_the_deadline_with_a_correct_result() {
    // Arrange: 50k lines of a/b alternations against a shifted, regrouped copy.
    let old: String = (0..50_000)
        .map(|i| if i % 2 == 0 { "a\n" } else { "b\n" })
        .collect();
    let new: String = (0..50_001)
        .map(|i| if i / 3 % 2 == 0 { "b\n" } else { "a\n" })
        .collect();
    let deadline = Duration::from_millis(200);

    for budget in [deadline, Duration::ZERO] {
        // Act
        let started = Instant::now();
        let diff = diff(&old, &new, "old", "new", budget);
        let changes = summarize(&old, &new, budget);
        let elapsed = started.elapsed();

        // Assert: bounded time (two calls), and the coarser result adds up.
        assert!(elapsed < deadline * 10 * 2, "took {elapsed:?}");
        assert!(
            apply_patch(&old, &diff.text) == new,
            "patch does not give the new text"
        );
        let [change] = changes.as_slice() else {
            panic!("one component expected")
        };
        assert_eq!(50_000 - change.lines_removed + change.lines_added, 50_001);
    }
}
