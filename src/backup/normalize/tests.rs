//! Properties of §6 checked on every real export of `tests/corpus/routeros`.
//! The corpus holds real-looking secrets: assertions compare hashes or
//! booleans and name the file, never print config text.

use super::*;

const CORPUS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus/routeros");
const GOLDEN_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus/golden");

/// File, RouterOS version of its header and `\` continuations (SOURCES.md).
const CORPUS: [(&str, &str, usize); 20] = [
    ("defm-mikrobackups__rawconf_anna_latest.rsc", "7.21", 3815),
    (
        "defm-mikrobackups__rawconf_LivingRoomWAP_latest.rsc",
        "6.49.6",
        1404,
    ),
    ("pancho-mk__respaldo.rsc", "6.49.7", 478),
    ("pancho-mk__compacto_respaldo.rsc", "6.49.7", 33),
    ("kaihendry-mikrotik-configs__praze.rsc", "7.12", 48),
    ("kaihendry-mikrotik-configs__sunny.rsc", "6.47.8", 51),
    ("ripleymj-routerlab__Router-A1.rsc", "6.43.8", 182),
    (
        "memhamwan-config-audit__r1.leb.memhamwan.net.rsc",
        "6.48.1",
        22,
    ),
    ("simsrw73-documents__rb5009-capsman.rsc", "7.2.3", 155),
    ("rus1999-network__sw3-conf.rsc", "7.2.1", 0),
    (
        "romanborodin1-mikrotik__SW1_backup_13-05-2020_17-25.rsc",
        "6.46.6",
        0,
    ),
    ("svicmal-asir__Nagasaki.rsc", "7.8", 0),
    ("ylctat-computer-devices__rb493g.rsc", "5.7", 99),
    (
        "andreansx-networking-lab__Border-Leaf-CCR2004-0_config.rsc",
        "7.19.4",
        20,
    ),
    (
        "walter-cumbucane-networkingtools__API_BRANCH5.rsc",
        "7.18.2",
        0,
    ),
    ("sarmadzahoor920-nse-exercise__chr.rsc", "7.20.6", 4),
    ("feichay10-fdp__CE2.rsc", "7.16", 3),
    ("kaihendry-mikrotik-configs__outside.rsc", "7.18.2", 0),
    ("ranjidalii-mikrotik__loadBalancing_R1.rsc", "6.46.4", 0),
    ("boschinimarco-wg-vxlan-lab__M1.rsc", "7.5", 3),
];

/// One line of each transient status comment kind of §6 step 4.
const TRANSIENT_LINES: [&str; 7] = [
    "# inactive time: 1d2h3m",
    "# received packet from 192.0.2.7 bad format",
    "# poe-out status: short_circuit",
    "# Firmware upgraded successfully, please reboot for changes to take effect!",
    "# ether3 not ready",
    "# Interface not running",
    "# wlan1: please restart the device in order to apply the new setting",
];

fn read(name: &str) -> String {
    std::fs::read_to_string(format!("{CORPUS_DIR}/{name}"))
        .unwrap_or_else(|e| panic!("reading corpus file {name}: {e}"))
}

fn corpus() -> impl Iterator<Item = (&'static str, String)> {
    CORPUS.iter().map(|&(name, _, _)| (name, read(name)))
}

fn hash_of(raw: &str) -> String {
    sha256_hex(&normalize(raw).text)
}

/// `raw` with its first line (the header) replaced by `header`.
fn with_header(raw: &str, header: &str) -> String {
    let (first, rest) = raw.split_once('\n').expect("corpus file has a second line");
    let eol = if first.ends_with('\r') { "\r\n" } else { "\n" };
    format!("{header}{eol}{rest}")
}

/// `raw` with every line passed through `edit` (line without its `\n`).
fn map_lines(raw: &str, edit: impl Fn(&str) -> String) -> String {
    raw.split('\n').map(edit).collect::<Vec<_>>().join("\n")
}

