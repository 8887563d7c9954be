//! Status comments: `#` lines RouterOS writes from link, hardware or
//! controller state (`# inactive time`, `# Interface not active`, `# managed
//! by CAPsMAN`, `# ether1 not ready`, `# poe-out status: …`), which come and
//! go without any configuration change (DESIGN.md §16). Normalization
//! version 1 drops some of them and keeps the rest; this module recognizes
//! both kinds and never changes stored text. Entry points:
//! [`is_status_comment`] and [`differs_only_in_status`].

/// Prefixes of status comments, as RouterOS writes them.
const PREFIXES: &[&str] = &[
    // Wireless and CAPsMAN registrations, link state.
    "# inactive time",
    "# Interface not active",
    "# Interface not running",
    // A CAPsMAN-managed radio; the next line reports the channel the
    // controller picked, which changes with the air, not the configuration.
    "# managed by CAPsMAN",
    "# channel: ",
    // PoE and firmware state.
    "# poe-out status: ",
    "# Firmware upgraded successfully",
];

/// Whether `line` (one physical line) is a status comment rather than a
/// header or hardware line (`# model = …`, `# software id = …` identify the
/// hardware and are not status).
pub fn is_status_comment(line: &str) -> bool {
    let line = line.trim_end();
    if !line.starts_with('#') {
        return false;
    }
    if PREFIXES.iter().any(|p| line.starts_with(p)) {
        return true;
    }
    // `# received packet from 192.0.2.1 bad format` (an IPsec peer's noise).
    if line.starts_with("# received packet from ") && line.ends_with(" bad format") {
        return true;
    }
    // `# … please restart the device in order to apply the new setting`.
    if line.contains("please restart the device in order to apply the new setting") {
        return true;
    }
    // `# ether1 not ready`, `# wlan2 not running`: one interface name.
    let Some(body) = line.strip_prefix("# ") else {
        return false;
    };
    ["not ready", "not running"].iter().any(|state| {
        body.strip_suffix(state)
            .and_then(|name| name.strip_suffix(' '))
            .is_some_and(|name| !name.is_empty() && !name.contains(char::is_whitespace))
    })
}

/// Whether `old` and `new` differ, and only in status comments and blank
/// lines: equal once those are left out. Linear in the input, no
/// allocation.
pub fn differs_only_in_status(old: &str, new: &str) -> bool {
    old != new && kept_lines(old).eq(kept_lines(new))
}

/// The lines that are neither blank nor status comments.
fn kept_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty() && !is_status_comment(l))
}
