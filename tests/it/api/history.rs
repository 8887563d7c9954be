//! Snapshot listings with cursor pagination, metadata, content, download,
//! diff, the change timeline and the audit log.

use cfgsnap::api::Role;
use serde_json::Value;

use super::{
    DEV_A1, DEV_A2, DEV_B1, Stack, TENANT_A, TENANT_B, assert_problem, config_text, json_ok,
    on_both_stacks, spawn_api, time,
};

fn ids(page: &Value, field: &str) -> Vec<i64> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|s| s[field].as_i64())
        .collect()
}

fn header(resp: &reqwest::Response, name: &str) -> String {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

async fn snapshots_are_listed_newest_first_with_cursor_pagination(stack: Stack) {
    // Arrange
    let api = spawn_api(stack, |_| {}).await;
    let seeded = api.seed_versions(TENANT_A, DEV_A1, 5).await;
    api.seed_versions(TENANT_A, DEV_A2, 1).await;
    let token = api.token("alice", TENANT_A, Role::Viewer);

    // Act: walk the pages.
    let mut pages = Vec::new();
    let mut query = "limit=2".to_owned();
    loop {
        let page = json_ok(
            api.list_snapshots(TENANT_A, DEV_A1, &query, &token).await,
            200,
        )
        .await;
        pages.push(ids(&page, "id"));
        match page["next_before"].as_i64() {
            Some(cursor) => query = format!("limit=2&before={cursor}"),
            None => break,
        }
    }

    // Assert
    let newest_first: Vec<i64> = seeded.iter().rev().copied().collect();
    assert_eq!(
        pages,
        [
            &newest_first[0..2],
            &newest_first[2..4],
            &newest_first[4..5]
        ]
    );
    let all = json_ok(api.list_snapshots(TENANT_A, DEV_A1, "", &token).await, 200).await;
    assert_eq!(ids(&all, "id"), newest_first);
    assert_eq!(all["next_before"], Value::Null);
    let first = &all["items"][0];
    for field in [
        "sha256_hash",
        "collected_at",
        "trigger",
        "routeros_version",
        "size_bytes",
        "lines_added",
        "lines_removed",
    ] {
        assert!(!first[field].is_null(), "{field} missing");
    }
    assert_eq!(first["trigger"], "scheduled");
    assert_eq!(first["lines_added"], 1);
    assert_eq!(
        all["items"][4]["lines_added"],
        Value::Null,
        "the first snapshot has no diff"
    );
}

async fn bad_pagination_parameters_get_400(stack: Stack) {
    let api = spawn_api(stack, |_| {}).await;
    let token = api.token("alice", TENANT_A, Role::Viewer);
    for query in [
        "limit=0",
        "limit=201",
        "limit=abc",
        "limit=-1",
        "before=abc",
        "before=1.5",
    ] {
        let resp = api.list_snapshots(TENANT_A, DEV_A1, query, &token).await;
        assert_problem(resp, 400, "bad_query").await;
    }
}

async fn listings_of_unknown_or_foreign_devices_get_404(stack: Stack) {
    let api = spawn_api(stack, |_| {}).await;
    api.seed_versions(TENANT_B, DEV_B1, 1).await;
    let token = api.token("alice", TENANT_A, Role::Viewer);
    for did in ["nope", DEV_B1] {
        assert_problem(
            api.list_snapshots(TENANT_A, did, "", &token).await,
            404,
            "device_not_found",
        )
        .await;
        assert_problem(
            api.config_history(TENANT_A, did, "", &token).await,
            404,
            "device_not_found",
        )
        .await;
    }
}

async fn snapshot_metadata_and_content_are_served(stack: Stack) {
    // Arrange
    let api = spawn_api(stack, |_| {}).await;
    let ids = api.seed_versions(TENANT_A, DEV_A1, 2).await;
    let token = api.token("alice", TENANT_A, Role::Viewer);

    // Act
    let meta = json_ok(
        api.get_snapshot(TENANT_A, DEV_A1, ids[1], &token).await,
        200,
    )
    .await;
    let resp = api.snapshot_content(TENANT_A, DEV_A1, ids[1], &token).await;

    // Assert
    assert_eq!(meta["id"], ids[1]);
    assert_eq!(meta["previous_snapshot_id"], ids[0]);
    assert_eq!(
        meta["sha256_hash"],
        cfgsnap::backup::normalize::sha256_hex(&config_text(1))
    );
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(header(&resp, "content-type"), "text/plain; charset=utf-8");
    assert_eq!(header(&resp, "cache-control"), "no-store");
    let body = resp.text().await.expect("body");
    assert!(
        body == config_text(1),
        "content differs from what was stored"
    );
}

async fn unknown_and_malformed_snapshot_ids_are_404_and_400(stack: Stack) {
    let api = spawn_api(stack, |_| {}).await;
    let ids = api.seed_versions(TENANT_A, DEV_A1, 1).await;
    let b_ids = api.seed_versions(TENANT_B, DEV_B1, 1).await;
    let token = api.token("alice", TENANT_A, Role::Viewer);
    // Another device's snapshot, or another tenant's, is just as unknown.
    for (did, sid) in [
        (DEV_A1, ids[0] + 1000),
        (DEV_A2, ids[0]),
        (DEV_A1, b_ids[0]),
    ] {
        assert_problem(
            api.get_snapshot(TENANT_A, did, sid, &token).await,
            404,
            "snapshot_not_found",
        )
        .await;
        assert_problem(
            api.snapshot_content(TENANT_A, did, sid, &token).await,
            404,
            "snapshot_not_found",
        )
        .await;
        assert_problem(
            api.download_snapshot(TENANT_A, did, sid, &token).await,
            404,
            "snapshot_not_found",
        )
        .await;
        assert_problem(
            api.snapshot_diff(TENANT_A, did, sid, "", &token).await,
            404,
            "snapshot_not_found",
        )
        .await;
    }
    for sid in [
        "abc",
        "0",
        "-1",
        "1.5",
        "1e3",
        "99999999999999999999",
        "%20",
    ] {
        assert_problem(
            api.get_snapshot(TENANT_A, DEV_A1, sid, &token).await,
            400,
            "bad_id",
        )
        .await;
        assert_problem(
            api.snapshot_content(TENANT_A, DEV_A1, sid, &token).await,
            400,
            "bad_id",
        )
        .await;
    }
}

async fn download_names_the_file_after_the_device_and_time(stack: Stack) {
    let api = spawn_api(stack, |_| {}).await;
    let ids = api.seed_versions(TENANT_A, DEV_A1, 1).await;
    let token = api.token("alice", TENANT_A, Role::Viewer);
    let meta = json_ok(
        api.get_snapshot(TENANT_A, DEV_A1, ids[0], &token).await,
        200,
    )
    .await;
    let stamp = time(&meta["collected_at"]).format("%Y%m%dT%H%M%SZ");

    let resp = api
        .download_snapshot(TENANT_A, DEV_A1, ids[0], &token)
        .await;

    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(header(&resp, "content-type"), "text/plain; charset=utf-8");
    assert_eq!(
        header(&resp, "content-disposition"),
        format!("attachment; filename=\"router-core_1_lab_x-{stamp}.rsc\"")
    );
    let body = resp.text().await.expect("body");
    assert!(
        body == config_text(0),
        "download differs from what was stored"
    );
}

async fn diffs_are_unified_text_against_the_previous_or_a_chosen_snapshot(stack: Stack) {
    // Arrange
    let api = spawn_api(stack, |_| {}).await;
    let ids = api.seed_versions(TENANT_A, DEV_A1, 3).await;
    let other = api.seed_versions(TENANT_A, DEV_A2, 1).await;
    let token = api.token("alice", TENANT_A, Role::Viewer);

    // Act
    let previous = api
        .snapshot_diff(TENANT_A, DEV_A1, ids[2], "", &token)
        .await;
    let chosen = api
        .snapshot_diff(
            TENANT_A,
            DEV_A1,
            ids[2],
            &format!("against={}", ids[0]),
            &token,
        )
        .await;
    let first = api
        .snapshot_diff(TENANT_A, DEV_A1, ids[0], "", &token)
        .await;

    // Assert
    assert_eq!(previous.status().as_u16(), 200);
    assert_eq!(
        header(&previous, "content-type"),
        "text/x-diff; charset=utf-8"
    );
    assert_eq!(header(&previous, "cache-control"), "no-store");
    let text = previous.text().await.expect("body");
    let added = |n: usize| format!("\n+add action=accept chain=input comment=rule{n}");
    assert!(
        text.contains(&added(2)) && !text.contains(&added(1)),
        "diff against the previous snapshot is wrong"
    );
    let text = chosen.text().await.expect("body");
    assert!(
        text.contains(&added(1)) && text.contains(&added(2)),
        "diff against the chosen snapshot is wrong"
    );
    assert_eq!(first.status().as_u16(), 200);
    let against_other = format!("against={}", other[0]);
    assert_problem(
        api.snapshot_diff(TENANT_A, DEV_A1, ids[2], &against_other, &token)
            .await,
        404,
        "snapshot_not_found",
    )
    .await;
    for q in ["against=abc", "against=0", "against=-3"] {
        assert_problem(
            api.snapshot_diff(TENANT_A, DEV_A1, ids[2], q, &token).await,
            400,
            "bad_query",
        )
        .await;
    }
}

async fn the_change_timeline_lists_changed_snapshots_with_summaries(stack: Stack) {
    let api = spawn_api(stack, |_| {}).await;
    let ids = api.seed_versions(TENANT_A, DEV_A1, 4).await;
    let token = api.token("alice", TENANT_A, Role::Viewer);

    let page = json_ok(
        api.config_history(TENANT_A, DEV_A1, "limit=2", &token)
            .await,
        200,
    )
    .await;
    let rest = format!(
        "limit=2&before={}",
        page["next_before"].as_i64().expect("cursor")
    );
    let next = json_ok(
        api.config_history(TENANT_A, DEV_A1, &rest, &token).await,
        200,
    )
    .await;

    assert_eq!(ids_of(&page), [ids[3], ids[2]]);
    assert_eq!(
        ids_of(&next),
        [ids[1]],
        "the first snapshot has no predecessor"
    );
    assert_eq!(next["next_before"], Value::Null);
    let entry = &page["items"][0];
    assert_eq!(entry["lines_added"], 1);
    assert_eq!(entry["lines_removed"], 0);
    assert_eq!(entry["changes"][0]["component"], "ip/firewall/filter");
    assert_eq!(
        entry["changes"][0]["summary"],
        "Added 1 firewall filter rule"
    );
    assert!(entry["collected_at"].is_string());
}

fn ids_of(page: &Value) -> Vec<i64> {
    ids(page, "snapshot_id")
}

async fn the_audit_log_is_paginated_and_tenant_scoped(stack: Stack) {
    let api = spawn_api(stack, |_| {}).await;
    api.seed_versions(TENANT_A, DEV_A1, 3).await;
    api.seed_versions(TENANT_B, DEV_B1, 1).await;
    let admin = api.token("carol", TENANT_A, Role::Admin);

    let mut seen = Vec::new();
    let mut query = "limit=2".to_owned();
    loop {
        let page = json_ok(api.list_audit_events(TENANT_A, &query, &admin).await, 200).await;
        for e in page["items"].as_array().expect("items") {
            assert_eq!(e["tenant_id"], TENANT_A, "another tenant's event leaked");
            assert!(
                e["detail"].is_object() && e["action"].is_string() && e["created_at"].is_string()
            );
            seen.push(e["id"].as_i64().expect("id"));
        }
        match page["next_before"].as_i64() {
            Some(c) => query = format!("limit=2&before={c}"),
            None => break,
        }
    }
    assert!(
        seen.len() >= 3,
        "every created snapshot is audited, got {}",
        seen.len()
    );
    assert!(
        seen.windows(2).all(|w| w[0] > w[1]),
        "newest first without repeats: {seen:?}"
    );
}

on_both_stacks!(
    snapshots_are_listed_newest_first_with_cursor_pagination,
    bad_pagination_parameters_get_400,
    listings_of_unknown_or_foreign_devices_get_404,
    snapshot_metadata_and_content_are_served,
    unknown_and_malformed_snapshot_ids_are_404_and_400,
    download_names_the_file_after_the_device_and_time,
    diffs_are_unified_text_against_the_previous_or_a_chosen_snapshot,
    the_change_timeline_lists_changed_snapshots_with_summaries,
    the_audit_log_is_paginated_and_tenant_scoped,
);
