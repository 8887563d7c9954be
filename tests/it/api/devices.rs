//! Devices and their backup state, and the admin's host-key reset.

use cfgsnap::api::Role;
use cfgsnap::store::device::Attempt;

use super::{
    DEV_A1, DEV_A1_NAME, DEV_A2, DEV_B1, Stack, TENANT_A, TENANT_B, assert_problem, json_ok,
    on_both_stacks, spawn_api,
};

async fn list_devices_returns_the_tenants_devices_with_backup_state(stack: Stack) {
    // Arrange
    let api = spawn_api(stack, |_| {}).await;
    let newest = api.seed_versions(TENANT_A, DEV_A1, 2).await[1];
    api.store
        .record_attempt(
            DEV_A2,
            chrono::Utc::now(),
            &Attempt::Failed {
                error_kind: "auth_failed".into(),
                next_attempt_at: None,
                blocked_reason: Some("auth_failed".into()),
            },
        )
        .await
        .expect("attempt recorded");
    let token = api.token("alice", TENANT_A, Role::Viewer);

    // Act
    let body = json_ok(api.list_devices(TENANT_A, &token).await, 200).await;

    // Assert
    let items = body["items"].as_array().expect("items");
    let ids: Vec<&str> = items
        .iter()
        .filter_map(|d| d["device_id"].as_str())
        .collect();
    assert_eq!(ids, [DEV_A1, DEV_A2], "only tenant A's devices, by id");
    let a1 = &items[0];
    assert_eq!(a1["name"], DEV_A1_NAME);
    assert_eq!(a1["tenant_id"], TENANT_A);
    assert_eq!(a1["newest_snapshot_id"], newest);
    assert_eq!(a1["newest_sha256_hash"].as_str().map(str::len), Some(64));
    for field in [
        "last_attempt_at",
        "last_success_at",
        "last_status",
        "last_error_kind",
        "consecutive_failures",
        "blocked_reason",
    ] {
        assert!(a1.get(field).is_some(), "field {field} missing");
    }
    let a2 = &items[1];
    assert_eq!(a2["last_status"], "failed");
    assert_eq!(a2["last_error_kind"], "auth_failed");
    assert_eq!(a2["consecutive_failures"], 1);
    assert_eq!(a2["blocked_reason"], "auth_failed");
    assert_eq!(a2["newest_snapshot_id"], serde_json::Value::Null);
}

async fn get_device_returns_one_device_or_404(stack: Stack) {
    let api = spawn_api(stack, |_| {}).await;
    let token = api.token("alice", TENANT_A, Role::Viewer);

    let body = json_ok(api.get_device(TENANT_A, DEV_A2, &token).await, 200).await;
    assert_eq!(body["device_id"], DEV_A2);
    assert_eq!(body["name"], DEV_A2, "the name defaults to the id");

    assert_problem(
        api.get_device(TENANT_A, "nope", &token).await,
        404,
        "device_not_found",
    )
    .await;
    // Tenant B's device through tenant A's path looks exactly like an unknown one.
    assert_problem(
        api.get_device(TENANT_A, DEV_B1, &token).await,
        404,
        "device_not_found",
    )
    .await;
}

async fn an_admin_resets_a_pinned_host_key_and_it_is_audited(stack: Stack) {
    // Arrange
    let api = spawn_api(stack, |_| {}).await;
    api.store
        .pin_host_key(DEV_A1, "SHA256:abcdef")
        .await
        .expect("pinned");
    let admin = api.token("carol", TENANT_A, Role::Admin);

    // Act
    let resp = api.reset_host_key(TENANT_A, DEV_A1, &admin).await;

    // Assert
    assert_eq!(resp.status().as_u16(), 204);
    let device = json_ok(api.get_device(TENANT_A, DEV_A1, &admin).await, 200).await;
    assert_eq!(device["host_key_fingerprint"], serde_json::Value::Null);
    let audit = json_ok(api.list_audit_events(TENANT_A, "", &admin).await, 200).await;
    let reset = audit["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|e| e["action"] == "ssh_host_key_reset")
        .expect("reset audited");
    assert_eq!(reset["actor"], "carol");
    assert_eq!(reset["device_id"], DEV_A1);
    assert_eq!(reset["detail"]["previous_fingerprint"], "SHA256:abcdef");
}

async fn host_key_reset_needs_admin_and_a_visible_device(stack: Stack) {
    let api = spawn_api(stack, |_| {}).await;
    for role in [Role::Viewer, Role::Operator] {
        let token = api.token("bob", TENANT_A, role);
        assert_problem(
            api.reset_host_key(TENANT_A, DEV_A1, &token).await,
            403,
            "forbidden",
        )
        .await;
    }
    let admin = api.token("carol", TENANT_A, Role::Admin);
    assert_problem(
        api.reset_host_key(TENANT_A, "nope", &admin).await,
        404,
        "device_not_found",
    )
    .await;
    assert_problem(
        api.reset_host_key(TENANT_A, DEV_B1, &admin).await,
        404,
        "device_not_found",
    )
    .await;
    assert_problem(
        api.reset_host_key(TENANT_B, DEV_B1, &admin).await,
        403,
        "forbidden",
    )
    .await;
    assert_problem(
        api.reset_host_key(TENANT_A, DEV_A1, "").await,
        401,
        "missing_token",
    )
    .await;
    // GET on a POST route is a problem document too.
    let resp = api
        .get(
            &format!("/api/tenants/{TENANT_A}/devices/{DEV_A1}/ssh-host-key/reset"),
            &admin,
        )
        .await;
    assert_problem(resp, 405, "method_not_allowed").await;
}

on_both_stacks!(
    list_devices_returns_the_tenants_devices_with_backup_state,
    get_device_returns_one_device_or_404,
    an_admin_resets_a_pinned_host_key_and_it_is_audited,
    host_key_reset_needs_admin_and_a_visible_device,
);
