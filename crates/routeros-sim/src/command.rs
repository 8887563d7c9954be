//! The RouterOS commands the simulator understands over an exec channel, and the
//! error texts RouterOS prints for the rest.
//!
//! Pure parsing; no I/O. Entry point: [`parse`].

use super::lines::ExportRequest;

/// The version probe cfgsnap sends before choosing its export command.
const VERSION_PROBE: &str = ":put [/system resource get version]";

/// What a command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Command {
    /// Nothing to do (an empty command line).
    Nothing,
    /// `:put [/system resource get version]`.
    VersionProbe,
    /// `/export` with its flags.
    Export(ExportRequest),
    /// A line RouterOS answers with this error text (exit status 0, like RouterOS).
    Error(String),
}

/// Parses one exec command line for a device running `version`-style RouterOS
/// (`legacy`: v6 or older).
pub(crate) fn parse(line: &str, legacy: bool) -> Command {
    let words = words(line);
    let Some(&(col, first)) = words.first() else {
        return Command::Nothing;
    };
    let normalized: Vec<&str> = words.iter().map(|&(_, w)| w).collect();
    if normalized.join(" ") == VERSION_PROBE {
        return Command::VersionProbe;
    }
    if first == "/export" || first == "export" {
        return parse_export(&words[1..], legacy);
    }
    let name = first.trim_start_matches([':', '/']);
    let name_col = col + (first.len() - name.len());
    let name = name.split(['/', '[', ']']).next().unwrap_or(name);
    Command::Error(format!(
        "bad command name {name} (line 1 column {name_col})"
    ))
}

/// Parses the flags after `/export`.
fn parse_export(args: &[(usize, &str)], legacy: bool) -> Command {
    // v6 does not know `show-sensitive`: exports show secrets unless `hide-sensitive`.
    let mut request = ExportRequest {
        sensitive: legacy,
        terse: false,
    };
    for &(col, arg) in args {
        match arg {
            "show-sensitive" if !legacy => request.sensitive = true,
            "hide-sensitive" => request.sensitive = false,
            "terse" => request.terse = true,
            "compact" | "verbose" => {}
            _ => return Command::Error(format!("expected end of command (line 1 column {col})")),
        }
    }
    Command::Export(request)
}

/// Splits on whitespace, with the 1-based column of each word.
fn words(line: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in line.char_indices() {
        match (c.is_whitespace(), start) {
            (true, Some(s)) => {
                out.push((s + 1, &line[s..i]));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s + 1, &line[s..]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn export(sensitive: bool, terse: bool) -> Command {
        Command::Export(ExportRequest { sensitive, terse })
    }

    #[test]
    fn export_flags_follow_the_version() {
        assert_eq!(parse("/export", false), export(false, false));
        assert_eq!(parse("/export show-sensitive", false), export(true, false));
        assert_eq!(parse("/export", true), export(true, false));
        assert_eq!(parse("/export hide-sensitive", true), export(false, false));
        assert_eq!(parse("  export terse compact ", false), export(false, true));
        assert_eq!(parse("/export verbose", false), export(false, false));
    }

    #[test]
    fn v6_rejects_show_sensitive_at_column_9() {
        assert_eq!(
            parse("/export show-sensitive", true),
            Command::Error("expected end of command (line 1 column 9)".into())
        );
    }

    #[test]
    fn version_probe_is_recognised_with_any_spacing() {
        assert_eq!(
            parse(":put [/system resource get version]", false),
            Command::VersionProbe
        );
        assert_eq!(
            parse(" :put  [/system resource get version] ", true),
            Command::VersionProbe
        );
    }

    #[test]
    fn unknown_commands_are_bad_command_names() {
        assert_eq!(
            parse("reboot", false),
            Command::Error("bad command name reboot (line 1 column 1)".into())
        );
        assert_eq!(
            parse("/frobnicate now", false),
            Command::Error("bad command name frobnicate (line 1 column 2)".into())
        );
        assert_eq!(parse("   ", false), Command::Nothing);
    }
}
