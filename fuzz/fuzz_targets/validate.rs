//! `validate` (DESIGN.md §5) on arbitrary bytes: no panic, bounded output.
#![no_main]

use cfgsnap::backup::validate::validate;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte picks a cap, so the size check is fuzzed too.
    let (cap, raw) = match data.split_first() {
        Some((&b, rest)) if b < 16 => (usize::from(b) * 64, rest),
        _ => (usize::MAX, data),
    };
    match validate(raw, cap) {
        Ok(valid) => {
            assert_eq!(valid.text.as_bytes(), raw);
            assert!(valid.warnings.len() <= 17);
            assert!(valid.warnings.iter().all(|w| w.chars().count() <= 240));
        }
        Err(e) => assert!(e.to_string().chars().count() <= 300),
    }
});
