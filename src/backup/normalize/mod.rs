//! Normalization, version 1 (DESIGN.md §6): turns an export's raw stdout into
//! the canonical text whose lowercase-hex SHA-256 is the snapshot's identity.
//!
//! Pure functions only: no I/O, no async, no logging (the text holds secrets).
//! Entry points: [`normalize`] and [`sha256_hex`]. `csi` strips terminal
//! control sequences (validation uses it too); `tests` checks the corpus
//! and golden files, `props` the properties of §6.

use std::fmt;
use std::sync::LazyLock;

use regex::Regex;
use sha2::{Digest, Sha256};

mod csi;

pub(in crate::backup) use csi::strip_csi;

/// Version of the rules below, stored with every snapshot
/// (`normalization_version`). Changing any rule means a new version.
pub const NORMALIZATION_VERSION: u32 = 1;

/// The result of [`normalize`]: the canonical export and the version taken
/// from its header.
#[derive(Clone, PartialEq, Eq)]
pub struct Normalized {
    /// The normalized export: lines joined with `\n`, ending with exactly one
    /// `\n`, or empty when the input held nothing but blank lines. Holds device
    /// secrets: never log it.
    pub text: String,
    /// `X` of the first `# … by RouterOS X` timestamp header, e.g. `7.15`.
    pub routeros_version: Option<String>,
}

impl fmt::Debug for Normalized {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Normalized")
            .field("text", &format_args!("<{} bytes>", self.text.len()))
            .field("routeros_version", &self.routeros_version)
            .finish()
    }
}

/// The export timestamp header: `# mmm/dd/yyyy HH:MM:SS by RouterOS X` (v5 to
/// 7.9, lowercase month) or `# yyyy-mm-dd HH:MM:SS by RouterOS X` (7.10 on).
/// Anything after the version token is tolerated, so a future suffix such as a
/// release channel cannot turn the timestamp into content that differs on
/// every export.
static HEADER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^# (?:(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)/\d{2}/\d{4}|\d{4}-\d{2}-\d{2}) \d{2}:\d{2}:\d{2} by RouterOS (\d\S*)(?:[ \t].*)?$",
    )
    .expect("BUG: the header regex is valid")
});

/// The transient status comments of DESIGN.md §6 step 4, as one alternation.
static TRANSIENT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"^(?:# inactive time\b",
        r"|# received packet from \S+ bad format",
        r"|# poe-out status: ",
        r"|# Firmware upgraded successfully",
        r"|# \S+ not ready$",
        r"|# Interface not running",
        r"|#.+please restart the device in order to apply the new setting)",
    ))
    .expect("BUG: the transient-comment regex is valid")
});

/// Normalizes an export's stdout (DESIGN.md §6, version 1).
///
/// 1. Removes ANSI CSI sequences (`ESC [ params intermediates final`).
/// 2. Splits on `\n` and trims trailing spaces, tabs and `\r` from each line.
/// 3. Drops the timestamp header and records its version. Only the preamble
///    counts: the leading lines that are blank or start with `#`, before the
///    first line of configuration. Every header-shaped line there is dropped
///    (so normalizing twice changes nothing); the first one gives the version.
///    A header-shaped line further down is configuration and is kept.
/// 4. Drops whole transient status comment lines.
/// 5. Collapses blank-line runs to one and drops leading and trailing blank
///    lines; every kept line ends with `\n`.
///
/// Everything else is kept byte for byte, continuation lines included. Input
/// without any non-blank line yields an empty `text`, not a lone `\n`.
pub fn normalize(raw: &str) -> Normalized {
    let stripped = strip_csi(raw);
    let mut text = String::with_capacity(stripped.len() + 1);
    let mut routeros_version = None;
    let mut in_preamble = true;
    let mut blank_pending = false;
    for line in lines(&stripped) {
        let line = line.trim_end_matches([' ', '\t', '\r']);
        if line.is_empty() {
            // A blank line only matters between two kept lines.
            blank_pending = !text.is_empty();
            continue;
        }
        if line.starts_with('#') {
            if in_preamble && let Some(version) = header_version(line) {
                routeros_version.get_or_insert_with(|| version.to_owned());
                continue;
            }
            if may_be_transient(line) && TRANSIENT.is_match(line) {
                continue;
            }
        } else {
            in_preamble = false;
        }
        if blank_pending {
            text.push('\n');
            blank_pending = false;
        }
        text.push_str(line);
        text.push('\n');
    }
    Normalized {
        text,
        routeros_version,
    }
}

/// `text` split on `\n`, as `str::split('\n')` would, with the `memchr`
/// crate's vectorized search: with the standard library's, validating and
/// normalizing a typical 47 KB export took ~30 % longer
/// (`cfgsnap-bench normalize`).
fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut start = 0;
    memchr::memchr_iter(b'\n', text.as_bytes())
        .map(Some)
        .chain(std::iter::once(None))
        .map(move |end| {
            let end = end.unwrap_or(text.len());
            // `\n` is ASCII, so both ends sit on char boundaries.
            let line = &text[start..end];
            start = end + 1;
            line
        })
}

/// Lowercase hex SHA-256 of `text`, the snapshot identity (`sha256_hash`).
pub fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// The version token of a timestamp header line, if `line` is one. The
/// substring test first spares the regex every other comment line (a
/// regex search costs a microsecond or two even when it fails at once).
fn header_version(line: &str) -> Option<&str> {
    if !line.contains(" by RouterOS ") {
        return None;
    }
    HEADER
        .captures(line)
        .and_then(|c| c.get(1))
        .map(|m| m.as_str())
}

/// What every line [`TRANSIENT`] matches has, in cheap tests: a line
/// without any of these is not transient, so the regex runs only on lines
/// that may be.
fn may_be_transient(line: &str) -> bool {
    const PREFIXES: [&str; 5] = [
        "# inactive time",
        "# received packet from ",
        "# poe-out status: ",
        "# Firmware upgraded successfully",
        "# Interface not running",
    ];
    PREFIXES.iter().any(|p| line.starts_with(p))
        || (line.starts_with("# ") && line.ends_with(" not ready"))
        || line.contains("please restart the device in order to apply the new setting")
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod props;
