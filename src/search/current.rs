//! `scope=current`: the newest version of every selected device, in
//! batches of devices; each batch is opened and scanned on the blocking
//! pool, split over the cores, while the next batch is read from the
//! store, until the page is full or the deadline passes.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context as _;

use super::cache::{Cache, Texts};
use super::{Items, LineHit, Page, Result, Scan, paginate, workers};
use crate::backup::redact;
use crate::store::history::Secrets;
use crate::store::search::{Opener, SealedVersion};
use crate::telemetry::spawn_blocking_with_tracing;

/// Devices fetched and scanned per round.
const BATCH: usize = 64;
/// Lines of context either side of a hit.
const CONTEXT: usize = 2;

/// One device to scan: its newest version, cached or still sealed.
enum Source {
    Cached(Arc<Texts>),
    Sealed(SealedVersion),
}

pub(super) async fn search(
    scan: &Scan<'_>,
    cache: Option<&Arc<Cache>>,
    devices: &[(String, i64)],
) -> Result<Page> {
    let mut per_device: Vec<(String, Option<Vec<LineHit>>)> = Vec::new();
    let mut found = 0;
    let mut batches = devices.chunks(BATCH);
    let mut next = match batches.next() {
        Some(batch) => Some((batch, sources(scan, cache, batch).await?)),
        None => None,
    };
    while let Some((batch, sealed)) = next.take() {
        if found > scan.query.limit {
            break;
        }
        if tokio::time::Instant::now() >= scan.deadline {
            per_device.push((batch[0].0.clone(), None));
            break;
        }
        // The next batch is read from the store while this one is scanned,
        // so the cores never wait for the database between batches.
        let following = batches.next();
        let (results, prefetched) = tokio::join!(scan_batch(scan, cache, sealed), async {
            match following {
                Some(b) => sources(scan, cache, b).await.map(|s| Some((b, s))),
                None => Ok(None),
            }
        });
        let results = results?;
        next = prefetched?;
        let cut = results.iter().any(|(_, hits)| hits.is_none());
        for (device, hits) in results {
            if let Some(h) = &hits {
                found += h.len().saturating_sub(scan.skip(&device));
            }
            per_device.push((device, hits));
        }
        if cut {
            break;
        }
    }
    let (items, partial, next_cursor) = paginate(scan, per_device);
    Ok(Page {
        items: Items::Current(items),
        partial,
        next_cursor,
    })
}

/// The batch's newest versions: from the cache where it holds the newest
/// snapshot id, else sealed from the store.
async fn sources(
    scan: &Scan<'_>,
    cache: Option<&Arc<Cache>>,
    batch: &[(String, i64)],
) -> Result<Vec<(String, Source)>> {
    let mut cached = HashMap::new();
    let mut missing = Vec::new();
    for (device, snapshot_id) in batch {
        match cache.and_then(|c| c.get(scan.tenant_id, device, *snapshot_id)) {
            Some(texts) => {
                cached.insert(device.clone(), texts);
            }
            None => missing.push(*snapshot_id),
        }
    }
    let mut sealed: HashMap<String, SealedVersion> = scan
        .store
        .sealed_versions(scan.tenant_id, &missing)
        .await?
        .into_iter()
        .map(|v| (v.device_id.clone(), v))
        .collect();
    Ok(batch
        .iter()
        .filter_map(|(device, _)| {
            let source = match cached.remove(device) {
                Some(texts) => Source::Cached(texts),
                // Gone since the id list was read (retention, a move): skip.
                None => Source::Sealed(sealed.remove(device)?),
            };
            Some((device.clone(), source))
        })
        .collect())
}

