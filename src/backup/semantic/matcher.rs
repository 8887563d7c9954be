//! Pairs the items of two versions of an export, menu by menu, and turns the
//! pairing into changes: identities first (`name`, selectors, menu keys),
//! then equal content, then the same comment, then the most similar content
//! (bounded). Ordered menus report moves: the items outside a longest
//! increasing run of the pairs' new positions, so one moved rule is one move.

use std::collections::{HashMap, VecDeque};

use super::identity::{self, Class, Identity};
use super::model::{Export, LineKind, Property};
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

/// The items of an export grouped by menu, menus in order of appearance.
struct Menus<'e> {
    order: Vec<&'e str>,
    index: HashMap<&'e str, usize>,
    items: Vec<Vec<Item<'e>>>,
}

fn group(export: &Export) -> Menus<'_> {
    const NO_PROPERTIES: &[Property] = &[];
    let mut menus = Menus {
        order: Vec::new(),
        index: HashMap::new(),
        items: Vec::new(),
    };
    let mut last: Option<(&str, usize)> = None;
    for line in &export.lines {
        let (menu, item) = match &line.kind {
            LineKind::Command { menu, command, .. } => {
                let mut sorted: Vec<_> = command
                    .properties
                    .iter()
                    .map(|p| (p.key.as_str(), p.raw.as_deref()))
                    .collect();
                sorted.sort_unstable();
                let identity = identity::of_command(menu, command);
                let properties = command.properties.as_slice();
                (
                    menu.as_str(),
                    Item {
                        identity,
                        properties,
                        sorted,
                    },
                )
            }
            LineKind::Opaque { menu, text } => (
                menu.as_str(),
                Item {
                    identity: identity::of_opaque(text),
                    properties: NO_PROPERTIES,
                    sorted: Vec::new(),
                },
            ),
            _ => continue,
        };
        // Lines come in runs of one menu: look the menu up only when it
        // changes.
        let slot = match last {
            Some((name, slot)) if name == menu => slot,
            _ => {
                let next = menus.items.len();
                let slot = *menus.index.entry(menu).or_insert(next);
                if slot == next {
                    menus.order.push(menu);
                    menus.items.push(Vec::new());
                }
                last = Some((menu, slot));
                slot
            }
        };
        menus.items[slot].push(item);
    }
    menus
}

impl<'e> Menus<'e> {
    /// The items of `menu`, none when it has none.
    fn get(&self, menu: &str) -> &[Item<'e>] {
        self.index
            .get(menu)
            .map_or(&[][..], |&slot| self.items[slot].as_slice())
    }
}

/// Every change from `old` to `new`.
pub(super) fn changes(old: &Export, new: &Export) -> Vec<ItemChange> {
    let (old_menus, new_menus) = (group(old), group(new));
    let mut order = new_menus.order.clone();
    order.extend(
        old_menus
            .order
            .iter()
            .filter(|m| !new_menus.index.contains_key(*m)),
    );
    let mut out = Vec::new();
    for menu in order {
        menu_changes(menu, old_menus.get(menu), new_menus.get(menu), &mut out);
    }
    out
}

/// The changes of one menu, in the order of their position (new, else old).
fn menu_changes(menu: &str, old: &[Item<'_>], new: &[Item<'_>], out: &mut Vec<ItemChange>) {
    let new_to_old = pair(old, new);
    let mut matched_old = vec![false; old.len()];
    let mut changes = Vec::new();
    for (j, i) in new_to_old.iter().enumerate() {
        let Some(i) = *i else {
            changes.push(whole(menu, &new[j], ChangeKind::Added, None, Some(j)));
            continue;
        };
        matched_old[i] = true;
        let properties = property_changes(&old[i], &new[j]);
        if !properties.is_empty() {
            let mut change = whole(menu, &new[j], ChangeKind::Modified, Some(i), Some(j));
            change.properties = properties;
            changes.push(change);
        }
    }
    for (i, item) in old.iter().enumerate() {
        if !matched_old[i] {
            changes.push(whole(menu, item, ChangeKind::Removed, Some(i), None));
        }
    }
    if identity::is_ordered(menu) {
        for j in moved(&new_to_old) {
            let mut change = whole(menu, &new[j], ChangeKind::Moved, new_to_old[j], Some(j));
            change.properties.clear();
            changes.push(change);
        }
    }
    changes.sort_by_key(|c| (c.new_index.or(c.old_index), c.kind == ChangeKind::Moved));
    out.extend(changes);
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
