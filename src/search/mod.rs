//! Search across every configuration and its history (DESIGN.md §15).
//!
//! Configurations are encrypted at rest and stay so: there is no index on
//! disk. A search decrypts the versions it needs in memory, on the blocking
//! pool, in parallel over the cores, and scans them line by line with one
//! `regex` matcher (literal queries are escaped into it). A deadline
//! (`[search] deadline`) bounds every search; past it the answer is
//! `partial` with what was found and a cursor where it stopped.
//!
//! - `current` (`current.rs`): the newest version of each device; a hit is
//!   a line with two lines of context either side.
//! - `history` (`history.rs`): every stored version of each device, oldest
//!   first; a hit is a line's life: the version it appeared in and the one
//!   it went in (or none: still there).
//! - Callers below `reveal_secrets_role` search masked text (`Secrets`), so
//!   a search never tells whether a secret has some value.
//! - `cache.rs`: an optional in-memory cache of decrypted newest versions,
//!   bounded by `[search] cache_bytes`.
//!
//! Devices are scanned in id order, and pages continue with an opaque
//! cursor (`query.rs`).

mod cache;
mod current;
mod history;
pub mod query;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::SearchSettings;
use crate::store::history::Secrets;
use crate::store::{self, Store};

pub use query::{Query, Request, Scope};

/// Result type of search.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A failed search.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed (`400 bad_query`).
    #[error("{0}")]
    BadQuery(String),
    /// Reading or decrypting the store failed.
    #[error(transparent)]
    Store(#[from] store::Error),
    /// A scanning task failed.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// One matching line of a device's newest version.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LineHit {
    /// Device.
    pub device_id: String,
    /// The version searched (its newest).
    pub snapshot_id: i64,
    /// 1-based line number.
    pub line_no: usize,
    /// The line.
    pub line: String,
    /// Up to two lines before it.
    pub before: Vec<String>,
    /// Up to two lines after it.
    pub after: Vec<String>,
}

/// A version, as history hits name them.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct VersionRef {
    /// Snapshot id.
    pub snapshot_id: i64,
    /// When it was collected.
    pub collected_at: DateTime<Utc>,
}

/// The life of a matching line on one device.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LineLife {
    /// Device.
    pub device_id: String,
    /// The line.
    pub line: String,
    /// The first stored version that has it.
    pub added_in: VersionRef,
    /// The version it went in; `None`: still in the newest.
    pub removed_in: Option<VersionRef>,
    /// The line was already there before `added_in`, in a version
    /// retention deleted: it was added earlier than the stored history
    /// shows.
    pub added_earlier: bool,
}

/// The hits of one page.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Items {
    /// `scope=current`.
    Current(Vec<LineHit>),
    /// `scope=history`.
    History(Vec<LineLife>),
}

impl Items {
    /// Hits on this page.
    pub fn len(&self) -> usize {
        match self {
            Items::Current(v) => v.len(),
            Items::History(v) => v.len(),
        }
    }

    /// Whether the page has no hits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One page of a search.
#[derive(Debug, Clone, Serialize)]
pub struct Page {
    /// Hits, devices in id order.
    pub items: Items,
    /// The deadline passed before every device was scanned.
    pub partial: bool,
    /// Where the next page starts; `None` when nothing is left.
    pub next_cursor: Option<String>,
}

/// Runs searches against one store; cheap to clone.
#[derive(Clone)]
pub struct Searcher {
    store: Store,
    deadline: std::time::Duration,
    cache: Option<Arc<cache::Cache>>,
}

impl Searcher {
    /// A searcher with `settings` (deadline and cache budget).
    pub fn new(store: Store, settings: &SearchSettings) -> Searcher {
        let cache = (settings.cache_bytes > 0)
            .then(|| Arc::new(cache::Cache::new(settings.cache_bytes as usize)));
        Searcher {
            store,
            deadline: settings.deadline,
            cache,
        }
    }

    /// The same searcher with another deadline (tests, the CLI).
    pub fn with_deadline(mut self, deadline: std::time::Duration) -> Searcher {
        self.deadline = deadline;
        self
    }

    /// One page of `query` over `tenant_id`'s devices, matching masked text
    /// when `secrets` is [`Secrets::Masked`].
    ///
    /// # Errors
    /// [`Error::Store`] when the store fails (a record that cannot be
    /// decrypted included).
    pub async fn search(&self, tenant_id: &str, query: &Query, secrets: Secrets) -> Result<Page> {
        let deadline = tokio::time::Instant::now() + self.deadline;
        let devices: Vec<(String, i64)> = self
            .store
            .newest_snapshot_ids(tenant_id)
            .await?
            .into_iter()
            .filter(|(d, _)| query.device.as_ref().is_none_or(|f| f.matches(d)))
            .filter(|(d, _)| {
                query
                    .cursor
                    .as_ref()
                    .is_none_or(|c| d.as_str() >= c.d.as_str())
            })
            .collect();
        let scan = Scan {
            store: &self.store,
            tenant_id,
            query,
            secrets,
            deadline,
        };
        match query.scope {
            Scope::Current => current::search(&scan, self.cache.as_ref(), &devices).await,
            Scope::History => history::search(&scan, &devices).await,
        }
    }
}

/// What one search's scanners share.
struct Scan<'a> {
    store: &'a Store,
    tenant_id: &'a str,
    query: &'a Query,
    secrets: Secrets,
    deadline: tokio::time::Instant,
}

impl Scan<'_> {
    /// Hits of `device` already returned by earlier pages.
    fn skip(&self, device: &str) -> usize {
        match &self.query.cursor {
            Some(c) if c.d == device => c.o,
            _ => 0,
        }
    }
}

/// Threads to scan on: the cores.
fn workers() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from)
}

/// Collects per-device hit lists (in device order, `None` for a device the
/// deadline cut off) into a page of at most `limit` hits. The scanners stop
/// once they hold more than `limit` hits, so a full page always has a
/// next hit to point the cursor at.
fn paginate<T>(
    scan: &Scan<'_>,
    per_device: Vec<(String, Option<Vec<T>>)>,
) -> (Vec<T>, bool, Option<String>) {
    let limit = scan.query.limit;
    let mut items = Vec::new();
    for (device, hits) in per_device {
        let skip = scan.skip(&device);
        let Some(hits) = hits else {
            let cursor = query::Cursor { d: device, o: skip };
            return (items, true, Some(cursor.encode()));
        };
        for (i, hit) in hits.into_iter().enumerate().skip(skip) {
            if items.len() == limit {
                let cursor = query::Cursor { d: device, o: i };
                return (items, false, Some(cursor.encode()));
            }
            items.push(hit);
        }
    }
    (items, false, None)
}