/// Opens and scans `sources` on the blocking pool, one contiguous share per
/// core; a share stops at the deadline and leaves the rest `None`.
async fn scan_batch(
    scan: &Scan<'_>,
    cache: Option<&Arc<Cache>>,
    sources: Vec<(String, Source)>,
) -> Result<Vec<(String, Option<Vec<LineHit>>)>> {
    let share = sources.len().div_ceil(workers()).max(1);
    let mut shares = Vec::new();
    let mut sources = sources.into_iter().peekable();
    while sources.peek().is_some() {
        shares.push(sources.by_ref().take(share).collect::<Vec<_>>());
    }
    let deadline = scan.deadline.into_std();
    let mut tasks = Vec::new();
    for share in shares {
        let job = Job {
            opener: scan.store.opener(),
            tenant_id: scan.tenant_id.to_owned(),
            matcher: scan.query.matcher.clone(),
            unmasked_first: scan.query.unmasked_first,
            secrets: scan.secrets,
            cache: cache.cloned(),
        };
        tasks.push(spawn_blocking_with_tracing(move || {
            share
                .into_iter()
                .map(|(device, source)| {
                    if std::time::Instant::now() >= deadline {
                        return Ok((device, None));
                    }
                    let hits = job.scan(&device, source)?;
                    Ok((device, Some(hits)))
                })
                .collect::<Result<Vec<_>>>()
        }));
    }
    let mut out = Vec::new();
    for task in tasks {
        out.extend(task.await.context("a search task failed")??);
    }
    Ok(out)
}

/// What a blocking share needs.
struct Job {
    opener: Opener,
    tenant_id: String,
    matcher: regex::Regex,
    unmasked_first: bool,
    secrets: Secrets,
    cache: Option<Arc<Cache>>,
}

impl Job {
    fn scan(&self, device: &str, source: Source) -> Result<Vec<LineHit>> {
        let (snapshot_id, texts) = match source {
            Source::Cached(texts) => (texts.snapshot_id, texts),
            Source::Sealed(version) => {
                let raw = self.opener.open(&self.tenant_id, &version)?;
                let texts = Arc::new(Texts::new(version.snapshot_id, raw));
                if let Some(cache) = &self.cache {
                    cache.put(&self.tenant_id, device, Arc::clone(&texts));
                }
                (version.snapshot_id, texts)
            }
        };
        let text = match self.secrets {
            Secrets::Shown => texts.raw(),
            Secrets::Masked if self.unmasked_first && !self.matcher.is_match(texts.raw()) => {
                return Ok(Vec::new());
            }
            Secrets::Masked => texts.masked(redact::redact),
        };
        Ok(hits(&self.matcher, device, snapshot_id, text))
    }
}

/// Every matching line of `text` with its context.
fn hits(matcher: &regex::Regex, device: &str, snapshot_id: i64, text: &str) -> Vec<LineHit> {
    if !matcher.is_match(text) {
        return Vec::new();
    }
    let lines: Vec<&str> = text.lines().collect();
    let owned = |range: &[&str]| range.iter().map(|l| (*l).to_owned()).collect();
    lines
        .iter()
        .enumerate()
        .filter(|(_, line)| matcher.is_match(line))
        .map(|(i, line)| LineHit {
            device_id: device.to_owned(),
            snapshot_id,
            line_no: i + 1,
            line: (*line).to_owned(),
            before: owned(&lines[i.saturating_sub(CONTEXT)..i]),
            after: owned(&lines[i + 1..(i + 1 + CONTEXT).min(lines.len())]),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_carry_two_lines_of_context_clipped_at_the_ends() {
        let m = regex::Regex::new("x").expect("regex");
        let text = "x1\na\nb\nx2\nc\nd\ne\nx3";
        let found = hits(&m, "r1", 7, text);
        assert_eq!(found.len(), 3);
        assert_eq!((found[0].line_no, found[0].before.len()), (1, 0));
        assert_eq!(found[0].after, ["a", "b"]);
        assert_eq!(found[1].before, ["a", "b"]);
        assert_eq!(found[1].after, ["c", "d"]);
        assert_eq!((found[2].line_no, found[2].after.len()), (8, 0));
        assert!(
            found
                .iter()
                .all(|h| h.snapshot_id == 7 && h.device_id == "r1")
        );
    }

    #[test]
    fn a_regex_that_spans_lines_matches_no_line() {
        let m = regex::Regex::new("a\nb").expect("regex");
        assert!(hits(&m, "r1", 1, "a\nb").is_empty());
    }
}
