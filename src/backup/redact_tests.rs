//! Tests of `redact` on small synthetic exports: one rule per test (keys,
//! menus, quoting, selectors, continuations, script bodies, malformed input)
//! and the `(changed)` marker of `redact_pair`. Values here are made up.

use super::*;

/// Redacts `input` and checks the line count before returning the output.
fn redacted(input: &str) -> String {
    let out = redact(input);
    assert_eq!(
        out.split('\n').count(),
        input.split('\n').count(),
        "line count changed"
    );
    out
}

#[test]
fn a_bare_password_is_masked_and_the_rest_of_the_line_kept() {
    // Arrange
    let input = "/ppp secret\nadd name=alice password=hunter22 profile=default\n";

    // Act
    let out = redacted(input);

    // Assert
    assert_eq!(
        out,
        "/ppp secret\nadd name=alice password=******** profile=default\n"
    );
}

#[test]
fn a_quoted_value_with_spaces_and_escapes_is_masked_without_its_quotes() {
    let input = "/tool e-mail\nset password=\"a \\\"b\\\" c\\\\ d\\_e\" user=cfg\n";

    let out = redacted(input);

    assert_eq!(out, "/tool e-mail\nset password=******** user=cfg\n");
}

#[test]
fn empty_values_are_masked_like_any_other() {
    let out = redacted("/radius\nadd secret=\"\" service=ppp\nadd secret= service=login\n");

    assert_eq!(
        out,
        "/radius\nadd secret=******** service=ppp\nadd secret=******** service=login\n"
    );
}

#[test]
fn every_listed_key_and_suffix_is_sensitive_in_any_menu() {
    let keys = [
        "password",
        "secret",
        "secrets",
        "private-key",
        "pre-shared-key",
        "preshared-key",
        "wpa-pre-shared-key",
        "wpa2-pre-shared-key",
        "wpa3-pre-shared-key",
        "authentication-key",
        "auth-key",
        "passphrase",
        "authentication-password",
        "encryption-password",
        "ipsec-secret",
        "tcp-md5-key",
        "management-protection-key",
        "sae-password",
        "radius-secret",
        "mschapv2-password",
        "nv2-sync-secret",
        "export-passphrase",
        "x-psk",
        "nv2-preshared-key",
        "static-sta-private-key",
        "static-key-0",
        "static-key-3",
        "PASSWORD",
    ];
    for key in keys {
        assert!(
            is_sensitive("/ip firewall filter", key),
            "{key} is not sensitive"
        );
        assert_eq!(
            redacted(&format!("/x\nset {key}=v1v2v3\n")),
            format!("/x\nset {key}=********\n")
        );
    }
}

#[test]
fn keys_that_merely_resemble_secrets_are_kept() {
    let keys = [
        "public-key",
        "comment",
        "name",
        "key",
        "private-key-file",
        "key-size",
        "authentication-types",
        "always-allow-password-login",
        "passthrough",
        "community",
        "trap-community",
        "static-transmit-key",
        "auth-method",
    ];
    for key in keys {
        assert!(
            !is_sensitive("/ip firewall filter", key),
            "{key} is sensitive"
        );
    }
    let input = "/interface wireguard\nadd name=wg0 public-key=\"abc=\" comment=\"x y\"\n";
    assert_eq!(redacted(input), input);
}

#[test]
fn key_is_sensitive_only_under_wireguard_peers_and_ipsec() {
    assert!(is_sensitive("/interface wireguard peers", "key"));
    assert!(is_sensitive("/ip ipsec", "key"));
    assert!(is_sensitive("/ip ipsec key", "key"));
    assert!(is_sensitive("/ip/ipsec/identity", "key"));
    assert!(!is_sensitive("/ip ipsecx", "key"));
    assert!(!is_sensitive("/container envs", "key"));
    assert!(!is_sensitive("/interface wireguard", "key"));
}

#[test]
fn the_current_menu_follows_menu_lines() {
    let input = "/ip ipsec identity\nadd key=k1k1 peer=p\n/container envs\nadd key=TZ value=UTC\n";

    let out = redacted(input);

    assert_eq!(
        out,
        "/ip ipsec identity\nadd key=******** peer=p\n/container envs\nadd key=TZ value=UTC\n"
    );
}

