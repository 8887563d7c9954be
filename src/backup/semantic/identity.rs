//! Which item a command is about, across two versions of an export: the
//! identity of an item (`name`, `default-name`, its `[ find … ]` selector,
//! menu-specific keys for unnamed items, or none: matched by content), the
//! label shown for it, and which menus are ordered (first match wins, so a
//! move is a change).

use super::model::{Command, Selector, Verb};
use crate::backup::redact;

/// Menus whose items are evaluated in order. Each was checked against the
/// vendor documentation: firewall tables, bridge filter and NAT, simple
/// queues, routing filters and policy routing rules, IPsec policies and the
/// first-match access lists.
const ORDERED: &[&str] = &[
    "/ip firewall filter",
    "/ip firewall nat",
    "/ip firewall mangle",
    "/ip firewall raw",
    "/ipv6 firewall filter",
    "/ipv6 firewall nat",
    "/ipv6 firewall mangle",
    "/ipv6 firewall raw",
    "/interface bridge filter",
    "/interface bridge nat",
    "/queue simple",
    "/routing filter",
    "/routing filter rule",
    "/routing rule",
    "/ip route rule",
    "/ip ipsec policy",
    "/caps-man access-list",
    "/caps-man provisioning",
    "/interface wireless access-list",
    "/interface wifi access-list",
    "/interface wifi provisioning",
    "/ip proxy access",
    "/ip socks access",
    "/ip hotspot walled-garden",
    "/ip hotspot walled-garden ip",
];

/// Identity keys of unnamed items (no `name=`), per menu. An item with none of its
/// menu's keys falls back to matching by content.
const KEYS: &[(&str, &[&str])] = &[
    ("/ip address", &["address", "interface"]),
    ("/ipv6 address", &["address", "interface"]),
    (
        "/ip route",
        &["dst-address", "gateway", "routing-table", "routing-mark"],
    ),
    ("/ipv6 route", &["dst-address", "gateway", "routing-table"]),
    ("/interface list member", &["list", "interface"]),
    ("/interface bridge port", &["bridge", "interface"]),
    ("/interface bridge vlan", &["bridge", "vlan-ids"]),
    ("/ip dhcp-server lease", &["mac-address", "server"]),
    ("/ip dhcp-server network", &["address"]),
    ("/ipv6 dhcp-server binding", &["address", "duid"]),
    ("/ip dhcp-client", &["interface"]),
    ("/ipv6 dhcp-client", &["interface"]),
    ("/ip firewall address-list", &["list", "address"]),
    ("/ipv6 firewall address-list", &["list", "address"]),
    ("/ip arp", &["address", "interface"]),
    ("/ip dns static", &["name", "type"]),
    ("/system logging", &["topics", "action"]),
    ("/system ntp client servers", &["address"]),
    ("/ip upnp interfaces", &["interface"]),
    ("/interface wireguard peers", &["interface", "public-key"]),
    ("/ip ipsec identity", &["peer"]),
    ("/interface vxlan vteps", &["interface", "remote-ip"]),
    ("/mpls interface", &["interface"]),
    ("/mpls ldp interface", &["interface"]),
    ("/tool graphing interface", &["interface"]),
    ("/radius", &["address", "service"]),
    ("/ipv6 nd", &["interface"]),
];

/// Menus where `name=` does not identify an item (several DNS records
/// share a name): their keys from [`KEYS`] do.
const NAME_NOT_UNIQUE: &[&str] = &["/ip dns static"];

/// How many characters of content a label shows at most.
const MAX_LABEL: usize = 80;

/// Whether items of `menu` are evaluated in order.
pub(super) fn is_ordered(menu: &str) -> bool {
    ORDERED.contains(&menu)
}

/// The identity keys of unnamed items of `menu` (empty when none).
#[cfg(test)]
pub(super) fn keys_of(menu: &str) -> &'static [&'static str] {
    KEYS.iter()
        .find(|(m, _)| *m == menu)
        .map_or(&[], |(_, keys)| keys)
}

/// What identifies an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Class {
    /// A `set` without a selector on a settings menu.
    Settings,
    /// `name=` of an `add`.
    Name,
    /// The menu's keys from the table.
    Table,
    /// A `set`/`remove` selector.
    Selector,
    /// None: matched by content.
    Content,
    /// An opaque line: matched by its text.
    Opaque,
}

/// How a label may hold a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LabelSafety {
    /// Never a secret.
    Plain,
    /// The value of a sensitive property: masked for those who may not see it.
    Secret,
    /// Free text (an opaque line, a complex selector): masked by scanning.
    Scan,
}

