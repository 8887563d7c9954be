//! Liveness, readiness, Prometheus metrics and the OpenAPI document.

use cfgsnap::api::Role;

use super::{DEV_A1, Stack, TENANT_A, assert_problem, json_ok, on_both_stacks, spawn_api};

/// Every route the server serves: (method, OpenAPI path, needs a token).
const ROUTES: &[(&str, &str, bool)] = &[
    ("get", "/healthz", false),
    ("get", "/readyz", false),
    ("get", "/metrics", false),
    ("get", "/api/openapi.json", false),
    ("get", "/api/tenants/{tid}/devices", true),
    ("get", "/api/tenants/{tid}/devices/{did}", true),
    (
        "post",
        "/api/tenants/{tid}/devices/{did}/ssh-host-key/reset",
        true,
    ),
    (
        "post",
        "/api/tenants/{tid}/devices/{did}/config-snapshot/trigger",
        true,
    ),
    (
        "get",
        "/api/tenants/{tid}/devices/{did}/config-snapshots",
        true,
    ),
    (
        "get",
        "/api/tenants/{tid}/devices/{did}/config-snapshots/{sid}",
        true,
    ),
    (
        "get",
        "/api/tenants/{tid}/devices/{did}/config-snapshots/{sid}/content",
        true,
    ),
    (
        "get",
        "/api/tenants/{tid}/devices/{did}/config-snapshots/{sid}/download",
        true,
    ),
    (
        "get",
        "/api/tenants/{tid}/devices/{did}/config-snapshots/{sid}/diff",
        true,
    ),
    (
        "get",
        "/api/tenants/{tid}/devices/{did}/config-history",
        true,
    ),
    ("get", "/api/tenants/{tid}/audit-events", true),
    ("get", "/api/tenants/{tid}/search", true),
    ("get", "/api/tenants/{tid}/notifications", true),
    (
        "post",
        "/api/tenants/{tid}/notifications/{nid}/redeliver",
        true,
    ),
    ("post", "/api/auth/login", false),
    ("post", "/api/auth/logout", true),
    ("get", "/api/auth/me", true),
    ("get", "/api/auth/sessions", true),
    ("delete", "/api/auth/sessions/{sid}", true),
    ("post", "/api/auth/password", true),
    ("get", "/api/tenants/{tid}/users", true),
    ("post", "/api/tenants/{tid}/users", true),
    ("patch", "/api/tenants/{tid}/users/{username}", true),
    ("delete", "/api/tenants/{tid}/users/{username}", true),
];

async fn healthz_is_always_ok(stack: Stack) {
    let api = spawn_api(stack, |_| {}).await;
    api.store.close().await;
    let body = json_ok(api.healthz().await, 200).await;
    assert_eq!(body["status"], "ok");
}

async fn readyz_reports_each_dependency(stack: Stack) {
    let api = spawn_api(stack, |_| {}).await;
    let body = json_ok(api.readyz().await, 200).await;
    assert_eq!(body["status"], "ok");
    assert_eq!(body["checks"]["store"], "ok");
    assert_eq!(body["checks"]["lock"], "ok");
    assert!(body["checks"]["bus"].is_string());

    api.store.close().await;
    let body = assert_problem(api.readyz().await, 503, "not_ready").await;
    assert_eq!(body["failed"], serde_json::json!(["store"]));
}

async fn readyz_names_a_lock_backend_that_is_down(stack: Stack) {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let api = spawn_api(stack, |s| s.lock.url = format!("redis://127.0.0.1:{port}")).await;
    let body = assert_problem(api.readyz().await, 503, "not_ready").await;
    assert_eq!(body["failed"], serde_json::json!(["lock"]));
}

