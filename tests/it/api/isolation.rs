//! Tenant isolation (a caller of tenant A sees nothing of tenant B, guessed
//! ids included), hostile path ids (always 4xx, never 500), oversized bodies
//! and unknown routes as problem documents.

use cfgsnap::api::Role;

use super::{
    DEV_A1, DEV_B1, Stack, TENANT_A, TENANT_B, TestApi, assert_problem, on_both_stacks, spawn_api,
};

/// Every tenant-scoped route of `tid`/`did` with snapshot `sid`: (method,
/// path). Shared with the hostile-input tests, which put bad ids in place.
pub(crate) fn tenant_routes(
    tid: &str,
    did: &str,
    sid: impl std::fmt::Display,
) -> Vec<(&'static str, String)> {
    let dev = format!("/api/tenants/{tid}/devices/{did}");
    let snap = format!("{dev}/config-snapshots/{sid}");
    vec![
        ("GET", format!("/api/tenants/{tid}/devices")),
        ("GET", dev.clone()),
        ("POST", format!("{dev}/ssh-host-key/reset")),
        ("POST", format!("{dev}/config-snapshot/trigger")),
        ("GET", format!("{dev}/config-snapshots")),
        ("GET", snap.clone()),
        ("GET", format!("{snap}/content")),
        ("GET", format!("{snap}/download")),
        ("GET", format!("{snap}/diff")),
        ("GET", format!("{dev}/config-history")),
        ("GET", format!("/api/tenants/{tid}/audit-events")),
    ]
}

async fn call(api: &TestApi, method: &str, path: &str, token: &str) -> reqwest::Response {
    match method {
        "POST" => api.post(path, token).await,
        _ => api.get(path, token).await,
    }
}

async fn a_caller_of_tenant_a_sees_nothing_of_tenant_b(stack: Stack) {
    // Arrange
    let api = spawn_api(stack, |_| {}).await;
    let b_ids = api.seed_versions(TENANT_B, DEV_B1, 2).await;
    let b_hash = cfgsnap::backup::normalize::sha256_hex(&super::config_text(1));

    for role in [Role::Viewer, Role::Operator, Role::Admin] {
        let token = api.token("mallory", TENANT_A, role);
        // Act + Assert: tenant B's routes are forbidden, real and guessed ids alike.
        for sid in b_ids.iter().copied().chain(1..=3) {
            for (method, path) in tenant_routes(TENANT_B, DEV_B1, sid) {
                let resp = call(&api, method, &path, &token).await;
                let body = assert_problem(resp, 403, "forbidden").await;
                assert!(
                    !body.to_string().contains(&b_hash),
                    "{method} {path} leaked a hash"
                );
            }
            // Tenant B's device through tenant A's own routes is unknown.
            for (method, path) in tenant_routes(TENANT_A, DEV_B1, sid).into_iter().skip(1) {
                if path.ends_with("/trigger") || path.ends_with("/audit-events") {
                    continue;
                }
                let resp = call(&api, method, &path, &token).await;
                let status = resp.status().as_u16();
                let body = resp.text().await.expect("body");
                assert!(
                    status == 404 || (status == 403 && method == "POST"),
                    "{role:?} {method} {path}: {status}"
                );
                assert!(!body.contains(&b_hash), "{method} {path} leaked a hash");
            }
        }
    }
}

async fn hostile_ids_get_400_bad_id(stack: Stack) {
    let api = spawn_api(stack, |_| {}).await;
    let token = api.token("root", TENANT_A, Role::SuperAdmin);
    let long = "a".repeat(10 * 1024);
    for bad in [
        "a.b",
        "*",
        "%3E",
        "a%20b",
        "%C3%A9",
        "caf%C3%A9",
        "a:b",
        "%00",
        &"x".repeat(65),
        &long,
    ] {
        assert_problem(api.list_devices(bad, &token).await, 400, "bad_id").await;
        assert_problem(api.get_device(TENANT_A, bad, &token).await, 400, "bad_id").await;
        let snapshots = api.list_snapshots(TENANT_A, bad, "", &token).await;
        assert_problem(snapshots, 400, "bad_id").await;
    }
    let digits = "9".repeat(10 * 1024);
    assert_problem(
        api.get_snapshot(TENANT_A, DEV_A1, &digits, &token).await,
        400,
        "bad_id",
    )
    .await;
    // Ids are checked before the token: no token needed to learn an id is malformed.
    assert_problem(api.list_devices("a.b", "").await, 400, "bad_id").await;
}

