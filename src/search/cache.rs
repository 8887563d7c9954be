//! The optional cache of decrypted newest versions (`[search] cache_bytes`,
//! 0 = off): in memory only, never on disk. Entries are keyed by device and
//! hold the snapshot id they were opened from; a lookup for any other id
//! (a new version was ingested, or the device moved tenant) misses and the
//! entry is replaced, so ingest and retention never leave a stale hit.
//! Oldest entries are evicted first once the budget is exceeded; an entry
//! weighs twice its text (the masked copy viewers search is kept beside it).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};

/// A decrypted version and, once a viewer searched it, its masked copy.
pub struct Texts {
    /// The snapshot the text is of.
    pub snapshot_id: i64,
    raw: String,
    masked: OnceLock<String>,
}

impl Texts {
    /// `raw` as opened from `snapshot_id`.
    pub fn new(snapshot_id: i64, raw: String) -> Texts {
        Texts {
            snapshot_id,
            raw,
            masked: OnceLock::new(),
        }
    }

    /// The text with its secrets.
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// The text masked by `mask`, computed once.
    pub fn masked(&self, mask: impl FnOnce(&str) -> String) -> &str {
        self.masked.get_or_init(|| mask(&self.raw))
    }

    fn weight(&self) -> usize {
        2 * self.raw.len()
    }
}

/// The cache; shared by every search of a node.
pub struct Cache {
    budget: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<String, (String, Arc<Texts>)>,
    order: VecDeque<(String, i64)>,
    bytes: usize,
}

impl Cache {
    /// An empty cache of at most `budget` bytes.
    pub fn new(budget: usize) -> Cache {
        Cache {
            budget,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// The cached texts of `device_id`'s snapshot `snapshot_id`, if held.
    pub fn get(&self, tenant_id: &str, device_id: &str, snapshot_id: i64) -> Option<Arc<Texts>> {
        let inner = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        inner
            .entries
            .get(device_id)
            .filter(|(tenant, texts)| tenant == tenant_id && texts.snapshot_id == snapshot_id)
            .map(|(_, texts)| Arc::clone(texts))
    }

    /// Holds `texts` for `device_id`, replacing an older version, evicting
    /// the oldest entries beyond the budget. Texts larger than the whole
    /// budget are not held.
    pub fn put(&self, tenant_id: &str, device_id: &str, texts: Arc<Texts>) {
        if texts.weight() > self.budget {
            return;
        }
        let mut inner = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        inner.bytes += texts.weight();
        inner
            .order
            .push_back((device_id.to_owned(), texts.snapshot_id));
        if let Some((_, old)) = inner
            .entries
            .insert(device_id.to_owned(), (tenant_id.to_owned(), texts))
        {
            inner.bytes -= old.weight();
        }
        while inner.bytes > self.budget {
            let Some((device, snapshot_id)) = inner.order.pop_front() else {
                break;
            };
            // The order may name versions already replaced: skip those.
            let current = inner
                .entries
                .get(&device)
                .is_some_and(|(_, t)| t.snapshot_id == snapshot_id);
            if current && let Some((_, gone)) = inner.entries.remove(&device) {
                inner.bytes -= gone.weight();
            }
        }
    }

    /// Bytes held (by the weight above).
    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(id: i64, len: usize) -> Arc<Texts> {
        Arc::new(Texts::new(id, "x".repeat(len)))
    }

    #[test]
    fn a_lookup_for_another_version_or_tenant_misses() {
        let cache = Cache::new(1000);
        cache.put("t1", "r1", texts(5, 10));
        assert!(cache.get("t1", "r1", 5).is_some());
        assert!(
            cache.get("t1", "r1", 6).is_none(),
            "a newer version was ingested"
        );
        assert!(cache.get("t2", "r1", 5).is_none(), "another tenant");
        cache.put("t1", "r1", texts(6, 10));
        assert!(cache.get("t1", "r1", 5).is_none());
        assert_eq!(cache.bytes(), 20, "the replaced version no longer counts");
    }

    #[test]
    fn the_budget_evicts_oldest_first() {
        let cache = Cache::new(100);
        for (i, device) in ["a", "b", "c"].iter().enumerate() {
            cache.put("t", device, texts(i as i64, 20));
        }
        assert_eq!(
            cache.bytes(),
            80,
            "2 × 20 per entry, 3 entries would be 120"
        );
        assert!(cache.get("t", "a", 0).is_none());
        assert!(cache.get("t", "b", 1).is_some() && cache.get("t", "c", 2).is_some());
        cache.put("t", "huge", texts(9, 60));
        assert!(
            cache.get("t", "huge", 9).is_none(),
            "larger than the budget"
        );
    }

    #[test]
    fn the_masked_copy_is_computed_once() {
        let t = texts(1, 3);
        let mut calls = 0;
        assert_eq!(
            t.masked(|s| {
                calls += 1;
                s.to_uppercase()
            }),
            "XXX"
        );
        assert_eq!(t.masked(|_| unreachable!()), "XXX");
        assert_eq!(calls, 1);
    }
}
