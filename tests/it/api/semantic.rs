//! The semantic diff (DESIGN.md §16) over HTTP on both stacks:
//! `…/diff?format=semantic` against the predecessor and a chosen snapshot,
//! status-only versions, secrets masked for viewers and shown to admins,
//! a bad `format` refused, and the OpenAPI document. Secret values never
//! appear in assertion messages.

use cfgsnap::api::Role;
use serde_json::{Value, json};

use super::{
    DEV_A1, Stack, TENANT_A, assert_problem, config_text, json_ok, on_both_stacks, spawn_api,
};

const OLD_SECRET: &str = "old-psk-5c0ffee1";
const NEW_SECRET: &str = "new-psk-9b1ade77";

fn export(psk: &str, mtu: u32) -> String {
    format!(
        "# software id = TEST-1234\n/interface ethernet\nset [ find default-name=ether1 ] mtu={mtu}\n\
         /interface wireless security-profiles\n\
         add authentication-types=wpa2-psk mode=dynamic-keys name=office \\\n    \
         wpa2-pre-shared-key={psk}\n/system identity\nset name=r1\n"
    )
}

fn rule(n: usize) -> Value {
    json!({
        "menu": "/ip firewall filter",
        "item": format!("rule{n}"),
        "kind": "added",
        "properties": [
            {"name": "action", "old": null, "new": "accept"},
            {"name": "chain", "old": null, "new": "input"},
            {"name": "comment", "old": null, "new": format!("rule{n}")},
        ],
        "old_index": null,
        "new_index": n,
    })
}

