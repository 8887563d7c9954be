//! Generated RouterOS configurations: realistic menus and items for generated exports
//! and the lazily streamed body of the huge-output fault.
//!
//! Pure and deterministic: item `i` of a menu depends only on the device index and `i`
//! (see `menu.rs`), so a device exports the same configuration every time.
//! Entry points: [`preamble`], [`body`], [`HugeExport`].

use super::lines::{ExportRequest, crlf, wrap};
use super::menu::{FILTER, MENUS, SplitMix, item};

/// Pushes one item: wrapped (normal) or prefixed with its menu (terse).
fn push_item(out: &mut Vec<String>, path: &str, line: String, terse: bool) {
    if terse {
        out.push(format!("{path} {line}"));
    } else {
        out.extend(wrap(&line));
    }
}

/// The comment lines after the header: software id, model, serial number.
pub(crate) fn preamble(index: usize) -> Vec<String> {
    let mut rng = SplitMix::for_item(index, usize::MAX, 0);
    let alphabet: Vec<char> = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ".chars().collect();
    let mut code = |n: usize| -> String {
        (0..n)
            .map(|_| alphabet[rng.below(alphabet.len() as u64) as usize])
            .collect()
    };
    let software_id = format!("{}-{}", code(4), code(4));
    let serial = format!("HE{}", code(9));
    vec![
        format!("# software id = {software_id}"),
        "#".to_owned(),
        "# model = RB5009UG+S+".to_owned(),
        format!("# serial number = {serial}"),
    ]
}

/// The configuration of device `index`, about `budget` physical lines (never fewer
/// than the closing `/system identity` menu).
pub(crate) fn body(index: usize, budget: usize, request: ExportRequest) -> Vec<String> {
    let trailer = [
        "/system identity",
        &format!("set name=sim-router-{index:04}"),
    ]
    .map(str::to_owned);
    let mut remaining = budget.saturating_sub(trailer.len());
    let mut weight: usize = MENUS.iter().map(|m| m.weight).sum();
    let mut out = Vec::with_capacity(budget + 8);
    for (m, menu) in MENUS.iter().enumerate() {
        let share = remaining * menu.weight / weight;
        weight -= menu.weight;
        if share < 2 {
            continue;
        }
        let start = out.len();
        if !request.terse {
            out.push(menu.path.to_owned());
        }
        let mut i = 0;
        while out.len() - start < share {
            push_item(
                &mut out,
                menu.path,
                item(m, index, i, request.sensitive),
                request.terse,
            );
            i += 1;
        }
        remaining = remaining.saturating_sub(out.len() - start);
    }
    if request.terse {
        out.push(format!("{} {}", trailer[0], trailer[1]));
    } else {
        out.extend(trailer);
    }
    out
}

/// The huge-output export, produced in chunks so it is never held in memory whole:
/// header, preamble, then firewall filter rules until at least `target` bytes.
pub(crate) struct HugeExport {
    head: Option<Vec<String>>,
    index: usize,
    next_item: usize,
    written: u64,
    target: u64,
}

impl HugeExport {
    /// Size of the chunks handed out (the last one may be smaller or a bit larger).
    const CHUNK: usize = 64 * 1024;

    /// An export of at least `target` bytes for device `index`, starting with `header`.
    pub(crate) fn new(header: String, index: usize, target: u64) -> Self {
        let mut head = vec![header];
        head.extend(preamble(index));
        head.push(FILTER.to_owned());
        HugeExport {
            head: Some(head),
            index,
            next_item: 0,
            written: 0,
            target,
        }
    }

    /// The next chunk of CRLF text, `None` once at least `target` bytes were produced.
    pub(crate) fn next_chunk(&mut self) -> Option<Vec<u8>> {
        let mut chunk = match self.head.take() {
            Some(head) => crlf(&head),
            None if self.written >= self.target => return None,
            None => String::with_capacity(Self::CHUNK + 256),
        };
        let filter = MENUS.iter().position(|m| m.path == FILTER).unwrap_or(0);
        while chunk.len() < Self::CHUNK && self.written + (chunk.len() as u64) < self.target {
            let line = item(filter, self.index, self.next_item, true);
            chunk.push_str(&crlf(&wrap(&line)));
            self.next_item += 1;
        }
        self.written += chunk.len() as u64;
        Some(chunk.into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_is_deterministic_per_device_and_close_to_the_budget() {
        let req = ExportRequest::default();
        let a = body(1, 500, req);
        assert_eq!(a, body(1, 500, req));
        assert_ne!(a, body(2, 500, req));
        assert!((495..=510).contains(&a.len()), "{} lines", a.len());
        assert!(a.iter().any(|l| l == "/ip firewall filter"));
        assert!(
            a.iter().any(|l| l.ends_with('\\')),
            "expected wrapped lines"
        );
    }

    #[test]
    fn sensitive_values_appear_only_when_asked() {
        let hidden = body(0, 300, ExportRequest::default()).join("\n");
        let shown = body(
            0,
            300,
            ExportRequest {
                sensitive: true,
                terse: false,
            },
        )
        .join("\n");
        assert!(!hidden.contains("password="));
        assert!(shown.contains("password="));
    }

    #[test]
    fn terse_lines_carry_their_menu_and_are_not_wrapped() {
        let terse = body(
            0,
            100,
            ExportRequest {
                sensitive: false,
                terse: true,
            },
        );
        assert!(terse.iter().all(|l| l.starts_with('/')));
        assert!(terse.iter().all(|l| !l.ends_with('\\')));
    }

    #[test]
    fn huge_export_reaches_its_target_in_whole_lines() {
        let mut huge = HugeExport::new("# header".into(), 0, 300_000);
        let mut total = Vec::new();
        while let Some(chunk) = huge.next_chunk() {
            total.extend(chunk);
        }
        assert!(total.len() >= 300_000 && total.len() < 300_000 + 1024);
        assert!(total.ends_with(b"\r\n"));
        assert!(total.starts_with(b"# header\r\n# software id = "));
    }
}
