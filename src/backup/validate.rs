//! Validation of an export's raw stdout before normalization (DESIGN.md §5):
//! the byte cap, UTF-8, RouterOS error answers and "is this an export at all".
//!
//! Pure: no I/O, no async. Error messages and warnings carry at most the
//! device's own error or `#error exporting` line, never other config text.
//! Entry point: [`validate`].

use std::fmt;

use super::normalize::strip_csi;
use super::{Error, Result};

/// First-line answers of RouterOS that mean the command failed
/// (compared ASCII case-insensitively as line prefixes).
const ROUTEROS_ERRORS: [&str; 6] = [
    "expected end of command",
    "bad command name",
    "syntax error",
    "input does not match any value",
    "failure:",
    "no such item",
];

/// Longest error line quoted in [`Error::CommandFailed`], in characters.
const MAX_ERROR_CHARS: usize = 200;

/// Longest `#error exporting` line quoted in a warning, in characters.
const MAX_WARNING_CHARS: usize = 160;

/// Most distinct partial-export warnings listed before a summary line.
const MAX_WARNINGS: usize = 16;

/// An export that passed validation.
#[derive(Clone, PartialEq, Eq)]
pub struct Validated<'a> {
    /// The raw output as UTF-8 text, unchanged (normalization comes next).
    /// Holds device secrets: never log it.
    pub text: &'a str,
    /// Non-fatal problems, e.g. `partial export: #error exporting /ip socks`.
    pub warnings: Vec<String>,
}

impl fmt::Debug for Validated<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Validated")
            .field("text", &format_args!("<{} bytes>", self.text.len()))
            .field("warnings", &self.warnings)
            .finish()
    }
}

/// Checks an export's raw stdout (DESIGN.md §5) and returns it as text.
///
/// Lines are looked at after removing ANSI CSI sequences and trailing
/// whitespace (including `\r`). `#error exporting …` and `#interrupted` lines
/// make the export partial: it is still valid and gets a warning per distinct
/// line (at most 16, then one line counting the lines left).
///
/// # Errors
/// In this order:
/// - [`Error::TooLarge`] when `raw` is longer than `max_bytes`;
/// - [`Error::InvalidOutput`] when `raw` is not UTF-8, or holds only blank lines;
/// - [`Error::CommandFailed`] when the first non-blank line is a RouterOS error
///   (`expected end of command`, `bad command name`, `syntax error`,
///   `input does not match any value`, `failure:`, `no such item`); the message
///   is that line, cut to 200 characters;
/// - [`Error::InvalidOutput`] when no line starts with `/`.
pub fn validate(raw: &[u8], max_bytes: usize) -> Result<Validated<'_>> {
    if raw.len() > max_bytes {
        return Err(Error::TooLarge { limit: max_bytes });
    }
    let text = std::str::from_utf8(raw).map_err(|e| {
        Error::InvalidOutput(format!(
            "output is not UTF-8 (invalid byte at offset {})",
            e.valid_up_to()
        ))
    })?;
    let clean = strip_csi(text);
    let mut lines = clean
        .split('\n')
        .map(|line| line.trim_end_matches([' ', '\t', '\r']));
    let Some(first) = lines.by_ref().find(|line| !line.trim_start().is_empty()) else {
        return Err(Error::InvalidOutput("empty output".to_owned()));
    };
    if is_routeros_error(first) {
        return Err(Error::CommandFailed(quote(first.trim(), MAX_ERROR_CHARS)));
    }
    // Whole-text searches instead of a walk over every line: a line starts
    // with `/` exactly when the text does or holds "\n/", and a warning
    // line needs one of its two markers somewhere in the text.
    let has_menu = clean.starts_with('/') || clean.contains("\n/");
    let mut warnings = Warnings::default();
    if clean.contains("#error exporting") || clean.contains("#interrupted") {
        warnings.inspect(first);
        for line in lines {
            warnings.inspect(line);
        }
    }
    if !has_menu {
        return Err(Error::InvalidOutput(
            "no line starts with '/': not a RouterOS export".to_owned(),
        ));
    }
    Ok(Validated {
        text,
        warnings: warnings.finish(),
    })
}

