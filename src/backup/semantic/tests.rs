//! Unit tests of the parser, identities, matching, moves, status-only
//! versions, redaction and summaries, on small hand-written exports in v6
//! and v7 syntax.

use super::*;
use crate::backup::changes::Change;

fn one(diff: &SemanticDiff) -> &ItemChange {
    assert_eq!(diff.changes.len(), 1, "one change expected: {diff:#?}");
    &diff.changes[0]
}

fn props(change: &ItemChange) -> Vec<(&str, Option<&str>, Option<&str>)> {
    change
        .properties
        .iter()
        .map(|p| (p.name.as_str(), p.old.as_deref(), p.new.as_deref()))
        .collect()
}

const V6: &str = "\
# jan/02/1970 00:00:00 by RouterOS 6.49.6
# software id = ABCD-1234
/interface ethernet
set [ find default-name=ether1 ] comment=\"uplink to ISP\" mtu=1500
set [ find default-name=ether2 ] name=lan
/ip address
add address=192.0.2.1/24 interface=ether1 network=192.0.2.0
add address=10.0.0.1/24 interface=lan network=10.0.0.0
/ip dns
set allow-remote-requests=yes servers=192.0.2.53
/ip firewall filter
add action=accept chain=input comment=\"accept established\" connection-state=established,related
add action=drop chain=input comment=\"drop invalid\" connection-state=invalid
add action=accept chain=input protocol=icmp
add action=drop chain=input in-interface=ether1
/ip service
set telnet disabled=yes
/system logging
set 0 action=memory
/system script
add name=backup source=\":log info \\\"start\\\";\\r\\\n    \\n/export file=x\"
";

#[test]
fn identical_exports_have_no_changes_and_are_not_status_only() {
    // Act
    let diff = diff(V6, V6);

    // Assert
    assert_eq!(diff, SemanticDiff::default());
}

#[test]
fn parser_reads_menus_commands_selectors_and_continued_quoted_values() {
    // Act
    let export = parse(V6);

    // Assert
    assert_eq!(export.problems, 0);
    let commands: Vec<(&str, &Command)> = export
        .lines
        .iter()
        .filter_map(|l| match &l.kind {
            LineKind::Command { menu, command, .. } => Some((menu.as_str(), command)),
            _ => None,
        })
        .collect();
    assert_eq!(commands.len(), 12);
    let (menu, ether1) = commands[0];
    assert_eq!(menu, "/interface ethernet");
    assert_eq!(
        ether1.selector,
        Some(Selector::Find {
            conditions: vec![("default-name".into(), "ether1".into())],
            raw: "[ find default-name=ether1 ]".into()
        })
    );
    assert_eq!(ether1.get("comment"), Some("uplink to ISP"));
    let (menu, dns) = commands[4];
    assert_eq!(
        (menu, dns.verb, &dns.selector),
        ("/ip dns", Verb::Set, &None)
    );
    let (_, logging) = commands[10];
    assert!(matches!(&logging.selector, Some(Selector::Word { value, .. }) if value == "0"));
    let (menu, script) = commands[11];
    assert_eq!(menu, "/system script");
    assert_eq!(
        script.get("source"),
        Some(":log info \"start\";\r\n/export file=x"),
        "escapes decoded, the continuation joined inside the quotes"
    );
}

#[test]
fn a_property_edit_is_one_modified_change_with_that_property() {
    // Arrange
    let new = V6.replace("mtu=1500", "mtu=9000");

    // Act
    let diff = diff(V6, &new);

    // Assert
    let change = one(&diff);
    assert_eq!(
        (change.menu.as_str(), change.item.as_str(), change.kind),
        ("/interface ethernet", "ether1", ChangeKind::Modified)
    );
    assert_eq!(props(change), [("mtu", Some("1500"), Some("9000"))]);
    assert_eq!((change.old_index, change.new_index), (Some(0), Some(0)));
    assert!(!diff.status_only);
}

#[test]
fn reordering_an_unordered_menu_gives_no_changes() {
    // Arrange
    let new = V6.replace(
        "add address=192.0.2.1/24 interface=ether1 network=192.0.2.0\nadd address=10.0.0.1/24 interface=lan network=10.0.0.0\n",
        "add address=10.0.0.1/24 interface=lan network=10.0.0.0\nadd address=192.0.2.1/24 interface=ether1 network=192.0.2.0\n",
    );
    assert_ne!(new, V6);

    // Act
    let diff = diff(V6, &new);

    // Assert
    assert!(diff.changes.is_empty(), "{diff:#?}");
    assert!(
        !diff.status_only,
        "the configuration lines moved: not a status comment"
    );
    assert_eq!(summarize(V6, &new), None, "line summaries describe it");
}

