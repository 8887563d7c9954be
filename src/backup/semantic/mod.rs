//! The semantic RouterOS diff (DESIGN.md §16): what changed between two
//! normalized exports, item by item and property by property, instead of
//! line by line. Pure CPU work, no I/O; linear in the input except for the
//! bounded content matching of leftover items.
//!
//! Entry points: [`diff`] (never fails), [`try_diff`] (refuses exports with
//! unparsable lines), [`SemanticDiff::redact`] (masks secrets for roles that
//! may not see them, DESIGN.md §12) and [`summarize`] (the per-component
//! change summaries stored at ingest), [`differs_only_in_status`] (the
//! `status_only` mark of a new version). Inside: `lexer` (logical lines and
//! tokens), `model` (the parser), `skim` (the cheap first pass that lets
//! identical lines pair without parsing), `identity` (which item a command
//! is about), `matcher` (pairing items of two versions), `status`,
//! `summary`.

use serde::Serialize;

use crate::backup::redact;

mod identity;
mod lexer;
mod matcher;
mod model;
mod skim;
mod status;
mod summary;

pub use model::{Command, Export, Line, LineKind, Property, Selector, Verb, parse};
pub use status::{differs_only_in_status, is_status_comment};
pub use summary::{status_summary, summarize, summarize_diff};

use identity::LabelSafety;

/// What replaces a changed secret's new value.
const MASK_CHANGED: &str = "******** (changed)";

/// The semantic difference between two exports (DESIGN.md §16).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SemanticDiff {
    /// The changed items, menu by menu in the order of the newer export.
    pub changes: Vec<ItemChange>,
    /// Whether the texts differ, and only in status comments (`# inactive
    /// time`, `# managed by CAPsMAN`, …) and blank lines. A header line
    /// (`# model = …`) or a reordered unordered menu is no status change.
    pub status_only: bool,
}

/// How an item changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// Only in the newer export.
    Added,
    /// Only in the older export.
    Removed,
    /// In both, with different properties.
    Modified,
    /// In both, at another place relative to the others (ordered menus only).
    Moved,
}

impl ChangeKind {
    /// The name in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Added => "added",
            ChangeKind::Removed => "removed",
            ChangeKind::Modified => "modified",
            ChangeKind::Moved => "moved",
        }
    }
}

/// One changed item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ItemChange {
    /// The menu path, words separated by one space (`/interface ethernet`);
    /// empty for lines before any menu.
    pub menu: String,
    /// What a person calls the item: its name, its `[ find … ]` key, its
    /// menu-specific keys, its comment, or (settings menus) the menu's last
    /// word.
    pub item: String,
    /// How it changed.
    pub kind: ChangeKind,
    /// The properties that differ; for added and removed items all of them.
    /// Empty for moves.
    pub properties: Vec<PropertyChange>,
    /// Position among the items of its menu in the older export (0-based).
    pub old_index: Option<usize>,
    /// Position among the items of its menu in the newer export (0-based).
    pub new_index: Option<usize>,
    /// Whether the item has an identity of its own (a name, a selector,
    /// menu keys, a settings menu) rather than being matched by content.
    #[serde(skip)]
    identified: bool,
    #[serde(skip)]
    safety: LabelSafety,
}

impl ItemChange {
    /// Whether the item has an identity of its own (not matched by content).
    pub fn is_identified(&self) -> bool {
        self.identified
    }

    /// The item label as a caller below the reveal role may see it.
    pub fn masked_item(&self) -> String {
        masked_label(&self.menu, &self.item, self.safety)
    }
}

/// One changed property.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PropertyChange {
    /// The key (`mtu`); for a bare word, the word.
    pub name: String,
    /// The decoded value in the older export; `None` when unset there.
    pub old: Option<String>,
    /// The decoded value in the newer export; `None` when unset there.
    pub new: Option<String>,
    #[serde(skip)]
    old_raw: Option<String>,
    #[serde(skip)]
    new_raw: Option<String>,
}

/// The semantic diff of two normalized exports. Lines that do not parse are
/// compared as opaque text, so this never fails; [`try_diff`] refuses them.
pub fn diff(old: &str, new: &str) -> SemanticDiff {
    compare(old, new).0
}

