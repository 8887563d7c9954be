//! Property tests of [`redact`] and [`redact_pair`] on generated exports:
//! generated secrets (bare, quoted with escapes, inside script sources, long
//! enough to wrap) in several menus, wrapped over `\` continuations at any
//! column. Secrets never survive, line counts hold, other lines stay as they
//! were. Case counts stay modest so the unit suite stays fast.

use proptest::prelude::*;

use super::*;

/// How a generated secret sits in its template.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// `key=VALUE` at the command level.
    Plain,
    /// `key=VALUE` inside a quoted `source=`/`on-event=` script.
    Script,
}

/// A menu line (empty for terse lines), a command with `{}` for the value.
const SECRET_LINES: &[(&str, &str, Kind)] = &[
    (
        "/ppp secret",
        "add name=user1 password={} profile=default-encryption service=pppoe",
        Kind::Plain,
    ),
    (
        "/interface wireguard peers",
        "add allowed-address=10.9.0.2/32 interface=wg0 preshared-key={} public-key=\"Q2xpZW50UHVibGljS2V5PQ=\"",
        Kind::Plain,
    ),
    (
        "/interface wireguard peers",
        "add comment=peer2 interface=wg0 key={}",
        Kind::Plain,
    ),
    (
        "/ip ipsec identity",
        "add peer=peer1 secret={}",
        Kind::Plain,
    ),
    (
        "",
        "/ip ipsec peer add address=192.0.2.1/32 name=p1 secret={} exchange-mode=ike2",
        Kind::Plain,
    ),
    ("/ip ipsec key", "add key={} name=k1", Kind::Plain),
    (
        "/snmp community",
        "set [ find default=yes ] addresses=10.0.0.0/8 name={}",
        Kind::Plain,
    ),
    (
        "/snmp community",
        "add addresses=10.0.0.0/8 authentication-password={} security=private",
        Kind::Plain,
    ),
    (
        "/interface wireless security-profiles",
        "set [ find default=yes ] authentication-types=wpa2-psk mode=dynamic-keys wpa2-pre-shared-key={}",
        Kind::Plain,
    ),
    (
        "/radius",
        "add address=10.0.0.5 secret={} service=ppp,login",
        Kind::Plain,
    ),
    (
        "/routing bgp connection",
        "add name=up1 remote.as=65000 tcp-md5-key={}",
        Kind::Plain,
    ),
    (
        "/tool e-mail",
        "set address=smtp.example.net from=cfg@example.net password={} user=cfg",
        Kind::Plain,
    ),
    (
        "/system script",
        "add name=mail owner=admin source=\"/tool e-mail set password={}\\r\\n:log info \\\"set\\\"\"",
        Kind::Script,
    ),
    (
        "/system scheduler",
        "add interval=1d name=s on-event=\"/ppp secret set [ find name=u ] password={}; :log info done\"",
        Kind::Script,
    ),
];

/// Menu and command pairs that hold no secret (`name`, `key` and
/// `public-key` outside the menus that make them sensitive).
const FILLER_LINES: &[(&str, &str)] = &[
    (
        "/ip address",
        "add address=192.168.88.1/24 comment=\"lan side\" interface=bridge network=192.168.88.0",
    ),
    (
        "/ip firewall filter",
        "add action=accept chain=input comment=\"allow established, related\" connection-state=established,related",
    ),
    ("/system identity", "set name=router1"),
    ("/container envs", "add key=TZ name=env value=UTC"),
    (
        "/interface wireguard",
        "add listen-port=13231 name=wg0 public-key=\"U2VydmVyUHVibGljS2V5PQ=\"",
    ),
    ("/snmp", "set contact=noc@example.net enabled=yes"),
    (
        "/system script",
        "add name=hello source=\":log info \\\"hello world\\\"\\r\\n:delay 1s\"",
    ),
    ("", "# model = RB5009UG+S+"),
];

/// A generated value, as written after `key=` in a plain command.
fn plain_value() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => "[A-Za-z0-9 !#%&+,./:;?@^_~-]{1,12}",
        1 => Just("\\\"".to_owned()),
        1 => Just("\\\\".to_owned()),
        1 => Just("\\_".to_owned()),
    ];
    prop_oneof![
        "[A-Za-z0-9!#%&+,./:?@^_~-]{1,120}",
        prop::collection::vec(piece, 0..12).prop_map(|p| format!("\"{}\"", p.concat())),
    ]
}

/// A generated value, as written after `key=` inside a quoted script: bare,
/// or `\"…\"`-quoted at the script level.
fn script_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9!#%&+,./:?@^_~-]{1,100}",
        "[A-Za-z0-9 !#%&+,./:;?@^_~-]{0,100}".prop_map(|v| format!("\\\"{v}\\\"")),
    ]
}

/// One logical line to generate: a filler or a secret template with a value.
#[derive(Debug, Clone)]
enum Item {
    Filler(usize),
    Secret(usize, String),
}

fn item() -> impl Strategy<Value = Item> {
    let secret = (0..SECRET_LINES.len()).prop_flat_map(|t| {
        let value = match SECRET_LINES[t].2 {
            Kind::Plain => plain_value().boxed(),
            Kind::Script => script_value().boxed(),
        };
        value.prop_map(move |v| Item::Secret(t, v))
    });
    prop_oneof![1 => (0..FILLER_LINES.len()).prop_map(Item::Filler), 2 => secret]
}

/// A generated export, physical line by physical line.
#[derive(Debug, Default)]
struct Export {
    lines: Vec<String>,
    /// Per physical line: whether it holds part of a secret.
    touched: Vec<bool>,
    /// The secrets' texts, and the parts each physical line holds.
    needles: Vec<String>,
    /// The export with every secret fragment cut out.
    rest: String,
}