/// The identity and label of one item.
#[derive(Debug, Clone)]
pub(super) struct Identity {
    /// What kind of identity.
    pub(super) class: Class,
    /// The key within its class; equal keys are the same item.
    pub(super) key: String,
    /// What a person calls the item.
    pub(super) label: String,
    /// Whether the label may hold a secret.
    pub(super) safety: LabelSafety,
}

/// The identity of `command` in `menu`.
pub(super) fn of_command(menu: &str, command: &Command) -> Identity {
    let verb = command.verb.as_str();
    match (&command.selector, command.verb) {
        (Some(selector), _) => of_selector(menu, verb, selector, command),
        (None, Verb::Set | Verb::Remove) => Identity {
            class: Class::Settings,
            key: verb.to_owned(),
            label: menu_label(menu),
            safety: LabelSafety::Plain,
        },
        (None, Verb::Add) => of_added(menu, command),
    }
}

/// The identity of an opaque line.
pub(super) fn of_opaque(text: &str) -> Identity {
    Identity {
        class: Class::Opaque,
        key: text.to_owned(),
        label: text.to_owned(),
        safety: LabelSafety::Scan,
    }
}

fn of_selector(menu: &str, verb: &str, selector: &Selector, command: &Command) -> Identity {
    let (key, label, safety) = match selector {
        Selector::Find { conditions, raw } => match conditions.as_slice() {
            [] => (raw.clone(), raw.clone(), LabelSafety::Scan),
            [(k, v)] => (format!("{k}={v}"), v.clone(), safety_of(menu, k)),
            many => {
                let key = many
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" ");
                (key.clone(), key, LabelSafety::Scan)
            }
        },
        Selector::Word { value, .. } => (
            format!("word={value}"),
            value.clone(),
            safety_of(menu, "name"),
        ),
    };
    // A renamed built-in item reads as its current name.
    let (label, safety) = match command.get("name") {
        Some(name) if command.verb == Verb::Set => (name.to_owned(), safety_of(menu, "name")),
        _ => (label, safety),
    };
    Identity {
        class: Class::Selector,
        key: format!("{verb} {key}"),
        label,
        safety,
    }
}

fn of_added(menu: &str, command: &Command) -> Identity {
    let name = command
        .get("name")
        .filter(|_| !NAME_NOT_UNIQUE.contains(&menu));
    if let Some(name) = name {
        return Identity {
            class: Class::Name,
            key: name.to_owned(),
            label: name.to_owned(),
            safety: safety_of(menu, "name"),
        };
    }
    if let Some((_, keys)) = KEYS.iter().find(|(m, _)| *m == menu) {
        let values: Vec<(&str, &str)> = keys
            .iter()
            .filter_map(|k| command.get(k).map(|v| (*k, v)))
            .collect();
        if !values.is_empty() {
            let key = values
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("\u{1f}");
            let label = values.iter().map(|(_, v)| *v).collect::<Vec<_>>().join(" ");
            let secret = values.iter().any(|(k, _)| redact::is_sensitive(menu, k));
            return Identity {
                class: Class::Table,
                key,
                label,
                safety: if secret {
                    LabelSafety::Secret
                } else {
                    LabelSafety::Plain
                },
            };
        }
    }
    Identity {
        class: Class::Content,
        key: String::new(),
        label: content_label(command),
        safety: LabelSafety::Scan,
    }
}

fn safety_of(menu: &str, key: &str) -> LabelSafety {
    if redact::is_sensitive(menu, key) {
        LabelSafety::Secret
    } else {
        LabelSafety::Plain
    }
}

/// The comment of an item, or its properties as written, shortened; secrets
/// are masked when the label is shown ([`LabelSafety::Scan`]).
fn content_label(command: &Command) -> String {
    if let Some(comment) = command.get("comment").filter(|c| !c.is_empty()) {
        return shorten(comment);
    }
    let parts: Vec<String> = command
        .properties
        .iter()
        .map(|p| match &p.raw {
            Some(raw) => format!("{}={raw}", p.key),
            None => p.key.clone(),
        })
        .collect();
    shorten(&parts.join(" "))
}

fn shorten(text: &str) -> String {
    match text.char_indices().nth(MAX_LABEL) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// The last word of a menu path: `/ip dns` → `dns`.
pub(super) fn menu_label(menu: &str) -> String {
    menu.rsplit([' ', '/'])
        .find(|w| !w.is_empty())
        .unwrap_or("general")
        .to_owned()
}
