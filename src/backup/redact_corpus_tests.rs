//! `redact` on every real export of `tests/corpus/routeros`, checked by an
//! extraction independent of the redactor (one regex over joined logical
//! lines). The corpus holds real-looking secrets: messages name the file,
//! line and property only, and the log prints counts.

use regex::Regex;

use super::*;
use crate::backup::normalize::normalize;

const CORPUS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus/routeros");

/// Keys of DESIGN.md §12 and the brief, and the generic suffixes.
const PATTERN: &str = r#"(?:^|[\s\[])((?:[a-z0-9-]+-(?:password|secret|passphrase|psk))|password|secrets?|private-key|pre-?shared-key|wpa[23]?-pre-shared-key|authentication-key|auth-key|passphrase|ipsec-secret|tcp-md5-key|management-protection-key)=("(?:[^"\\]|\\.)*"|[^\s\]]+)"#;

/// A logical line: the first physical line's number (1-based) and the text
/// with continuations joined.
fn joined_lines(text: &str) -> Vec<(usize, String)> {
    let (mut out, mut current, mut first) = (Vec::new(), String::new(), 0);
    for (n, line) in text.split('\n').enumerate() {
        let part = if current.is_empty() {
            line
        } else {
            line.strip_prefix("    ").unwrap_or(line)
        };
        if current.is_empty() {
            first = n + 1;
        }
        match part.strip_suffix('\\') {
            Some(head) => current.push_str(head),
            None => {
                current.push_str(part);
                out.push((first, std::mem::take(&mut current)));
            }
        }
    }
    out
}

/// A sensitive value found by the regex: where, which key, the value
/// without its quotes.
struct Found {
    line: usize,
    key: String,
    value: String,
}

/// Every sensitive value in `text`, and `text` (joined) with those values cut
/// out, to tell a leak from a coincidence with ordinary text.
fn extract(text: &str) -> (Vec<Found>, String) {
    let re = Regex::new(PATTERN).expect("BUG: pattern compiles");
    let (mut found, mut rest) = (Vec::new(), String::new());
    for (line, joined) in joined_lines(text) {
        let mut pos = 0;
        for caps in re.captures_iter(&joined) {
            let (Some(key), Some(value)) = (caps.get(1), caps.get(2)) else {
                continue;
            };
            rest.push_str(&joined[pos..value.start()]);
            rest.push('\n');
            pos = value.end();
            let v = value.as_str();
            let inner = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v);
            found.push(Found {
                line,
                key: key.as_str().to_owned(),
                value: inner.to_owned(),
            });
        }
        rest.push_str(&joined[pos..]);
        rest.push('\n');
    }
    (found, rest)
}

/// Every physical line that changed belongs to a logical line that now
/// holds a mask.
fn assert_only_secret_lines_changed(file: &str, original: &str, redacted: &str) {
    let (before, after): (Vec<_>, Vec<_>) = (
        original.split('\n').collect(),
        redacted.split('\n').collect(),
    );
    let masked_lines: Vec<(usize, bool)> = joined_lines(redacted)
        .into_iter()
        .map(|(n, l)| (n, l.contains(MASK)))
        .collect();
    for (i, (b, a)) in before.iter().zip(&after).enumerate() {
        if b != a {
            let owner = masked_lines.iter().rev().find(|(n, _)| *n <= i + 1);
            assert!(
                owner.is_some_and(|(_, m)| *m),
                "{file}: line {} changed without a mask",
                i + 1
            );
        }
    }
}

/// Checks that every value the regex finds in `original` (4 bytes or more)
/// is gone from `out`; returns how many were checked and how many were
/// skipped because they also occur as ordinary text.
fn assert_no_value_survives(file: &str, original: &str, out: &str) -> (usize, usize) {
    let (found, rest) = extract(original);
    let out_joined: String = joined_lines(out)
        .into_iter()
        .map(|(_, l)| l + "\n")
        .collect();
    let (mut checked, mut coincidences) = (0, 0);
    for f in found.iter().filter(|f| f.value.len() >= 4) {
        if rest.contains(&f.value) {
            coincidences += 1;
            continue;
        }
        checked += 1;
        let leaked = out.contains(&f.value) || out_joined.contains(&f.value);
        assert!(
            !leaked,
            "{file}: line {}: {} survives redaction",
            f.line, f.key
        );
    }
    let any = !found.is_empty() || out != original;
    assert_eq!(contains_secret(original), any, "{file}: contains_secret");
    (checked, coincidences)
}

#[test]
fn no_sensitive_value_of_the_corpus_survives_redaction() {
    let mut files: Vec<_> = std::fs::read_dir(CORPUS_DIR)
        .expect("corpus directory is readable")
        .map(|e| e.expect("corpus entry is readable").path())
        .filter(|p| p.extension().is_some_and(|x| x == "rsc"))
        .collect();
    files.sort();
    assert!(files.len() >= 20, "corpus has {} exports", files.len());
    let (mut checked, mut coincidences) = (0, 0);
    for path in files {
        // Arrange
        let file = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let raw = std::fs::read_to_string(&path).expect("corpus file is readable");
        let original = normalize(&raw).text;

        // Act
        let out = redact(&original);

        // Assert
        let lines = (out.split('\n').count(), original.split('\n').count());
        assert_eq!(lines.0, lines.1, "{file}: line count changed");
        assert_only_secret_lines_changed(&file, &original, &out);
        let (c, k) = assert_no_value_survives(&file, &original, &out);
        (checked, coincidences) = (checked + c, coincidences + k);
    }
    eprintln!("redact corpus: {checked} values checked, {coincidences} skipped as ordinary text");
    // 31 values are checked today; far fewer means the extraction broke.
    assert!(checked >= 25, "only {checked} values checked");
}
