//! A snapshot event (DESIGN.md §3.2) as the ingester reads it: JSON, then
//! the inline text (`config_text`, or `config_text_gzip` decoded with its
//! size cap). No panic; errors bounded.
#![no_main]

use cfgsnap::bus::codec::decode_gzip_base64;
use cfgsnap::bus::wire::{ContentEncoding, SnapshotEvent, from_json};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let event = match from_json::<SnapshotEvent>(data) {
        Ok(event) => event,
        Err(e) => {
            assert!(!e.is_empty() && e.chars().count() <= 300);
            return;
        }
    };
    if event.encoding() == Some(ContentEncoding::Gzip)
        && let Some(b64) = &event.config_text_gzip
        && let Err(e) = decode_gzip_base64(b64)
    {
        assert!(!e.is_empty());
    }
});
