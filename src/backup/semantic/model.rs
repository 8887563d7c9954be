//! The model of an export and its parser: menus (`/ip firewall filter`),
//! their commands (`add`, `set`, `remove`) with selectors and properties,
//! `:` script lines and anything unparsable kept as opaque lines, and
//! comments (header and status, which are not configuration).
//! Entry point: [`parse`]. Never fails: problems are counted instead.

use std::ops::Range;

use super::lexer::{self, LexError, Token};

/// Logical lines longer than this are kept opaque without lexing.
pub(super) const MAX_LINE: usize = 1 << 20;

/// Command words that end a menu path.
const VERBS: &[&str] = &[
    "add", "set", "remove", "unset", "disable", "enable", "move", "comment", "print", "edit",
    "export", "reset",
];

/// A parsed export.
#[derive(Debug, Clone, Default)]
pub struct Export {
    /// Every logical line, in order.
    pub lines: Vec<Line>,
    /// Logical lines that should have been commands but did not parse (an
    /// unbalanced quote or bracket, an unknown command, a command before any
    /// menu). `:` script lines are opaque by design and not counted.
    pub problems: usize,
}

/// One logical line of an export.
#[derive(Debug, Clone)]
pub struct Line {
    /// The physical lines it spans in the input (`\n` excluded).
    pub span: Range<usize>,
    /// What it is.
    pub kind: LineKind,
}

/// What a logical line holds.
#[derive(Debug, Clone)]
pub enum LineKind {
    /// An empty line.
    Blank,
    /// A `#` comment: header lines and status (`# inactive time`, `# managed
    /// by CAPsMAN`), never configuration.
    Comment(String),
    /// A menu line without a command (`/ip firewall filter`).
    Menu(String),
    /// A command in `menu`; `terse` when the line carries its own menu.
    Command {
        /// The menu path, words joined by one space (`/ip firewall filter`).
        menu: String,
        /// Whether the line starts with its menu (`/ip address add …`).
        terse: bool,
        /// The command.
        command: Command,
    },
    /// A line kept as text: a `:` script line, an unknown command, or a line
    /// that does not lex; in `menu` (empty before any menu).
    Opaque {
        /// The menu in effect.
        menu: String,
        /// The logical line without a leading menu path.
        text: String,
    },
}

/// A command word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// `add`: creates an item.
    Add,
    /// `set`: changes an item or a settings menu.
    Set,
    /// `remove`: removes items.
    Remove,
}

impl Verb {
    /// The word in an export.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Add => "add",
            Verb::Set => "set",
            Verb::Remove => "remove",
        }
    }
}

/// Which item a `set` or `remove` is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// `[ find … ]` / `[ find where … ]`: the conditions as `key=value`
    /// pairs (empty when they are not plain pairs) and the raw text.
    Find {
        /// Plain `key=value` conditions (decoded values), in order.
        conditions: Vec<(String, String)>,
        /// The expression as written, brackets included.
        raw: String,
    },
    /// A bare word: a numeric index (`set 0 …`) or an item name
    /// (`/ip service set telnet …`); `raw` as written, `value` decoded.
    Word {
        /// As written.
        raw: String,
        /// Decoded.
        value: String,
    },
}

/// One property of a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Property {
    /// The key (`mtu`).
    pub key: String,
    /// The value as written, quotes included; `None` for a bare word.
    pub raw: Option<String>,
    /// The decoded value (empty for a bare word).
    pub value: String,
}

/// A parsed `add`, `set` or `remove`.
#[derive(Debug, Clone)]
pub struct Command {
    /// The command word.
    pub verb: Verb,
    /// The item of a `set`/`remove`; `None` for `add` and settings menus.
    pub selector: Option<Selector>,
    /// The properties, in the order written.
    pub properties: Vec<Property>,
}

impl Command {
    /// The decoded value of `key`, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.properties
            .iter()
            .find(|p| p.key == key)
            .map(|p| p.value.as_str())
    }

    /// The command as one logical line (no menu), as the parser read it.
    pub fn render(&self) -> String {
        let mut tokens = Vec::with_capacity(self.properties.len() + 1);
        match &self.selector {
            Some(Selector::Find { raw, .. }) => tokens.push(Token::Bracket(raw.clone())),
            Some(Selector::Word { raw, value }) => tokens.push(Token::Word {
                raw: raw.clone(),
                value: value.clone(),
            }),
            None => {}
        }
        tokens.extend(self.properties.iter().map(|p| match &p.raw {
            Some(raw) => Token::Pair {
                key: p.key.clone(),
                raw: raw.clone(),
                value: p.value.clone(),
            },
            None => Token::Word {
                raw: p.key.clone(),
                value: p.key.clone(),
            },
        }));
        let rest = lexer::render_tokens(&tokens);
        if rest.is_empty() {
            self.verb.as_str().to_owned()
        } else {
            format!("{} {rest}", self.verb.as_str())
        }
    }
}

