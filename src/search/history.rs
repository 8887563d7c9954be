//! `scope=history`: each selected device's stored versions, oldest first,
//! a page of versions at a time. Each version is opened (and masked for
//! callers who may not see secrets) on the blocking pool, split over the
//! cores, and reduced to the multiset of its matching lines; comparing
//! consecutive multisets gives the versions where matching lines appeared
//! and went. Comparing masked versions rather than the stored diffs keeps
//! each line's menu, which masking needs. Where retention deleted a
//! device's oldest versions, the stored diff of the oldest remaining one
//! still tells which of its lines it added (`added_earlier` for the rest).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use anyhow::Context as _;

use super::{Items, LineLife, Page, Result, Scan, VersionRef, paginate, workers};
use crate::backup::redact;
use crate::store::history::Secrets;
use crate::store::search::SealedVersion;
use crate::telemetry::spawn_blocking_with_tracing;

/// Versions fetched per round.
const PAGE: u32 = 256;

/// A version reduced to what history needs.
struct Reduced {
    version: VersionRef,
    /// Matching lines and how often each occurs.
    lines: HashMap<String, usize>,
    /// Matching lines with the 1-based numbers they occur at.
    numbered: Vec<(usize, String)>,
}

pub(super) async fn search(scan: &Scan<'_>, devices: &[(String, i64)]) -> Result<Page> {
    let mut per_device = Vec::new();
    let mut found = 0;
    for (device, _) in devices {
        if found > scan.query.limit {
            break;
        }
        let lives = device_lives(scan, device).await?;
        if let Some(l) = &lives {
            found += l.len().saturating_sub(scan.skip(device));
        }
        let cut = lives.is_none();
        per_device.push((device.clone(), lives));
        if cut {
            break;
        }
    }
    let (items, partial, next_cursor) = paginate(scan, per_device);
    Ok(Page {
        items: Items::History(items),
        partial,
        next_cursor,
    })
}

/// The lives of `device`'s matching lines within the time window, in the
/// order they began; `None` when the deadline cut the device off.
async fn device_lives(scan: &Scan<'_>, device: &str) -> Result<Option<Vec<LineLife>>> {
    let mut tracker = Lives::default();
    let mut after = None;
    let mut first = true;
    loop {
        if tokio::time::Instant::now() >= scan.deadline {
            return Ok(None);
        }
        let versions = scan
            .store
            .device_versions(scan.tenant_id, device, after, PAGE)
            .await?;
        let Some(last) = versions.last() else { break };
        after = Some(last.snapshot_id);
        let oldest_has_diff = first && versions[0].has_diff;
        let Some(reduced) = reduce(scan, versions).await? else {
            return Ok(None);
        };
        for (i, version) in reduced.into_iter().enumerate() {
            if first && i == 0 {
                let added = match oldest_has_diff {
                    true => Some(added_lines(scan, device, version.version.snapshot_id).await?),
                    false => None,
                };
                tracker.start(device, version, added.as_ref());
            } else {
                tracker.step(device, version);
            }
        }
        first = false;
    }
    Ok(Some(tracker.finish(scan)))
}

/// New-file line numbers of the `+` lines of the stored diff of a device's
/// oldest remaining version (retention deleted its predecessor).
async fn added_lines(scan: &Scan<'_>, device: &str, snapshot_id: i64) -> Result<HashSet<usize>> {
    let diff = scan
        .store
        .stored_diff_text(scan.tenant_id, device, snapshot_id)
        .await?
        .unwrap_or_default();
    Ok(plus_line_numbers(&diff))
}

/// The new-file line numbers of a unified diff's `+` lines.
fn plus_line_numbers(diff: &str) -> HashSet<usize> {
    let mut added = HashSet::new();
    let mut next: Option<usize> = None;
    for line in diff.lines() {
        if let Some(header) = line.strip_prefix("@@ ") {
            // @@ -a,b +c,d @@
            next = header
                .split_whitespace()
                .find_map(|t| t.strip_prefix('+'))
                .and_then(|t| t.split(',').next())
                .and_then(|n| n.parse().ok());
            continue;
        }
        let Some(n) = next.as_mut() else { continue };
        match line.as_bytes().first() {
            Some(b'+') => {
                added.insert(*n);
                *n += 1;
            }
            Some(b' ') => *n += 1,
            _ => {}
        }
    }
    added
}

