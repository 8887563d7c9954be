//! Compression of large configs for the wire (`config_text_gzip`,
//! `config_ref` objects): gzip, base64, and decompression with a size cap
//! so that a hostile event cannot inflate without bound. Pure functions, run
//! by callers on blocking threads.

use std::io::{Read, Write};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;

/// Largest config text accepted from the wire, decompressed: twice the
/// 64 MiB that must round-trip, and four times `max_config_bytes`' default.
pub const MAX_CONFIG_TEXT_BYTES: usize = 128 * 1024 * 1024;

/// Gzip of `text` (default level: configs compress about tenfold).
pub fn gzip(text: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(text.len() / 4), Compression::default());
    // Writing into a Vec cannot fail.
    encoder
        .write_all(text)
        .and_then(|()| encoder.finish())
        .unwrap_or_default()
}

/// Length of the padded standard base64 of `n` bytes.
pub fn base64_len(n: usize) -> usize {
    n.div_ceil(3) * 4
}

/// Standard base64 with padding.
pub fn to_base64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Decodes `config_text_gzip`: base64, then gunzip, capped.
///
/// # Errors
/// A description (never the content) of bad base64, bad gzip, oversize or
/// non-UTF-8 text.
pub fn decode_gzip_base64(text: &str) -> Result<String, String> {
    let gz = STANDARD
        .decode(text.as_bytes())
        .map_err(|_| "config_text_gzip is not valid base64".to_owned())?;
    gunzip(&gz)
}

/// Gunzips `bytes` into UTF-8 text of at most [`MAX_CONFIG_TEXT_BYTES`].
///
/// # Errors
/// A description of what is wrong with the data.
pub fn gunzip(bytes: &[u8]) -> Result<String, String> {
    let cap = MAX_CONFIG_TEXT_BYTES as u64;
    let mut out = Vec::with_capacity(bytes.len().saturating_mul(4).min(MAX_CONFIG_TEXT_BYTES));
    GzDecoder::new(bytes)
        .take(cap + 1)
        .read_to_end(&mut out)
        .map_err(|_| "compressed config is not valid gzip".to_owned())?;
    if out.len() as u64 > cap {
        return Err(format!(
            "decompressed config is larger than {MAX_CONFIG_TEXT_BYTES} bytes"
        ));
    }
    String::from_utf8(out).map_err(|_| "decompressed config is not UTF-8".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_predicts_base64_length() {
        let text = "/ip address\nadd address=10.0.0.1/24 interface=ether1\n".repeat(1000);
        let gz = gzip(text.as_bytes());
        assert!(gz.len() < text.len() / 10);
        let b64 = to_base64(&gz);
        assert_eq!(b64.len(), base64_len(gz.len()));
        assert_eq!(decode_gzip_base64(&b64).as_deref(), Ok(text.as_str()));
    }

    #[test]
    fn rejects_garbage_without_echoing_it() {
        let err = decode_gzip_base64("not base64 at all!").expect_err("bad");
        assert!(err.contains("base64"), "{err}");
        let err = decode_gzip_base64(&to_base64(b"plain bytes")).expect_err("bad");
        assert!(err.contains("gzip"), "{err}");
        let err = gunzip(&gzip(&[0xff, 0xfe])).expect_err("bad");
        assert!(err.contains("UTF-8"), "{err}");
    }
}