async fn raw_hostile_paths_never_get_a_5xx(stack: Stack) {
    let api = spawn_api(stack, |_| {}).await;
    let token = api.token("root", TENANT_A, Role::SuperAdmin);
    let long = "b".repeat(10 * 1024);
    let paths = [
        "/api/tenants/%2e%2e/devices".to_owned(),
        "/api/tenants/../devices".to_owned(),
        format!("/api/tenants/{TENANT_A}/devices/%2e%2e"),
        format!("/api/tenants/{TENANT_A}/devices/%2E%2E/config-snapshots"),
        format!("/api/tenants/{TENANT_A}/devices/%2e%2e%2f%2e%2e/config-history"),
        format!("/api/tenants/{TENANT_A}/devices/{DEV_A1}/config-snapshots/%2e%2e/content"),
        "/api/tenants/\u{e9}/devices".to_owned(),
        "/api/tenants/\u{1F600}/devices".to_owned(),
        "/api/tenants/a>b/devices".to_owned(),
        "/api/tenants/a*b/devices".to_owned(),
        format!("/api/tenants/{long}/devices"),
        format!("/api/tenants/{TENANT_A}/devices/{long}/config-snapshots/1/diff?against={long}"),
        format!("/api/tenants/{TENANT_A}/devices/{DEV_A1}/config-snapshots?limit={long}"),
    ];
    for path in &paths {
        for auth in [String::new(), format!("Authorization: Bearer {token}\r\n")] {
            let request = format!(
                "GET {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Connection: close\r\n\r\n"
            );
            let status = api.raw_status(request.as_bytes()).await;
            let shown: String = path.chars().take(80).collect();
            assert!((400..500).contains(&status), "{shown}: got {status}");
        }
    }
}

async fn oversized_bodies_get_413(stack: Stack) {
    let api = spawn_api(stack, |_| {}).await;
    let token = api.token("carol", TENANT_A, Role::Admin);
    let url = format!(
        "{}/api/tenants/{TENANT_A}/devices/{DEV_A1}/ssh-host-key/reset",
        api.address
    );
    let resp = api
        .client
        .post(url)
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(vec![b' '; 1024 * 1024])
        .send()
        .await
        .expect("sent");
    assert_problem(resp, 413, "payload_too_large").await;
    // Announced, not sent: refused from the head alone.
    let request = format!(
        "POST /api/tenants/{TENANT_A}/devices/{DEV_A1}/ssh-host-key/reset HTTP/1.1\r\nHost: x\r\n\
         Authorization: Bearer {token}\r\nContent-Length: 10000000000\r\nConnection: close\r\n\r\n"
    );
    let status = api.raw_status(request.as_bytes()).await;
    assert!(status == 413 || status == 400, "got {status}");
}

async fn unknown_routes_are_problem_documents(stack: Stack) {
    let api = spawn_api(stack, |_| {}).await;
    let token = api.token("alice", TENANT_A, Role::Viewer);
    // `/` is the web UI's entry (a redirect to `/ui/`), not an API route.
    for path in [
        "/nowhere",
        "/api",
        "/api/tenants",
        &format!("/api/tenants/{TENANT_A}/devices/"),
    ] {
        assert_problem(api.get(path, &token).await, 404, "not_found").await;
    }
    assert_problem(api.post("/healthz", "").await, 405, "method_not_allowed").await;
}

on_both_stacks!(
    a_caller_of_tenant_a_sees_nothing_of_tenant_b,
    hostile_ids_get_400_bad_id,
    raw_hostile_paths_never_get_a_5xx,
    oversized_bodies_get_413,
    unknown_routes_are_problem_documents,
);
