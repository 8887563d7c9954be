//! `diff` and `summarize` (DESIGN.md §7) on two arbitrary texts (split at the
//! first 0xFF byte): no panic, bounded time, consistent counts.
#![no_main]

use std::time::{Duration, Instant};

use cfgsnap::backup::changes::{diff, summarize};
use libfuzzer_sys::fuzz_target;

const DEADLINE: Duration = Duration::from_secs(1);

fuzz_target!(|data: &[u8]| {
    let split = data
        .iter()
        .position(|&b| b == 0xff)
        .unwrap_or(data.len() / 2);
    let old = String::from_utf8_lossy(&data[..split]);
    let new = String::from_utf8_lossy(data.get(split + 1..).unwrap_or_default());
    let started = Instant::now();
    let changes = summarize(&old, &new, DEADLINE);
    let unified = diff(&old, &new, "old", "new", DEADLINE);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "changes took too long"
    );
    for change in &changes {
        assert!(change.lines_added + change.lines_removed > 0);
        assert!(!change.component.is_empty());
    }
    let lines = |s: &str| s.split_inclusive('\n').count() as i64;
    assert_eq!(
        i64::from(unified.lines_added) - i64::from(unified.lines_removed),
        lines(&new) - lines(&old)
    );
    assert_eq!(unified.text.is_empty(), old == new);
});
