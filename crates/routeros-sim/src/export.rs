//! Export text: version-dependent header, re-stamping of file exports and the
//! one-line change of `change_every`.
//!
//! Pure functions only (the caller passes the clock); generated bodies live in
//! `generate.rs`, line layout in `lines.rs`. Entry point: [`render`].

use chrono::NaiveDateTime;

use super::generate;
use super::lines::{ExportRequest, crlf};
use super::{DeviceSpec, Export};

/// The `(major, minor)` of a version string such as `7.16`, `6.49.10` or `7.1rc4`.
pub(crate) fn major_minor(version: &str) -> (u32, u32) {
    let mut parts = version.split('.').map(|p| {
        p.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse::<u32>()
            .unwrap_or(0)
    });
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// True for RouterOS v6 and older (`5.x`, `6.x`): old SSH algorithms, no
/// `show-sensitive`, secrets shown by default.
pub(crate) fn is_legacy(version: &str) -> bool {
    major_minor(version).0 < 7
}

/// The export header for `version` at `now`: `# 2024-05-06 12:34:56 by RouterOS 7.16`
/// from 7.10 on, `# may/06/2024 12:34:56 by RouterOS 6.49.10` (lowercase month) before.
pub(crate) fn header(version: &str, now: NaiveDateTime) -> String {
    let stamp = if major_minor(version) >= (7, 10) {
        now.format("%Y-%m-%d %H:%M:%S").to_string()
    } else {
        let month = now.format("%b").to_string().to_ascii_lowercase();
        format!("{month}/{}", now.format("%d/%Y %H:%M:%S"))
    };
    format!("# {stamp} by RouterOS {version}")
}

/// True when `line` is an export timestamp header (`# … by RouterOS X`).
fn is_header(line: &str) -> bool {
    line.starts_with("# ") && line.contains(" by RouterOS ")
}

/// The RouterOS version named in an export's header line, if the first line is one.
///
/// `# 2024-05-06 12:34:56 by RouterOS 7.16` gives `Some("7.16")`.
pub fn version_from_header(export: &str) -> Option<String> {
    let first = export.lines().next()?.trim_end_matches('\r');
    if !is_header(first) {
        return None;
    }
    let (_, rest) = first.split_once(" by RouterOS ")?;
    rest.split_whitespace().next().map(str::to_owned)
}

/// Re-stamps a file export: its header line (if any) becomes `header`; every other
/// line is kept as is; line endings become CRLF.
pub(crate) fn restamp(text: &str, header: &str) -> String {
    let body = match text.split_once('\n') {
        Some((first, rest)) if is_header(first.trim_end_matches('\r')) => rest,
        None if is_header(text.trim_end_matches('\r')) => "",
        _ => text,
    };
    let mut out = String::with_capacity(text.len() + text.len() / 30 + header.len() + 2);
    out.push_str(header);
    out.push_str("\r\n");
    let mut lines = body.split('\n').peekable();
    while let Some(line) = lines.next() {
        out.push_str(line.strip_suffix('\r').unwrap_or(line));
        if lines.peek().is_some() {
            out.push_str("\r\n");
        }
    }
    out
}

/// The lines `change_every` appends; only the second one depends on `variant`.
pub(crate) fn change_lines(variant: u64) -> [String; 2] {
    [
        "/ip firewall address-list".to_owned(),
        format!(
            "add address=198.51.100.{} comment=\"sim change {variant}\" list=sim-change",
            variant % 254 + 1
        ),
    ]
}

/// The whole export of device `index` (CRLF), stamped `now`; `variant` is the
/// `change_every` generation, `None` when the device does not change.
pub(crate) fn render(
    spec: &DeviceSpec,
    index: usize,
    request: ExportRequest,
    now: NaiveDateTime,
    variant: Option<u64>,
) -> String {
    let header = header(&spec.routeros_version, now);
    let change = variant.map(change_lines);
    match &spec.export {
        Export::Text(text) => {
            let mut out = restamp(text, &header);
            if let Some(change) = change {
                if !out.is_empty() && !out.ends_with('\n') {
                    out.push_str("\r\n");
                }
                out.push_str(&crlf(&change));
            }
            out
        }
        Export::Generated { lines } => {
            let mut all = vec![header];
            all.extend(generate::preamble(index));
            let budget = lines.saturating_sub(all.len() + change.as_ref().map_or(0, |_| 2));
            all.extend(generate::body(index, budget, request));
            all.extend(change.into_iter().flatten());
            crlf(&all)
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;
    use crate::lines::{WRAP_WIDTH, wrap};

    fn at(y: i32, m: u32, d: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, m, d)
            .and_then(|d| d.and_hms_opt(12, 34, 56))
            .expect("valid test date")
    }

    /// Undoes [`wrap`]: strips `\` + indent and concatenates.
    fn unwrap_lines(lines: &[String]) -> String {
        let mut out = String::new();
        for (i, line) in lines.iter().enumerate() {
            let line = if i == 0 { line.as_str() } else { &line[4..] };
            out.push_str(line.strip_suffix('\\').unwrap_or(line));
        }
        out
    }

    #[test]
    fn header_uses_iso_dates_from_7_10_and_lowercase_months_before() {
        let now = at(2024, 5, 6);
        assert_eq!(
            header("7.16", now),
            "# 2024-05-06 12:34:56 by RouterOS 7.16"
        );
        assert_eq!(
            header("7.10", now),
            "# 2024-05-06 12:34:56 by RouterOS 7.10"
        );
        assert_eq!(header("7.9", now), "# may/06/2024 12:34:56 by RouterOS 7.9");
        assert_eq!(
            header("6.49.10", now),
            "# may/06/2024 12:34:56 by RouterOS 6.49.10"
        );
    }

    #[test]
    fn versions_compare_numerically_and_v6_is_legacy() {
        assert_eq!(major_minor("7.1rc4"), (7, 1));
        assert!(major_minor("7.9") < major_minor("7.10"));
        assert!(is_legacy("6.49.10") && is_legacy("5.26"));
        assert!(!is_legacy("7.16"));
    }

    #[test]
    fn version_is_read_from_either_header_format() {
        assert_eq!(
            version_from_header("# 2024-05-06 12:34:56 by RouterOS 7.16\r\n/ip\r\n").as_deref(),
            Some("7.16")
        );
        assert_eq!(
            version_from_header("# may/06/2024 12:34:56 by RouterOS 6.49.10\n").as_deref(),
            Some("6.49.10")
        );
        assert_eq!(version_from_header("/interface bridge\n"), None);
    }

    #[test]
    fn wrap_keeps_lines_within_79_columns_with_continuations() {
        let line = "add action=accept chain=forward comment=\"office uplink: allow \
                    established and related\" connection-state=established,related \
                    dst-address=10.20.30.0/24 in-interface-list=LAN protocol=tcp \
                    src-address-list=trusted-hosts-with-a-long-name";
        let lines = wrap(line);
        assert!(lines.len() > 1);
        for (i, l) in lines.iter().enumerate() {
            assert!(l.len() <= WRAP_WIDTH, "too long: {l:?}");
            assert_eq!(l.ends_with('\\'), i + 1 < lines.len(), "{l:?}");
            assert_eq!(l.starts_with("    "), i > 0, "{l:?}");
        }
        assert_eq!(unwrap_lines(&lines), line);
    }

    #[test]
    fn wrap_breaks_after_key_when_only_the_value_overflows() {
        let line = "add address=81.187.180.129/24 comment=defconf interface=bridge network=\
                    81.187.180.0";
        assert_eq!(
            wrap(line),
            [
                "add address=81.187.180.129/24 comment=defconf interface=bridge network=\\",
                "    81.187.180.0"
            ]
        );
    }

    #[test]
    fn wrap_splits_tokens_longer_than_a_line() {
        let line = format!("add key={}", "x".repeat(200));
        let lines = wrap(&line);
        assert!(lines.iter().all(|l| l.len() <= WRAP_WIDTH));
        assert_eq!(unwrap_lines(&lines), line);
    }

    #[test]
    fn restamp_replaces_the_header_keeps_the_rest_and_emits_crlf() {
        let header = "# 2024-05-06 12:34:56 by RouterOS 7.16";
        let lf = "# jan/02/2020 01:02:03 by RouterOS 6.47\n# software id = AB\n/ip dns\nset a=b\n";
        let crlf_in = lf.replace('\n', "\r\n");
        let expected = format!("{header}\r\n# software id = AB\r\n/ip dns\r\nset a=b\r\n");
        assert_eq!(restamp(lf, header), expected);
        assert_eq!(restamp(&crlf_in, header), expected);
        assert_eq!(
            restamp("/ip dns\nset a=b", header),
            format!("{header}\r\n/ip dns\r\nset a=b")
        );
    }

    #[test]
    fn generated_export_is_crlf_deterministic_and_differs_only_in_the_header() {
        let spec = DeviceSpec::default();
        let req = ExportRequest::default();
        let a = render(&spec, 3, req, at(2024, 5, 6), None);
        let b = render(&spec, 3, req, at(2025, 1, 2), None);
        assert!(a.ends_with("\r\n") && !a.replace("\r\n", "").contains('\n'));
        let diff: Vec<_> = a.lines().zip(b.lines()).filter(|(x, y)| x != y).collect();
        assert_eq!(diff.len(), 1);
        assert!(a.starts_with("# 2024-05-06 12:34:56 by RouterOS 7.16\r\n# software id = "));
        let n = a.lines().count();
        assert!((195..=215).contains(&n), "{n} lines");
        assert_ne!(a, render(&spec, 4, req, at(2024, 5, 6), None));
    }

    #[test]
    fn change_every_variants_differ_by_exactly_one_line() {
        let now = at(2024, 5, 6);
        let req = ExportRequest::default();
        for spec in [
            DeviceSpec::default(),
            DeviceSpec::default().with_export(Export::Text("/ip dns\nset a=b\n".into())),
        ] {
            let v0 = render(&spec, 0, req, now, Some(0));
            let v1 = render(&spec, 0, req, now, Some(1));
            assert_eq!(v0.lines().count(), v1.lines().count());
            let changed = v0.lines().zip(v1.lines()).filter(|(a, b)| a != b).count();
            assert_eq!(changed, 1);
        }
    }
}
