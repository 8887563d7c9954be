//! Masks secrets in RouterOS exports (DESIGN.md §12) for roles below
//! `reveal_secrets_role`: pure text in, text out, never the stored data.
//! Entry points: [`redact`] for content, [`redact_pair`] for diffs (a changed
//! secret reads `******** (changed)`), [`is_sensitive`], [`contains_secret`].
//! Masking works on logical lines (`\` continuations joined) and maps back.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::LazyLock;

use regex::bytes::{Regex, RegexBuilder};

/// What replaces every sensitive value.
pub const MASK: &str = "********";

/// What replaces a secret that [`redact_pair`] finds changed.
const MASK_CHANGED: &str = "******** (changed)";

/// Quoted values hold scripts that hold quoted values; deeper nesting is not
/// scanned, which keeps the work linear in the input.
const MAX_DEPTH: usize = 8;

/// Keys sensitive in every menu (compared ASCII case-insensitively).
const KEYS: &[&str] = &[
    "password",
    "secret",
    "secrets",
    "private-key",
    "pre-shared-key",
    "preshared-key",
    "wpa-pre-shared-key",
    "wpa2-pre-shared-key",
    "wpa3-pre-shared-key",
    "authentication-key",
    "auth-key",
    "passphrase",
    "authentication-password",
    "encryption-password",
    "ipsec-secret",
    "tcp-md5-key",
    "management-protection-key",
    "sae-password",
    "radius-secret",
];

/// Key endings that mark a secret in every menu. `-private-key` and
/// `-preshared-key` catch wireless `static-sta-private-key` and
/// `nv2-preshared-key`.
const SUFFIXES: &[&str] = &[
    "-password",
    "-secret",
    "-passphrase",
    "-psk",
    "-pre-shared-key",
    "-preshared-key",
    "-private-key",
];

/// Words that end a menu path (`/ip ipsec peer add …`).
const COMMANDS: &[&str] = &[
    "add", "set", "remove", "unset", "print", "edit", "enable", "disable", "move", "comment",
    "reset", "find", "export", "get",
];

/// Whether the value of `key` in `menu` is a secret.
///
/// `menu` is a path such as `/interface wireguard peers` (`/ip/ipsec/peer`
/// and extra spaces are accepted). Beyond the global list and suffixes,
/// `static-key-N` (WEP) is sensitive everywhere, `key` under
/// `/interface wireguard peers` and `/ip ipsec…`, `name` under
/// `/snmp community` and `trap-community` under `/snmp`.
pub fn is_sensitive(menu: &str, key: &str) -> bool {
    is_sensitive_in(&menu_path(menu.as_bytes()), key)
}

/// [`is_sensitive`] for a menu already in [`menu_path`] form. A dotted key
/// (v7 `remote.address`) counts by its last part too.
fn is_sensitive_in(menu: &str, key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    match key.rsplit_once('.') {
        Some((_, last)) => is_sensitive_key(menu, &key) || is_sensitive_key(menu, last),
        None => is_sensitive_key(menu, &key),
    }
}

/// [`is_sensitive_in`] for one lower-case key.
fn is_sensitive_key(menu: &str, key: &str) -> bool {
    let global = KEYS.contains(&key)
        || SUFFIXES.iter().any(|s| key.ends_with(s))
        || key.starts_with("static-key-");
    global
        || match key {
            "key" => {
                menu == "/interface wireguard peers"
                    || menu == "/ip ipsec"
                    || menu.starts_with("/ip ipsec ")
            }
            "name" => menu == "/snmp community",
            "trap-community" => menu == "/snmp",
            _ => false,
        }
}

/// Masks every sensitive value of `text` with [`MASK`].
///
/// Quoted values lose their quotes (`password="a b"` → `password=********`),
/// so empty, bare and quoted secrets read alike. The output has as many
/// `\n`-separated lines as the input; a line that holds no part of a secret is
/// byte-identical. A value wrapped over `\` continuations is masked on its
/// first physical line and its other fragments are removed.
pub fn redact(text: &str) -> String {
    let mut edits = Vec::new();
    for_each_secret_line(text, |line| {
        let tagged: Vec<_> = line.ranges.iter().map(|r| (r.clone(), MASK)).collect();
        push_edits(line.segments, &tagged, &mut edits);
    });
    apply(text, &edits)
}

