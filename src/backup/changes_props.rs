//! Property tests of [`diff`] and [`summarize`] on generated and arbitrary
//! text: no panics, a time bound, consistent counts, and a diff that
//! `patch` applies. Assertion messages print counts, never text.

use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::tests::apply_patch;
use super::*;

/// Generous search deadline: small inputs finish far sooner.
const DEADLINE: Duration = Duration::from_secs(2);

/// Wall-clock bound of one call, far above the deadline.
const BOUND: Duration = Duration::from_secs(20);

/// Lines from a small vocabulary, so two generated exports share many lines
/// and the diff has real structure (menus, terse lines, continuations).
fn vocabulary_line() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "/ip address",
        "/ip firewall filter",
        "/interface bridge port",
        "/system identity",
        "/ip/firewall/nat",
        "add address=10.0.0.1/24 interface=ether1",
        "add chain=input action=accept",
        "add chain=forward action=drop comment=\"x y\"",
        "set name=router",
        "add chain=input \\",
        "    action=drop",
        "/ip dns set servers=1.1.1.1",
        "/user add name=admin group=full",
        "# serial number = ABC123",
        "",
        "/",
        ":put [/system resource get version]",
    ])
    .prop_map(str::to_owned)
}

/// An export-like text, or arbitrary text (any chars, `\r`, `\\` included).
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::collection::vec(vocabulary_line(), 0..60).prop_map(|l| l.join("\n") + "\n"),
        1 => prop::collection::vec(vocabulary_line(), 0..20).prop_map(|l| l.join("\r\n")),
        1 => any::<String>(),
        1 => "[/a-z \\\\\n\r=:\\[\\]\"#]{0,300}",
    ]
}

/// Texts whose every line counts: terse rules and comments, no blank or
/// bare menu lines.
fn counted_text() -> impl Strategy<Value = String> {
    let line = prop::sample::select(vec![
        "/ip address add address=10.0.0.1/24",
        "/ip address add address=10.0.0.2/24",
        "/ip firewall filter add chain=input",
        "/ip firewall filter add chain=forward",
        "/user add name=admin",
        "/system identity set name=r1",
        "# serial number = ABC123",
    ]);
    prop::collection::vec(line, 0..40).prop_map(|l| l.join("\n") + "\n")
}

/// Logical lines of `text` that count (not blank, not a bare menu line).
fn counted(text: &str) -> u64 {
    let mut components = Components::default();
    logical_lines(text, &mut components)
        .iter()
        .filter(|l| l.counts)
        .count() as u64
}

fn totals(changes: &[Change]) -> (u64, u64) {
    changes.iter().fold((0, 0), |(a, r), c| {
        (a + u64::from(c.lines_added), r + u64::from(c.lines_removed))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn summaries_are_consistent_with_the_logical_lines_and_bounded_in_time(
        old in text(),
        new in text(),
    ) {
        // Act
        let started = Instant::now();
        let changes = summarize(&old, &new, DEADLINE);
        let elapsed = started.elapsed();

        // Assert
        prop_assert!(elapsed < BOUND, "took {:?}", elapsed);
        let (added, removed) = totals(&changes);
        let (before, after) = (counted(&old), counted(&new));
        prop_assert!(added <= after && removed <= before, "{added}/{removed} of {before}/{after}");
        prop_assert_eq!(
            i128::from(added) - i128::from(removed),
            i128::from(after) - i128::from(before),
            "net change must equal the change in counted lines"
        );
        let mut seen = std::collections::HashSet::new();
        for change in &changes {
            prop_assert!(seen.insert(change.component.clone()), "component listed twice");
            prop_assert!(!change.component.is_empty());
            prop_assert!(change.lines_added + change.lines_removed > 0);
            let n = change.lines_added.max(change.lines_removed);
            let verb = match (change.lines_added, change.lines_removed) {
                (_, 0) => "Added",
                (0, _) => "Removed",
                _ => "Modified",
            };
            let prefix = format!("{verb} {n} ");
            prop_assert!(change.summary.starts_with(&prefix), "summary {:?}", change.summary);
            let noun = if n == 1 { " rule" } else { " rules" };
            prop_assert!(change.summary.ends_with(noun), "summary {:?}", change.summary);
        }
    }

    #[test]
    fn reversing_a_change_of_counted_lines_swaps_the_added_and_removed_totals(
        old in counted_text(),
        new in counted_text(),
    ) {
        // Act
        let forward = totals(&summarize(&old, &new, DEADLINE));
        let backward = totals(&summarize(&new, &old, DEADLINE));

        // Assert: both directions are minimal edit scripts of the same lines.
        // (With blank or bare menu lines, which weigh in the diff but are not
        // counted, two minimal scripts may count differently.)
        prop_assert_eq!(forward, (backward.1, backward.0));
    }

    #[test]
    fn an_unchanged_text_has_no_changes_and_an_empty_diff(text in text()) {
        // Act
        let changes = summarize(&text, &text, DEADLINE);
        let diff = diff(&text, &text, "a", "b", DEADLINE);

        // Assert
        prop_assert!(changes.is_empty());
        prop_assert!(diff.text.is_empty());
        prop_assert_eq!((diff.lines_added, diff.lines_removed), (0, 0));
    }

    #[test]
    fn everything_added_or_removed_counts_every_counted_line(text in text()) {
        // Act
        let added = totals(&summarize("", &text, DEADLINE));
        let removed = totals(&summarize(&text, "", DEADLINE));

        // Assert
        prop_assert_eq!(added, (counted(&text), 0));
        prop_assert_eq!(removed, (0, counted(&text)));
    }

    #[test]
    fn the_unified_diff_applies_and_its_counts_match_the_line_counts(
        old in text(),
        new in text(),
        label in "\\PC{0,20}(\n|\r)?\\PC{0,5}",
    ) {
        // Act
        let started = Instant::now();
        let diff = diff(&old, &new, &label, &label, DEADLINE);
        let elapsed = started.elapsed();

        // Assert
        prop_assert!(elapsed < BOUND, "took {:?}", elapsed);
        let lines = |s: &str| s.split_inclusive('\n').count() as i64;
        prop_assert_eq!(
            i64::from(diff.lines_added) - i64::from(diff.lines_removed),
            lines(&new) - lines(&old)
        );
        if old == new {
            prop_assert!(diff.text.is_empty());
        } else {
            prop_assert_eq!(diff.text.lines().take(2).count(), 2);
            prop_assert!(apply_patch(&old, &diff.text) == new, "patch did not reproduce new");
        }
    }
}
