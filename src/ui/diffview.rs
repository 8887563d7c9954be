//! The diff page's model, built from two texts (pure, no I/O): changes
//! ("hunks") with three lines of context, in unified and side-by-side rows,
//! words that changed inside a changed line marked, unchanged stretches
//! between changes folded (their lines kept up to [`FOLD_MAX`] so a
//! `<details>` can show them), and a cap of [`MAX_ROWS`] rows after which
//! the page links to the raw diff instead.

use std::time::Duration;

use similar::{Algorithm, ChangeTag, DiffOp, TextDiff};

/// Context lines around a change.
pub const CONTEXT: usize = 3;
/// A folded stretch longer than this is not included in the page.
pub const FOLD_MAX: usize = 400;
/// Rows of changes shown before the page stops and links the raw diff.
pub const MAX_ROWS: usize = 5_000;
/// Unchanged lines kept in folds, all folds together, so the page's size
/// stays bounded whatever the versions' length.
pub const FOLD_BUDGET: usize = 3_000;
/// Lines longer than this are not diffed word by word.
const WORD_DIFF_MAX: usize = 2_000;

/// A piece of a line; `em` marks a changed word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seg {
    /// The text.
    pub text: String,
    /// Whether it changed.
    pub em: bool,
}

/// One side of a line: its number, kind (`ctx`, `add`, `del`) and pieces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Side {
    /// 1-based line number on its side.
    pub no: usize,
    /// `ctx`, `add` or `del`.
    pub kind: &'static str,
    /// The line in pieces.
    pub segs: Vec<Seg>,
}

/// A row of the unified view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// `ctx`, `add` or `del`.
    pub kind: &'static str,
    /// Line number in the old version.
    pub old_no: Option<usize>,
    /// Line number in the new version.
    pub new_no: Option<usize>,
    /// The line in pieces.
    pub segs: Vec<Seg>,
}

/// A row of the side-by-side view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitRow {
    /// The old side, if the row has one.
    pub left: Option<Side>,
    /// The new side, if the row has one.
    pub right: Option<Side>,
}

/// A change with its context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hunk {
    /// 1-based number (anchor `c{n}`).
    pub n: usize,
    /// Unified rows.
    pub rows: Vec<Row>,
    /// Side-by-side rows.
    pub split: Vec<SplitRow>,
}

/// Unchanged lines between changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fold {
    /// How many lines.
    pub count: usize,
    /// Their rows, when at most [`FOLD_MAX`].
    pub rows: Option<Vec<Row>>,
    /// The same as side-by-side rows.
    pub split: Option<Vec<SplitRow>>,
}

/// A fold followed by a hunk (the last may have no hunk: the tail).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// Unchanged lines before the hunk (`None` when there are none).
    pub fold: Option<Fold>,
    /// The change.
    pub hunk: Option<Hunk>,
}

/// The whole diff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffView {
    /// Folds and hunks in order.
    pub blocks: Vec<Block>,
    /// Number of hunks.
    pub hunks: usize,
    /// Lines added.
    pub added: usize,
    /// Lines removed.
    pub removed: usize,
    /// Whether hunks were left out over [`MAX_ROWS`].
    pub truncated: bool,
}

/// Diffs `old` against `new` line by line, giving up refinement after
/// `deadline` (the result is then coarser, still correct).
pub fn build(old: &str, new: &str, deadline: Duration) -> DiffView {
    let diff = TextDiff::configure()
        .algorithm(Algorithm::Myers)
        .timeout(deadline)
        .diff_lines(old, new);
    let (a, b): (Vec<&str>, Vec<&str>) = (old.lines().collect(), new.lines().collect());
    let groups = diff.grouped_ops(CONTEXT);
    let mut view = DiffView {
        blocks: Vec::new(),
        hunks: 0,
        added: 0,
        removed: 0,
        truncated: false,
    };
    let mut shown_rows = 0;
    let mut budget = FOLD_BUDGET;
    let mut pos = (0usize, 0usize);
    for group in &groups {
        let Some(first) = group.first() else { continue };
        let start = (first.old_range().start, first.new_range().start);
        let fold = fold(&a, pos, start.0 - pos.0, &mut budget);
        let hunk = hunk(&a, &b, group, view.hunks + 1);
        view.added += hunk.rows.iter().filter(|r| r.kind == "add").count();
        view.removed += hunk.rows.iter().filter(|r| r.kind == "del").count();
        if let Some(last) = group.last() {
            pos = (last.old_range().end, last.new_range().end);
        }
        if shown_rows + hunk.rows.len() > MAX_ROWS {
            view.truncated = true;
            continue;
        }
        shown_rows += hunk.rows.len();
        view.hunks += 1;
        view.blocks.push(Block {
            fold,
            hunk: Some(hunk),
        });
    }
    if !view.truncated && pos.0 < a.len() {
        let tail = fold(&a, pos, a.len() - pos.0, &mut budget);
        view.blocks.push(Block {
            fold: tail,
            hunk: None,
        });
    }
    view
}