/// Redacts both sides of a diff, marking secrets that changed in `new`.
///
/// A secret in `new` whose logical line has the same masked form in `old`
/// but another value there reads `******** (changed)`, so a diff of the two
/// outputs still shows the line; unchanged secrets are masked plainly, and
/// `old` is always masked plainly. Neither output holds a secret value.
/// Each text is analyzed once.
pub fn redact_pair(old: &str, new: &str) -> (String, String) {
    let mut index: HashMap<Vec<u8>, Vec<Vec<Vec<u8>>>> = HashMap::new();
    let mut old_edits = Vec::new();
    for_each_secret_line(old, |line| {
        let values = values_of(line.joined, line.ranges);
        index
            .entry(masked_form(line.joined, line.ranges))
            .or_default()
            .push(values);
        let tagged: Vec<_> = line.ranges.iter().map(|r| (r.clone(), MASK)).collect();
        push_edits(line.segments, &tagged, &mut old_edits);
    });
    let mut edits = Vec::new();
    for_each_secret_line(new, |line| {
        let values = values_of(line.joined, line.ranges);
        let candidates = index.get(&masked_form(line.joined, line.ranges));
        let unchanged = candidates.is_none_or(|c| c.contains(&values));
        let reference = candidates.and_then(|c| c.first()).filter(|_| !unchanged);
        let tagged: Vec<_> = line
            .ranges
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let changed = reference.is_some_and(|old| old.get(i) != values.get(i));
                (r.clone(), if changed { MASK_CHANGED } else { MASK })
            })
            .collect();
        push_edits(line.segments, &tagged, &mut edits);
    });
    (apply(old, &old_edits), apply(new, &edits))
}

/// Whether [`redact`] masks anything in `text` (an empty value counts).
pub fn contains_secret(text: &str) -> bool {
    let mut found = false;
    for_each_secret_line(text, |_| found = true);
    found
}

/// One physical line's content inside a logical line: `len` bytes at `orig`
/// in the input, at `joined` in [`SecretLine::joined`].
#[derive(Debug, Clone, Copy)]
struct Segment {
    joined: usize,
    orig: usize,
    len: usize,
}

/// A logical line that holds secrets: physical lines joined over `\`
/// continuations, without the trailing `\`, a trailing `\r` or a
/// continuation's 4-space indentation, and its secret ranges.
struct SecretLine<'a> {
    joined: &'a [u8],
    segments: &'a [Segment],
    /// In `joined` coordinates, sorted, disjoint, never none.
    ranges: &'a [Range<usize>],
}

/// Keys sensitive in any menu hold one of these words (in lower case):
/// every name of [`KEYS`], every ending of [`SUFFIXES`], `static-key-N` and
/// the menu-bound `key`; and a `\` may spell any key in a quoted script (an
/// escape) or split one over lines (a continuation). Only `name` and
/// `trap-community` under `/snmp…` need neither. Matched in a lower-cased
/// copy of the text: five literals a vector search finds at memory speed,
/// where a case-insensitive pattern is a hundred.
static MAY_HOLD_SECRET: LazyLock<Regex> = LazyLock::new(|| {
    RegexBuilder::new(r"pass|secret|key|psk|\\")
        .unicode(false)
        .build()
        .expect("BUG: the pre-filter's pattern compiles")
});

/// Calls `f` with each logical line of `text` that holds a secret, in order,
/// tracking the current menu. A line without continuations is borrowed
/// from `text`, not copied, and a line is scanned only when
/// [`MAY_HOLD_SECRET`] matches in it or the menu is `/snmp…`. A
/// scanned key is a run of the scanned bytes, and without a `\` every
/// script level scans bytes of the line itself, so a line skipped holds no
/// secret.
fn for_each_secret_line(text: &str, mut f: impl FnMut(&SecretLine<'_>)) {
    let bytes = text.as_bytes();
    let lower = bytes.to_ascii_lowercase();
    let mut menu = String::new();
    let (mut joined, mut segments, mut ranges) = (Vec::new(), Vec::new(), Vec::new());
    let (mut offset, mut continued, mut first) = (0, false, 0);
    // The first match at or after the line being read; `bytes.len()` when
    // there is none.
    let next_hit = |from: usize| {
        MAY_HOLD_SECRET
            .find_at(&lower, from)
            .map_or(bytes.len(), |m| m.start())
    };
    let mut hit = next_hit(0);
    let mut line_of =
        |joined: &[u8], segments: &[Segment], raw: Range<usize>, menu: &mut String| {
            if joined.first() == Some(&b'/') {
                *menu = menu_path(joined);
            }
            if hit < raw.start {
                hit = next_hit(raw.start);
            }
            if hit >= raw.end && !menu.starts_with("/snmp") {
                return;
            }
            ranges.clear();
            scan(joined, menu, false, 0, &mut ranges);
            if ranges.is_empty() {
                return;
            }
            ranges.sort_by_key(|r| r.start);
            f(&SecretLine {
                joined,
                segments,
                ranges: &ranges,
            });
        };
    for line in text.split('\n') {
        let b = line.as_bytes();
        let mut end = b.len();
        if b.last() == Some(&b'\r') {
            end -= 1;
        }
        let continues = end > 0 && b[end - 1] == b'\\';
        end -= usize::from(continues);
        // RouterOS indents continuations by 4 spaces that are not content.
        let indent = if continued {
            b[..end].iter().take(4).take_while(|&&c| c == b' ').count()
        } else {
            0
        };
        let (orig, len) = (offset + indent, end - indent);
        let content = &bytes[orig..orig + len];
        if !continued {
            first = offset;
        }
        offset += line.len() + 1;
        continued = continues;
        let segment = Segment {
            joined: joined.len(),
            orig,
            len,
        };
        let raw = first..offset - 1;
        if segments.is_empty() && !continues {
            line_of(content, &[segment], raw, &mut menu);
            continue;
        }
        segments.push(segment);
        joined.extend_from_slice(content);
        if !continues {
            line_of(&joined, &segments, raw, &mut menu);
            joined.clear();
            segments.clear();
        }
    }
    if !segments.is_empty() {
        line_of(&joined, &segments, first..bytes.len(), &mut menu);
    }
}

/// The menu a line opens, as `/word word…`: the words after `/` up to the
/// first command or non-path word (`/ip/ipsec/peer add` → `/ip ipsec peer`).
fn menu_path(line: &[u8]) -> String {
    let is_path = |w: &[u8]| {
        w.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(c))
    };
    let words: Vec<String> = line
        .split(|c| c.is_ascii_whitespace() || *c == b'/')
        .filter(|w| !w.is_empty())
        .take_while(|w| is_path(w) && !COMMANDS.iter().any(|c| c.as_bytes() == *w))
        .map(|w| String::from_utf8_lossy(w).to_ascii_lowercase())
        .collect();
    format!("/{}", words.join(" "))
}