/// Why [`try_diff`] gives no semantic diff.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{lines} line(s) of the {side} export do not parse as RouterOS commands")]
pub struct ParseError {
    /// `older` or `newer`.
    pub side: &'static str,
    /// How many logical lines failed.
    pub lines: usize,
}

/// [`diff`], unless either export has lines that differ from the other
/// export's and should be commands but do not parse (`:` script lines are
/// fine). A line both exports have word for word is the same item on both
/// sides whatever it holds, so it is never parsed and never refused.
///
/// # Errors
/// [`ParseError`] naming the side and the number of bad lines.
pub fn try_diff(old: &str, new: &str) -> Result<SemanticDiff, ParseError> {
    let (diff, problems) = compare(old, new);
    for (side, lines) in [("older", problems[0]), ("newer", problems[1])] {
        if lines > 0 {
            return Err(ParseError { side, lines });
        }
    }
    Ok(diff)
}

/// The diff and the number of differing lines per side that do not parse.
/// Lines identical in both exports pair up before anything is parsed
/// (`skim`), so the work beyond one pass over the text is proportional to
/// what changed.
fn compare(old_text: &str, new_text: &str) -> (SemanticDiff, [usize; 2]) {
    let outcome = matcher::changes(&skim::skim(old_text), &skim::skim(new_text));
    let changes = outcome.changes;
    let status_only = changes.is_empty() && status::differs_only_in_status(old_text, new_text);
    (
        SemanticDiff {
            changes,
            status_only,
        },
        outcome.problems,
    )
}

impl SemanticDiff {
    /// Masks secrets (DESIGN.md §12) for a caller below the reveal role:
    /// sensitive properties read `********`, and a secret that changed keeps
    /// its entry with `********` → `******** (changed)`; labels and values
    /// that embed secrets (scripts, opaque lines) are masked like content.
    pub fn redact(&mut self) {
        for change in &mut self.changes {
            change.item = change.masked_item();
            change.safety = LabelSafety::Plain;
            for property in &mut change.properties {
                redact_property(&change.menu, property);
            }
        }
    }
}

fn redact_property(menu: &str, property: &mut PropertyChange) {
    if redact::is_sensitive(menu, &property.name) {
        let both = property.old.is_some() && property.new.is_some();
        property.old = property.old.as_ref().map(|_| redact::MASK.to_owned());
        property.new = property.new.as_ref().map(|_| {
            if both {
                MASK_CHANGED.to_owned()
            } else {
                redact::MASK.to_owned()
            }
        });
    } else {
        let name = property.name.clone();
        if let Some(raw) = &property.old_raw {
            property.old = Some(masked_value(menu, &name, raw, property.old.take()));
        }
        if let Some(raw) = &property.new_raw {
            property.new = Some(masked_value(menu, &name, raw, property.new.take()));
        }
    }
    property.old_raw = None;
    property.new_raw = None;
}

/// A non-sensitive value that may embed secrets (a script): the decoded
/// value when redaction finds nothing in it, else the masked text decoded.
fn masked_value(menu: &str, key: &str, raw: &str, decoded: Option<String>) -> String {
    let line = format!("add {key}={raw}");
    let context = format!("{menu}\n{line}");
    if !redact::contains_secret(&context) {
        return decoded.unwrap_or_default();
    }
    let masked = redact::redact(&context);
    let value = masked
        .split_once('\n')
        .map_or("", |(_, l)| l)
        .strip_prefix(&format!("add {key}="))
        .unwrap_or(redact::MASK);
    match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(inner) => lexer::decode(inner),
        None => value.to_owned(),
    }
}

/// A label as a caller below the reveal role may see it.
fn masked_label(menu: &str, label: &str, safety: LabelSafety) -> String {
    match safety {
        LabelSafety::Plain => label.to_owned(),
        LabelSafety::Secret => redact::MASK.to_owned(),
        LabelSafety::Scan => {
            let context = format!("{menu}\n{label}");
            if !redact::contains_secret(&context) {
                return label.to_owned();
            }
            redact::redact(&context)
                .split_once('\n')
                .map_or_else(|| redact::MASK.to_owned(), |(_, l)| l.to_owned())
        }
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod corpus_tests;

#[cfg(test)]
mod props;