async fn semantic_diffs_list_items_against_the_previous_or_a_chosen_snapshot(stack: Stack) {
    // Arrange
    let api = spawn_api(stack, |_| {}).await;
    let ids = api.seed_versions(TENANT_A, DEV_A1, 3).await;
    let token = api.token("alice", TENANT_A, Role::Viewer);

    // Act
    let previous = api
        .snapshot_diff(TENANT_A, DEV_A1, ids[2], "format=semantic", &token)
        .await;
    let against = format!("format=semantic&against={}", ids[0]);
    let chosen = api
        .snapshot_diff(TENANT_A, DEV_A1, ids[2], &against, &token)
        .await;
    let first = api
        .snapshot_diff(TENANT_A, DEV_A1, ids[0], "format=semantic", &token)
        .await;

    // Assert
    let content_type = previous.headers().get("content-type").cloned();
    let cache = previous.headers().get("cache-control").cloned();
    assert_eq!(
        content_type.and_then(|v| v.to_str().ok().map(str::to_owned)),
        Some("application/json".to_owned())
    );
    assert_eq!(
        cache.and_then(|v| v.to_str().ok().map(str::to_owned)),
        Some("no-store".to_owned())
    );
    let previous = json_ok(previous, 200).await;
    assert_eq!(
        previous,
        json!({"changes": [rule(2)], "status_only": false})
    );
    let chosen = json_ok(chosen, 200).await;
    assert_eq!(
        chosen,
        json!({"changes": [rule(1), rule(2)], "status_only": false})
    );
    let first = json_ok(first, 200).await;
    let kinds: Vec<(&str, &str, &str)> = first["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| {
            (
                c["menu"].as_str().unwrap_or_default(),
                c["item"].as_str().unwrap_or_default(),
                c["kind"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("/system identity", "identity", "added"),
            ("/ip firewall filter", "rule0", "added")
        ],
        "the first snapshot diffs against nothing"
    );
}

async fn a_version_with_only_new_status_comments_is_status_only(stack: Stack) {
    // Arrange: a first version, one with status comments only, then one
    // that changes a header line (not a status comment).
    let api = spawn_api(stack, |_| {}).await;
    let base = config_text(1);
    let status = base.replace(
        "/ip firewall filter\n",
        "/ip firewall filter\n# inactive time\n# managed by CAPsMAN\n",
    );
    let header = status.replace("# software id = TEST-1234", "# software id = TEST-5678");
    api.seed(TENANT_A, DEV_A1, &base, 10).await;
    let id = api.seed(TENANT_A, DEV_A1, &status, 5).await;
    let header_id = api.seed(TENANT_A, DEV_A1, &header, 1).await;
    let token = api.token("alice", TENANT_A, Role::Viewer);

    // Act
    let diff = json_ok(
        api.snapshot_diff(TENANT_A, DEV_A1, id, "format=semantic", &token)
            .await,
        200,
    )
    .await;
    let header_diff = json_ok(
        api.snapshot_diff(TENANT_A, DEV_A1, header_id, "format=semantic", &token)
            .await,
        200,
    )
    .await;
    let history = json_ok(api.config_history(TENANT_A, DEV_A1, "", &token).await, 200).await;
    let meta = json_ok(api.get_snapshot(TENANT_A, DEV_A1, id, &token).await, 200).await;
    let header_meta = json_ok(
        api.get_snapshot(TENANT_A, DEV_A1, header_id, &token).await,
        200,
    )
    .await;

    // Assert
    assert_eq!(diff, json!({"changes": [], "status_only": true}));
    assert_eq!(header_diff, json!({"changes": [], "status_only": false}));
    assert_eq!(history["items"][0]["snapshot_id"], header_id);
    assert_eq!(history["items"][0]["status_only"], false);
    assert_eq!(history["items"][1]["snapshot_id"], id);
    assert_eq!(history["items"][1]["status_only"], true);
    assert_eq!(
        history["items"][1]["changes"],
        json!([{"component": "status", "summary": "Changed status comments only",
                "lines_added": 0, "lines_removed": 0}])
    );
    assert_eq!(
        (&meta["status_only"], &header_meta["status_only"]),
        (&json!(true), &json!(false))
    );
}

async fn viewers_see_changed_secrets_masked_and_admins_see_them(stack: Stack) {
    // Arrange
    let api = spawn_api(stack, |_| {}).await;
    api.seed(TENANT_A, DEV_A1, &export(OLD_SECRET, 1500), 10)
        .await;
    let id = api
        .seed(TENANT_A, DEV_A1, &export(NEW_SECRET, 9000), 5)
        .await;
    let viewer = api.token("vic", TENANT_A, Role::Viewer);
    let admin = api.token("ada", TENANT_A, Role::Admin);

    // Act
    let masked = api
        .snapshot_diff(TENANT_A, DEV_A1, id, "format=semantic", &viewer)
        .await
        .text()
        .await
        .expect("body");
    let shown = json_ok(
        api.snapshot_diff(TENANT_A, DEV_A1, id, "format=semantic", &admin)
            .await,
        200,
    )
    .await;

    // Assert
    assert!(
        !masked.contains(OLD_SECRET) && !masked.contains(NEW_SECRET),
        "a secret leaked into the viewer's semantic diff"
    );
    let masked: Value = serde_json::from_str(&masked).expect("JSON body");
    let expected = |old: &str, new: &str| {
        json!({"changes": [
            {"menu": "/interface ethernet", "item": "ether1", "kind": "modified",
             "properties": [{"name": "mtu", "old": "1500", "new": "9000"}],
             "old_index": 0, "new_index": 0},
            {"menu": "/interface wireless security-profiles", "item": "office", "kind": "modified",
             "properties": [{"name": "wpa2-pre-shared-key", "old": old, "new": new}],
             "old_index": 0, "new_index": 0},
        ], "status_only": false})
    };
    assert!(
        masked == expected("********", "******** (changed)"),
        "the viewer sees the change, masked"
    );
    assert!(
        shown == expected(OLD_SECRET, NEW_SECRET),
        "the admin sees both values"
    );
}

async fn an_unknown_format_is_refused_with_400(stack: Stack) {
    // Arrange
    let api = spawn_api(stack, |_| {}).await;
    let ids = api.seed_versions(TENANT_A, DEV_A1, 2).await;
    let token = api.token("alice", TENANT_A, Role::Viewer);

    for query in [
        "format=xml",
        "format=",
        "format=SEMANTIC",
        "format=semantic%00",
    ] {
        // Act
        let resp = api
            .snapshot_diff(TENANT_A, DEV_A1, ids[1], query, &token)
            .await;

        // Assert
        let problem = assert_problem(resp, 400, "bad_query").await;
        assert_eq!(
            problem["detail"], "format must be `unified` or `semantic`",
            "{query}"
        );
    }
    assert_problem(
        api.snapshot_diff(TENANT_A, DEV_A1, 999_999, "format=semantic", &token)
            .await,
        404,
        "snapshot_not_found",
    )
    .await;
    let unified = api
        .snapshot_diff(TENANT_A, DEV_A1, ids[1], "format=unified", &token)
        .await;
    assert_eq!(unified.status().as_u16(), 200);
}

async fn the_openapi_document_describes_the_semantic_diff(stack: Stack) {
    // Arrange
    let api = spawn_api(stack, |_| {}).await;

    // Act
    let doc = json_ok(api.openapi().await, 200).await;

    // Assert
    let diff = &doc["paths"]["/api/tenants/{tid}/devices/{did}/config-snapshots/{sid}/diff"]["get"];
    let params: Vec<&str> = diff["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert!(params.contains(&"format"), "format is documented");
    let ok = &diff["responses"]["200"]["content"];
    assert!(ok["text/x-diff; charset=utf-8"].is_object());
    assert_eq!(
        ok["application/json"]["schema"]["$ref"],
        "#/components/schemas/SemanticDiffResponse"
    );
    assert!(diff["responses"]["400"].is_object());
    let schemas = &doc["components"]["schemas"];
    for name in [
        "SemanticDiffResponse",
        "ItemChangeResponse",
        "PropertyChangeResponse",
    ] {
        assert!(schemas[name].is_object(), "{name} is in the document");
    }
    for name in ["HistoryEntryResponse", "SnapshotResponse"] {
        assert_eq!(
            schemas[name]["properties"]["status_only"]["type"], "boolean",
            "{name} documents status_only"
        );
    }
}

on_both_stacks!(
    semantic_diffs_list_items_against_the_previous_or_a_chosen_snapshot,
    a_version_with_only_new_status_comments_is_status_only,
    viewers_see_changed_secrets_masked_and_admins_see_them,
    an_unknown_format_is_refused_with_400,
    the_openapi_document_describes_the_semantic_diff,
);
