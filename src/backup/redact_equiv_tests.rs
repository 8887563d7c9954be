//! The streaming redactor (one read per text, lines that cannot hold a
//! secret not scanned) against the reference it replaced: every logical line
//! collected and scanned, `old` read twice by `redact_pair`. Both must give
//! the same bytes, on generated exports built to probe the pre-filter
//! (keys in any case, escapes in quoted scripts, continuations anywhere,
//! `/snmp` menus, CRLF) and on the real exports of `tests/corpus/routeros`.
//! Messages print sizes and line numbers, never the texts.

use proptest::prelude::*;

use super::*;
use crate::backup::normalize::normalize;

const CORPUS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus/routeros");

/// The reference: what `redact.rs` did before it streamed.
mod reference {
    use std::collections::HashMap;
    use std::ops::Range;

    use super::super::{
        MASK, MASK_CHANGED, Segment, apply, masked_form, menu_path, push_edits, scan, values_of,
    };

    #[derive(Debug, Default)]
    struct Logical {
        joined: Vec<u8>,
        segments: Vec<Segment>,
    }

    fn analyze(text: &str) -> Vec<(Logical, Vec<Range<usize>>)> {
        let mut menu = String::new();
        logical_lines(text)
            .into_iter()
            .map(|line| {
                if line.joined.first() == Some(&b'/') {
                    menu = menu_path(&line.joined);
                }
                let mut ranges = Vec::new();
                scan(&line.joined, &menu, false, 0, &mut ranges);
                ranges.sort_by_key(|r| r.start);
                (line, ranges)
            })
            .collect()
    }

    fn logical_lines(text: &str) -> Vec<Logical> {
        let bytes = text.as_bytes();
        let (mut out, mut current) = (Vec::new(), Logical::default());
        let (mut offset, mut continued) = (0, false);
        for line in text.split('\n') {
            let b = line.as_bytes();
            let mut end = b.len();
            if b.last() == Some(&b'\r') {
                end -= 1;
            }
            let continues = end > 0 && b[end - 1] == b'\\';
            end -= usize::from(continues);
            let indent = if continued {
                b[..end].iter().take(4).take_while(|&&c| c == b' ').count()
            } else {
                0
            };
            let (orig, len) = (offset + indent, end - indent);
            current.segments.push(Segment {
                joined: current.joined.len(),
                orig,
                len,
            });
            current.joined.extend_from_slice(&bytes[orig..orig + len]);
            if !continues {
                out.push(std::mem::take(&mut current));
            }
            offset += line.len() + 1;
            continued = continues;
        }
        if !current.segments.is_empty() {
            out.push(current);
        }
        out
    }

    pub fn redact(text: &str) -> String {
        let mut edits = Vec::new();
        for (line, ranges) in analyze(text) {
            let tagged: Vec<_> = ranges.into_iter().map(|r| (r, MASK)).collect();
            push_edits(&line.segments, &tagged, &mut edits);
        }
        apply(text, &edits)
    }

    pub fn redact_pair(old: &str, new: &str) -> (String, String) {
        let mut index: HashMap<Vec<u8>, Vec<Vec<Vec<u8>>>> = HashMap::new();
        for (line, ranges) in analyze(old) {
            if !ranges.is_empty() {
                let values = values_of(&line.joined, &ranges);
                index
                    .entry(masked_form(&line.joined, &ranges))
                    .or_default()
                    .push(values);
            }
        }
        let mut edits = Vec::new();
        for (line, ranges) in analyze(new) {
            let values = values_of(&line.joined, &ranges);
            let candidates = index.get(&masked_form(&line.joined, &ranges));
            let unchanged = candidates.is_none_or(|c| c.contains(&values));
            let reference = candidates.and_then(|c| c.first()).filter(|_| !unchanged);
            let tagged: Vec<_> = ranges
                .into_iter()
                .enumerate()
                .map(|(i, r)| {
                    let changed = reference.is_some_and(|old| old.get(i) != values.get(i));
                    (r, if changed { MASK_CHANGED } else { MASK })
                })
                .collect();
            push_edits(&line.segments, &tagged, &mut edits);
        }
        (redact(old), apply(new, &edits))
    }