/// Pairs (line ending in `\`, the next line) of a text, `\r` removed.
fn continuation_pairs(text: &str) -> Vec<(String, String)> {
    let lines: Vec<&str> = text.split('\n').map(|l| l.trim_end_matches('\r')).collect();
    lines
        .windows(2)
        .filter(|w| w[0].ends_with('\\') && w[1].starts_with("    "))
        .map(|w| (w[0].to_owned(), w[1].to_owned()))
        .collect()
}

#[test]
fn corpus_table_lists_every_file_of_the_corpus_directory() {
    // Arrange
    let mut listed: Vec<&str> = CORPUS.iter().map(|&(name, _, _)| name).collect();
    listed.sort_unstable();

    // Act
    let mut on_disk: Vec<String> = std::fs::read_dir(CORPUS_DIR)
        .expect("corpus directory is readable")
        .map(|e| {
            e.expect("directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name.ends_with(".rsc"))
        .collect();
    on_disk.sort_unstable();

    // Assert
    assert_eq!(listed, on_disk);
}

#[test]
fn version_is_read_from_the_header_of_every_corpus_file() {
    for &(name, version, _) in &CORPUS {
        // Arrange
        let raw = read(name);

        // Act
        let normalized = normalize(&raw);

        // Assert
        assert_eq!(
            normalized.routeros_version.as_deref(),
            Some(version),
            "{name}"
        );
    }
}

#[test]
fn normalizing_twice_changes_nothing() {
    for (name, raw) in corpus() {
        // Arrange
        let once = normalize(&raw).text;

        // Act
        let twice = normalize(&once).text;

        // Assert
        assert!(
            once == twice,
            "{name}: second normalization changed the text"
        );
    }
}

#[test]
fn header_timestamp_in_either_format_does_not_change_the_hash() {
    for &(name, version, _) in &CORPUS {
        // Arrange
        let raw = read(name);
        let old_format = with_header(
            &raw,
            &format!("# dec/31/1999 23:59:59 by RouterOS {version}"),
        );
        let new_format = with_header(
            &raw,
            &format!("# 2031-01-02 03:04:05 by RouterOS {version}"),
        );

        // Act
        let hashes = [hash_of(&raw), hash_of(&old_format), hash_of(&new_format)];

        // Assert
        assert!(hashes.iter().all(|h| *h == hashes[0]), "{name}: {hashes:?}");
        assert_eq!(
            normalize(&new_format).routeros_version.as_deref(),
            Some(version)
        );
    }
}

#[test]
fn crlf_and_lf_line_endings_give_the_same_hash() {
    for (name, raw) in corpus() {
        // Arrange
        let lf = raw.replace("\r\n", "\n");
        let crlf = lf.replace('\n', "\r\n");

        // Act
        let (h_raw, h_lf, h_crlf) = (hash_of(&raw), hash_of(&lf), hash_of(&crlf));

        // Assert
        assert!(h_raw == h_lf && h_lf == h_crlf, "{name}");
    }
}

#[test]
fn trailing_spaces_and_tabs_do_not_change_the_hash() {
    for (name, raw) in corpus() {
        // Arrange
        let padded = map_lines(&raw, |line| match line.strip_suffix('\r') {
            Some(body) => format!("{body} \t  \r"),
            None => format!("{line}\t \t"),
        });

        // Act
        let (before, after) = (hash_of(&raw), hash_of(&padded));

        // Assert
        assert!(before == after, "{name}");
    }
}

#[test]
fn ansi_colour_codes_do_not_change_the_hash() {
    for (name, raw) in corpus() {
        // Arrange: colour every line and every value, as a terminal would.
        let coloured = map_lines(&raw, |line| {
            format!("\x1b[1;32m{}\x1b[0m", line.replace('=', "=\x1b[33m\x1b[K"))
        });

        // Act
        let (before, after) = (hash_of(&raw), hash_of(&coloured));

        // Assert
        assert!(before == after, "{name}");
        assert_eq!(
            normalize(&coloured).routeros_version,
            normalize(&raw).routeros_version
        );
    }
}

#[test]
fn inserted_transient_comments_do_not_change_the_hash() {
    for (name, raw) in corpus() {
        // Arrange: each kind after the header, before a menu line, at the end.
        let mut lines: Vec<&str> = raw.split('\n').collect();
        let menu = lines
            .iter()
            .rposition(|l| l.starts_with('/'))
            .expect("a menu line");
        for transient in TRANSIENT_LINES {
            lines.insert(menu, transient);
            lines.insert(1, transient);
            lines.push(transient);
        }
        let noisy = lines.join("\n");

        // Act
        let (before, after) = (hash_of(&raw), hash_of(&noisy));

        // Assert
        assert!(before == after, "{name}");
    }
}

#[test]
fn one_changed_attribute_changes_the_hash() {
    for (name, raw) in corpus() {
        // Arrange: append a character to the first attribute value (the
        // first `=` of a line that is not a comment).
        let mut offset = 0;
        let mut at = None;
        for line in raw.split_inclusive('\n') {
            if let (false, Some(eq)) = (line.starts_with('#'), line.find('=')) {
                at = Some(offset + eq + 1);
                break;
            }
            offset += line.len();
        }
        let at = at.expect("an attribute");
        let changed = format!("{}x{}", &raw[..at], &raw[at..]);

        // Act
        let (before, after) = (hash_of(&raw), hash_of(&changed));

        // Assert
        assert!(before != after, "{name}");
    }
}

#[test]
fn output_ends_in_exactly_one_newline_without_blank_runs_or_trailing_space() {
    for (name, raw) in corpus() {
        // Act
        let text = normalize(&raw).text;

        // Assert
        assert!(
            text.ends_with('\n') && !text.ends_with("\n\n"),
            "{name}: ending"
        );
        assert!(
            !text.starts_with('\n') && !text.contains("\n\n\n"),
            "{name}: blanks"
        );
        assert!(!text.contains('\r'), "{name}: carriage return");
        assert!(
            !text.contains(" \n") && !text.contains("\t\n"),
            "{name}: trailing space"
        );
    }
}

#[test]
fn continuation_lines_survive_byte_for_byte() {
    for &(name, _, count) in &CORPUS {
        // Arrange
        let raw = read(name);
        let expected = continuation_pairs(&raw);

        // Act
        let kept = continuation_pairs(&normalize(&raw).text);

        // Assert
        assert_eq!(
            expected.len(),
            count,
            "{name}: continuations in the raw file"
        );
        assert!(kept == expected, "{name}: continuation lines differ");
    }
}

#[test]
fn hardware_identity_comments_are_kept() {
    for (name, raw) in corpus() {
        // Arrange
        let identity = |text: &str| -> Vec<String> {
            text.lines()
                .map(|l| l.trim_end_matches([' ', '\r']))
                .filter(|l| {
                    ["# software id", "# model", "# serial number", "# system id"]
                        .iter()
                        .any(|p| l.starts_with(p))
                })
                .map(str::to_owned)
                .collect()
        };

        // Act
        let kept = identity(&normalize(&raw).text);

        // Assert
        assert!(!kept.is_empty(), "{name}: no identity line");
        assert!(kept == identity(&raw), "{name}: identity lines differ");
    }
}

#[test]
fn corpus_hashes_match_the_golden_file() {
    // Arrange
    let golden = std::fs::read_to_string(format!("{GOLDEN_DIR}/normalize-v1.sha256"))
        .expect("golden hash file is readable");

    for line in golden.lines() {
        let (expected, name) = line.split_once("  ").expect("`<hash>  <file>` line");

        // Act
        let actual = hash_of(&read(name));

        // Assert
        assert_eq!(actual, expected, "{name}");
    }
    assert_eq!(golden.lines().count(), CORPUS.len());
}

#[test]
fn small_export_normalizes_to_the_golden_text() {
    // Arrange
    let name = "rus1999-network__sw3-conf.rsc";
    let golden = std::fs::read_to_string(format!("{GOLDEN_DIR}/{name}.normalized"))
        .expect("golden text is readable");

    // Act
    let normalized = normalize(&read(name));

    // Assert
    assert!(
        normalized.text == golden,
        "{name}: differs from the golden text"
    );
}

#[test]
fn header_outside_the_preamble_is_kept_and_gives_no_version() {
    // Arrange
    let raw = "/system identity\nset name=a\n# 2024-01-02 03:04:05 by RouterOS 7.13\n";

    // Act
    let normalized = normalize(raw);

    // Assert
    assert_eq!(normalized.text, raw);
    assert_eq!(normalized.routeros_version, None);
}

#[test]
fn every_header_of_the_preamble_is_dropped_and_the_first_gives_the_version() {
    // Arrange
    let raw = "\n# jan/02/1970 00:00:01 by RouterOS 6.49.7\n\
               # 2024-01-02 03:04:05 by RouterOS 7.13 (stable)\n# software id = X\n/ip dns\n";

    // Act
    let normalized = normalize(raw);

    // Assert
    assert_eq!(normalized.text, "# software id = X\n/ip dns\n");
    assert_eq!(normalized.routeros_version.as_deref(), Some("6.49.7"));
}

#[test]
fn header_with_an_uppercase_month_or_without_a_version_is_kept() {
    // Arrange
    let raw = "# Jan/02/1970 00:00:01 by RouterOS 6.1\n# 2024-01-02 03:04:05 by RouterOS\n/ip\n";

    // Act
    let normalized = normalize(raw);

    // Assert
    assert_eq!(normalized.text, raw);
    assert_eq!(normalized.routeros_version, None);
}

#[test]
fn blank_runs_collapse_and_edges_are_trimmed() {
    // Arrange
    let raw = "\r\n \n/a\n\n\t\n\r\n/b\n# inactive time 3s\n\n/c\n\n\n";

    // Act
    let normalized = normalize(raw);

    // Assert
    assert_eq!(normalized.text, "/a\n\n/b\n\n/c\n");
}

#[test]
fn blank_input_gives_empty_text() {
    // Act
    let outputs = ["", "\n", " \r\n\t\n", "\x1b[0m\n"].map(|raw| normalize(raw).text);

    // Assert
    assert!(outputs.iter().all(String::is_empty), "{outputs:?}");
}

#[test]
fn transient_patterns_match_whole_comment_lines_only() {
    // Arrange: near misses of the §6 patterns stay.
    let raw = "/x\n# inactive timer\n# ether1 not ready yet\n#poe-out status: ok\n\
               # managed by CAPsMAN\n# disabled\n";

    // Act
    let normalized = normalize(raw);

    // Assert
    assert_eq!(normalized.text, raw);
}

#[test]
fn csi_sequences_are_removed_and_other_escapes_kept() {
    // Arrange
    let cases = [
        ("a\x1b[0mb", "ab"),
        ("\x1b[38;5;208m/ip\x1b[m", "/ip"),
        ("a\x1b[?25hb\x1b[2 qc", "abc"),
        ("\x1b\x1b[0m[1mx", "x"),
        ("a\x1b]0;title\x07b", "a\x1b]0;title\x07b"),
        ("a\x1b[12", "a\x1b[12"),
        ("é\x1b[1mü\x1b", "éü\x1b"),
    ];

    for (raw, expected) in cases {
        // Act
        let stripped = strip_csi(raw);

        // Assert
        assert_eq!(stripped, expected, "{raw:?}");
        assert_eq!(strip_csi(&stripped), stripped, "{raw:?}: not idempotent");
    }
}

#[test]
fn sha256_hex_is_lowercase_hex_of_the_utf8_bytes() {
    // Act
    let hash = sha256_hex("abc");

    // Assert
    assert_eq!(
        hash,
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[test]
fn debug_output_hides_the_text() {
    // Arrange
    let normalized = normalize("/user\nadd password=hunter2\n");

    // Act
    let debug = format!("{normalized:?}");

    // Assert
    assert!(!debug.contains("hunter2"), "Debug leaks the text");
}