#[test]
fn a_moved_firewall_rule_is_one_move() {
    // Arrange: the last rule goes first.
    let last = "add action=drop chain=input in-interface=ether1\n";
    let new = V6.replace(last, "").replace(
        "/ip firewall filter\n",
        &format!("/ip firewall filter\n{last}"),
    );

    // Act
    let diff = diff(V6, &new);

    // Assert
    let change = one(&diff);
    assert_eq!(change.kind, ChangeKind::Moved);
    assert_eq!(change.menu, "/ip firewall filter");
    assert_eq!((change.old_index, change.new_index), (Some(3), Some(0)));
    assert!(change.properties.is_empty());
}

#[test]
fn an_inserted_rule_is_one_addition_and_shifts_nothing_into_moves() {
    // Arrange
    let new = V6.replace(
        "/ip firewall filter\n",
        "/ip firewall filter\nadd action=accept chain=input src-address=192.0.2.9\n",
    );

    // Act
    let diff = diff(V6, &new);

    // Assert
    let change = one(&diff);
    assert_eq!(
        (change.kind, change.new_index, change.old_index),
        (ChangeKind::Added, Some(0), None)
    );
    assert_eq!(
        props(change),
        [
            ("action", None, Some("accept")),
            ("chain", None, Some("input")),
            ("src-address", None, Some("192.0.2.9")),
        ]
    );
}

#[test]
fn an_edited_unnamed_rule_is_modified_not_removed_and_added() {
    // Arrange
    let new = V6.replace(
        "add action=accept chain=input protocol=icmp",
        "add action=accept chain=input protocol=icmp src-address=10.0.0.0/8",
    );

    // Act
    let diff = diff(V6, &new);

    // Assert
    let change = one(&diff);
    assert_eq!(change.kind, ChangeKind::Modified);
    assert_eq!(props(change), [("src-address", None, Some("10.0.0.0/8"))]);
    assert!(!change.is_identified(), "matched by content");
}

#[test]
fn disabling_an_address_is_a_modification_of_the_item_its_menu_keys_name() {
    // Arrange
    let new = V6.replace(
        "interface=lan network=10.0.0.0",
        "interface=lan network=10.0.0.0 disabled=yes",
    );

    // Act
    let diff = diff(V6, &new);

    // Assert
    let change = one(&diff);
    assert_eq!(change.item, "10.0.0.1/24 lan");
    assert_eq!(props(change), [("disabled", None, Some("yes"))]);
}

#[test]
fn a_version_differing_only_in_status_comments_is_status_only() {
    // Arrange
    let new = V6
        .replace(
            "/interface ethernet\n",
            "/interface ethernet\n# Interface not active\n",
        )
        .replace("/ip dns\n", "/ip dns\n# managed by CAPsMAN\n");

    // Act
    let diff = diff(V6, &new);

    // Assert
    assert!(diff.changes.is_empty());
    assert!(diff.status_only);
    assert_eq!(
        summarize(V6, &new).expect("parses"),
        [Change {
            component: "status".into(),
            summary: "Changed status comments only".into(),
            lines_added: 0,
            lines_removed: 0
        }]
    );
}

const V7: &str = "\
# 2025-01-02 03:04:05 by RouterOS 7.15
/interface bridge
add name=bridge1 vlan-filtering=yes
/interface wireguard
add listen-port=13231 mtu=1420 name=wg0 private-key=\"c2VjcmV0LWtleQ==\"
/interface wireguard peers
add allowed-address=10.9.0.2/32 interface=wg0 name=branch-7 public-key=\"cHViLWtleQ==\"
/routing filter rule
add chain=ospf-in rule=\"if (dst in 10.0.0.0/8) { accept }\"
add chain=ospf-in rule=\"reject\"
/ip/firewall/nat add action=masquerade chain=srcnat out-interface=ether1
/user
add group=full name=ops password=\"hunter2\"
";

