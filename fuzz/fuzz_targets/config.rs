//! The configuration loader (DESIGN.md §8) on arbitrary text: no panic, and
//! a refusal always lists at least one problem.
#![no_main]

use cfgsnap::config::Settings;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let result = Settings::from_toml(text).and_then(|settings| {
        // `validate` reads the secret files the text names: keep the fuzzer
        // away from device files that never end.
        if ["/dev", "/proc", "/sys"].iter().any(|p| text.contains(p)) {
            return Ok(None);
        }
        settings.validate().map(Some)
    });
    if let Err(e) = result {
        assert!(!e.problems.is_empty(), "a refusal without a problem");
    }
});
