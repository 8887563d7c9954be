//! Search (DESIGN.md §15) on both stacks: the newest versions with context,
//! line lives through history (across retention too), tenant isolation,
//! masked secrets for viewers, pages, the deadline, the cache, and bad
//! queries. Config text and secret values stay out of assertion messages.

use std::time::Duration;

use cfgsnap::account::Role;
use chrono::{Duration as ChronoDuration, Utc};
use serde_json::Value;

use super::{
    DEV_A1, DEV_A2, DEV_B1, Stack, TENANT_A, TENANT_B, TestApi, assert_problem, spawn_api,
};

const RADIUS: &str = "add address=203.0.113.7 secret=r4d1us-s3cr3t-91 service=login";
const PSK: &str = "psk-search-5e1f0a77";

fn export(identity: &str, extra: &str) -> String {
    format!(
        "# model = RB5009\n/interface bridge\nadd name=bridge\n/radius\n{extra}\n\
         /interface wireless security-profiles\n\
         add authentication-types=wpa2-psk mode=dynamic-keys name=office wpa2-pre-shared-key={PSK}\n\
         /system identity\nset name={identity}\n"
    )
}

async fn search(
    api: &TestApi,
    tid: &str,
    params: &[(&str, &str)],
    token: &str,
) -> reqwest::Response {
    api.client
        .get(format!("{}/api/tenants/{tid}/search", api.address))
        .query(params)
        .bearer_auth(token)
        .send()
        .await
        .expect("request sent")
}

async fn ok(resp: reqwest::Response) -> Value {
    assert_eq!(resp.status(), 200, "search status");
    resp.json().await.expect("json body")
}

fn devices(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["device_id"].as_str().expect("device_id").to_owned())
        .collect()
}

async fn current_hits_come_with_context_from_this_tenant_only(stack: Stack) {
    // Arrange
    let api = spawn_api(stack, |_| {}).await;
    api.seed(TENANT_A, DEV_A2, &export("a2", RADIUS), 5).await;
    let a1 = api.seed(TENANT_A, DEV_A1, &export("a1", RADIUS), 5).await;
    api.seed(TENANT_B, DEV_B1, &export("b1", RADIUS), 5).await;
    let viewer = api.token("vic", TENANT_A, Role::Viewer);

    // Act
    let page = ok(search(&api, TENANT_A, &[("q", "203.0.113.7")], &viewer).await).await;
    let glob = ok(search(
        &api,
        TENANT_A,
        &[("q", "203.0.113.7"), ("device", "*a2")],
        &viewer,
    )
    .await)
    .await;
    let other = search(&api, TENANT_B, &[("q", "x")], &viewer).await;

    // Assert
    assert_eq!(
        devices(&page),
        [DEV_A1, DEV_A2],
        "devices sorted by id, tenant B absent"
    );
    let hit = &page["items"][0];
    assert_eq!(hit["snapshot_id"], a1);
    assert_eq!(hit["line_no"], 5);
    assert_eq!(
        hit["before"],
        serde_json::json!(["add name=bridge", "/radius"])
    );
    assert_eq!(hit["after"][0], "/interface wireless security-profiles");
    assert_eq!(page["partial"], false);
    assert_eq!(page["next_cursor"], Value::Null);
    assert_eq!(devices(&glob), [DEV_A2]);
    assert_problem(other, 403, "forbidden").await;
}

async fn viewers_search_masked_text_and_admins_the_stored_one(stack: Stack) {
    // Arrange
    let api = spawn_api(stack, |_| {}).await;
    api.seed(TENANT_A, DEV_A1, &export("a1", RADIUS), 5).await;
    let viewer = api.token("vic", TENANT_A, Role::Viewer);
    let admin = api.token("ada", TENANT_A, Role::Admin);

    // Act
    let by_viewer = ok(search(&api, TENANT_A, &[("q", PSK)], &viewer).await).await;
    let prefix = ok(search(
        &api,
        TENANT_A,
        &[("q", "pre-shared-key=psk-"), ("regex", "false")],
        &viewer,
    )
    .await)
    .await;
    let by_admin = ok(search(&api, TENANT_A, &[("q", PSK)], &admin).await).await;
    let history =
        ok(search(&api, TENANT_A, &[("q", PSK), ("scope", "history")], &viewer).await).await;

    // Assert
    assert_eq!(
        by_viewer["items"].as_array().map(Vec::len),
        Some(0),
        "a viewer finds the secret"
    );
    assert_eq!(
        prefix["items"].as_array().map(Vec::len),
        Some(0),
        "a viewer can guess a secret's prefix"
    );
    assert_eq!(
        history["items"].as_array().map(Vec::len),
        Some(0),
        "a viewer finds the secret in history"
    );
    assert_eq!(devices(&by_admin), [DEV_A1]);
}

