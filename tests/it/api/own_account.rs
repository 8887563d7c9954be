//! The caller's own account over the API on both stacks: its open sessions
//! listed with the current one marked, one ended (its token stops at once),
//! another user's or an unknown session refused alike, and a password change
//! that checks the current password and ends every session.

use cfgsnap::account::Role;
use serde_json::{Value, json};

use super::{Stack, TENANT_A, TestApi, assert_problem, json_ok, spawn_api};

const PASSWORD: &str = "correct horse battery";

async fn call(
    api: &TestApi,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut request = api
        .client
        .request(method, format!("{}{path}", api.address))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.expect("answered")
}

async fn own_sessions_are_listed_ended_and_a_new_password_ends_them_all(stack: Stack) {
    // Arrange: bob signed in twice, carol once.
    let api = spawn_api(stack, |_| {}).await;
    api.add_user("bob", Some(TENANT_A), Role::Operator, PASSWORD)
        .await;
    api.add_user("carol", Some(TENANT_A), Role::Operator, PASSWORD)
        .await;
    let (first, _) = api.login("bob", PASSWORD).await;
    let (second, _) = api.login("bob", PASSWORD).await;
    let (carol, _) = api.login("carol", PASSWORD).await;
    let token = |v: &Value| v["access_token"].as_str().expect("a token").to_owned();
    let (t1, t2, tc) = (token(&first), token(&second), token(&carol));
    let get = reqwest::Method::GET;

    // Act + Assert: two sessions, the caller's marked.
    let list = json_ok(
        call(&api, get.clone(), "/api/auth/sessions", &t1, None).await,
        200,
    )
    .await;
    let items = list["items"].as_array().expect("items");
    assert_eq!(items.len(), 2);
    assert_eq!(items.iter().filter(|s| s["current"] == true).count(), 1);
    let other = items
        .iter()
        .find(|s| s["current"] == false)
        .expect("the other session");
    let other_sid = other["session_id"].as_str().expect("an id").to_owned();
    // Carol cannot end bob's session; an unknown one is the same answer.
    let del = reqwest::Method::DELETE;
    let path = format!("/api/auth/sessions/{other_sid}");
    assert_problem(
        call(&api, del.clone(), &path, &tc, None).await,
        404,
        "not_found",
    )
    .await;
    assert_problem(
        call(&api, del.clone(), "/api/auth/sessions/nope", &t1, None).await,
        404,
        "not_found",
    )
    .await;
    assert_eq!(call(&api, del, &path, &t1, None).await.status(), 204);
    assert_eq!(
        call(&api, get.clone(), "/api/auth/me", &t2, None)
            .await
            .status(),
        401
    );
    assert_eq!(
        call(&api, get.clone(), "/api/auth/me", &t1, None)
            .await
            .status(),
        200
    );
    // The password: the current one must be right, the new one long enough.
    let post = reqwest::Method::POST;
    let change =
        |current: &str, new: &str| Some(json!({"current_password": current, "new_password": new}));
    let wrong = call(
        &api,
        post.clone(),
        "/api/auth/password",
        &t1,
        change("not it at all", "a new password 1"),
    )
    .await;
    assert_problem(wrong, 401, "invalid_credentials").await;
    let short = call(
        &api,
        post.clone(),
        "/api/auth/password",
        &t1,
        change(PASSWORD, "short"),
    )
    .await;
    assert_problem(short, 400, "bad_body").await;
    let unknown = call(
        &api,
        post.clone(),
        "/api/auth/password",
        &t1,
        Some(json!({"current_password": PASSWORD, "new_password": "x", "extra": 1})),
    )
    .await;
    assert_eq!(unknown.status(), 400);
    let done = call(
        &api,
        post,
        "/api/auth/password",
        &t1,
        change(PASSWORD, "a new password 1"),
    )
    .await;
    assert_eq!(done.status(), 204);
    assert_eq!(
        call(&api, get.clone(), "/api/auth/me", &t1, None)
            .await
            .status(),
        401
    );
    assert_eq!(
        call(&api, get, "/api/auth/me", &tc, None).await.status(),
        200,
        "carol's session stays"
    );
    let (again, _) = api.login("bob", "a new password 1").await;
    assert_eq!(again["user"]["username"], "bob");
}

on_both_stacks!(own_sessions_are_listed_ended_and_a_new_password_ends_them_all);
