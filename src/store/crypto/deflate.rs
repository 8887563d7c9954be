//! The payload format inside a sealed record: a format byte, then raw
//! deflate of the text. Decompression is bounded, so a small record cannot
//! inflate past the cipher's plaintext limit.

use std::io::{self, Write};

use flate2::Compression;
use flate2::write::DeflateEncoder;
use libdeflater::{DecompressionError, Decompressor};
use zeroize::{Zeroize, Zeroizing};

use super::{CryptoError, Result};

/// First byte of every sealed payload: raw deflate follows. Other values are reserved
/// for later codecs, so old records stay readable after a change.
const FORMAT_DEFLATE: u8 = 1;

/// `FORMAT_DEFLATE` followed by raw deflate of `plaintext`, zeroized on drop.
///
/// Level 1: on RouterOS exports about 2.8 times as fast as the default
/// level 6, for output about a quarter larger (an export of 100 KB stores
/// as about 22 KB instead of 18 KB). Deflate was the largest CPU cost of
/// storing a new version; the level is not recorded, any level decodes.
pub(super) fn compress(plaintext: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(plaintext.len() / 4 + 64));
    out.push(FORMAT_DEFLATE);
    let mut encoder = DeflateEncoder::new(&mut *out, Compression::fast());
    encoder
        .write_all(plaintext)
        .expect("BUG: deflating into a Vec cannot fail");
    encoder
        .finish()
        .expect("BUG: deflating into a Vec cannot fail");
    out
}

/// Inverts [`compress`], producing at most `max` bytes of output.
///
/// Inflates with libdeflate, two to three times as fast as a streaming
/// inflater on exports (reading every stored version is what a search
/// spends its time on). libdeflate needs the output buffer up front: it
/// starts at five times the payload (exports deflate about 4 to 5 times)
/// and doubles until the text fits or the bound is passed, zeroizing each
/// buffer it leaves.
pub(super) fn decompress(payload: &[u8], max: usize) -> Result<Vec<u8>> {
    let invalid = |msg: &str| {
        CryptoError::Decompression(io::Error::new(io::ErrorKind::InvalidData, msg.to_owned()))
    };
    let (&format, body) = payload
        .split_first()
        .ok_or_else(|| invalid("empty record payload"))?;
    if format != FORMAT_DEFLATE {
        return Err(invalid("unknown record format byte"));
    }
    // One byte past the bound tells "exactly max" from "more than max".
    let ceiling = max.saturating_add(1);
    let mut size = body.len().saturating_mul(5).max(4096).min(ceiling);
    let mut inflater = Decompressor::new();
    let mut out: Vec<u8> = Vec::new();
    loop {
        out.zeroize();
        out.resize(size, 0);
        match inflater.deflate_decompress(body, &mut out) {
            Ok(n) if n <= max => {
                // Zero the unused tail before it is cut off.
                out[n..].zeroize();
                out.truncate(n);
                return Ok(out);
            }
            Ok(_) => break,
            Err(DecompressionError::InsufficientSpace) if size < ceiling => {
                size = size.saturating_mul(2).min(ceiling);
            }
            Err(DecompressionError::InsufficientSpace) => break,
            Err(DecompressionError::BadData) => {
                out.zeroize();
                return Err(invalid("corrupt deflate data"));
            }
        }
    }
    out.zeroize();
    Err(CryptoError::PlaintextTooLarge { limit: max })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_real_export_stores_compressed_and_a_default_level_record_still_opens() {
        // Arrange: the largest corpus export, and a record deflated at level 6
        // as earlier versions wrote it.
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/corpus/routeros/defm-mikrobackups__rawconf_anna_latest.rsc"
        );
        let export = std::fs::read(path).expect("read the corpus export");
        let mut old = vec![FORMAT_DEFLATE];
        let mut encoder = DeflateEncoder::new(&mut old, Compression::default());
        encoder.write_all(&export).expect("deflate");
        encoder.finish().expect("deflate");

        // Act
        let new = compress(&export);

        // Assert: sizes only, never the export's text.
        assert!(
            new.len() * 4 < export.len(),
            "{} of {} bytes",
            new.len(),
            export.len()
        );
        assert_eq!(decompress(&new, export.len()).expect("inflate new"), export);
        assert_eq!(decompress(&old, export.len()).expect("inflate old"), export);
    }
}
