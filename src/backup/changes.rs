//! Diffs between two normalized exports and the per-menu change summary of
//! DESIGN.md §7 ("Changes"). Entry points: [`diff`] (a unified diff that
//! `patch` applies) and [`summarize`] (counts per component on logical lines).
//! Pure CPU work, no I/O and no async: a large diff is bounded only by its
//! `deadline`, so async callers run these in `spawn_blocking`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

use similar::{Algorithm, ChangeTag, DiffOp, DiffTag, TextDiff};

/// Lines of unchanged context around each hunk of a [`Diff`].
const CONTEXT_RADIUS: usize = 3;

/// Component of the lines before the first menu line.
const GENERAL_COMPONENT: &str = "system/general";

/// Words that end the menu path of a `/…` line: the RouterOS commands that
/// appear in exports (plus `move` and `comment`, valid in scripts). No
/// RouterOS menu level has one of these names.
const COMMANDS: &[&str] = &[
    "add", "set", "remove", "disable", "enable", "print", "unset", "move", "comment",
];

/// A unified diff between two exports. `text` holds config lines (device
/// secrets included), so `Debug` prints only its size.
#[derive(Clone, PartialEq, Eq)]
pub struct Diff {
    /// The unified diff (`---`/`+++` header, `@@` hunks, 3 lines of context);
    /// empty when the inputs are identical.
    pub text: String,
    /// Number of `+` lines.
    pub lines_added: u32,
    /// Number of `-` lines.
    pub lines_removed: u32,
}

impl fmt::Debug for Diff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Diff")
            .field("text", &format_args!("<{} bytes>", self.text.len()))
            .field("lines_added", &self.lines_added)
            .field("lines_removed", &self.lines_removed)
            .finish()
    }
}

/// The change of one component (menu) between two exports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Menu path with `/` separators, e.g. `ip/firewall/filter`, or
    /// `system/general` for lines before any menu.
    pub component: String,
    /// `Added N {label} rule(s)`, `Removed N …` or `Modified N …`.
    pub summary: String,
    /// Logical lines added to the component.
    pub lines_added: u32,
    /// Logical lines removed from the component.
    pub lines_removed: u32,
}

/// Computes the unified diff of `old` and `new` (Myers on physical lines,
/// 3 lines of context), stopping the search at `deadline` with a coarser but
/// still correct diff.
///
/// Lines are split on `\n` only, and a last line without `\n` is followed by
/// `\ No newline at end of file`, so `patch` reproduces `new` from `old` byte
/// for byte (similar's own renderer also splits on a lone `\r`, which `patch`
/// does not). Line breaks in the labels are replaced by spaces to keep the
/// header two lines. Identical inputs give an empty text and zero counts.
pub fn diff(old: &str, new: &str, old_label: &str, new_label: &str, deadline: Duration) -> Diff {
    let old_lines: Vec<&str> = old.split_inclusive('\n').collect();
    let new_lines: Vec<&str> = new.split_inclusive('\n').collect();
    let text_diff = TextDiff::configure()
        .algorithm(Algorithm::Myers)
        .timeout(deadline)
        .newline_terminated(true)
        .diff_slices(&old_lines, &new_lines);
    let mut unified = text_diff.unified_diff();
    unified.context_radius(CONTEXT_RADIUS);

    let mut out = Diff {
        text: String::new(),
        lines_added: 0,
        lines_removed: 0,
    };
    for hunk in unified.iter_hunks() {
        if out.text.is_empty() {
            out.text = format!(
                "--- {}\n+++ {}\n",
                sanitize_label(old_label),
                sanitize_label(new_label)
            );
        }
        out.text.push_str(&hunk.header().to_string());
        out.text.push('\n');
        for change in hunk.iter_changes() {
            let sign = match change.tag() {
                ChangeTag::Equal => ' ',
                ChangeTag::Delete => {
                    out.lines_removed = out.lines_removed.saturating_add(1);
                    '-'
                }
                ChangeTag::Insert => {
                    out.lines_added = out.lines_added.saturating_add(1);
                    '+'
                }
            };
            push_patch_line(&mut out.text, sign, change.value());
        }
    }
    out
}