/// Finds secret ranges in `s`: `key=value` pairs (also inside `[ find … ]`),
/// and, inside quoted values that are not secrets, script text one level
/// down, where only the menu-independent keys count (`menu` is empty).
fn scan(s: &[u8], menu: &str, script: bool, depth: usize, out: &mut Vec<Range<usize>>) {
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'"' {
            let (inner_end, end) = quoted_end(s, i);
            scan_quoted(s, i + 1..inner_end, depth, out);
            i = end;
        } else if is_key_char(s[i]) && (i == 0 || is_boundary(s[i - 1])) {
            i = scan_pair(s, i, menu, script, depth, out);
        } else {
            i += 1;
        }
    }
}

/// Scans the token at `start`; returns where scanning resumes.
fn scan_pair(
    s: &[u8],
    start: usize,
    menu: &str,
    script: bool,
    depth: usize,
    out: &mut Vec<Range<usize>>,
) -> usize {
    let key_end = start + s[start..].iter().take_while(|&&c| is_key_char(c)).count();
    if s.get(key_end) != Some(&b'=') {
        return key_end;
    }
    let value = key_end + 1;
    let quoted = s.get(value) == Some(&b'"');
    let (inner_end, end) = if quoted {
        quoted_end(s, value)
    } else {
        (0, bare_end(s, value, script))
    };
    let key = String::from_utf8_lossy(&s[start..key_end]);
    if is_sensitive_in(menu, &key) {
        out.push(value..end);
    } else if quoted {
        scan_quoted(s, value + 1..inner_end, depth, out);
    }
    end
}

/// Decodes the escapes of a quoted value's content and scans it as script.
fn scan_quoted(s: &[u8], inner: Range<usize>, depth: usize, out: &mut Vec<Range<usize>>) {
    if depth >= MAX_DEPTH || inner.is_empty() {
        return;
    }
    let (decoded, map) = decode(&s[inner.clone()]);
    let mut found = Vec::new();
    scan(&decoded, "", true, depth + 1, &mut found);
    out.extend(
        found
            .into_iter()
            .map(|r| inner.start + map[r.start]..inner.start + map[r.end]),
    );
}

/// Unescapes RouterOS quoted-string content (`\"`, `\\`, `\n`, `\_`, `\XX`
/// hex…). `map[i]` is where decoded byte `i` starts in `raw`; the extra last
/// entry is `raw.len()`.
fn decode(raw: &[u8]) -> (Vec<u8>, Vec<usize>) {
    let (mut decoded, mut map) = (
        Vec::with_capacity(raw.len()),
        Vec::with_capacity(raw.len() + 1),
    );
    let mut i = 0;
    while i < raw.len() {
        map.push(i);
        let (byte, width) = match (raw[i], raw.get(i + 1).copied()) {
            (b'\\', Some(c)) => match hex_escape(raw.get(i + 1..i + 3)) {
                Some(byte) => (byte, 3),
                None => (unescape(c), 2),
            },
            (c, _) => (c, 1),
        };
        decoded.push(byte);
        i += width;
    }
    map.push(raw.len());
    (decoded, map)
}