fn is_routeros_error(line: &str) -> bool {
    let line = line.trim_start().as_bytes();
    ROUTEROS_ERRORS.iter().any(|prefix| {
        line.len() >= prefix.len() && line[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
    })
}

/// `line` cut to `max` characters (marked with `…`), control characters
/// replaced, so a quoted device line cannot break a log line or a JSON reply.
fn quote(line: &str, max: usize) -> String {
    let mut quoted: String = line
        .chars()
        .take(max)
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect();
    if line.chars().nth(max).is_some() {
        quoted.push('…');
    }
    quoted
}

/// Collects distinct partial-export warnings; memory stays bounded however
/// many such lines the device prints.
#[derive(Default)]
struct Warnings {
    listed: Vec<String>,
    unlisted: usize,
}

impl Warnings {
    fn inspect(&mut self, line: &str) {
        if !(line.starts_with("#error exporting") || line == "#interrupted") {
            return;
        }
        if self.listed.len() >= MAX_WARNINGS {
            // Past the bound, lines are only counted (duplicates included).
            self.unlisted += 1;
            return;
        }
        let warning = format!("partial export: {}", quote(line, MAX_WARNING_CHARS));
        if !self.listed.contains(&warning) {
            self.listed.push(warning);
        }
    }

    fn finish(mut self) -> Vec<String> {
        if self.unlisted > 0 {
            self.listed.push(format!(
                "partial export: {} more #error exporting lines not listed",
                self.unlisted
            ));
        }
        self.listed
    }
}

#[cfg(test)]
mod tests {
    //! The corpus holds real-looking secrets: assertions name the file and
    //! compare kinds and short messages, never whole texts.

    use super::*;
    use crate::backup::ErrorKind;

    const CORPUS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus/routeros");
    const CAP: usize = 32 << 20;

    /// A marker standing in for config text that must never reach a message.
    const SECRET: &str = "s3cr3t-marker";

    fn failure(raw: &[u8]) -> Error {
        match validate(raw, CAP) {
            Ok(_) => panic!("validation accepted the output"),
            Err(e) => e,
        }
    }

    #[test]
    fn every_corpus_file_validates_without_warnings() {
        let entries = std::fs::read_dir(CORPUS_DIR).expect("corpus directory is readable");
        let mut checked = 0;
        for entry in entries {
            // Arrange
            let path = entry.expect("directory entry").path();
            if path.extension().is_none_or(|ext| ext != "rsc") {
                continue;
            }
            let raw = std::fs::read(&path).expect("corpus file is readable");

            // Act
            let result = validate(&raw, CAP);

            // Assert
            let name = path.display();
            match result {
                Ok(v) => {
                    assert!(v.text.as_bytes() == raw.as_slice(), "{name}: text changed");
                    assert!(v.warnings.is_empty(), "{name}: {:?}", v.warnings);
                }
                Err(e) => panic!("{name}: {e}"),
            }
            checked += 1;
        }
        assert_eq!(checked, 20);
    }

    #[test]
    fn routeros_error_answers_are_command_failed_with_the_first_line() {
        // Arrange
        let answers = [
            "expected end of command (line 1 column 9)",
            "bad command name show-sensitive (line 1 column 9)",
            "syntax error (line 1 column 10)",
            "input does not match any value of value-name",
            "failure: already have such entry",
            "no such item",
            "Syntax Error (line 1 column 3)",
        ];

        for answer in answers {
            let raw = format!("\r\n\x1b[31m  {answer}\x1b[0m \r\n/ip service\r\nset {SECRET}\r\n");

            // Act
            let error = failure(raw.as_bytes());

            // Assert
            assert_eq!(error.kind(), ErrorKind::CommandFailed, "{answer}");
            assert_eq!(error.to_string(), format!("command failed: {answer}"));
        }
    }

    #[test]
    fn a_long_error_line_is_cut_to_about_200_characters() {
        // Arrange
        let raw = format!("failure: {}{SECRET}\n/ip\n", "x".repeat(300));

        // Act
        let error = failure(raw.as_bytes());

        // Assert
        let Error::CommandFailed(message) = error else {
            panic!("expected CommandFailed, got {error}");
        };
        assert_eq!(message.chars().count(), MAX_ERROR_CHARS + 1);
        assert!(message.starts_with("failure: x") && message.ends_with('…'));
        assert!(!message.contains(SECRET));
    }

    #[test]
    fn an_error_phrase_after_the_first_line_is_not_a_failure() {
        // Arrange
        let raw =
            "# 2024-01-02 03:04:05 by RouterOS 7.13\n/system script\nadd source=\"no such item\"\n";

        // Act
        let result = validate(raw.as_bytes(), CAP);

        // Assert
        assert!(result.is_ok(), "{result:?}");
    }

    #[test]
    fn non_utf8_output_is_invalid_output() {
        // Arrange
        let raw = b"/ip dns\nset servers=\xff\xfe\n";

        // Act
        let error = failure(raw);

        // Assert
        assert_eq!(error.kind(), ErrorKind::InvalidOutput);
        assert_eq!(
            error.to_string(),
            "invalid output: output is not UTF-8 (invalid byte at offset 20)"
        );
    }

    #[test]
    fn empty_or_blank_output_is_invalid_output() {
        for raw in ["", "\n", "\r\n  \t\r\n", "\x1b[0m\r\n"] {
            // Act
            let error = failure(raw.as_bytes());

            // Assert
            assert_eq!(error.kind(), ErrorKind::InvalidOutput, "{raw:?}");
            assert_eq!(error.to_string(), "invalid output: empty output");
        }
    }

    #[test]
    fn output_without_a_menu_line_is_invalid_output_without_its_text() {
        // Arrange
        let raw =
            format!("# 2024-01-02 03:04:05 by RouterOS 7.13\nadd name={SECRET}\n  /indented\n");

        // Act
        let error = failure(raw.as_bytes());

        // Assert
        assert_eq!(error.kind(), ErrorKind::InvalidOutput);
        assert!(!error.to_string().contains(SECRET));
    }

    #[test]
    fn output_over_the_cap_is_too_large() {
        // Arrange
        let raw = b"/ip dns\nset servers=192.0.2.1\n";

        // Act
        let over = validate(raw, raw.len() - 1);
        let at = validate(raw, raw.len());

        // Assert
        assert!(matches!(over, Err(Error::TooLarge { limit }) if limit == raw.len() - 1));
        assert!(at.is_ok(), "{at:?}");
    }

    #[test]
    fn cap_is_checked_before_utf8_and_content() {
        // Act
        let error = validate(b"\xff\xff\xff", 2).err();

        // Assert
        assert!(
            matches!(error, Some(Error::TooLarge { limit: 2 })),
            "{error:?}"
        );
    }

    #[test]
    fn error_exporting_lines_become_deduplicated_warnings() {
        // Arrange
        let raw = "# 2024-01-02 03:04:05 by RouterOS 7.13\r\n/ip socks\r\n\
                   #error exporting /ip socks\r\n#error exporting \"/interface/wifi\" (timeout) \r\n\
                   #error exporting /ip socks\r\n#interrupted\r\n";

        // Act
        let validated = validate(raw.as_bytes(), CAP).expect("a partial export is valid");

        // Assert
        assert_eq!(
            validated.warnings,
            [
                "partial export: #error exporting /ip socks",
                "partial export: #error exporting \"/interface/wifi\" (timeout)",
                "partial export: #interrupted",
            ]
        );
        assert_eq!(validated.text, raw);
    }

    #[test]
    fn warnings_are_bounded() {
        // Arrange
        let mut raw = String::from("/ip\n");
        for i in 0..1000 {
            raw.push_str(&format!("#error exporting /menu{i}\n"));
        }

        // Act
        let validated = validate(raw.as_bytes(), CAP).expect("a partial export is valid");

        // Assert
        assert_eq!(validated.warnings.len(), MAX_WARNINGS + 1);
        assert_eq!(
            validated.warnings.last().map(String::as_str),
            Some("partial export: 984 more #error exporting lines not listed")
        );
    }
}

#[cfg(test)]
#[path = "validate_props.rs"]
mod props;
