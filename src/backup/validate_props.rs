//! Property tests of [`validate`] on arbitrary bytes: it never panics, the
//! outcome follows the documented order, and what it returns is bounded
//! (warnings, quoted lines) whatever the device sends.

use proptest::prelude::*;

use super::*;

/// Bytes a hostile or broken device might send: arbitrary bytes, text with
/// RouterOS error lines, `#error exporting` floods, CSI and CR noise.
fn output() -> impl Strategy<Value = Vec<u8>> {
    let line = prop_oneof![
        "/[a-z ]{1,20}",
        "add [a-z=0-9 ]{0,30}",
        "#error exporting [ -~]{0,300}",
        Just("#interrupted".to_owned()),
        "(expected end of command|bad command name|syntax error|failure:|no such item)[ -~]{0,300}",
        "[\\x1b\\[0-9;m \t\r]{0,10}",
        "\\PC{0,300}",
    ];
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..2048),
        prop::collection::vec(line, 0..64).prop_map(|l| l.join("\n").into_bytes()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_output_never_panics_and_the_result_is_bounded(
        raw in output(),
        cap in prop_oneof![Just(usize::MAX), 0..4096usize],
    ) {
        // Act
        let result = validate(&raw, cap);

        // Assert
        match result {
            Ok(valid) => {
                prop_assert!(raw.len() <= cap);
                prop_assert_eq!(valid.text.as_bytes(), raw.as_slice());
                prop_assert!(valid.warnings.len() <= MAX_WARNINGS + 1);
                for warning in &valid.warnings {
                    prop_assert!(warning.chars().count() <= MAX_WARNING_CHARS + 80);
                    prop_assert!(!warning.chars().any(char::is_control));
                }
            }
            Err(Error::TooLarge { limit }) => {
                prop_assert_eq!(limit, cap);
                prop_assert!(raw.len() > cap);
            }
            Err(Error::CommandFailed(message)) => {
                prop_assert!(message.chars().count() <= MAX_ERROR_CHARS + 1);
                prop_assert!(!message.chars().any(char::is_control));
            }
            Err(Error::InvalidOutput(message)) => {
                prop_assert!(message.len() <= 100, "fixed messages only");
            }
            Err(other) => prop_assert!(false, "unexpected error kind {:?}", other.kind()),
        }
    }

    #[test]
    fn output_without_a_menu_line_is_never_accepted(
        lines in prop::collection::vec("[^/\\n\\x1b][^\\n]{0,40}|", 0..32),
    ) {
        // Arrange
        let raw = lines.join("\n");

        // Act
        let result = validate(raw.as_bytes(), usize::MAX);

        // Assert
        prop_assert!(result.is_err());
    }

    #[test]
    fn the_whole_text_searches_agree_with_a_walk_over_every_line(raw in output()) {
        // Arrange: the per-line definition the searches replace.
        let Ok(text) = std::str::from_utf8(&raw) else { return Ok(()) };
        let clean = strip_csi(text);
        let lines: Vec<&str> = clean
            .split('\n')
            .map(|line| line.trim_end_matches([' ', '\t', '\r']))
            .collect();
        let menu = lines.iter().any(|line| line.starts_with('/'));
        let mut expected = Warnings::default();
        for line in &lines {
            expected.inspect(line);
        }
        let expected = expected.finish();

        // Act
        let result = validate(&raw, usize::MAX);

        // Assert: accepted exactly when a line is a menu line (unless empty
        // or an error answer), with the same warnings.
        match result {
            Ok(valid) => {
                prop_assert!(menu);
                prop_assert_eq!(valid.warnings, expected);
            }
            Err(Error::InvalidOutput(message)) if message.starts_with("no line") => prop_assert!(!menu),
            Err(_) => {}
        }
    }
}
