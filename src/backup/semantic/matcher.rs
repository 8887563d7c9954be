//! Pairs the items of two versions of an export, menu by menu, and turns the
//! pairing into changes: identical lines first (without parsing them), then
//! for the rest identities (`name`, selectors, menu keys),
//! then equal content, then the same comment, then the most similar content
//! (bounded). Ordered menus report moves: the items outside a longest
//! increasing run of the pairs' new positions, so one moved rule is one move.

use std::collections::{HashMap, VecDeque};

use super::identity::{self, Class, Identity};
use super::model::{self, LineKind, Property};
use super::skim::{FxMap, RawItem, Skimmed};
use super::{ChangeKind, ItemChange, PropertyChange};

/// Above this many leftover pairs in one menu, similarity matching is
/// skipped and leftovers read as removed and added.
const MAX_SIMILARITY_PAIRS: usize = 250_000;

/// Above this many property comparisons in one menu (pairs times their
/// properties), similarity matching is skipped too: hostile input with
/// huge items must not take unbounded time.
const MAX_SIMILARITY_WORK: usize = 20_000_000;

/// Two leftovers pair up only when at least this share of their properties
/// agree (Dice coefficient).
const MIN_SIMILARITY: f64 = 0.5;

/// Properties as `(key, raw value)`, sorted by key.
type Content<'e> = [(&'e str, Option<&'e str>)];

/// One item of one menu.
struct Item<'e> {
    identity: Identity,
    properties: &'e [Property],
    /// `(key, raw)` sorted by key, for comparing content.
    sorted: Vec<(&'e str, Option<&'e str>)>,
}

impl Item<'_> {
    fn comment(&self) -> Option<&str> {
        self.properties
            .iter()
            .find(|p| p.key == "comment")
            .map(|p| p.value.as_str())
            .filter(|c| !c.is_empty())
    }
}

/// The item a parsed line is, in `menu`.
fn item<'e>(menu: &str, kind: &'e LineKind) -> Item<'e> {
    const NO_PROPERTIES: &[Property] = &[];
    match kind {
        LineKind::Command { command, .. } => {
            let mut sorted: Vec<_> = command
                .properties
                .iter()
                .map(|p| (p.key.as_str(), p.raw.as_deref()))
                .collect();
            sorted.sort_unstable();
            Item {
                identity: identity::of_command(menu, command),
                properties: command.properties.as_slice(),
                sorted,
            }
        }
        LineKind::Opaque { text, .. } => Item {
            identity: identity::of_opaque(text),
            properties: NO_PROPERTIES,
            sorted: Vec::new(),
        },
        // The skim hands over item lines only.
        LineKind::Blank | LineKind::Comment(_) | LineKind::Menu(_) => Item {
            identity: identity::of_opaque(""),
            properties: NO_PROPERTIES,
            sorted: Vec::new(),
        },
    }
}

/// Parses one item line of `menu`, counting a line that does not parse.
fn parse_item(menu: &str, raw: &RawItem<'_>, problems: &mut usize) -> LineKind {
    let mut context = menu.to_owned();
    model::classify(&raw.line, &mut context, problems)
}

/// What a comparison found: the changes, and how many differing lines of
/// each side (older, newer) did not parse.
#[derive(Default)]
pub(super) struct Outcome {
    pub(super) changes: Vec<ItemChange>,
    pub(super) problems: [usize; 2],
}

/// Every change from `old` to `new`, menu by menu in the newer export's
/// order, then the menus only the older one has.
pub(super) fn changes(old: &Skimmed<'_>, new: &Skimmed<'_>) -> Outcome {
    let mut order: Vec<&str> = new.order.iter().map(|m| m.as_ref()).collect();
    order.extend(old.order.iter().map(|m| m.as_ref()).filter(|m| !new.has(m)));
    let mut out = Outcome::default();
    for menu in order {
        menu_changes(menu, old.get(menu), new.get(menu), &mut out);
    }
    out
}

