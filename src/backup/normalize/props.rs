//! Property tests of [`normalize`] (DESIGN.md §6) on generated exports and
//! arbitrary text: idempotence, and the noise that must never change the
//! hash (timestamp header in either format, CRLF, trailing spaces and tabs,
//! ANSI CSI sequences, transient comments), and that the cheap tests in
//! front of the regexes never skip a line they match. Case counts stay modest so the
//! unit suite stays fast; `fuzz/` runs the same entry point without bound.

use proptest::prelude::*;

use super::*;

/// Lines that look like an export: menus, commands, comments, continuations,
/// blanks, and a little arbitrary text.
fn export_line() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "/[a-z]{2,8}( [a-z-]{2,10}){0,2}",
        6 => "(add|set) [a-z-]{1,10}=[A-Za-z0-9./:-]{1,16}( [a-z-]{1,10}=[a-z0-9]{1,8}){0,3}",
        1 => "add comment=[a-z ]{1,30} \\\\",
        1 => "    [a-z-]{1,10}=[a-z0-9]{1,8}",
        1 => "# (software id|model|serial number) = [A-Z0-9]{4,12}",
        1 => "#[ -~]{0,40}",
        2 => Just(String::new()),
        1 => "[ \t]{1,4}",
        1 => "\\PC{0,40}",
    ]
}

/// A generated export: lines joined with `\n`, ending with one.
fn export() -> impl Strategy<Value = String> {
    prop::collection::vec(export_line(), 0..40).prop_map(|lines| {
        let mut text = lines.join("\n");
        text.push('\n');
        text
    })
}

/// A timestamp header in the pre-7.10 or the 7.10+ format.
fn header() -> impl Strategy<Value = String> {
    let month = prop::sample::select(vec![
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ]);
    let version = "[5-7]\\.[0-9]{1,2}(\\.[0-9]{1,2})?( \\(stable\\))?";
    prop_oneof![
        (month, 1..=28u32, 1990..=2099u32, version)
            .prop_map(|(m, d, y, v)| format!("# {m}/{d:02}/{y} 12:34:56 by RouterOS {v}")),
        (1990..=2099u32, 1..=12u32, 1..=28u32, version)
            .prop_map(|(y, m, d, v)| format!("# {y}-{m:02}-{d:02} 01:02:03 by RouterOS {v}")),
    ]
}

/// One transient status comment of each §6 step 4 kind.
fn transient() -> impl Strategy<Value = String> {
    prop_oneof![
        "# inactive time: [0-9dhms]{1,10}",
        "# received packet from [0-9.]{7,15} bad format",
        "# poe-out status: [a-z_]{1,20}",
        Just("# Firmware upgraded successfully, please reboot".to_owned()),
        "# [a-z0-9-]{1,10} not ready",
        Just("# Interface not running".to_owned()),
        "# [a-z0-9]{1,10}: please restart the device in order to apply the new setting",
    ]
}

/// A CSI sequence: `ESC [`, parameters, intermediates, final byte.
fn csi() -> impl Strategy<Value = String> {
    "[0-9;?]{0,6}[ -/]{0,2}[@-~]".prop_map(|tail| format!("\x1b[{tail}"))
}

fn hash_of(raw: &str) -> String {
    sha256_hex(&normalize(raw).text)
}

