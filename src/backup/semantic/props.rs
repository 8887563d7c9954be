//! Property tests: generated edits on real corpus exports (change a
//! property, change a secret, rename, add, remove, move in an ordered menu,
//! add a status comment) are reported exactly: the right menu, kind and
//! property, and nothing else. Messages print menus, kinds and counts only.

use std::sync::LazyLock;

use proptest::prelude::*;

use super::corpus_tests::corpus;
use super::identity::{self, Class};
use super::*;

static CORPUS: LazyLock<Vec<(String, String)>> = LazyLock::new(corpus);

/// A command line of an export: its line index, menu and command.
struct Site<'a> {
    line: usize,
    menu: &'a str,
    command: &'a Command,
}

fn sites(export: &Export) -> Vec<Site<'_>> {
    export
        .lines
        .iter()
        .enumerate()
        .filter_map(|(line, l)| match &l.kind {
            LineKind::Command { menu, command, .. } => Some(Site {
                line,
                menu,
                command,
            }),
            _ => None,
        })
        .collect()
}

/// `text` with logical line `line` replaced by `replacement` lines (none
/// removes it).
fn replace_line(text: &str, export: &Export, line: usize, replacement: &[String]) -> String {
    let span = export.lines[line].span.clone();
    let mut out = text[..span.start].to_owned();
    for r in replacement {
        out.push_str(r);
        out.push('\n');
    }
    let rest = &text[span.end..];
    out.push_str(rest.strip_prefix('\n').unwrap_or(rest));
    out
}

fn terse(site: &Site<'_>, command: &Command) -> String {
    format!("{} {}", site.menu, command.render())
}

/// Whether `site`'s identity is unique in its menu.
fn unique_identity(sites: &[Site<'_>], site: &Site<'_>) -> bool {
    let id = identity::of_command(site.menu, site.command);
    if id.class == Class::Content {
        return true;
    }
    sites
        .iter()
        .filter(|s| s.menu == site.menu)
        .filter(|s| {
            let other = identity::of_command(s.menu, s.command);
            other.class == id.class && other.key == id.key
        })
        .count()
        == 1
}

#[derive(Debug, Clone, Copy)]
enum Edit {
    Property,
    Rename,
    Add,
    Remove,
    Move,
    StatusComment,
}

fn edit() -> impl Strategy<Value = Edit> {
    prop::sample::select(vec![
        Edit::Property,
        Edit::Rename,
        Edit::Add,
        Edit::Remove,
        Edit::Move,
        Edit::StatusComment,
    ])
}

/// What an edit should produce: one change of this menu, kind and
/// properties, or a status-only diff (`None`).
type Expected = Option<(String, ChangeKind, Vec<String>)>;

fn apply(
    text: &str,
    export: &Export,
    edit: Edit,
    a: usize,
    b: usize,
) -> Option<(String, Expected)> {
    let all = sites(export);
    if all.is_empty() {
        return None;
    }
    let site = &all[a % all.len()];
    match edit {
        Edit::Property | Edit::Rename => {
            let fixed = identity::keys_of(site.menu);
            let candidates: Vec<&Property> = site
                .command
                .properties
                .iter()
                .filter(|p| p.raw.is_some())
                .filter(|p| match edit {
                    Edit::Rename => p.key == "name",
                    _ => {
                        p.key != "name"
                            && p.key != "default-name"
                            && !fixed.contains(&p.key.as_str())
                    }
                })
                .collect();
            let id = identity::of_command(site.menu, site.command);
            if candidates.is_empty()
                || !unique_identity(&all, site)
                || (matches!(edit, Edit::Rename)
                    && (id.class != Class::Name || site.command.properties.len() < 2))
                || (id.class == Class::Content && site.command.properties.len() < 2)
            {
                return None;
            }
            let target = candidates[b % candidates.len()];
            let mut command = site.command.clone();
            for p in &mut command.properties {
                if p.key == target.key {
                    p.raw = Some(format!("cfgsnap-edit-{b}"));
                    p.value = format!("cfgsnap-edit-{b}");
                }
            }
            let text = replace_line(text, export, site.line, &[terse(site, &command)]);
            Some((
                text,
                Some((
                    site.menu.to_owned(),
                    ChangeKind::Modified,
                    vec![target.key.clone()],
                )),
            ))
        }
        Edit::Add => {
            let line = format!(
                "{} add comment=cfgsnap-added-{b} cfgsnap-probe={a}",
                site.menu
            );
            let original = text[export.lines[site.line].span.clone()].to_owned();
            let text = replace_line(text, export, site.line, &[original, line]);
            let props = vec!["comment".to_owned(), "cfgsnap-probe".to_owned()];
            Some((text, Some((site.menu.to_owned(), ChangeKind::Added, props))))
        }
        Edit::Remove => {
            if !unique_identity(&all, site) {
                return None;
            }
            let text = replace_line(text, export, site.line, &[]);
            let props = site
                .command
                .properties
                .iter()
                .map(|p| p.key.clone())
                .collect();
            Some((
                text,
                Some((site.menu.to_owned(), ChangeKind::Removed, props)),
            ))
        }
        Edit::Move => move_in_ordered_menu(text, export, &all, a, b),
        Edit::StatusComment => {
            let original = text[export.lines[site.line].span.clone()].to_owned();
            let comment = "# Interface not active".to_owned();
            Some((
                replace_line(text, export, site.line, &[original, comment]),
                None,
            ))
        }
    }
}

/// The properties of a command, sorted, for comparing content.
fn content<'a>(s: &Site<'a>) -> Vec<(&'a String, &'a Option<String>)> {
    let mut p: Vec<_> = s
        .command
        .properties
        .iter()
        .map(|p| (&p.key, &p.raw))
        .collect();
    p.sort();
    p
}

