//! The parser and the diff on every real export of `tests/corpus/routeros`
//! (RouterOS 5.7 to 7.21). The corpus holds real-looking secrets: messages
//! name the file and line number only and assertions compare counts.

use super::*;
use crate::backup::normalize::normalize;

const CORPUS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus/routeros");

/// Every `.rsc` of the corpus, normalized, with its name.
pub(super) fn corpus() -> Vec<(String, String)> {
    let mut names: Vec<String> = std::fs::read_dir(CORPUS_DIR)
        .expect("corpus directory is readable")
        .map(|e| {
            e.expect("corpus entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|n| n.ends_with(".rsc"))
        .collect();
    names.sort();
    assert!(names.len() >= 20, "the corpus has its exports");
    names
        .into_iter()
        .map(|name| {
            let raw = std::fs::read_to_string(format!("{CORPUS_DIR}/{name}"))
                .unwrap_or_else(|e| panic!("reading corpus file {name}: {e}"));
            let text = normalize(&raw).text;
            (name, text)
        })
        .collect()
}

#[test]
fn every_corpus_export_parses_without_problems() {
    for (name, text) in corpus() {
        // Act
        let export = parse(&text);

        // Assert
        let bad: Vec<usize> = export
            .lines
            .iter()
            .filter(|l| matches!(&l.kind, LineKind::Opaque { text, .. } if !text.starts_with(':')))
            .map(|l| text[..l.span.start].matches('\n').count() + 1)
            .collect();
        assert_eq!(export.problems, 0, "{name}: lines {bad:?} do not parse");
    }
}

#[test]
fn at_least_99_percent_of_corpus_lines_outside_scripts_become_items() {
    // Arrange
    let (mut structured, mut opaque) = (0usize, 0usize);

    // Act
    for (_, text) in corpus() {
        for line in parse(&text).lines {
            match line.kind {
                LineKind::Command { .. } => structured += 1,
                LineKind::Opaque { text, .. } if !text.starts_with(':') => opaque += 1,
                _ => {}
            }
        }
    }

    // Assert
    let share = structured as f64 / (structured + opaque).max(1) as f64;
    println!("corpus: {structured} commands, {opaque} opaque lines, {share:.4} structured");
    assert!(
        share >= 0.99,
        "only {share:.4} of command lines are structured"
    );
}

#[test]
fn the_model_renders_back_to_the_input_for_every_corpus_export() {
    for (name, text) in corpus() {
        // Act
        let export = parse(&text);

        // Assert: the spans tile the text, and every command re-renders to
        // its logical line, so nothing of a line is lost in the model.
        let mut rendered = String::new();
        for line in &export.lines {
            rendered.push_str(&text[line.span.clone()]);
            rendered.push('\n');
        }
        assert!(rendered == text, "{name}: spans do not tile the text");
        for (n, line) in export.lines.iter().enumerate() {
            let LineKind::Command { command, terse, .. } = &line.kind else {
                continue;
            };
            let logical = super::lexer::logical_lines(&text[line.span.clone()]);
            let joined = logical[0].text.as_ref();
            let body = if *terse {
                after_menu(joined, command.verb.as_str())
            } else {
                joined
            };
            assert!(
                command.render() == body,
                "{name}: logical line {n} does not render back"
            );
        }
    }
}

/// The command part of a terse line: from the first word equal to `verb`.
fn after_menu<'a>(line: &'a str, verb: &str) -> &'a str {
    let at = line.match_indices(' ').map(|(i, _)| i + 1).find(|&i| {
        let rest = &line[i..];
        rest.strip_prefix(verb)
            .is_some_and(|r| r.is_empty() || r.starts_with(' '))
    });
    at.map_or("", |i| &line[i..])
}

#[test]
fn every_corpus_export_diffs_empty_against_itself() {
    for (name, text) in corpus() {
        let diff = diff(&text, &text);
        assert!(diff.changes.is_empty() && !diff.status_only, "{name}");
    }
}

#[test]
fn diffs_between_corpus_exports_are_symmetric() {
    // Arrange
    let corpus = corpus();

    for pair in corpus.windows(2) {
        let ((a_name, a), (b_name, b)) = (&pair[0], &pair[1]);

        // Act
        let forward = diff(a, b);
        let backward = diff(b, a);

        // Assert
        let count = |d: &SemanticDiff, kind| d.changes.iter().filter(|c| c.kind == kind).count();
        assert!(!forward.changes.is_empty(), "{a_name} → {b_name}");
        assert_eq!(
            count(&forward, ChangeKind::Added),
            count(&backward, ChangeKind::Removed),
            "{a_name} ⇄ {b_name}"
        );
        assert_eq!(
            count(&forward, ChangeKind::Modified),
            count(&backward, ChangeKind::Modified),
            "{a_name} ⇄ {b_name}"
        );
        let mut masked = forward.clone();
        masked.redact();
        assert_eq!(masked.changes.len(), forward.changes.len());
    }
}