/// `count` unchanged lines starting at `(old, new)` positions; their rows
/// are kept when the fold is short and `budget` allows.
fn fold(a: &[&str], (old, new): (usize, usize), count: usize, budget: &mut usize) -> Option<Fold> {
    if count == 0 {
        return None;
    }
    let keep = count <= FOLD_MAX && count <= *budget;
    if keep {
        *budget -= count;
    }
    let rows: Option<Vec<Row>> = keep.then(|| {
        (0..count)
            .map(|i| context_row(a[old + i], old + i, new + i))
            .collect()
    });
    let split = rows
        .as_ref()
        .map(|rows| rows.iter().map(context_split).collect());
    Some(Fold { count, rows, split })
}

fn plain(text: &str) -> Vec<Seg> {
    vec![Seg {
        text: text.to_owned(),
        em: false,
    }]
}

fn context_row(text: &str, old: usize, new: usize) -> Row {
    Row {
        kind: "ctx",
        old_no: Some(old + 1),
        new_no: Some(new + 1),
        segs: plain(text),
    }
}

fn context_split(row: &Row) -> SplitRow {
    let side = |no: Option<usize>| Side {
        no: no.unwrap_or(0),
        kind: "ctx",
        segs: row.segs.clone(),
    };
    SplitRow {
        left: Some(side(row.old_no)),
        right: Some(side(row.new_no)),
    }
}

/// The rows of one group of operations.
fn hunk(a: &[&str], b: &[&str], group: &[DiffOp], n: usize) -> Hunk {
    let mut rows = Vec::new();
    let mut split = Vec::new();
    for op in group {
        let (olds, news) = (op.old_range(), op.new_range());
        match op {
            DiffOp::Equal { .. } => {
                for (i, j) in olds.zip(news) {
                    let row = context_row(a[i], i, j);
                    split.push(context_split(&row));
                    rows.push(row);
                }
            }
            DiffOp::Delete { .. } | DiffOp::Insert { .. } | DiffOp::Replace { .. } => {
                let pairs = olds.len().min(news.len());
                let mut dels = Vec::new();
                let mut adds = Vec::new();
                for k in 0..olds.len().max(news.len()) {
                    let (i, j) = (olds.start + k, news.start + k);
                    let (old_segs, new_segs) = if k < pairs {
                        words(a[i], b[j])
                    } else {
                        (
                            plain(a.get(i).copied().unwrap_or("")),
                            plain(b.get(j).copied().unwrap_or("")),
                        )
                    };
                    let left = (i < olds.end).then(|| Side {
                        no: i + 1,
                        kind: "del",
                        segs: old_segs,
                    });
                    let right = (j < news.end).then(|| Side {
                        no: j + 1,
                        kind: "add",
                        segs: new_segs,
                    });
                    if let Some(l) = &left {
                        dels.push(Row {
                            kind: "del",
                            old_no: Some(l.no),
                            new_no: None,
                            segs: l.segs.clone(),
                        });
                    }
                    if let Some(r) = &right {
                        adds.push(Row {
                            kind: "add",
                            old_no: None,
                            new_no: Some(r.no),
                            segs: r.segs.clone(),
                        });
                    }
                    split.push(SplitRow { left, right });
                }
                rows.extend(dels);
                rows.extend(adds);
            }
        }
    }
    Hunk { n, rows, split }
}

/// The two lines in pieces, changed words marked (`em`) on each side.
fn words(old: &str, new: &str) -> (Vec<Seg>, Vec<Seg>) {
    if old.len() > WORD_DIFF_MAX || new.len() > WORD_DIFF_MAX {
        return (plain(old), plain(new));
    }
    let diff = TextDiff::configure()
        .algorithm(Algorithm::Myers)
        .timeout(Duration::from_millis(20))
        .diff_words(old, new);
    let (mut left, mut right) = (Vec::new(), Vec::new());
    for change in diff.iter_all_changes() {
        let text = change.value();
        match change.tag() {
            ChangeTag::Equal => {
                push(&mut left, text, false);
                push(&mut right, text, false);
            }
            ChangeTag::Delete => push(&mut left, text, true),
            ChangeTag::Insert => push(&mut right, text, true),
        }
    }
    (left, right)
}

