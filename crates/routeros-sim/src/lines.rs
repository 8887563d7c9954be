//! Line layout of RouterOS exports: what an `/export` asked for, the 79-column
//! wrapping with `\` continuations, and CRLF line endings.
//!
//! A leaf module: pure functions shared by `export.rs` and `generate.rs`.

/// RouterOS wraps exported lines at this width, trailing `\` included.
pub(crate) const WRAP_WIDTH: usize = 79;
/// Continuation lines start with this indent.
const INDENT: &str = "    ";

/// What an `/export` command asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct ExportRequest {
    /// Include secrets (`show-sensitive` on v7, the default on v6).
    pub sensitive: bool,
    /// One line per item with its menu, no wrapping.
    pub terse: bool,
}

/// Wraps one logical line the way RouterOS does: physical lines of at most 79 columns,
/// each but the last ending in `\`, continuations indented by 4 spaces. Breaks go
/// between arguments (` \`), after `key=` (`key=\`), or inside an over-long token.
pub(crate) fn wrap(line: &str) -> Vec<String> {
    if line.len() <= WRAP_WIDTH {
        return vec![line.to_owned()];
    }
    let args = split_args(line);
    let mut out = Vec::new();
    let mut cur = String::new();
    for (i, arg) in args.iter().enumerate() {
        let last = i + 1 == args.len();
        let sep = if cur.is_empty() || cur == INDENT {
            ""
        } else {
            " "
        };
        let reserve = if last { 0 } else { 2 };
        if cur.len() + sep.len() + arg.len() + reserve <= WRAP_WIDTH {
            cur.push_str(sep);
            cur.push_str(arg);
            continue;
        }
        let key_len = arg
            .find('=')
            .filter(|&eq| !arg[..eq].contains('"'))
            .map_or(0, |eq| eq + 1);
        if key_len > 0 && key_len < arg.len() && cur.len() + sep.len() + key_len < WRAP_WIDTH {
            cur.push_str(sep);
            cur.push_str(&arg[..key_len]);
            cur.push('\\');
            out.push(std::mem::replace(&mut cur, INDENT.to_owned()));
            push_long(&mut out, &mut cur, &arg[key_len..], last);
            continue;
        }
        if cur.len() > INDENT.len() {
            cur.push_str(" \\");
            out.push(std::mem::replace(&mut cur, INDENT.to_owned()));
        } else {
            cur.push_str(sep);
        }
        push_long(&mut out, &mut cur, arg, last);
    }
    out.push(cur);
    out
}

/// Appends `token` to `cur`, hard-splitting it with `\` while it does not fit.
fn push_long(out: &mut Vec<String>, cur: &mut String, token: &str, last: bool) {
    let mut rest = token;
    loop {
        let reserve = if last { 0 } else { 2 };
        if cur.len() + rest.len() + reserve <= WRAP_WIDTH {
            cur.push_str(rest);
            return;
        }
        let room = WRAP_WIDTH.saturating_sub(cur.len() + 1).max(1);
        let mut cut = room.min(rest.len());
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        if cut == 0 {
            cur.push_str(rest);
            return;
        }
        cur.push_str(&rest[..cut]);
        cur.push('\\');
        out.push(std::mem::replace(cur, INDENT.to_owned()));
        rest = &rest[cut..];
    }
}

/// Splits a command line on spaces outside double quotes (`\"` does not end a quote).
fn split_args(line: &str) -> Vec<&str> {
    let mut args = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in line.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            ' ' if !quoted => {
                if i > start {
                    args.push(&line[start..i]);
                }
                start = i + 1;
            }
            _ => {}
        }
    }
    if start < line.len() {
        args.push(&line[start..]);
    }
    args
}

/// Joins lines with CRLF (and ends with one).
pub(crate) fn crlf<S: AsRef<str>>(lines: &[S]) -> String {
    let mut out = String::with_capacity(lines.iter().map(|l| l.as_ref().len() + 2).sum());
    for line in lines {
        out.push_str(line.as_ref());
        out.push_str("\r\n");
    }
    out
}