#[test]
fn v7_syntax_parses_with_slash_menus_and_terse_lines() {
    // Act
    let export = parse(V7);

    // Assert
    assert_eq!(export.problems, 0);
    let menus: Vec<&str> = export
        .lines
        .iter()
        .filter_map(|l| match &l.kind {
            LineKind::Command { menu, .. } => Some(menu.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        menus,
        [
            "/interface bridge",
            "/interface wireguard",
            "/interface wireguard peers",
            "/routing filter rule",
            "/routing filter rule",
            "/ip firewall nat",
            "/user"
        ]
    );
}

#[test]
fn a_changed_secret_is_reported_and_masked_after_redaction() {
    // Arrange
    let new = V7.replace("hunter2", "correct horse");

    // Act
    let mut diff = diff(V7, &new);
    let shown = diff.clone();
    diff.redact();

    // Assert
    assert_eq!(
        props(one(&shown)),
        [("password", Some("hunter2"), Some("correct horse"))]
    );
    let change = one(&diff);
    assert_eq!(change.item, "ops");
    assert_eq!(
        props(change),
        [("password", Some("********"), Some("******** (changed)"))]
    );
    let json = serde_json::to_string(&diff).expect("serializes");
    assert!(!json.contains("hunter2") && !json.contains("correct horse"));
}

#[test]
fn redaction_masks_secrets_of_added_items_and_keeps_other_values() {
    // Arrange
    let new = V7.replace(
        "/user\n",
        "/user\nadd group=read name=audit password=s3cr3t\n",
    );

    // Act
    let mut diff = diff(V7, &new);
    diff.redact();

    // Assert
    let change = one(&diff);
    assert_eq!(change.kind, ChangeKind::Added);
    assert_eq!(
        props(change),
        [
            ("group", None, Some("read")),
            ("name", None, Some("audit")),
            ("password", None, Some("********")),
        ]
    );
}

#[test]
fn a_wireguard_peer_added_is_named_and_a_renamed_bridge_is_modified() {
    // Arrange
    let new = V7
        .replace(
            "/routing filter rule\n",
            "add allowed-address=10.9.0.3/32 interface=wg0 name=branch-8 public-key=\"b3RoZXI=\"\n/routing filter rule\n",
        )
        .replace("name=bridge1 vlan-filtering=yes", "name=br-main vlan-filtering=yes");

    // Act
    let diff = diff(V7, &new);

    // Assert
    let kinds: Vec<(&str, &str, ChangeKind)> = diff
        .changes
        .iter()
        .map(|c| (c.menu.as_str(), c.item.as_str(), c.kind))
        .collect();
    assert_eq!(
        kinds,
        [
            ("/interface bridge", "br-main", ChangeKind::Modified),
            ("/interface wireguard peers", "branch-8", ChangeKind::Added),
        ]
    );
    assert_eq!(
        props(&diff.changes[0]),
        [("name", Some("bridge1"), Some("br-main"))]
    );
}

#[test]
fn routing_filter_rules_are_ordered() {
    // Arrange
    let new = V7.replace(
        "add chain=ospf-in rule=\"if (dst in 10.0.0.0/8) { accept }\"\nadd chain=ospf-in rule=\"reject\"\n",
        "add chain=ospf-in rule=\"reject\"\nadd chain=ospf-in rule=\"if (dst in 10.0.0.0/8) { accept }\"\n",
    );

    // Act
    let diff = diff(V7, &new);

    // Assert
    let change = one(&diff);
    assert_eq!(
        (change.menu.as_str(), change.kind),
        ("/routing filter rule", ChangeKind::Moved)
    );
}

#[test]
fn summaries_name_items_properties_and_counts() {
    // Arrange
    let last = "add action=drop chain=input in-interface=ether1\n";
    let new = V6
        .replace("mtu=1500", "mtu=9000")
        .replace(last, "")
        .replace(
            "/ip firewall filter\n",
            &format!("/ip firewall filter\n{last}"),
        )
        .replace(
            "/ip service\n",
            "add action=drop chain=forward src-address=192.0.2.66\n/ip service\n",
        )
        .replace("servers=192.0.2.53", "servers=192.0.2.54");

    // Act
    let summary = summarize(V6, &new).expect("parses");

    // Assert
    let rows: Vec<(&str, &str, u32, u32)> = summary
        .iter()
        .map(|c| {
            (
                c.component.as_str(),
                c.summary.as_str(),
                c.lines_added,
                c.lines_removed,
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("interface/ethernet", "Modified ether1: mtu", 1, 1),
            ("ip/dns", "Modified dns: servers", 1, 1),
            ("ip/firewall/filter", "Added 1 firewall filter rule", 1, 0),
            ("ip/firewall/filter", "Moved 1 firewall filter rule", 1, 1),
        ]
    );
}

#[test]
fn summaries_never_show_secret_values_or_secret_names() {
    // Arrange
    let old = "/snmp community\nadd addresses=::/0 name=s3cret-community\n";
    let new = "/snmp community\nadd addresses=10.0.0.0/8 name=s3cret-community\n";

    // Act
    let summary = summarize(old, new).expect("parses");

    // Assert
    assert_eq!(summary.len(), 1);
    assert_eq!(summary[0].summary, "Modified ********: addresses");
}

#[test]
fn summaries_are_refused_when_a_line_does_not_parse() {
    // Arrange
    let broken = "/ip address\nadd address=\"10.0.0.1/24 interface=ether1\n";

    // Act and Assert
    assert!(summarize(V6, broken).is_none());
    assert!(try_diff(V6, broken).is_err());
    let diff = diff(V6, broken);
    assert!(
        diff.changes
            .iter()
            .any(|c| c.kind == ChangeKind::Added && c.menu == "/ip address"),
        "the lenient diff keeps the line as opaque text"
    );
}

#[test]
fn hostile_input_gives_opaque_lines_or_errors_never_a_panic() {
    // Arrange
    let long = format!("/ip address\nadd comment={}\n", "x".repeat(2 << 20));
    let endless = "/ip address\nadd a=b \\\n".repeat(10_000);
    let inputs = [
        "\"".to_owned(),
        "/ip address\nset [ find \"name=x ]\n".to_owned(),
        "/ip address\nset ]] x=y\n".to_owned(),
        "add name=x\n".to_owned(),
        "/ / / /\n/\nset x\n".to_owned(),
        "\\\n\\\n\\".to_owned(),
        long,
        endless,
        String::from_utf8_lossy(&[0, 159, 146, 150, b'\n', b'/', 0xff, b'=', b'"']).into_owned(),
    ];

    // Act and Assert
    for input in &inputs {
        let export = parse(input);
        assert!(!export.lines.is_empty() || input.is_empty());
        diff(input, V6);
        diff(V6, input);
    }
}

#[test]
fn content_labels_of_redacted_opaque_lines_hide_secrets() {
    // Arrange
    let old = "/system script\n";
    let new = "/system script\n:global x [/user add name=y password=topsecret]\n";

    // Act
    let mut diff = diff(old, new);
    diff.redact();

    // Assert
    let change = one(&diff);
    assert!(!change.item.contains("topsecret"), "label masked");
    assert!(change.item.contains("********"));
}

#[test]
fn many_large_unmatched_items_are_reported_without_pairwise_comparison() {
    // Arrange: 400 unnamed items of 300 properties on each side, none equal.
    let side = |tag: &str| {
        let mut text = String::from("/ip firewall filter\n");
        for i in 0..400 {
            text.push_str("add");
            for p in 0..300 {
                text.push_str(&format!(" p{p}={tag}{i}"));
            }
            text.push('\n');
        }
        text
    };
    let (old, new) = (side("a"), side("b"));

    // Act
    let diff = diff(&old, &new);

    // Assert
    let count = |kind| diff.changes.iter().filter(|c| c.kind == kind).count();
    assert_eq!(
        (count(ChangeKind::Added), count(ChangeKind::Removed)),
        (400, 400)
    );
}

#[test]
fn status_comments_are_recognized_and_header_lines_are_not() {
    let status = [
        "# inactive time",
        "# inactive time 3d4h",
        "# Interface not active",
        "# Interface not running",
        "# managed by CAPsMAN",
        "# channel: 2412/20/gn(20dBm), SSID: office, CAPsMAN forwarding",
        "# ether1 not ready",
        "# wlan2 not running",
        "# poe-out status: short_circuit",
        "# received packet from 192.0.2.1 bad format",
        "# Firmware upgraded successfully, please reboot for changes to take effect!",
        "# wlan1: please restart the device in order to apply the new setting",
    ];
    for line in status {
        assert!(is_status_comment(line), "{line}");
    }
    let not_status = [
        "# software id = ABCD-1234",
        "# model = RB5009UG+S+",
        "# serial number = HD1234567",
        "# ether1 is not ready for this",
        "#  not ready",
        "add comment=\"# inactive time\"",
        "# my note",
    ];
    for line in not_status {
        assert!(!is_status_comment(line), "{line}");
    }
}

#[test]
fn a_changed_header_line_is_not_status_only() {
    // Arrange: the hardware identity changed, the configuration not.
    let old = format!("# software id = AAAA-1111\n{V6}");
    let new = format!("# software id = BBBB-2222\n{V6}");

    // Act
    let diff = diff(&old, &new);

    // Assert
    assert!(diff.changes.is_empty());
    assert!(!diff.status_only);
    assert!(!differs_only_in_status(&old, &new));
    assert!(
        !differs_only_in_status(V6, V6),
        "equal texts differ in nothing"
    );
}

#[test]
fn status_comments_next_to_a_real_change_leave_it_a_change() {
    // Arrange
    let new = V6
        .replace("/ip dns\n", "/ip dns\n# managed by CAPsMAN\n")
        .replace("mtu=1500", "mtu=9000");

    // Act
    let diff = diff(V6, &new);

    // Assert
    assert_eq!(one(&diff).item, "ether1");
    assert!(!diff.status_only);
    assert!(!differs_only_in_status(V6, &new));
}
