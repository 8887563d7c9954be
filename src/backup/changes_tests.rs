//! Tests of `changes` on small inputs: the diff format, menu parsing, labels
//! and counting rules, plus the helpers the export tests share. Export text
//! holds secrets: assertion messages print counts and summaries only.

use std::time::Duration;

use super::*;

pub(super) const DEADLINE: Duration = Duration::from_secs(5);

pub(super) fn corpus(name: &str) -> String {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus/routeros/");
    std::fs::read_to_string(format!("{dir}{name}")).expect("corpus file is readable")
}

/// Applies a unified diff the way `patch` does, checking context and removed
/// lines against `old`.
pub(super) fn apply_patch(old: &str, patch: &str) -> String {
    let old_lines: Vec<&str> = old.split_inclusive('\n').collect();
    let (mut out, mut next_old, mut prev_sign) = (String::new(), 0, ' ');
    for line in patch.split_inclusive('\n').skip(2) {
        let (sign, body) = line.split_at(1);
        match sign {
            "@" => {
                let start = hunk_old_start(line);
                old_lines[next_old..start]
                    .iter()
                    .for_each(|l| out.push_str(l));
                next_old = start;
            }
            " " | "-" => {
                let expected = old_lines.get(next_old).map(|l| l.trim_end_matches('\n'));
                assert!(
                    expected == Some(body.trim_end_matches('\n')),
                    "patch does not fit"
                );
                if sign == " " {
                    out.push_str(old_lines[next_old]);
                }
                next_old += 1;
            }
            "+" => out.push_str(body),
            "\\" if prev_sign == '+' => assert!(out.pop() == Some('\n'), "marker after a line"),
            "\\" => {}
            _ => panic!("unexpected diff line kind {sign:?}"),
        }
        prev_sign = sign.chars().next().unwrap_or(' ');
    }
    old_lines[next_old..].iter().for_each(|l| out.push_str(l));
    out
}

/// 0-based index of the first old line of the hunk `@@ -a,b +c,d @@`.
fn hunk_old_start(header: &str) -> usize {
    let range = header
        .trim_start_matches("@@ -")
        .split(' ')
        .next()
        .unwrap_or("");
    let mut numbers = range
        .split(',')
        .map(|n| n.parse::<usize>().expect("hunk range"));
    let start = numbers.next().expect("hunk start");
    if numbers.next() == Some(0) {
        start
    } else {
        start - 1
    }
}

/// (component, summary, added, removed) of each change.
pub(super) fn rows(changes: &[Change]) -> Vec<(&str, &str, u32, u32)> {
    changes.iter().map(row).collect()
}

fn row(change: &Change) -> (&str, &str, u32, u32) {
    let Change {
        component,
        summary,
        lines_added,
        lines_removed,
    } = change;
    (component, summary, *lines_added, *lines_removed)
}

#[test]
fn diff_of_identical_inputs_is_empty() {
    // Arrange
    let text = corpus("pancho-mk__respaldo.rsc");

    // Act
    let diff = diff(&text, &text, "a", "b", DEADLINE);

    // Assert
    assert_eq!(
        (diff.text.as_str(), diff.lines_added, diff.lines_removed),
        ("", 0, 0)
    );
}

#[test]
fn diff_is_a_unified_diff_with_three_lines_of_context() {
    // Arrange
    let (old, new) = (
        "1\n2\n3\n4\n5\n6\n7\n8\n9\n",
        "1\n2\n3\n4\nfive\n6\n7\n8\n9\nten\n",
    );

    // Act
    let diff = diff(old, new, "snapshot 1", "snapshot 2", DEADLINE);

    // Assert
    let hunk = "@@ -2,8 +2,9 @@\n 2\n 3\n 4\n-5\n+five\n 6\n 7\n 8\n 9\n+ten\n";
    assert_eq!(diff.text, format!("--- snapshot 1\n+++ snapshot 2\n{hunk}"));
    assert_eq!((diff.lines_added, diff.lines_removed), (2, 1));
}

#[test]
fn diff_applies_like_patch_when_final_newlines_and_carriage_returns_change() {
    let cases = [
        ("a\nb\nc", "a\nB\nc"),
        ("a\nb\nc", "a\nb\nc\n"),
        ("a\nb\nc\n", "a\nb\nc"),
        ("a\nb", "a\nb\nc"),
        ("", "a\n"),
        ("a\n", ""),
        ("a\nx\ry\nb\n", "a\nx\rz\nb\n"),
        ("a\r\nb\r\n", "a\r\nc\r\n"),
        ("a\nb\nc\r", "a\nb\nd"),
    ];
    for (index, (old, new)) in cases.into_iter().enumerate() {
        // Act
        let diff = diff(old, new, "old", "new", DEADLINE);

        // Assert
        assert!(
            apply_patch(old, &diff.text) == new,
            "case {index} does not round-trip"
        );
    }
}

#[test]
fn diff_labels_stay_on_their_header_lines() {
    // Act
    let diff = diff("a\n", "b\n", "old\nlabel", "new\r\nlabel", DEADLINE);

    // Assert
    assert!(diff.text.starts_with("--- old label\n+++ new  label\n@@ "));
}

#[test]
fn menu_words_end_at_the_first_command_or_argument() {
    let cases = [
        ("/ip firewall filter", "ip/firewall/filter", false),
        (
            "/ip firewall filter add chain=input",
            "ip/firewall/filter",
            true,
        ),
        (
            "/ip/firewall/filter add chain=input",
            "ip/firewall/filter",
            true,
        ),
        (
            "/interface ethernet set [ find default-name=ether1 ]",
            "interface/ethernet",
            true,
        ),
        ("/ip settings set rp-filter=loose", "ip/settings", true),
        ("/system script :put hello", "system/script", true),
        ("/snmp community name=x", "snmp/community", true),
        ("/", "system/general", false),
    ];
    for (line, path, has_command) in cases {
        // Act
        let (menu, command) = split_menu(line);

        // Assert
        assert_eq!(
            (component_name(menu).as_str(), command),
            (path, has_command),
            "{line}"
        );
    }
}

#[test]
fn labels_are_the_last_two_path_segments() {
    assert_eq!(component_label("ip/firewall/filter"), "firewall filter");
    assert_eq!(component_label("ip/address"), "ip address");
    assert_eq!(component_label("user"), "user");
}

#[test]
fn a_new_menu_section_counts_only_its_rules_and_comments() {
    // Arrange
    let old = "/ip address\nadd address=10.0.0.1/24 interface=ether1\n";
    let section = "/interface wireless\n# managed by CAPsMAN\nset [ find ] ssid=x\n";
    let new = format!("{old}{section}");

    // Act
    let changes = summarize(old, &new, DEADLINE);

    // Assert
    let expected = (
        "interface/wireless",
        "Added 2 interface wireless rules",
        2,
        0,
    );
    assert_eq!(rows(&changes), vec![expected]);
}

#[test]
fn a_rule_moved_to_another_menu_counts_in_both() {
    // Arrange
    let old = "/ip firewall filter\nadd action=accept chain=input\n/ipv6 firewall filter\n";
    let new = "/ip firewall filter\n/ipv6 firewall filter\nadd action=accept chain=input\n";

    // Act
    let changes = summarize(old, new, DEADLINE);

    // Assert
    let expected = vec![
        ("ip/firewall/filter", "Removed 1 firewall filter rule", 0, 1),
        ("ipv6/firewall/filter", "Added 1 firewall filter rule", 1, 0),
    ];
    assert_eq!(rows(&changes), expected);
}
