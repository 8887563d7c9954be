//! Lexing of RouterOS export text: physical lines grouped into logical lines
//! (`\` continuations joined), and one logical line split into tokens
//! (`key=value` pairs with quoted values, bare words, `[ … ]` expressions).
//! Work is linear in the input; malformed text is an error, never a panic.

use std::borrow::Cow;
use std::ops::Range;

/// One logical line: physical lines joined over `\` continuations.
#[derive(Debug, Clone)]
pub(super) struct Logical<'a> {
    /// The text, continuations joined (the `\` and the next line's 4-space
    /// indent removed).
    pub(super) text: Cow<'a, str>,
    /// The physical lines in the input, `\n` excluded.
    pub(super) span: Range<usize>,
}

/// Splits `text` into logical lines. A `\` at the end of the input's last
/// line continues nothing.
pub(super) fn logical_lines(text: &str) -> Vec<Logical<'_>> {
    let mut out = Vec::new();
    let mut offset = 0;
    let mut current: Option<Logical<'_>> = None;
    let mut physical = text.split_inclusive('\n').peekable();
    while let Some(raw) = physical.next() {
        let start = offset;
        offset += raw.len();
        let line = raw.strip_suffix('\n').unwrap_or(raw);
        let end = start + line.len();
        let continues = line.ends_with('\\') && physical.peek().is_some();
        let body = if continues {
            &line[..line.len() - 1]
        } else {
            line
        };
        let logical = match current.take() {
            None => Logical {
                text: Cow::Borrowed(body),
                span: start..end,
            },
            Some(mut logical) => {
                // RouterOS indents continuation lines by four spaces.
                let body = body.strip_prefix("    ").unwrap_or(body);
                logical.text.to_mut().push_str(body);
                logical.span.end = end;
                logical
            }
        };
        if continues {
            current = Some(logical);
        } else {
            out.push(logical);
        }
    }
    if let Some(logical) = current {
        out.push(logical);
    }
    out
}

/// Why a logical line does not lex.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LexError {
    /// A `"` without its closing quote.
    UnterminatedQuote,
    /// A `[` without its `]`, or a `]` without its `[`.
    UnbalancedBracket,
    /// Text glued to a closing quote (`a="b"c`).
    TrailingAfterQuote,
}

/// A token of a command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Token {
    /// A word without `=`: a numeric index, an item name, a flag. Holds the
    /// word as written (quotes included) and its decoded value.
    Word { raw: String, value: String },
    /// `key=value`; `raw` is the value as written (quotes included).
    Pair {
        key: String,
        raw: String,
        value: String,
    },
    /// A `[ … ]` expression as written.
    Bracket(String),
}

/// Splits a command line (after its verb) into tokens on ASCII whitespace.
pub(super) fn tokenize(s: &str) -> Result<Vec<Token>, LexError> {
    let bytes = s.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'[' {
            let end = bracket_end(bytes, i)?;
            tokens.push(Token::Bracket(s[i..end].to_owned()));
            i = end;
        } else if c == b']' {
            return Err(LexError::UnbalancedBracket);
        } else if c == b'"' {
            let end = quoted_end(bytes, i)?;
            check_after_quote(bytes, end)?;
            tokens.push(Token::Word {
                raw: s[i..end].to_owned(),
                value: decode(&s[i + 1..end - 1]),
            });
            i = end;
        } else {
            i = word_or_pair(s, i, &mut tokens)?;
        }
    }
    Ok(tokens)
}

/// Lexes the bare word or `key=value` pair at `start`; returns its end.
fn word_or_pair(s: &str, start: usize, tokens: &mut Vec<Token>) -> Result<usize, LexError> {
    let bytes = s.as_bytes();
    let stop = |c: u8| c.is_ascii_whitespace() || c == b'=' || c == b'"' || c == b'[';
    let key_end = start + bytes[start..].iter().take_while(|&&c| !stop(c)).count();
    if bytes.get(key_end) != Some(&b'=') {
        if bytes.get(key_end).is_some_and(|&c| c == b'"' || c == b'[') {
            return Err(LexError::TrailingAfterQuote);
        }
        let word = &s[start..key_end];
        tokens.push(Token::Word {
            raw: word.to_owned(),
            value: word.to_owned(),
        });
        return Ok(key_end);
    }
    let value_start = key_end + 1;
    let (end, value) = if bytes.get(value_start) == Some(&b'"') {
        let end = quoted_end(bytes, value_start)?;
        check_after_quote(bytes, end)?;
        (end, decode(&s[value_start + 1..end - 1]))
    } else {
        let end = value_start
            + bytes[value_start..]
                .iter()
                .take_while(|c| !c.is_ascii_whitespace())
                .count();
        (end, s[value_start..end].to_owned())
    };
    tokens.push(Token::Pair {
        key: s[start..key_end].to_owned(),
        raw: s[value_start..end].to_owned(),
        value,
    });
    Ok(end)
}

/// A closing quote must end its token.
fn check_after_quote(bytes: &[u8], end: usize) -> Result<(), LexError> {
    match bytes.get(end) {
        None => Ok(()),
        Some(c) if c.is_ascii_whitespace() => Ok(()),
        Some(_) => Err(LexError::TrailingAfterQuote),
    }
}

/// For a quote at `open`: the index just past its closing quote.
fn quoted_end(bytes: &[u8], open: usize) -> Result<usize, LexError> {
    let mut i = open + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Ok(i + 1),
            _ => i += 1,
        }
    }
    Err(LexError::UnterminatedQuote)
}

/// For a `[` at `open`: the index just past its matching `]`, skipping
/// quoted text and nested brackets.
fn bracket_end(bytes: &[u8], open: usize) -> Result<usize, LexError> {
    let mut depth = 0usize;
    let mut i = open;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i = quoted_end(bytes, i)?;
                continue;
            }
            b'[' => depth += 1,
            b']' => {
                depth -= 1;
                if depth == 0 {
                    return Ok(i + 1);
                }
            }
            _ => {}
        }
        i += 1;
    }
    Err(LexError::UnbalancedBracket)
}

/// Unescapes the content of a quoted value: `\"`, `\\`, `\n`, `\r`, `\t`,
/// `\_` (space), `\$`, `\?` and `\XX` (two upper-case hex digits).
pub(super) fn decode(raw: &str) -> String {
    if !raw.contains('\\') {
        return raw.to_owned();
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' || i + 1 >= bytes.len() {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        if let Some(byte) = hex_escape(bytes.get(i + 1..i + 3)) {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(match bytes[i + 1] {
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'_' => b' ',
            b'a' => 0x07,
            b'b' => 0x08,
            b'f' => 0x0c,
            b'v' => 0x0b,
            other => other,
        });
        i += 2;
    }
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// The byte of a `\XX` escape; RouterOS writes hex in upper case, which keeps
/// `\a`, `\b` and `\f` apart from hex digits.
fn hex_escape(digits: Option<&[u8]>) -> Option<u8> {
    let digits = digits?;
    if digits
        .iter()
        .all(|c| c.is_ascii_digit() || (b'A'..=b'F').contains(c))
    {
        u8::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
    } else {
        None
    }
}

/// Renders tokens back into a command line, one space apart.
pub(super) fn render_tokens(tokens: &[Token]) -> String {
    let mut out = String::new();
    for token in tokens {
        if !out.is_empty() {
            out.push(' ');
        }
        match token {
            Token::Word { raw, .. } => out.push_str(raw),
            Token::Pair { key, raw, .. } => {
                out.push_str(key);
                out.push('=');
                out.push_str(raw);
            }
            Token::Bracket(raw) => out.push_str(raw),
        }
    }
    out
}