/// Byte offsets of the char boundaries of `s` (end included).
fn boundaries(s: &str) -> Vec<usize> {
    s.char_indices()
        .map(|(i, _)| i)
        .chain(std::iter::once(s.len()))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn normalizing_generated_or_arbitrary_text_twice_changes_nothing(
        raw in prop_oneof![export(), any::<String>(), "[\\x1b\\[0-9;m# \t\r\na/-]{0,200}"],
    ) {
        // Arrange
        let once = normalize(&raw);

        // Act
        let twice = normalize(&once.text);

        // Assert
        prop_assert!(once.text == twice.text, "second pass changed the text");
        prop_assert!(once.text.is_empty() || once.text.ends_with('\n'));
        prop_assert!(!once.text.contains("\n\n\n") && !once.text.starts_with('\n'));
        prop_assert!(once.text.len() <= raw.len() + 1);
    }

    #[test]
    fn a_header_in_either_format_never_changes_the_hash(
        raw in export(),
        header in header(),
    ) {
        // Arrange
        let with_header = format!("{header}\n{raw}");

        // Act
        let normalized = normalize(&with_header);

        // Assert
        prop_assert_eq!(sha256_hex(&normalized.text), hash_of(&raw));
        prop_assert!(normalized.routeros_version.is_some());
    }

    #[test]
    fn crlf_line_endings_never_change_the_hash(raw in export()) {
        // Arrange
        let crlf = raw.replace('\n', "\r\n");

        // Act
        let hash = hash_of(&crlf);

        // Assert
        prop_assert_eq!(hash, hash_of(&raw));
    }

    #[test]
    fn trailing_spaces_and_tabs_never_change_the_hash(
        raw in export(),
        pads in prop::collection::vec("[ \t]{0,4}", 64),
    ) {
        // Arrange
        let padded: Vec<String> = raw
            .split('\n')
            .zip(pads.iter().cycle())
            .map(|(line, pad)| format!("{line}{pad}"))
            .collect();

        // Act
        let hash = hash_of(&padded.join("\n"));

        // Assert
        prop_assert_eq!(hash, hash_of(&raw));
    }

    #[test]
    fn csi_sequences_anywhere_never_change_the_hash(
        raw in export().prop_filter("no ESC in the base", |r| !r.contains('\x1b')),
        inserts in prop::collection::vec((any::<prop::sample::Index>(), csi()), 1..8),
    ) {
        // Arrange: insert from the back so earlier offsets stay valid.
        let cuts = boundaries(&raw);
        let mut at: Vec<(usize, String)> =
            inserts.into_iter().map(|(i, seq)| (*i.get(&cuts), seq)).collect();
        at.sort_by_key(|entry| std::cmp::Reverse(entry.0));
        let mut coloured = raw.clone();
        for (offset, seq) in at {
            coloured.insert_str(offset, &seq);
        }

        // Act
        let hash = hash_of(&coloured);

        // Assert
        prop_assert_eq!(hash, hash_of(&raw));
    }

    #[test]
    fn transient_comments_between_any_lines_never_change_the_hash(
        raw in export(),
        inserts in prop::collection::vec((any::<prop::sample::Index>(), transient()), 1..6),
    ) {
        // Arrange
        let mut lines: Vec<String> = raw.split('\n').map(str::to_owned).collect();
        for (index, comment) in inserts {
            let at = index.index(lines.len() + 1);
            lines.insert(at, comment);
        }

        // Act
        let hash = hash_of(&lines.join("\n"));

        // Assert
        prop_assert_eq!(hash, hash_of(&raw));
    }

    #[test]
    fn all_noise_at_once_never_changes_the_hash(
        raw in export().prop_filter("no ESC in the base", |r| !r.contains('\x1b')),
        header in header(),
        comment in transient(),
        seq in csi(),
    ) {
        // Arrange
        let noisy = format!("{header}  \r\n{seq}{comment}\t\r\n{}", raw.replace('\n', " \r\n"));

        // Act
        let hash = hash_of(&noisy);

        // Assert
        prop_assert_eq!(hash, hash_of(&raw));
    }

    #[test]
    fn the_cheap_tests_before_the_regexes_never_skip_a_line_they_match(
        line in prop_oneof![
            transient(),
            header(),
            (transient(), "[ -~]{0,20}").prop_map(|(t, tail)| format!("{t}{tail}")),
            (header(), "[ -~]{0,20}").prop_map(|(h, tail)| format!("{h}{tail}")),
            "#[ -~]{0,60}",
            "# [a-zA-Z0-9 :.-]{0,40}(not ready|by RouterOS 7\\.1|please restart)[ -~]{0,20}",
        ],
    ) {
        // Act
        let header_found = header_version(&line).is_some();
        let transient_found = may_be_transient(&line) && TRANSIENT.is_match(&line);

        // Assert
        prop_assert_eq!(header_found, HEADER.is_match(&line));
        prop_assert_eq!(transient_found, TRANSIENT.is_match(&line));
    }

    #[test]
    fn the_line_splitter_gives_what_split_on_newline_gives(
        text in prop_oneof![
            export(),
            "[a-z\n\r\t é€🦀]{0,80}",
            any::<String>(),
        ],
    ) {
        // Act
        let ours: Vec<&str> = super::lines(&text).collect();

        // Assert
        let std: Vec<&str> = text.split('\n').collect();
        prop_assert_eq!(ours, std);
    }
}
