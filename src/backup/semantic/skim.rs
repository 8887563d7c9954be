//! The cheap first pass of a diff: logical lines sorted into menus without
//! lexing them (blank lines, comments and menu lines left out, every other
//! line an item of the menu in effect), so that the matcher can pair items
//! whose text is identical in both versions before parsing anything, and
//! parse only the rest. Linear in the input; borrows from it except for
//! lines joined over `\` continuations. Entry point: [`skim`].

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use super::lexer;
use super::model::{self, MAX_LINE};

/// One item line: what the parser would read for it.
pub(super) struct RawItem<'a> {
    /// The logical line as written (menu prefix included on terse lines).
    pub(super) line: Cow<'a, str>,
    /// Where the command starts in `line` (after a terse line's menu).
    pub(super) start: usize,
}

impl RawItem<'_> {
    /// The text that identifies the line within its menu: the line without
    /// its menu prefix. Equal texts in one menu parse to equal items.
    pub(super) fn text(&self) -> &str {
        &self.line[self.start..]
    }

    /// Whether the line is too long to be parsed (kept opaque); such lines
    /// are never paired by text, as terse and plain forms of one item
    /// could fall on either side of the limit.
    pub(super) fn oversized(&self) -> bool {
        self.line.len() > MAX_LINE
    }
}

/// An export's items grouped by menu, menus in order of appearance.
#[derive(Default)]
pub(super) struct Skimmed<'a> {
    /// Menu paths (`/ip firewall filter`; empty before any menu).
    pub(super) order: Vec<Cow<'a, str>>,
    /// The slot of each menu in `order` and `items`.
    index: HashMap<Cow<'a, str>, usize, BuildHasherDefault<FxHasher>>,
    /// The items of each menu, in order.
    pub(super) items: Vec<Vec<RawItem<'a>>>,
}

impl<'a> Skimmed<'a> {
    /// The items of `menu` (none when it has none).
    pub(super) fn get(&self, menu: &str) -> &[RawItem<'a>] {
        self.index
            .get(menu)
            .map_or(&[][..], |&slot| self.items[slot].as_slice())
    }

    /// Whether the export has items in `menu`.
    pub(super) fn has(&self, menu: &str) -> bool {
        self.index.contains_key(menu)
    }

    fn slot(&mut self, menu: Cow<'a, str>) -> usize {
        let next = self.items.len();
        let slot = *self.index.entry(menu.clone()).or_insert(next);
        if slot == next {
            self.order.push(menu);
            self.items.push(Vec::new());
        }
        slot
    }
}

/// Sorts the item lines of `text` into menus as [`model::parse`] would.
pub(super) fn skim(text: &str) -> Skimmed<'_> {
    let mut out = Skimmed::default();
    let mut current = out.slot(Cow::Borrowed(""));
    for logical in lexer::logical_lines(text) {
        let line = logical.text;
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if line.len() <= MAX_LINE && line.starts_with('/') {
            let (path, rest) = model::split_menu(&line);
            let start = line.len() - rest.trim_start().len();
            let slot = out.slot(borrow_menu(&line, path));
            if rest.trim().is_empty() {
                current = slot;
                continue;
            }
            // A terse line sets the menu in effect too.
            current = slot;
            out.items[slot].push(RawItem { line, start });
            continue;
        }
        out.items[current].push(RawItem { line, start: 0 });
    }
    out
}

/// The menu path, borrowed from the input when it is written there as is
/// (the usual `/ip firewall filter`), so most menus cost no allocation.
fn borrow_menu<'a>(line: &Cow<'a, str>, path: String) -> Cow<'a, str> {
    if let &Cow::Borrowed(line) = line
        && line.starts_with(path.as_str())
    {
        return Cow::Borrowed(&line[..path.len()]);
    }
    Cow::Owned(path)
}

/// A fast non-cryptographic hasher (FxHash, as in rustc) for the text
/// keys of one diff: the input is the caller's, not an attacker's choice
/// of keys against a long-lived table, and SipHash was a quarter of the
/// diff's time.
#[derive(Default, Clone, Copy)]
pub(super) struct FxHasher(u64);

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl std::hash::Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A `HashMap` with [`FxHasher`].
pub(super) type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;