/// Pairs items whose text is identical, in order of appearance: first the
/// equal prefix position by position, then through a hash of the texts.
/// Such pairs have no property changes, so they are never parsed.
fn pair_identical(
    old: &[RawItem<'_>],
    new: &[RawItem<'_>],
    new_to_old: &mut [Option<usize>],
    taken: &mut [bool],
) {
    let mut start = 0;
    while start < old.len()
        && start < new.len()
        && !old[start].oversized()
        && old[start].text() == new[start].text()
    {
        new_to_old[start] = Some(start);
        taken[start] = true;
        start += 1;
    }
    if start == old.len() || start == new.len() {
        return;
    }
    let mut by_text: FxMap<&str, VecDeque<usize>> = FxMap::default();
    for (i, raw) in old.iter().enumerate().skip(start) {
        if !raw.oversized() {
            by_text.entry(raw.text()).or_default().push_back(i);
        }
    }
    for (j, raw) in new.iter().enumerate().skip(start) {
        if raw.oversized() {
            continue;
        }
        if let Some(i) = by_text.get_mut(raw.text()).and_then(VecDeque::pop_front) {
            new_to_old[j] = Some(i);
            taken[i] = true;
        }
    }
}

/// The changes of one menu, in the order of their position (new, else
/// old). Only the items without an identical twin are parsed and matched.
fn menu_changes(menu: &str, old: &[RawItem<'_>], new: &[RawItem<'_>], out: &mut Outcome) {
    let mut new_to_old = vec![None; new.len()];
    let mut taken = vec![false; old.len()];
    pair_identical(old, new, &mut new_to_old, &mut taken);
    let old_left: Vec<usize> = (0..old.len()).filter(|&i| !taken[i]).collect();
    let new_left: Vec<usize> = (0..new.len())
        .filter(|&j| new_to_old[j].is_none())
        .collect();
    let old_kinds: Vec<LineKind> = old_left
        .iter()
        .map(|&i| parse_item(menu, &old[i], &mut out.problems[0]))
        .collect();
    let new_kinds: Vec<LineKind> = new_left
        .iter()
        .map(|&j| parse_item(menu, &new[j], &mut out.problems[1]))
        .collect();
    let old_items: Vec<Item<'_>> = old_kinds.iter().map(|k| item(menu, k)).collect();
    let new_items: Vec<Item<'_>> = new_kinds.iter().map(|k| item(menu, k)).collect();
    let left_pairs = pair(&old_items, &new_items);
    let mut matched_old = vec![false; old_items.len()];
    let mut changes = Vec::new();
    for (jj, ii) in left_pairs.iter().enumerate() {
        let j = new_left[jj];
        let Some(ii) = *ii else {
            changes.push(whole(
                menu,
                &new_items[jj],
                ChangeKind::Added,
                None,
                Some(j),
            ));
            continue;
        };
        matched_old[ii] = true;
        let i = old_left[ii];
        new_to_old[j] = Some(i);
        let properties = property_changes(&old_items[ii], &new_items[jj]);
        if !properties.is_empty() {
            let mut change = whole(menu, &new_items[jj], ChangeKind::Modified, Some(i), Some(j));
            change.properties = properties;
            changes.push(change);
        }
    }
    for (ii, item) in old_items.iter().enumerate() {
        if !matched_old[ii] {
            let i = old_left[ii];
            changes.push(whole(menu, item, ChangeKind::Removed, Some(i), None));
        }
    }
    if identity::is_ordered(menu) {
        for j in moved(&new_to_old) {
            // A moved item may be one of the identical pairs: parse it now
            // for its label (its line parsed on both sides alike).
            let kind = parse_item(menu, &new[j], &mut 0);
            let mut change = whole(
                menu,
                &item(menu, &kind),
                ChangeKind::Moved,
                new_to_old[j],
                Some(j),
            );
            change.properties.clear();
            changes.push(change);
        }
    }
    changes.sort_by_key(|c| (c.new_index.or(c.old_index), c.kind == ChangeKind::Moved));
    out.changes.extend(changes);
}

/// A change of a whole item: every property on its side.
fn whole(
    menu: &str,
    item: &Item<'_>,
    kind: ChangeKind,
    old_index: Option<usize>,
    new_index: Option<usize>,
) -> ItemChange {
    let properties = item
        .properties
        .iter()
        .map(|p| {
            let (value, raw) = (Some(p.value.clone()), p.raw.clone());
            match kind {
                ChangeKind::Removed => PropertyChange {
                    name: p.key.clone(),
                    old: value,
                    new: None,
                    old_raw: raw,
                    new_raw: None,
                },
                _ => PropertyChange {
                    name: p.key.clone(),
                    old: None,
                    new: value,
                    old_raw: None,
                    new_raw: raw,
                },
            }
        })
        .collect();
    ItemChange {
        menu: menu.to_owned(),
        item: item.identity.label.clone(),
        kind,
        properties,
        old_index,
        new_index,
        identified: !matches!(item.identity.class, Class::Content | Class::Opaque),
        safety: item.identity.safety,
    }
}

/// The properties that differ, in the newer item's order, then those only
/// the older one has.
fn property_changes(old: &Item<'_>, new: &Item<'_>) -> Vec<PropertyChange> {
    if old.sorted == new.sorted {
        return Vec::new();
    }
    let old_by_key: HashMap<&str, &Property> =
        old.properties.iter().map(|p| (p.key.as_str(), p)).collect();
    let new_keys: HashMap<&str, &Property> =
        new.properties.iter().map(|p| (p.key.as_str(), p)).collect();
    let mut out = Vec::new();
    for p in new.properties {
        match old_by_key.get(p.key.as_str()) {
            Some(o) if o.raw == p.raw => {}
            o => out.push(PropertyChange {
                name: p.key.clone(),
                old: o.map(|o| o.value.clone()),
                new: Some(p.value.clone()),
                old_raw: o.and_then(|o| o.raw.clone()),
                new_raw: p.raw.clone(),
            }),
        }
    }
    for p in old.properties {
        if !new_keys.contains_key(p.key.as_str()) {
            out.push(PropertyChange {
                name: p.key.clone(),
                old: Some(p.value.clone()),
                new: None,
                old_raw: p.raw.clone(),
                new_raw: None,
            });
        }
    }
    out
}

/// For each new item, the old item it pairs with.
fn pair(old: &[Item<'_>], new: &[Item<'_>]) -> Vec<Option<usize>> {
    let mut new_to_old = vec![None; new.len()];
    let mut taken = vec![false; old.len()];
    // Identities, in order of appearance for repeated keys.
    let mut by_key: HashMap<(Class, &str), VecDeque<usize>> = HashMap::new();
    for (i, item) in old.iter().enumerate() {
        if item.identity.class != Class::Content {
            let key = (item.identity.class, item.identity.key.as_str());
            by_key.entry(key).or_default().push_back(i);
        }
    }
    for (j, item) in new.iter().enumerate() {
        let key = (item.identity.class, item.identity.key.as_str());
        if let Some(i) = by_key.get_mut(&key).and_then(VecDeque::pop_front) {
            new_to_old[j] = Some(i);
            taken[i] = true;
        }
    }
    pair_by_content(old, new, &mut taken, &mut new_to_old);
    pair_by_comment(old, new, &mut taken, &mut new_to_old);
    pair_by_similarity(old, new, &mut taken, &mut new_to_old);
    new_to_old
}

/// Whether a leftover of this class may pair by content (names, menu keys
/// and unnamed items; not selectors, settings or opaque lines).
fn loose(item: &Item<'_>) -> bool {
    matches!(
        item.identity.class,
        Class::Name | Class::Table | Class::Content
    )
}

fn pair_by_content(
    old: &[Item<'_>],
    new: &[Item<'_>],
    taken: &mut [bool],
    new_to_old: &mut [Option<usize>],
) {
    let mut by_content: HashMap<(Class, &Content<'_>), VecDeque<usize>> = HashMap::new();
    for (i, item) in old.iter().enumerate() {
        if !taken[i] && loose(item) {
            let key = (item.identity.class, item.sorted.as_slice());
            by_content.entry(key).or_default().push_back(i);
        }
    }
    for (j, item) in new.iter().enumerate() {
        if new_to_old[j].is_some() || !loose(item) {
            continue;
        }
        let key = (item.identity.class, item.sorted.as_slice());
        if let Some(i) = by_content.get_mut(&key).and_then(VecDeque::pop_front) {
            new_to_old[j] = Some(i);
            taken[i] = true;
        }
    }
}

/// Unnamed leftovers whose comment is unique on both sides pair up.
fn pair_by_comment(
    old: &[Item<'_>],
    new: &[Item<'_>],
    taken: &mut [bool],
    new_to_old: &mut [Option<usize>],
) {
    let old_comments = unique_comments(old, |i| !taken[i]);
    for (comment, j) in unique_comments(new, |j| new_to_old[j].is_none()) {
        let (Some(j), Some(Some(i))) = (j, old_comments.get(comment)) else {
            continue;
        };
        if new_to_old[j].is_none() && !taken[*i] {
            new_to_old[j] = Some(*i);
            taken[*i] = true;
        }
    }
}

/// Comments of unpaired unnamed items: the item's position when the
/// comment is unique among them, `None` when it repeats (a repeated
/// comment is no hint).
fn unique_comments<'i>(
    items: &'i [Item<'_>],
    free: impl Fn(usize) -> bool,
) -> HashMap<&'i str, Option<usize>> {
    let mut seen: HashMap<&str, Option<usize>> = HashMap::new();
    for (k, item) in items.iter().enumerate() {
        if item.identity.class != Class::Content || !free(k) {
            continue;
        }
        if let Some(comment) = item.comment() {
            let slot = seen.entry(comment).or_insert(Some(k));
            if *slot != Some(k) {
                *slot = None;
            }
        }
    }
    seen
}

/// Leftovers pair with their most similar counterpart of the same class.
fn pair_by_similarity(
    old: &[Item<'_>],
    new: &[Item<'_>],
    taken: &mut [bool],
    new_to_old: &mut [Option<usize>],
) {
    let free_old: Vec<usize> = (0..old.len())
        .filter(|&i| !taken[i] && loose(&old[i]))
        .collect();
    let free_new: Vec<usize> = (0..new.len())
        .filter(|&j| new_to_old[j].is_none() && loose(&new[j]))
        .collect();
    let size = |items: &[Item<'_>], free: &[usize]| -> usize {
        free.iter().map(|&k| items[k].sorted.len()).sum()
    };
    let work = free_new
        .len()
        .saturating_mul(size(old, &free_old))
        .saturating_add(free_old.len().saturating_mul(size(new, &free_new)));
    if free_old.is_empty()
        || free_new.is_empty()
        || free_old.len().saturating_mul(free_new.len()) > MAX_SIMILARITY_PAIRS
        || work > MAX_SIMILARITY_WORK
    {
        return;
    }
    let mut candidates = Vec::new();
    for &i in &free_old {
        for &j in &free_new {
            if old[i].identity.class != new[j].identity.class {
                continue;
            }
            let score = similarity(&old[i].sorted, &new[j].sorted);
            if score >= MIN_SIMILARITY {
                candidates.push((score, i.abs_diff(j), i, j));
            }
        }
    }
    candidates.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    for (_, _, i, j) in candidates {
        if !taken[i] && new_to_old[j].is_none() {
            taken[i] = true;
            new_to_old[j] = Some(i);
        }
    }
}

/// The Dice coefficient of two sorted property lists.
fn similarity(a: &Content<'_>, b: &Content<'_>) -> f64 {
    if a.is_empty() && b.is_empty() {
        return 1.0;
    }
    let (mut x, mut y, mut common) = (0, 0, 0u32);
    while x < a.len() && y < b.len() {
        match a[x].cmp(&b[y]) {
            std::cmp::Ordering::Less => x += 1,
            std::cmp::Ordering::Greater => y += 1,
            std::cmp::Ordering::Equal => {
                common += 1;
                x += 1;
                y += 1;
            }
        }
    }
    let total = (a.len() + b.len()) as f64;
    2.0 * f64::from(common) / total
}

/// The new positions of paired items that moved: those outside a longest
/// increasing subsequence of new positions taken in old order.
fn moved(new_to_old: &[Option<usize>]) -> Vec<usize> {
    let mut pairs: Vec<(usize, usize)> = new_to_old
        .iter()
        .enumerate()
        .filter_map(|(j, i)| i.map(|i| (i, j)))
        .collect();
    pairs.sort_unstable();
    let seq: Vec<usize> = pairs.iter().map(|&(_, j)| j).collect();
    let keep = longest_increasing(&seq);
    let mut stays = vec![false; seq.len()];
    keep.into_iter().for_each(|k| stays[k] = true);
    let mut out: Vec<usize> = seq
        .iter()
        .zip(stays)
        .filter(|(_, stays)| !stays)
        .map(|(&j, _)| j)
        .collect();
    out.sort_unstable();
    out
}

/// Indices into `seq` of one longest strictly increasing subsequence
/// (patience sorting, O(n log n)).
fn longest_increasing(seq: &[usize]) -> Vec<usize> {
    let mut tails: Vec<usize> = Vec::new();
    let mut parent = vec![usize::MAX; seq.len()];
    for (k, &value) in seq.iter().enumerate() {
        let at = tails.partition_point(|&t| seq[t] < value);
        if at > 0 {
            parent[k] = tails[at - 1];
        }
        if at == tails.len() {
            tails.push(k);
        } else {
            tails[at] = k;
        }
    }
    let mut out = Vec::with_capacity(tails.len());
    let mut k = tails.last().copied().unwrap_or(usize::MAX);
    while k != usize::MAX {
        out.push(k);
        k = parent[k];
    }
    out.reverse();
    out
}