    pub fn contains_secret(text: &str) -> bool {
        analyze(text).iter().any(|(_, ranges)| !ranges.is_empty())
    }
}

/// Asserts that both implementations agree on `text` alone and on the
/// pair `(old, new)`.
fn assert_same(old: &str, new: &str) {
    for (side, text) in [("old", old), ("new", new)] {
        assert!(
            redact(text) == reference::redact(text),
            "redact differs on the {side} text ({} bytes)",
            text.len()
        );
        assert_eq!(
            contains_secret(text),
            reference::contains_secret(text),
            "contains_secret differs on the {side} text"
        );
    }
    let (fast, slow) = (redact_pair(old, new), reference::redact_pair(old, new));
    assert!(fast.0 == slow.0, "redact_pair differs on old");
    assert!(fast.1 == slow.1, "redact_pair differs on new");
}

/// Pieces of lines: menus (some `/snmp`), keys in several cases, sensitive
/// or not, values bare and quoted, escapes that spell keys, script sources.
const PIECES: &[&str] = &[
    "/snmp community",
    "/snmp",
    "/SNMP Community set",
    "/interface wireguard peers",
    "/ip/ipsec/peer add",
    "/ip firewall filter",
    "/system script",
    "/container envs",
    "add",
    "set [ find default=yes ]",
    " ",
    "    ",
    "name=",
    "NAME=",
    "trap-community=",
    "key=",
    "KEY=",
    "public-key=",
    "Password=",
    "password=",
    "x.password=",
    "wpa2-pre-shared-key=",
    "my-PSK=",
    "secrets=",
    "SeCrEt=",
    "comment=",
    "address=",
    "static-key-0=",
    "pass=",
    "passport=",
    "keys=",
    "\"",
    "\\\"",
    "\\\\",
    "\\70assword=",
    "\\_",
    "\\4B",
    "source=\"/tool e-mail set password=",
    "on-event=\"",
    "; ",
    "[",
    "]",
    "{",
    "}",
    "(",
    ")",
    "=",
    "value",
    "a b",
    "10.0.0.1/24",
    "é",
    "#",
    "\\",
    "\r",
];

/// A generated export: lines of pieces, some ending in `\` continuations.
fn export() -> impl Strategy<Value = String> {
    let line = prop::collection::vec(prop::sample::select(PIECES), 0..12)
        .prop_map(|pieces| pieces.concat());
    prop::collection::vec(line, 0..24).prop_map(|lines| lines.join("\n"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_streaming_redactor_equals_the_reference(old in export(), new in export()) {
        assert_same(&old, &new);
    }

    #[test]
    fn a_pair_of_a_text_and_its_edit_equals_the_reference(
        old in export(),
        insert in export(),
        at in 0usize..64,
    ) {
        let mut lines: Vec<&str> = old.split('\n').collect();
        let at = at.min(lines.len());
        lines.insert(at, &insert);
        let new = lines.join("\n");
        assert_same(&old, &new);
        // Secrets with another value on lines otherwise alike.
        assert_same(&old, &old.replace("value", "vaLue2"));
    }
}

#[test]
fn the_streaming_redactor_equals_the_reference_on_the_corpus() {
    let mut files: Vec<_> = std::fs::read_dir(CORPUS_DIR)
        .expect("corpus directory is readable")
        .map(|e| e.expect("corpus entry is readable").path())
        .filter(|p| p.extension().is_some_and(|x| x == "rsc"))
        .collect();
    files.sort();
    assert!(files.len() >= 20, "corpus has {} exports", files.len());
    let texts: Vec<String> = files
        .iter()
        .map(|p| std::fs::read_to_string(p).expect("corpus file is readable"))
        .collect();
    for (i, raw) in texts.iter().enumerate() {
        let normalized = normalize(raw).text;
        // Each export raw and normalized, and against its neighbour.
        assert_same(raw, &normalized);
        let next = &texts[(i + 1) % texts.len()];
        assert_same(&normalized, next);
    }
}