fn move_in_ordered_menu(
    text: &str,
    export: &Export,
    all: &[Site<'_>],
    a: usize,
    b: usize,
) -> Option<(String, Expected)> {
    let ordered: Vec<&Site<'_>> = all
        .iter()
        .filter(|s| identity::is_ordered(s.menu))
        .collect();
    let site = ordered.get(a % ordered.len().max(1))?;
    let menu: Vec<&Site<'_>> = ordered
        .iter()
        .copied()
        .filter(|s| s.menu == site.menu)
        .collect();
    let twins = menu.iter().filter(|s| content(s) == content(site)).count();
    let target = menu[b % menu.len()];
    if menu.len() < 2 || twins > 1 || target.line == site.line || !unique_identity(all, site) {
        return None;
    }
    let moved = terse(site, site.command);
    let at = text[export.lines[target.line].span.clone()].to_owned();
    let lines = if target.line < site.line {
        [moved, at]
    } else {
        [at, moved]
    };
    let text = replace_line(text, export, target.line, &lines);
    // Remove the original: one line further down when the copy went above.
    let reparsed = parse(&text);
    let original = if target.line < site.line {
        site.line + 1
    } else {
        site.line
    };
    let text = replace_line(&text, &reparsed, original, &[]);
    Some((
        text,
        Some((site.menu.to_owned(), ChangeKind::Moved, Vec::new())),
    ))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn generated_edits_on_corpus_exports_are_reported_exactly(
        file in 0usize..64,
        edit in edit(),
        a in any::<usize>(),
        b in 0usize..1_000_000,
    ) {
        let (name, text) = &CORPUS[file % CORPUS.len()];
        let export = parse(text);
        let Some((edited, expected)) = apply(text, &export, edit, a, b) else {
            return Ok(());
        };

        let diff = diff(text, &edited);

        match expected {
            None => {
                prop_assert!(diff.changes.is_empty(), "{name} {edit:?}: {} changes", diff.changes.len());
                prop_assert!(diff.status_only);
            }
            Some((menu, kind, properties)) => {
                let seen: Vec<(&str, ChangeKind)> =
                    diff.changes.iter().map(|c| (c.menu.as_str(), c.kind)).collect();
                prop_assert_eq!(seen, vec![(menu.as_str(), kind)], "{} {:?}", name, edit);
                let names: Vec<&str> = diff.changes[0].properties.iter().map(|p| p.name.as_str()).collect();
                prop_assert_eq!(names, properties.iter().map(String::as_str).collect::<Vec<_>>());
                let mut masked = diff.clone();
                masked.redact();
                for p in &masked.changes[0].properties {
                    if redact::is_sensitive(&menu, &p.name) {
                        prop_assert!(p.old.as_deref().is_none_or(|v| v.starts_with("********")));
                        prop_assert!(p.new.as_deref().is_none_or(|v| v.starts_with("********")));
                    }
                }
            }
        }
    }

    #[test]
    fn arbitrary_text_never_panics(old in any::<String>(), new in "[/a-z \\\\\n=\\[\\]\"#:]{0,400}") {
        let diff = diff(&old, &new);
        let mut masked = diff.clone();
        masked.redact();
        prop_assert_eq!(diff.changes.len(), masked.changes.len());
        prop_assert!(try_diff(&new, &new).is_err() || try_diff(&new, &new).is_ok_and(|d| d.changes.is_empty()));
    }
}
