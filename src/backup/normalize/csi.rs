//! Removal of terminal control sequences (CSI) from an export's raw
//! stdout: a byte-level state machine, shared by normalization and by
//! validation of the raw text. Pure; no allocation when there is nothing
//! to strip.

use std::borrow::Cow;

/// How far a possible CSI sequence has come.
#[derive(Debug, Clone, Copy)]
enum Csi {
    /// Seen `ESC`.
    Esc,
    /// Seen `ESC [` and maybe parameter bytes (`0x30..=0x3F`).
    Params,
    /// Seen at least one intermediate byte (`0x20..=0x2F`).
    Intermediates,
}

/// What one more byte does to the innermost open CSI candidate.
enum Step {
    /// Still a valid prefix, now in this state.
    Grow(Csi),
    /// A final byte (`0x40..=0x7E`): the sequence is complete.
    Complete,
    /// Not a CSI sequence.
    Dead,
}

fn step(state: Csi, byte: u8) -> Step {
    match (state, byte) {
        (Csi::Esc, b'[') => Step::Grow(Csi::Params),
        (Csi::Params, 0x30..=0x3F) => Step::Grow(Csi::Params),
        (Csi::Params | Csi::Intermediates, 0x20..=0x2F) => Step::Grow(Csi::Intermediates),
        (Csi::Params | Csi::Intermediates, 0x40..=0x7E) => Step::Complete,
        _ => Step::Dead,
    }
}

/// Removes ANSI CSI sequences (`ESC [ P* I* F`) in one linear pass.
///
/// A sequence that only forms once an inner one is removed (`ESC ESC[0m [1m`)
/// is removed too, so the result holds no CSI sequence and stripping is
/// idempotent. An `ESC` that starts no sequence is kept. Borrows when the
/// input holds no `ESC`.
pub(in crate::backup) fn strip_csi(s: &str) -> Cow<'_, str> {
    if !s.contains('\x1b') {
        return Cow::Borrowed(s);
    }
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    // Open candidates as (start in `out`, state). Only the innermost (last)
    // one can grow; the ones below it resume when it completes and is cut.
    // Every byte consumed while a candidate is open is ASCII, so `i` always
    // sits on a char boundary.
    let mut open: Vec<(usize, Csi)> = Vec::new();
    let mut i = 0;
    while i < s.len() {
        let Some(&(start, state)) = open.last() else {
            let next = s[i..].find('\x1b').map_or(s.len(), |n| i + n);
            out.push_str(&s[i..next]);
            if next < s.len() {
                open.push((out.len(), Csi::Esc));
                out.push('\x1b');
            }
            i = next + 1;
            continue;
        };
        let byte = bytes[i];
        if byte == 0x1b {
            open.push((out.len(), Csi::Esc));
            out.push('\x1b');
            i += 1;
            continue;
        }
        match step(state, byte) {
            Step::Grow(next) => {
                if let Some(top) = open.last_mut() {
                    top.1 = next;
                }
                out.push(char::from(byte));
                i += 1;
            }
            Step::Complete => {
                out.truncate(start);
                open.pop();
                i += 1;
            }
            // The byte stays in `out`, so no open candidate can ever complete:
            // copy it (and what follows) in the candidate-free branch.
            Step::Dead => open.clear(),
        }
    }
    Cow::Owned(out)
}