#[test]
fn a_terse_line_names_its_menu_and_command_together() {
    let input = "/ip ipsec peer add name=x secret=yyyy\n/interface wireguard peers add key=abcd public-key=pk\n";

    let out = redacted(input);

    assert_eq!(
        out,
        "/ip ipsec peer add name=x secret=********\n/interface wireguard peers add key=******** public-key=pk\n"
    );
}

#[test]
fn snmp_community_names_are_masked_in_values_and_selectors() {
    let input = "/snmp community\nset [ find default=yes ] name=corp1\nset [ find name=public ] addresses=10.0.0.0/8\n\
                 /snmp\nset enabled=yes trap-community=corp1\n/ip pool\nadd name=public ranges=10.1.1.2-10.1.1.9\n";

    let out = redacted(input);

    assert_eq!(
        out,
        "/snmp community\nset [ find default=yes ] name=********\nset [ find name=******** ] addresses=10.0.0.0/8\n\
         /snmp\nset enabled=yes trap-community=********\n/ip pool\nadd name=public ranges=10.1.1.2-10.1.1.9\n"
    );
}

#[test]
fn a_selector_value_ends_at_the_closing_bracket() {
    let out = redacted("/x\nset [ find password=abcd] comment=c\n");

    assert_eq!(out, "/x\nset [ find password=********] comment=c\n");
}

#[test]
fn a_bare_value_split_by_a_continuation_is_masked_on_its_first_line() {
    let input = "/ppp secret\nadd name=alice password=abc\\\n    def profile=default\n";

    let out = redacted(input);

    assert_eq!(
        out,
        "/ppp secret\nadd name=alice password=********\\\n     profile=default\n"
    );
}

#[test]
fn a_quoted_value_split_by_a_continuation_leaves_only_indentation() {
    let input = "/x\nadd password=\"abc \\\n    def\"\nadd comment=c\n";

    let out = redacted(input);

    assert_eq!(out, "/x\nadd password=********\\\n    \nadd comment=c\n");
}

#[test]
fn a_value_that_starts_on_the_continuation_line_is_masked_there() {
    let input =
        "/interface wireguard peers\nadd interface=wg0 key=\\\n    c2VjcmV0 public-key=pk\n";

    let out = redacted(input);

    assert_eq!(
        out,
        "/interface wireguard peers\nadd interface=wg0 key=\\\n    ******** public-key=pk\n"
    );
}

#[test]
fn a_value_over_three_lines_keeps_every_line_and_backslash() {
    let input = "/x\nset a=1 secret=\"aaaa\\\n    bbbb\\\n    cc\" b=2 \\\n    c=3\n";

    let out = redacted(input);

    assert_eq!(
        out,
        "/x\nset a=1 secret=********\\\n    \\\n     b=2 \\\n    c=3\n"
    );
}

#[test]
fn an_escape_split_by_a_continuation_does_not_end_the_quoted_value() {
    // The break falls between the `\` and `"` of an escaped quote.
    let input = "/x\nset password=\"ab\\\\\n    \"cd\" comment=c\n";

    let out = redacted(input);

    assert_eq!(out, "/x\nset password=********\\\n     comment=c\n");
}

#[test]
fn secrets_inside_script_sources_are_masked() {
    let input = "/system script\nadd name=m source=\"/tool e-mail set password=pw11;\\r\\\n    \\n/ppp secret add name=u password=\\\"s p\\\" service=any\"\n";

    let out = redacted(input);

    assert_eq!(
        out,
        "/system script\nadd name=m source=\"/tool e-mail set password=********;\\r\\\n    \\n/ppp secret add name=u password=******** service=any\"\n"
    );
}

#[test]
fn secrets_inside_scheduler_events_and_nested_quotes_are_masked() {
    let input = "/system scheduler\nadd name=s on-event=\":do { /tool fetch url=\\\"x\\\" password=pw22 }\"\n\
                 add name=t on-event=\"/system script add source=\\\"/x set secret=\\\\\\\"v v\\\\\\\"\\\"\"\n";

    let out = redacted(input);

    assert_eq!(
        out,
        "/system scheduler\nadd name=s on-event=\":do { /tool fetch url=\\\"x\\\" password=******** }\"\n\
         add name=t on-event=\"/system script add source=\\\"/x set secret=********\\\"\"\n"
    );
}

