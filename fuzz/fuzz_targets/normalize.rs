//! `normalize` (DESIGN.md §6) on arbitrary text: no panic, idempotent,
//! never longer than its input plus one newline.
#![no_main]

use cfgsnap::backup::normalize::{normalize, sha256_hex};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let raw = String::from_utf8_lossy(data);
    let once = normalize(&raw);
    let twice = normalize(&once.text);
    assert!(once.text == twice.text, "normalize is not idempotent");
    assert!(once.text.len() <= raw.len() + 1);
    assert_eq!(sha256_hex(&once.text).len(), 64);
});