/// Appends `text`, merging with the last piece when it has the same mark
/// (whitespace between two changed words stays marked with them).
fn push(segs: &mut Vec<Seg>, text: &str, em: bool) {
    match segs.last_mut() {
        Some(last) if last.em == em || (last.em && text.trim().is_empty()) => {
            last.text.push_str(text)
        }
        _ => segs.push(Seg {
            text: text.to_owned(),
            em,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbered(n: usize) -> String {
        (1..=n).map(|i| format!("line {i}\n")).collect()
    }

    #[test]
    fn a_changed_line_shows_on_both_sides_with_its_changed_word_marked() {
        let old = "/ip address\nadd address=10.0.0.1/24 interface=ether1\n";
        let new = "/ip address\nadd address=10.0.0.2/24 interface=ether1\n";
        let v = build(old, new, Duration::from_secs(1));
        assert_eq!((v.hunks, v.added, v.removed), (1, 1, 1));
        let hunk = v.blocks[0].hunk.as_ref().expect("a hunk");
        let del = hunk
            .rows
            .iter()
            .find(|r| r.kind == "del")
            .expect("a removed line");
        let add = hunk
            .rows
            .iter()
            .find(|r| r.kind == "add")
            .expect("an added line");
        let marked = |segs: &[Seg]| {
            segs.iter()
                .filter(|s| s.em)
                .map(|s| s.text.clone())
                .collect::<String>()
        };
        assert!(marked(&del.segs).contains("10.0.0.1"), "{del:?}");
        assert!(marked(&add.segs).contains("10.0.0.2"), "{add:?}");
        assert!(!marked(&add.segs).contains("interface"), "{add:?}");
        let row = &hunk.split[1];
        assert_eq!(row.left.as_ref().map(|s| s.no), Some(2));
        assert_eq!(row.right.as_ref().map(|s| s.kind), Some("add"));
    }

    #[test]
    fn unchanged_stretches_fold_between_changes_and_at_the_end() {
        let old = numbered(100);
        let new = old
            .replace("line 10\n", "line ten\n")
            .replace("line 90\n", "line ninety\n");
        let v = build(&old, &new, Duration::from_secs(1));
        assert_eq!(v.hunks, 2);
        let folds: Vec<usize> = v
            .blocks
            .iter()
            .filter_map(|b| b.fold.as_ref().map(|f| f.count))
            .collect();
        // 1..=6 before the first change, 14..=86 between, 94..=100 after.
        assert_eq!(folds, vec![6, 73, 7]);
        let middle = v.blocks[1]
            .fold
            .as_ref()
            .and_then(|f| f.rows.as_ref())
            .expect("kept");
        assert_eq!(middle[0].old_no, Some(14));
    }

    #[test]
    fn huge_diffs_are_capped() {
        let old = numbered(3 * MAX_ROWS);
        let new: String = (1..=3 * MAX_ROWS)
            .map(|i| format!("changed {i}\n"))
            .collect();
        let v = build(&old, &new, Duration::from_secs(5));
        assert!(v.truncated);
        let rows: usize = v
            .blocks
            .iter()
            .filter_map(|b| b.hunk.as_ref())
            .map(|h| h.rows.len())
            .sum();
        assert!(rows <= MAX_ROWS, "{rows}");
    }

    #[test]
    fn folds_keep_at_most_the_budget_of_lines() {
        // 2,000 changes 60 lines apart: 2,000 folds of 54 lines.
        let old = numbered(120_000);
        let new: String = old
            .lines()
            .enumerate()
            .map(|(i, l)| {
                if i % 60 == 30 {
                    format!("{l} changed\n")
                } else {
                    format!("{l}\n")
                }
            })
            .collect();
        let v = build(&old, &new, Duration::from_secs(5));
        let kept: usize = v
            .blocks
            .iter()
            .filter_map(|b| b.fold.as_ref().and_then(|f| f.rows.as_ref()))
            .map(Vec::len)
            .sum();
        assert!(kept <= FOLD_BUDGET, "{kept}");
        assert!(
            v.blocks
                .iter()
                .any(|b| b.fold.as_ref().is_some_and(|f| f.rows.is_none()))
        );
    }

    #[test]
    fn identical_texts_have_no_hunks() {
        let v = build("a\nb\n", "a\nb\n", Duration::from_secs(1));
        assert_eq!(v.hunks, 0);
        assert_eq!(v.blocks.len(), 1);
    }
}