#[test]
fn menu_specific_keys_do_not_apply_inside_scripts() {
    let input = "/ip ipsec identity\nadd comment=\"key=keep\" secret=s3cr\n";

    let out = redacted(input);

    assert_eq!(
        out,
        "/ip ipsec identity\nadd comment=\"key=keep\" secret=********\n"
    );
}

#[test]
fn malformed_input_never_panics_and_keeps_its_line_count() {
    let inputs = [
        "",
        "\n",
        "\\",
        "/x\nset password=\"unbalanced \\\"",
        "/x\r\nset password=abcd\r\nset comment=c\r\n",
        "set password=a\rb c",
        "/x\nset password=\"é ü \\C3\\A9\" comment=\"ß\"\n",
        "/x\nset password=abc\\",
        "/x\nset password=abc\\\n",
        "password=\\\n\\\n\\",
        "\"\\",
        "a=\"\\",
        "/\n/ / /\nset =x ==y password",
    ];
    for input in inputs {
        let _ = redacted(input);
    }
    assert_eq!(
        redacted("/x\r\nset password=abcd\r\n"),
        "/x\r\nset password=********\r\n"
    );
    assert_eq!(
        redacted("/x\nset password=abc\\"),
        "/x\nset password=********\\"
    );
}

#[test]
fn lines_without_secrets_are_byte_identical() {
    let input = "# model = RB5009\n/ip address\nadd address=10.0.0.1/24 interface=ether1 \\\n    network=10.0.0.0\n\n";

    assert_eq!(redacted(input), input);
    assert!(!contains_secret(input));
    assert!(contains_secret("/x\nset password=\"\"\n"));
}

#[test]
fn a_changed_secret_is_marked_changed_in_the_new_side_only() {
    let old = "/ppp secret\nadd name=alice password=old1 profile=p\nadd name=bob password=same\n";
    let new = "/ppp secret\nadd name=alice password=new2 profile=p\nadd name=bob password=same\n";

    let (old_out, new_out) = redact_pair(old, new);

    assert_eq!(
        old_out,
        "/ppp secret\nadd name=alice password=******** profile=p\nadd name=bob password=********\n"
    );
    assert_eq!(
        new_out,
        "/ppp secret\nadd name=alice password=******** (changed) profile=p\nadd name=bob password=********\n"
    );
}

#[test]
fn unchanged_secrets_produce_identical_sides() {
    let text = "/x\nset password=abcd secret=\"e f\"\n";

    let (old_out, new_out) = redact_pair(text, text);

    assert_eq!(old_out, new_out);
    assert!(!new_out.contains("(changed)"));
}

#[test]
fn only_the_secret_that_changed_is_marked() {
    let old = "/x\nset password=abcd secret=efgh\n";
    let new = "/x\nset password=abcd secret=ijkl\n";

    let (_, new_out) = redact_pair(old, new);

    assert_eq!(
        new_out,
        "/x\nset password=******** secret=******** (changed)\n"
    );
}

#[test]
fn a_changed_secret_is_marked_when_the_wrapping_differs() {
    let old = "/x\nset comment=c password=short\n";
    let new = "/x\nset comment=c password=much\\\n    longer\n";

    let (_, new_out) = redact_pair(old, new);

    assert_eq!(
        new_out,
        "/x\nset comment=c password=******** (changed)\\\n    \n"
    );
}

#[test]
fn a_line_whose_other_properties_changed_is_masked_plainly() {
    let old = "/x\nadd name=a password=abcd\n";
    let new = "/x\nadd name=b password=efgh\n";

    let (_, new_out) = redact_pair(old, new);

    assert_eq!(new_out, "/x\nadd name=b password=********\n");
}

#[test]
fn the_changed_mask_starts_with_the_plain_mask() {
    assert!(MASK_CHANGED.starts_with(MASK));
    assert_eq!(MASK, "********");
}

#[test]
fn a_dotted_key_counts_by_its_last_part() {
    assert!(is_sensitive("/routing bgp connection", "tls.password"));
    assert!(!is_sensitive("/routing bgp connection", "remote.address"));
}