async fn history_tells_when_each_matching_line_came_and_went(stack: Stack) {
    // Arrange: the RADIUS line appears in v2 and goes in v4; the bridge
    // line is there throughout.
    let api = spawn_api(stack, |_| {}).await;
    let v1 = api.seed(TENANT_A, DEV_A1, &export("v1", ""), 40).await;
    let v2 = api.seed(TENANT_A, DEV_A1, &export("v2", RADIUS), 30).await;
    api.seed(TENANT_A, DEV_A1, &export("v3", RADIUS), 20).await;
    let v4 = api.seed(TENANT_A, DEV_A1, &export("v4", ""), 10).await;
    let admin = api.token("ada", TENANT_A, Role::Admin);

    // Act
    let radius = ok(search(
        &api,
        TENANT_A,
        &[("q", "203.0.113.7"), ("scope", "history")],
        &admin,
    )
    .await)
    .await;
    let bridge = ok(search(
        &api,
        TENANT_A,
        &[("q", "add name=bridge"), ("scope", "history")],
        &admin,
    )
    .await)
    .await;
    let later = Utc::now() - ChronoDuration::minutes(5);
    let since = ok(search(
        &api,
        TENANT_A,
        &[
            ("q", "203.0.113.7"),
            ("scope", "history"),
            ("since", &later.to_rfc3339()),
        ],
        &admin,
    )
    .await)
    .await;

    // Assert
    let items = radius["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "one life of the RADIUS line");
    assert_eq!(items[0]["added_in"]["snapshot_id"], v2);
    assert_eq!(items[0]["removed_in"]["snapshot_id"], v4);
    assert_eq!(items[0]["added_earlier"], false);
    let bridge = bridge["items"].as_array().expect("items");
    assert_eq!(bridge.len(), 1);
    assert_eq!(bridge[0]["added_in"]["snapshot_id"], v1);
    assert_eq!(bridge[0]["removed_in"], Value::Null, "still present");
    assert_eq!(
        since["items"].as_array().map(Vec::len),
        Some(0),
        "gone before `since`"
    );
}

async fn history_survives_retention_through_the_stored_diff(stack: Stack) {
    // Arrange: v1 and v2 are deleted by retention; v3 added the RADIUS
    // line, the bridge line was there before.
    let api = spawn_api(stack, |_| {}).await;
    let day = 24 * 60;
    api.seed(TENANT_A, DEV_A1, &export("v1", ""), 30 * day)
        .await;
    api.seed(TENANT_A, DEV_A1, &export("v2", ""), 20 * day)
        .await;
    let v3 = api
        .seed(TENANT_A, DEV_A1, &export("v3", RADIUS), 10 * day)
        .await;
    api.seed(TENANT_A, DEV_A1, &export("v4", RADIUS), day).await;
    let deleted = api
        .store
        .apply_retention(Utc::now(), 15, 1)
        .await
        .expect("retention");
    assert_eq!(deleted, 2);
    let admin = api.token("ada", TENANT_A, Role::Admin);

    // Act
    let radius = ok(search(
        &api,
        TENANT_A,
        &[("q", "203.0.113.7"), ("scope", "history")],
        &admin,
    )
    .await)
    .await;
    let bridge = ok(search(
        &api,
        TENANT_A,
        &[("q", "add name=bridge"), ("scope", "history")],
        &admin,
    )
    .await)
    .await;

    // Assert
    assert_eq!(radius["items"][0]["added_in"]["snapshot_id"], v3);
    assert_eq!(
        radius["items"][0]["added_earlier"], false,
        "v3's stored diff added it"
    );
    assert_eq!(bridge["items"][0]["added_in"]["snapshot_id"], v3);
    assert_eq!(
        bridge["items"][0]["added_earlier"], true,
        "it was in a deleted version"
    );
}

async fn pages_continue_with_the_cursor_without_repeats(stack: Stack) {
    // Arrange: 3 hits on dev-a1, 3 on dev-a2.
    let api = spawn_api(stack, |_| {}).await;
    let three = format!("{RADIUS}\n{RADIUS} x\n{RADIUS} y");
    api.seed(TENANT_A, DEV_A1, &export("a1", &three), 5).await;
    api.seed(TENANT_A, DEV_A2, &export("a2", &three), 5).await;
    let viewer = api.token("vic", TENANT_A, Role::Viewer);

    // Act
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut params = vec![("q", "203.0.113.7"), ("limit", "4")];
        if let Some(c) = &cursor {
            params.push(("cursor", c));
        }
        let page = ok(search(&api, TENANT_A, &params, &viewer).await).await;
        pages += 1;
        for item in page["items"].as_array().expect("items") {
            seen.push((item["device_id"].clone(), item["line_no"].clone()));
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
        assert!(pages < 5, "pages never end");
    }

    // Assert
    assert_eq!(pages, 2);
    assert_eq!(seen.len(), 6);
    let mut unique = seen.clone();
    unique.dedup();
    assert_eq!(unique.len(), 6, "a hit repeated across pages");
}

async fn a_tiny_deadline_answers_partial_with_a_cursor(stack: Stack) {
    // Arrange
    let api = spawn_api(stack, |s| s.search.deadline = Duration::from_nanos(1)).await;
    api.seed(TENANT_A, DEV_A1, &export("a1", RADIUS), 5).await;
    api.seed(TENANT_A, DEV_A2, &export("a2", RADIUS), 5).await;
    let viewer = api.token("vic", TENANT_A, Role::Viewer);

    // Act
    let current = ok(search(&api, TENANT_A, &[("q", "203.0.113.7")], &viewer).await).await;
    let history = ok(search(
        &api,
        TENANT_A,
        &[("q", "203.0.113.7"), ("scope", "history")],
        &viewer,
    )
    .await)
    .await;

    // Assert
    for page in [&current, &history] {
        assert_eq!(page["partial"], true);
        assert!(
            page["next_cursor"].is_string(),
            "partial pages say where to continue"
        );
    }
}

async fn the_cache_never_serves_a_replaced_version(stack: Stack) {
    // Arrange
    let api = spawn_api(stack, |s| s.search.cache_bytes = 1 << 20).await;
    api.seed(TENANT_A, DEV_A1, &export("a1", RADIUS), 5).await;
    let viewer = api.token("vic", TENANT_A, Role::Viewer);
    let first = ok(search(&api, TENANT_A, &[("q", "203.0.113.7")], &viewer).await).await;

    // Act
    api.seed(TENANT_A, DEV_A1, &export("a1", ""), 1).await;
    let after = ok(search(&api, TENANT_A, &[("q", "203.0.113.7")], &viewer).await).await;
    let again = ok(search(&api, TENANT_A, &[("q", "name=a1")], &viewer).await).await;

    // Assert
    assert_eq!(devices(&first), [DEV_A1]);
    assert_eq!(
        after["items"].as_array().map(Vec::len),
        Some(0),
        "a stale cached version"
    );
    assert_eq!(devices(&again), [DEV_A1]);
}

async fn bad_queries_are_400_bad_query(stack: Stack) {
    // Arrange
    let api = spawn_api(stack, |_| {}).await;
    api.seed(TENANT_A, DEV_A1, &export("a1", RADIUS), 5).await;
    let viewer = api.token("vic", TENANT_A, Role::Viewer);
    let long = "a".repeat(1025);
    let cases: Vec<Vec<(&str, &str)>> = vec![
        vec![],
        vec![("q", "")],
        vec![("q", &long)],
        vec![("q", "(unclosed"), ("regex", "true")],
        vec![("q", "\\w{1000}{1000}"), ("regex", "true")],
        vec![("q", "x"), ("cursor", "not-a-cursor")],
        vec![("q", "x"), ("scope", "everything")],
        vec![("q", "x"), ("limit", "0")],
        vec![("q", "x"), ("limit", "-1")],
        vec![("q", "x"), ("device", "../etc")],
        vec![("q", "x"), ("since", "yesterday")],
        vec![("q", "x"), ("regex", "maybe")],
    ];

    // Act + Assert
    for params in cases {
        let resp = search(&api, TENANT_A, &params, &viewer).await;
        let names: Vec<&str> = params.iter().map(|(k, _)| *k).collect();
        assert_eq!(resp.status(), 400, "params {names:?}");
        let body = assert_problem(resp, 400, "bad_query").await;
        assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()));
    }
}

on_both_stacks!(
    current_hits_come_with_context_from_this_tenant_only,
    viewers_search_masked_text_and_admins_the_stored_one,
    history_tells_when_each_matching_line_came_and_went,
    history_survives_retention_through_the_stored_diff,
    pages_continue_with_the_cursor_without_repeats,
    a_tiny_deadline_answers_partial_with_a_cursor,
    the_cache_never_serves_a_replaced_version,
    bad_queries_are_400_bad_query,
);