async fn metrics_count_requests_by_route_pattern(stack: Stack) {
    // Arrange
    let api = spawn_api(stack, |_| {}).await;
    let token = api.token("alice", TENANT_A, Role::Viewer);
    api.get_device(TENANT_A, DEV_A1, &token).await;
    api.get_device(TENANT_A, "nope", &token).await;
    api.get_device(TENANT_A, DEV_A1, "").await;
    api.get("/no/such/route", "").await;

    // Act
    let resp = api.metrics().await;

    // Assert
    assert_eq!(resp.status().as_u16(), 200);
    let content_type = resp.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let text = resp.text().await.expect("body");
    let route = "/api/tenants/{tid}/devices/{did}";
    for status in [200, 404, 401] {
        let series = format!(
            r#"cfgsnap_http_requests_total{{method="GET",route="{route}",status="{status}"}} 1"#
        );
        assert!(text.contains(&series), "missing {series} in:\n{text}");
    }
    assert!(text.contains(r#"route="unmatched",status="404""#), "{text}");
    assert!(
        !text.contains(DEV_A1) && !text.contains("nope"),
        "raw ids became labels:\n{text}"
    );
    for family in [
        "cfgsnap_backups_in_flight",
        "cfgsnap_backup_duration_seconds",
        "cfgsnap_ingest",
        "cfgsnap_trigger_responses",
    ] {
        assert!(
            text.contains(&format!("# TYPE {family}")),
            "{family} missing"
        );
    }
}

async fn the_openapi_document_lists_every_route(stack: Stack) {
    let api = spawn_api(stack, |_| {}).await;
    let doc = json_ok(api.openapi().await, 200).await;

    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "{}",
        doc["openapi"]
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let paths = doc["paths"].as_object().expect("paths");
    for (method, path, secured) in ROUTES {
        let op = &paths
            .get(*path)
            .unwrap_or_else(|| panic!("{path} missing from the document"))[*method];
        assert!(op.is_object(), "{method} {path} missing");
        assert_eq!(
            op["security"].is_array(),
            *secured,
            "security of {method} {path}"
        );
        let responses = op["responses"].as_object().expect("responses");
        if *secured {
            // 403 is for tenant routes (a tenant or role the caller lacks).
            let tenant_route = path.starts_with("/api/tenants/");
            for status in ["200", "401", "403"] {
                if status == "403" && !tenant_route {
                    continue;
                }
                let any_success = status == "200" && responses.keys().any(|k| k.starts_with('2'));
                assert!(
                    responses.contains_key(status) || any_success,
                    "{method} {path} lacks {status}"
                );
            }
            let problem = &responses["401"]["content"]["application/problem+json"];
            assert!(
                problem.is_object(),
                "{method} {path}: 401 is not problem+json"
            );
        }
    }
    let served: usize = paths
        .values()
        .map(|p| p.as_object().map_or(0, |o| o.len()))
        .sum();
    assert_eq!(
        served,
        ROUTES.len(),
        "the document lists routes the server does not serve"
    );
    let trigger =
        &paths["/api/tenants/{tid}/devices/{did}/config-snapshot/trigger"]["post"]["responses"];
    for status in [
        "201", "400", "401", "403", "404", "409", "429", "502", "503", "504",
    ] {
        assert!(trigger[status].is_object(), "trigger lacks {status}");
    }
    assert!(
        doc["components"]["schemas"]["Problem"].is_object(),
        "Problem schema missing"
    );
}

/// Every route of the OpenAPI document, asked with a method it does not
/// have, answers `405` with an `Allow` header naming exactly the methods the
/// document lists for it (RFC 9110 §15.5.6).
async fn every_route_answers_405_with_an_allow_header_naming_its_methods(stack: Stack) {
    // Arrange
    let api = spawn_api(stack, |_| {}).await;
    let doc = json_ok(api.openapi().await, 200).await;
    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.len() >= 20, "only {} paths documented", paths.len());

    for (path, ops) in paths {
        let mut documented: Vec<String> = ops
            .as_object()
            .expect("operations")
            .keys()
            .map(|m| m.to_uppercase())
            .collect();
        documented.sort();
        let other = ["PUT", "PATCH", "POST", "DELETE", "GET"]
            .into_iter()
            .find(|m| !documented.iter().any(|d| d == m))
            .expect("a method the route lacks");
        let url = path
            .replace("{tid}", TENANT_A)
            .replace("{did}", DEV_A1)
            .replace("{sid}", "1")
            .replace("{nid}", "1")
            .replace("{username}", "someone");

        // Act
        let method = reqwest::Method::from_bytes(other.as_bytes()).expect("method");
        let resp = api
            .client
            .request(method, format!("{}{url}", api.address))
            .send()
            .await
            .expect("request sent");

        // Assert
        assert_eq!(resp.status().as_u16(), 405, "{other} {path}");
        let allow = resp
            .headers()
            .get(reqwest::header::ALLOW)
            .unwrap_or_else(|| panic!("{other} {path}: no Allow header"))
            .to_str()
            .expect("ASCII")
            .to_owned();
        let mut allowed: Vec<String> = allow.split(',').map(|m| m.trim().to_owned()).collect();
        allowed.sort();
        assert_eq!(allowed, documented, "Allow of {path}");
        assert_problem(resp, 405, "method_not_allowed").await;
    }
}

on_both_stacks!(
    every_route_answers_405_with_an_allow_header_naming_its_methods,
    healthz_is_always_ok,
    readyz_reports_each_dependency,
    readyz_names_a_lock_backend_that_is_down,
    metrics_count_requests_by_route_pattern,
    the_openapi_document_lists_every_route,
);