/// The byte of a `\XX` escape; RouterOS writes hex in upper case, which keeps
/// `\a`, `\b` and `\f` apart from hex digits.
fn hex_escape(digits: Option<&[u8]>) -> Option<u8> {
    let digits = std::str::from_utf8(digits?).ok()?;
    if digits
        .bytes()
        .all(|c| c.is_ascii_digit() || (b'A'..=b'F').contains(&c))
    {
        u8::from_str_radix(digits, 16).ok()
    } else {
        None
    }
}

/// The byte a one-character escape stands for.
fn unescape(c: u8) -> u8 {
    match c {
        b'n' => b'\n',
        b'r' => b'\r',
        b't' => b'\t',
        b'_' => b' ',
        b'a' => 0x07,
        b'b' => 0x08,
        b'f' => 0x0c,
        b'v' => 0x0b,
        other => other,
    }
}

/// For a quote at `open`: the index of the closing quote (or the end of an
/// unbalanced value) and the index just past the value.
fn quoted_end(s: &[u8], open: usize) -> (usize, usize) {
    let mut i = open + 1;
    while i < s.len() {
        match s[i] {
            b'\\' => i += 2,
            b'"' => return (i, i + 1),
            _ => i += 1,
        }
    }
    (s.len(), s.len())
}

/// End of a bare value: whitespace or `]`, and in scripts also `;`, `"`,
/// `}` and `)`, which end a word there.
fn bare_end(s: &[u8], start: usize, script: bool) -> usize {
    let stops = |c: u8| c.is_ascii_whitespace() || c == b']' || (script && b";\"})".contains(&c));
    start + s[start..].iter().take_while(|&&c| !stops(c)).count()
}

fn is_key_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"-_.".contains(&c)
}

fn is_boundary(c: u8) -> bool {
    c.is_ascii_whitespace() || b"[;{(".contains(&c)
}

/// The joined line with each secret range replaced by [`MASK`].
fn masked_form(joined: &[u8], ranges: &[Range<usize>]) -> Vec<u8> {
    let (mut out, mut pos) = (Vec::with_capacity(joined.len()), 0);
    for r in ranges {
        out.extend_from_slice(&joined[pos..r.start]);
        out.extend_from_slice(MASK.as_bytes());
        pos = r.end;
    }
    out.extend_from_slice(&joined[pos..]);
    out
}

/// The secret values of a line, in order.
fn values_of(joined: &[u8], ranges: &[Range<usize>]) -> Vec<Vec<u8>> {
    ranges.iter().map(|r| joined[r.clone()].to_vec()).collect()
}

/// A replacement of `range` in the input text.
#[derive(Debug)]
struct Edit {
    range: Range<usize>,
    text: &'static str,
}

/// Maps masked ranges (joined coordinates) onto the input: the first
/// physical fragment of a value becomes the mask, later fragments go.
fn push_edits(segs: &[Segment], ranges: &[(Range<usize>, &'static str)], edits: &mut Vec<Edit>) {
    let mut first_seg = 0;
    for (r, text) in ranges {
        while first_seg + 1 < segs.len() && segs[first_seg].joined + segs[first_seg].len <= r.start
        {
            first_seg += 1;
        }
        let Some(seg) = segs.get(first_seg) else {
            return;
        };
        if r.is_empty() {
            let at = seg.orig + r.start.saturating_sub(seg.joined).min(seg.len);
            edits.push(Edit {
                range: at..at,
                text,
            });
            continue;
        }
        let mut replacement = *text;
        for seg in segs[first_seg..].iter().take_while(|s| s.joined < r.end) {
            let (a, b) = (r.start.max(seg.joined), r.end.min(seg.joined + seg.len));
            if a < b {
                let range = seg.orig + (a - seg.joined)..seg.orig + (b - seg.joined);
                edits.push(Edit {
                    range,
                    text: replacement,
                });
                replacement = "";
            }
        }
    }
}

/// Applies sorted, disjoint edits to `text`.
fn apply(text: &str, edits: &[Edit]) -> String {
    let bytes = text.as_bytes();
    let (mut out, mut pos) = (Vec::with_capacity(bytes.len()), 0);
    for edit in edits {
        if edit.range.start < pos {
            continue;
        }
        out.extend_from_slice(&bytes[pos..edit.range.start]);
        out.extend_from_slice(edit.text.as_bytes());
        pos = edit.range.end;
    }
    out.extend_from_slice(&bytes[pos..]);
    // Edits start and end next to ASCII bytes, so the text stays UTF-8; the
    // lossy path only guards against a bug turning into a panic.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

#[cfg(test)]
#[path = "redact_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "redact_corpus_tests.rs"]
mod corpus_tests;

#[cfg(test)]
#[path = "redact_props.rs"]
mod props;

#[cfg(test)]
#[path = "redact_equiv_tests.rs"]
mod equiv_tests;