/// Summarizes the change from `old` to `new` per component (DESIGN.md §7).
///
/// Both texts are read as logical lines: a line ending in `\` is joined with
/// the next one, whose 4-space indent is stripped, so a wrapped rule is one
/// line. A line starting with `/` sets the menu for itself and the lines after
/// it; its path is the words up to the first command word (`add`, `set`, …),
/// `:`-word or argument, so terse lines (`/ip address add …`) carry their own
/// menu. A removed line belongs to the menu in effect in `old`, an added one
/// to the menu in effect in `new`; lines compare equal only when text and
/// menu both match, so a rule moved to another menu counts in both.
///
/// Counted: every changed line except blank lines and bare menu lines (a menu
/// line without a command configures nothing). Comment lines (`#…`) count for
/// their component: normalization already drops the transient ones, so those
/// left describe the device (`# serial number`, `# managed by CAPsMAN`), and
/// a snapshot that differs only there still gets a summary.
///
/// The summary is `Added N {label} rule(s)` when lines were only added,
/// `Removed N …` when only removed, else `Modified N …` with N the larger
/// count; `rule` for N = 1, `rules` otherwise; `{label}` is the last two path
/// segments joined by a space (`firewall filter`, `ip address`, `user`).
/// Components are ordered by their first change in diff order. The search
/// stops at `deadline`, giving coarser counts (more lines removed and re-added).
pub fn summarize(old: &str, new: &str, deadline: Duration) -> Vec<Change> {
    let deadline = Instant::now().checked_add(deadline);
    let mut components = Components::default();
    let old_lines = logical_lines(old, &mut components);
    let new_lines = logical_lines(new, &mut components);
    let (old_keys, new_keys) = intern_keys(&old_lines, &new_lines);
    let ops =
        similar::capture_diff_slices_deadline(Algorithm::Myers, &old_keys, &new_keys, deadline);
    tally(&ops, &old_lines, &new_lines, &components)
}

/// One logical line of an export.
struct Line<'a> {
    /// The text, continuations joined.
    text: Cow<'a, str>,
    /// Index into [`Components`].
    component: u32,
    /// Whether a change of this line counts (not blank, not a bare menu line).
    counts: bool,
}

/// Component names, each stored once and referred to by index.
#[derive(Default)]
struct Components {
    names: Vec<String>,
    index: HashMap<String, u32>,
}

impl Components {
    /// Returns the index of `name`, adding it on first sight.
    fn intern(&mut self, name: String) -> u32 {
        if let Some(&id) = self.index.get(&name) {
            return id;
        }
        let id = u32::try_from(self.names.len()).expect("BUG: more than u32::MAX components");
        self.names.push(name.clone());
        self.index.insert(name, id);
        id
    }

    /// The name behind an index from [`Components::intern`].
    fn name(&self, id: u32) -> &str {
        self.names
            .get(id as usize)
            .map_or(GENERAL_COMPONENT, String::as_str)
    }
}

/// Splits `text` into logical lines and assigns each its component.
fn logical_lines<'a>(text: &'a str, components: &mut Components) -> Vec<Line<'a>> {
    // The raw menu words of the last `/…` line and their component: terse
    // exports repeat one menu on many lines, so most lookups stop here.
    let mut menu = (
        String::new(),
        components.intern(GENERAL_COMPONENT.to_owned()),
    );
    let mut physical = text.lines();
    let mut lines = Vec::new();
    while let Some(first) = physical.next() {
        let text = join_continuations(first, &mut physical);
        let mut counts = !text.trim().is_empty();
        if text.starts_with('/') {
            let (raw, has_command) = split_menu(&text);
            if raw != menu.0 {
                menu.1 = components.intern(component_name(raw));
                menu.0.clear();
                menu.0.push_str(raw);
            }
            counts = has_command;
        }
        lines.push(Line {
            text,
            component: menu.1,
            counts,
        });
    }
    lines
}

/// Joins `first` with its continuation lines: a line ending in `\` goes on
/// in the next one, whose 4-space indent is dropped.
fn join_continuations<'a>(
    first: &'a str,
    rest: &mut impl Iterator<Item = &'a str>,
) -> Cow<'a, str> {
    let mut logical = Cow::Borrowed(first);
    while logical.ends_with('\\') {
        let Some(next) = rest.next() else { break };
        let joined = logical.to_mut();
        joined.pop();
        joined.push_str(next.strip_prefix("    ").unwrap_or(next));
    }
    logical
}

/// Splits a `/…` line after its menu words and tells whether a command
/// follows them: `/ip firewall filter add …` → (`/ip firewall filter`, true).
/// The first word that is a command or not a plain menu name (`:put`, `x=y`,
/// `[`) ends the menu; `/` separates words too (v7 `/ip/firewall/filter`).
fn split_menu(line: &str) -> (&str, bool) {
    let is_separator = |c: char| c == '/' || c.is_whitespace();
    let mut end = 0;
    loop {
        let rest = line[end..].trim_start_matches(is_separator);
        if rest.is_empty() {
            return (&line[..end], false);
        }
        let word = &rest[..rest.find(is_separator).unwrap_or(rest.len())];
        if COMMANDS.contains(&word) || !word.bytes().all(is_menu_byte) {
            return (&line[..end], true);
        }
        end = line.len() - rest.len() + word.len();
    }
}