/// Opens and reduces `versions` on the blocking pool, one contiguous share
/// per core; `None` when the deadline passed first.
async fn reduce(scan: &Scan<'_>, versions: Vec<SealedVersion>) -> Result<Option<Vec<Reduced>>> {
    let share = versions.len().div_ceil(workers()).max(1);
    let deadline = scan.deadline.into_std();
    let mut tasks = Vec::new();
    let mut versions = versions.into_iter().peekable();
    while versions.peek().is_some() {
        let chunk: Vec<SealedVersion> = versions.by_ref().take(share).collect();
        let (opener, tenant) = (scan.store.opener(), scan.tenant_id.to_owned());
        let (matcher, secrets) = (scan.query.matcher.clone(), scan.secrets);
        let unmasked_first = scan.query.unmasked_first;
        tasks.push(spawn_blocking_with_tracing(move || {
            let mut out = Vec::with_capacity(chunk.len());
            for v in chunk {
                if std::time::Instant::now() >= deadline {
                    return Ok(None);
                }
                let raw = opener.open(&tenant, &v)?;
                let text = match secrets {
                    Secrets::Shown => raw,
                    // No match unmasked: none masked either, nothing to mask.
                    Secrets::Masked if unmasked_first && !matcher.is_match(&raw) => String::new(),
                    Secrets::Masked => redact::redact(&raw),
                };
                let mut lines = HashMap::new();
                let mut numbered = Vec::new();
                for (i, line) in text
                    .lines()
                    .enumerate()
                    .filter(|(_, l)| matcher.is_match(l))
                {
                    *lines.entry(line.to_owned()).or_insert(0) += 1;
                    numbered.push((i + 1, line.to_owned()));
                }
                let version = VersionRef {
                    snapshot_id: v.snapshot_id,
                    collected_at: v.collected_at,
                };
                out.push(Reduced {
                    version,
                    lines,
                    numbered,
                });
            }
            Ok(Some(out))
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        let part: Result<Option<Vec<Reduced>>> = task.await.context("a search task failed")?;
        match part? {
            Some(part) => all.extend(part),
            None => return Ok(None),
        }
    }
    Ok(Some(all))
}

/// Open and closed lives of one device's matching lines.
#[derive(Default)]
struct Lives {
    /// Per line, the lives still open, oldest first.
    open: BTreeMap<String, VecDeque<LineLife>>,
    closed: Vec<LineLife>,
    previous: HashMap<String, usize>,
}

impl Lives {
    /// The oldest remaining version: its lines begin lives; with `added`
    /// (its predecessor was deleted), lines at other numbers were there
    /// before.
    fn start(&mut self, device: &str, version: Reduced, added: Option<&HashSet<usize>>) {
        for (n, line) in &version.numbered {
            let earlier = added.is_some_and(|a| !a.contains(n));
            self.open_life(device, line, version.version, earlier);
        }
        self.previous = version.lines;
    }

    /// A later version: lines that occur more often begin lives, fewer end
    /// the oldest.
    fn step(&mut self, device: &str, version: Reduced) {
        for (line, &now) in &version.lines {
            let before = self.previous.get(line).copied().unwrap_or(0);
            for _ in before..now {
                self.open_life(device, line, version.version, false);
            }
        }
        for (line, &before) in &self.previous {
            let now = version.lines.get(line).copied().unwrap_or(0);
            for _ in now..before {
                if let Some(mut life) = self.open.get_mut(line).and_then(VecDeque::pop_front) {
                    life.removed_in = Some(version.version);
                    self.closed.push(life);
                }
            }
        }
        self.previous = version.lines;
    }

    fn open_life(&mut self, device: &str, line: &str, at: VersionRef, earlier: bool) {
        self.open
            .entry(line.to_owned())
            .or_default()
            .push_back(LineLife {
                device_id: device.to_owned(),
                line: line.to_owned(),
                added_in: at,
                removed_in: None,
                added_earlier: earlier,
            });
    }

    /// Every life that overlaps the window, in the order they began.
    fn finish(self, scan: &Scan<'_>) -> Vec<LineLife> {
        let (since, until) = (scan.query.since, scan.query.until);
        let mut all: Vec<LineLife> = self
            .closed
            .into_iter()
            .chain(self.open.into_values().flatten())
            .filter(|l| until.is_none_or(|u| l.added_in.collected_at <= u))
            .filter(|l| since.is_none_or(|s| l.removed_in.is_none_or(|r| r.collected_at >= s)))
            .collect();
        all.sort_by(|a, b| {
            (
                a.added_in.snapshot_id,
                &a.line,
                a.removed_in.map(|r| r.snapshot_id),
            )
                .cmp(&(
                    b.added_in.snapshot_id,
                    &b.line,
                    b.removed_in.map(|r| r.snapshot_id),
                ))
        });
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plus_lines_are_numbered_in_the_new_file() {
        let diff = "--- a\n+++ b\n@@ -1,3 +1,4 @@\n ctx\n-old\n+new1\n+new2\n ctx\n@@ -10,2 +11,2 @@\n ctx\n+late\n";
        let added = plus_line_numbers(diff);
        assert_eq!(added, HashSet::from([2, 3, 12]));
    }
}