/// Parses normalized export text. Never fails and never panics: lines that
/// do not parse become [`LineKind::Opaque`] and are counted in
/// [`Export::problems`]. Work is linear in the input.
pub fn parse(text: &str) -> Export {
    let mut export = Export::default();
    let mut menu = String::new();
    for logical in lexer::logical_lines(text) {
        let line = logical.text.as_ref();
        let kind = classify(line, &mut menu, &mut export.problems);
        export.lines.push(Line {
            span: logical.span,
            kind,
        });
    }
    export
}

/// Parses one logical line in the context of the current `menu`.
pub(super) fn classify(line: &str, menu: &mut String, problems: &mut usize) -> LineKind {
    let trimmed = line.trim();
    if trimmed.is_empty() {
        return LineKind::Blank;
    }
    if trimmed.starts_with('#') {
        return LineKind::Comment(line.to_owned());
    }
    if line.len() > MAX_LINE {
        *problems += 1;
        return opaque(menu, line);
    }
    let (rest, terse) = match line.strip_prefix('/') {
        Some(_) => {
            let (path, rest) = split_menu(line);
            *menu = path;
            if rest.trim().is_empty() {
                return LineKind::Menu(menu.clone());
            }
            (rest.trim_start(), true)
        }
        None => (line, false),
    };
    if rest.starts_with(':') {
        return opaque(menu, rest);
    }
    if menu.is_empty() {
        *problems += 1;
        return opaque(menu, rest);
    }
    match parse_command(rest) {
        Ok(command) => LineKind::Command {
            menu: menu.clone(),
            terse,
            command,
        },
        Err(_) => {
            *problems += 1;
            opaque(menu, rest)
        }
    }
}

fn opaque(menu: &str, text: &str) -> LineKind {
    LineKind::Opaque {
        menu: menu.to_owned(),
        text: text.to_owned(),
    }
}

/// Splits a `/…` line into its menu path and the rest: the words up to the
/// first command word or non-path word; `/` separates words too (v7
/// `/ip/firewall/filter`). `/ip firewall filter add a=b` → (`/ip firewall
/// filter`, `add a=b`).
pub(super) fn split_menu(line: &str) -> (String, &str) {
    let is_separator = |c: char| c == '/' || c.is_ascii_whitespace();
    let mut words = Vec::new();
    let mut end = 0;
    loop {
        let rest = line[end..].trim_start_matches(is_separator);
        let word_len = rest.find(is_separator).unwrap_or(rest.len());
        let word = &rest[..word_len];
        let is_path = !word.is_empty()
            && word
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_' || c == b'.');
        if !is_path || VERBS.contains(&word) {
            let rest_start = line.len() - rest.len();
            return (format!("/{}", words.join(" ")), &line[rest_start..]);
        }
        words.push(word.to_ascii_lowercase());
        end = line.len() - rest.len() + word_len;
    }
}

/// Why a command line is kept opaque.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CommandError {
    Lex,
    UnknownVerb,
    Misplaced,
}

impl From<LexError> for CommandError {
    fn from(_: LexError) -> Self {
        CommandError::Lex
    }
}

/// Parses `add …`, `set …` or `remove …`.
fn parse_command(line: &str) -> Result<Command, CommandError> {
    let (verb_word, rest) = line.split_once(' ').unwrap_or((line, ""));
    let verb = match verb_word {
        "add" => Verb::Add,
        "set" => Verb::Set,
        "remove" => Verb::Remove,
        _ => return Err(CommandError::UnknownVerb),
    };
    let mut tokens = lexer::tokenize(rest)?.into_iter().peekable();
    let selector = match (verb, tokens.peek()) {
        (Verb::Add, _) => None,
        (_, Some(Token::Bracket(raw))) => {
            let raw = raw.clone();
            tokens.next();
            Some(find_selector(raw))
        }
        (_, Some(Token::Word { raw, value })) => {
            let selector = Selector::Word {
                raw: raw.clone(),
                value: value.clone(),
            };
            tokens.next();
            Some(selector)
        }
        _ => None,
    };
    let mut properties = Vec::new();
    for token in tokens {
        properties.push(match token {
            Token::Pair { key, raw, value } => Property {
                key,
                raw: Some(raw),
                value,
            },
            Token::Word { raw, .. } => Property {
                key: raw,
                raw: None,
                value: String::new(),
            },
            Token::Bracket(_) => return Err(CommandError::Misplaced),
        });
    }
    Ok(Command {
        verb,
        selector,
        properties,
    })
}

/// A `[ find … ]` selector with its plain `key=value` conditions.
fn find_selector(raw: String) -> Selector {
    let inner = raw
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(&raw)
        .trim();
    let inner = inner.strip_prefix("find").unwrap_or(inner).trim_start();
    let inner = inner.strip_prefix("where").unwrap_or(inner).trim_start();
    let conditions = match lexer::tokenize(inner) {
        Ok(tokens) => tokens
            .into_iter()
            .map(|t| match t {
                Token::Pair { key, value, .. } => Some((key, value)),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    Selector::Find { conditions, raw }
}