impl Export {
    fn text(&self) -> String {
        self.lines.join("\n") + "\n"
    }

    /// Adds a logical line, the secret at `secret` (byte range), wrapped
    /// RouterOS-style every `width` characters when given.
    fn push(&mut self, line: &str, secret: Range<usize>, width: Option<usize>) {
        let (mut physical, mut rest, mut touched) = (String::new(), String::new(), false);
        let mut fragment = String::new();
        let (mut column, mut first) = (0, true);
        for (i, c) in line.char_indices() {
            // RouterOS ends a wrapped line with `\` at column `width`;
            // continuations spend 4 columns on indentation.
            let limit = width.map(|w| if first { w } else { w - 4 });
            if limit.is_some_and(|l| column + 1 >= l) {
                self.finish(physical + "\\", rest + "\\", touched, &mut fragment);
                (physical, rest, touched, column, first) =
                    ("    ".into(), "    ".into(), false, 0, false);
            }
            physical.push(c);
            column += 1;
            if secret.contains(&i) {
                touched = true;
                fragment.push(c);
            } else {
                rest.push(c);
            }
        }
        self.finish(physical, rest, touched, &mut fragment);
        self.needles.push(line[secret].to_owned());
    }

    fn finish(&mut self, physical: String, rest: String, touched: bool, fragment: &mut String) {
        self.lines.push(physical);
        self.touched.push(touched);
        self.rest.push_str(&rest);
        self.rest.push('\n');
        if !fragment.is_empty() {
            self.needles.push(std::mem::take(fragment));
        }
    }
}

/// Builds an export from items, wrapping every line at `width` when given.
fn build(items: &[Item], width: Option<usize>) -> Export {
    let mut export = Export::default();
    for item in items {
        let (menu, line, secret) = match item {
            Item::Filler(f) => (FILLER_LINES[*f].0, FILLER_LINES[*f].1.to_owned(), 0..0),
            Item::Secret(t, v) => {
                let (menu, template, _) = SECRET_LINES[*t];
                let at = template.find("{}").expect("BUG: template has a slot");
                (menu, template.replacen("{}", v, 1), at..at + v.len())
            }
        };
        if !menu.is_empty() {
            export.push(menu, 0..0, None);
        }
        export.push(&line, secret, width);
    }
    export
}

/// Whether `needle` must be absent from the output: long enough to mean
/// something and not found in the export's ordinary text.
fn searchable(needle: &str, rest: &str) -> bool {
    needle.len() >= 4 && !rest.contains(needle)
}

fn document() -> impl Strategy<Value = (Vec<Item>, Option<usize>)> {
    (
        prop::collection::vec(item(), 1..12),
        prop::option::of(20..=79usize),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_generated_secret_never_survives_redaction((items, width) in document()) {
        // Arrange
        let export = build(&items, width);
        let text = export.text();

        // Act
        let out = redact(&text);

        // Assert
        let out_lines: Vec<&str> = out.split('\n').collect();
        prop_assert_eq!(out_lines.len(), text.split('\n').count());
        for (i, line) in export.lines.iter().enumerate() {
            prop_assert!(export.touched[i] || out_lines[i] == line, "line {} changed", i + 1);
        }
        let unwrapped = out.replace("\\\n    ", "");
        for needle in export.needles.iter().filter(|n| searchable(n, &export.rest)) {
            prop_assert!(!out.contains(needle.as_str()), "a secret survives");
            prop_assert!(!unwrapped.contains(needle.as_str()), "a wrapped secret survives");
        }
    }

    #[test]
    fn redacting_twice_changes_nothing_more((items, width) in document()) {
        let once = redact(&build(&items, width).text());

        prop_assert_eq!(redact(&once), once);
    }

    #[test]
    fn a_changed_secret_is_marked_and_an_unchanged_one_is_not(
        template in 0..SECRET_LINES.len(),
        old in "[A-Za-z0-9]{4,90}",
        new in "[A-Za-z0-9]{4,90}",
        width in prop::option::of(20..=79usize),
    ) {
        // Alphanumeric values read the same bare and inside scripts.
        let old_text = build(&[Item::Secret(template, old.clone())], width).text();
        let new_text = build(&[Item::Secret(template, new.clone())], width).text();

        let (old_out, new_out) = redact_pair(&old_text, &new_text);
        let (same_old, same_new) = redact_pair(&old_text, &old_text);

        prop_assert_eq!(new_out.contains("(changed)"), old != new);
        prop_assert_eq!(old_out == new_out, old == new);
        prop_assert_eq!(same_old, same_new.clone());
        prop_assert!(!same_new.contains("(changed)"));
        for v in [&old, &new] {
            let rest = SECRET_LINES[template].1;
            if searchable(v, rest) {
                prop_assert!(!old_out.contains(v.as_str()) && !new_out.contains(v.as_str()), "a secret survives");
            }
        }
    }

    #[test]
    fn any_text_keeps_its_line_count_and_never_panics(
        text in prop_oneof!["\\PC{0,200}", "[a-z =\"\\\\\\[\\]/\r\n ]{0,200}"],
    ) {
        let out = redact(&text);
        let (old_out, new_out) = redact_pair(&text, &out);

        prop_assert_eq!(out.split('\n').count(), text.split('\n').count());
        prop_assert_eq!(old_out.split('\n').count(), text.split('\n').count());
        prop_assert_eq!(new_out.split('\n').count(), out.split('\n').count());
    }
}
