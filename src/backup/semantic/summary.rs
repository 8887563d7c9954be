//! The per-component change summaries stored at ingest (DESIGN.md §7),
//! derived from the semantic diff: `Modified ether1: mtu`, `Added 1
//! firewall filter rule`, `Moved 1 firewall filter rule`. Summaries are
//! shown to every role, so they never hold a value, and item names that
//! may be secrets are masked.

use super::{ChangeKind, ItemChange, SemanticDiff, try_diff};
use crate::backup::changes::Change;

/// Modified items with an identity of their own get a summary each, up to
/// this many per menu; beyond it, one summary counts them.
const MAX_NAMED: usize = 5;

/// Property names listed in one summary, at most.
const MAX_PROPERTIES: usize = 6;

/// Component of lines before any menu, as in the line-based summaries.
const GENERAL_COMPONENT: &str = "system/general";

/// The change summaries of `old` → `new` from the semantic diff, or `None`
/// when either export has lines that do not parse (the caller then falls
/// back to `changes::summarize`); see [`summarize_diff`].
pub fn summarize(old: &str, new: &str) -> Option<Vec<Change>> {
    summarize_diff(&try_diff(old, new).ok()?)
}

/// The one summary of a version that differs only in status comments.
pub fn status_summary() -> Vec<Change> {
    vec![Change {
        component: "status".to_owned(),
        summary: "Changed status comments only".to_owned(),
        lines_added: 0,
        lines_removed: 0,
    }]
}

/// The change summaries of a semantic diff; `None` when it has no changes
/// but the texts differ in more than status comments (a reordered unordered
/// menu, a header line), which line-based summaries describe better.
///
/// Per menu, in the order of the diff: `Added N {label} rule(s)`, `Removed
/// N …`, `Modified {item}: {properties}` per identified item (more than
/// five: `Modified N {label} rules: …`), `Modified N {label} rule(s): …`
/// for items matched by content, and `Moved N …`. A version that differs
/// only in status comments gets one `status` summary.
pub fn summarize_diff(diff: &SemanticDiff) -> Option<Vec<Change>> {
    if diff.status_only {
        return Some(status_summary());
    }
    if diff.changes.is_empty() {
        return None;
    }
    let mut out = Vec::new();
    let mut start = 0;
    while start < diff.changes.len() {
        let menu = &diff.changes[start].menu;
        let len = diff.changes[start..]
            .iter()
            .take_while(|c| &c.menu == menu)
            .count();
        summarize_menu(&diff.changes[start..start + len], &mut out);
        start += len;
    }
    Some(out)
}

fn summarize_menu(changes: &[ItemChange], out: &mut Vec<Change>) {
    let component = component_name(&changes[0].menu);
    let label = component_label(&component);
    let of = |kind| changes.iter().filter(move |c| c.kind == kind);
    let count = |kind| u32::try_from(of(kind).count()).unwrap_or(u32::MAX);
    let counted = |verb: &str, n: u32, added: u32, removed: u32, detail: String| Change {
        component: component.clone(),
        summary: format!("{verb} {n} {label} {}{detail}", noun(n)),
        lines_added: added,
        lines_removed: removed,
    };
    let added = count(ChangeKind::Added);
    if added > 0 {
        out.push(counted("Added", added, added, 0, String::new()));
    }
    let removed = count(ChangeKind::Removed);
    if removed > 0 {
        out.push(counted("Removed", removed, 0, removed, String::new()));
    }
    let (named, unnamed): (Vec<&ItemChange>, Vec<&ItemChange>) =
        of(ChangeKind::Modified).partition(|c| c.is_identified());
    if named.len() <= MAX_NAMED {
        for change in &named {
            out.push(Change {
                component: component.clone(),
                summary: format!(
                    "Modified {}: {}",
                    change.masked_item(),
                    property_list(std::slice::from_ref(change))
                ),
                lines_added: 1,
                lines_removed: 1,
            });
        }
    }
    let grouped: Vec<&ItemChange> = if named.len() > MAX_NAMED {
        named.iter().chain(&unnamed).copied().collect()
    } else {
        unnamed
    };
    if !grouped.is_empty() {
        let n = u32::try_from(grouped.len()).unwrap_or(u32::MAX);
        let owned: Vec<ItemChange> = grouped.into_iter().cloned().collect();
        let detail = format!(": {}", property_list(&owned));
        out.push(counted("Modified", n, n, n, detail));
    }
    let moved = count(ChangeKind::Moved);
    if moved > 0 {
        out.push(counted("Moved", moved, moved, moved, String::new()));
    }
}

/// The distinct property names of `changes`, in order, at most
/// [`MAX_PROPERTIES`] (then `…`).
fn property_list(changes: &[ItemChange]) -> String {
    let mut names: Vec<&str> = Vec::new();
    for name in changes
        .iter()
        .flat_map(|c| c.properties.iter().map(|p| p.name.as_str()))
    {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    let more = names.len() > MAX_PROPERTIES;
    names.truncate(MAX_PROPERTIES);
    let mut list = names.join(", ");
    if more {
        list.push_str(", …");
    }
    list
}

fn noun(n: u32) -> &'static str {
    if n == 1 { "rule" } else { "rules" }
}

/// `/ip firewall filter` → `ip/firewall/filter`; no menu → `system/general`.
fn component_name(menu: &str) -> String {
    let words: Vec<&str> = menu.split([' ', '/']).filter(|w| !w.is_empty()).collect();
    if words.is_empty() {
        GENERAL_COMPONENT.to_owned()
    } else {
        words.join("/")
    }
}

/// The last two segments of a component joined by a space (`firewall filter`).
fn component_label(component: &str) -> String {
    let mut segments = component.rsplit('/');
    match (segments.next(), segments.next()) {
        (Some(last), Some(before)) => format!("{before} {last}"),
        (Some(last), None) => last.to_owned(),
        _ => component.to_owned(),
    }
}