/// The component of raw menu words: `/ip firewall filter` → `ip/firewall/filter`,
/// no words → `system/general`.
fn component_name(menu: &str) -> String {
    let is_separator = |c: char| c == '/' || c.is_whitespace();
    let words: Vec<&str> = menu
        .split(is_separator)
        .filter(|word| !word.is_empty())
        .collect();
    if words.is_empty() {
        return GENERAL_COMPONENT.to_owned();
    }
    words.join("/")
}

/// Bytes of menu names: letters, digits, `-` and `_` (so `:put`, `x=y`, `[`
/// and quotes end a path).
fn is_menu_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_'
}

/// Maps every (component, text) pair to a small integer, equal pairs to equal
/// integers, so the diff compares integers instead of strings.
fn intern_keys<'l>(old: &'l [Line<'_>], new: &'l [Line<'_>]) -> (Vec<u32>, Vec<u32>) {
    let mut ids: HashMap<(u32, &'l str), u32> = HashMap::with_capacity(old.len() + new.len());
    let mut key = |line: &'l Line<'_>| -> u32 {
        let next = u32::try_from(ids.len()).unwrap_or(u32::MAX);
        *ids.entry((line.component, line.text.as_ref()))
            .or_insert(next)
    };
    let old_keys = old.iter().map(&mut key).collect();
    let new_keys = new.iter().map(&mut key).collect();
    (old_keys, new_keys)
}

/// Added and removed counts of one component.
struct Tally {
    component: u32,
    added: u32,
    removed: u32,
}

/// Counts the changed lines of `ops` per component and builds the summaries.
fn tally(
    ops: &[DiffOp],
    old: &[Line<'_>],
    new: &[Line<'_>],
    components: &Components,
) -> Vec<Change> {
    let mut tallies: Vec<Tally> = Vec::new();
    let mut position: HashMap<u32, usize> = HashMap::new();
    let mut count = |line: &Line<'_>, added: bool| {
        if !line.counts {
            return;
        }
        let slot = *position.entry(line.component).or_insert_with(|| {
            tallies.push(Tally {
                component: line.component,
                added: 0,
                removed: 0,
            });
            tallies.len() - 1
        });
        let tally = &mut tallies[slot];
        let field = if added {
            &mut tally.added
        } else {
            &mut tally.removed
        };
        *field = field.saturating_add(1);
    };
    for op in ops {
        let (tag, old_range, new_range) = op.as_tag_tuple();
        if matches!(tag, DiffTag::Delete | DiffTag::Replace) {
            old[old_range].iter().for_each(|line| count(line, false));
        }
        if matches!(tag, DiffTag::Insert | DiffTag::Replace) {
            new[new_range].iter().for_each(|line| count(line, true));
        }
    }
    tallies
        .iter()
        .map(|tally| build_change(tally, components.name(tally.component)))
        .collect()
}

/// Builds the [`Change`] of one component from its counts.
fn build_change(tally: &Tally, component: &str) -> Change {
    let (verb, n) = match (tally.added, tally.removed) {
        (added, 0) => ("Added", added),
        (0, removed) => ("Removed", removed),
        (added, removed) => ("Modified", added.max(removed)),
    };
    let noun = if n == 1 { "rule" } else { "rules" };
    Change {
        component: component.to_owned(),
        summary: format!("{verb} {n} {} {noun}", component_label(component)),
        lines_added: tally.added,
        lines_removed: tally.removed,
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

/// Appends one diff line; a line without `\n` (the last of its file) gets one
/// plus the marker that tells `patch` the file has no final newline.
fn push_patch_line(text: &mut String, sign: char, line: &str) {
    text.push(sign);
    text.push_str(line);
    if !line.ends_with('\n') {
        text.push_str("\n\\ No newline at end of file\n");
    }
}

/// A label safe for a `---`/`+++` header line.
fn sanitize_label(label: &str) -> Cow<'_, str> {
    if label.contains(['\n', '\r']) {
        Cow::Owned(label.replace(['\n', '\r'], " "))
    } else {
        Cow::Borrowed(label)
    }
}

#[cfg(test)]
#[path = "changes_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "changes_export_tests.rs"]
mod export_tests;

#[cfg(test)]
#[path = "changes_props.rs"]
mod props;
