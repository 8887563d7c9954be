//! Sign-in sessions (DESIGN.md §11) on both stacks: login returns a token and
//! a cookie that both work and both stop the moment the session ends
//! (logout, a new password, the account disabled or deleted); unknown users
//! and wrong passwords get one answer; cookie-authenticated changes need the
//! session's CSRF token and a same-origin request; attempts are limited;
//! hostile bodies get a 4xx and never a session. Passwords never appear in
//! assertion messages.

use cfgsnap::account::{Password, Role, Username, password};
use cfgsnap::store::account::NewAccount;
use serde_json::{Value, json};

use super::{Stack, TENANT_A, TENANT_B, TestApi, assert_problem, json_ok, spawn_api};

const PASSWORD: &str = "correct horse battery";

impl TestApi {
    /// Creates an account with `password` straight in the store.
    pub async fn add_user(&self, name: &str, tenant: Option<&str>, role: Role, password: &str) {
        let password = Password::new(password.to_owned()).expect("a valid test password");
        let new = NewAccount {
            username: Username::parse(name).expect("a valid test user name"),
            tenant_id: tenant.map(str::to_owned),
            role,
            password_hash: password::hash(&password).expect("hashes"),
        };
        self.store
            .create_account(&new, Some("test"))
            .await
            .expect("the account is created");
    }

    /// `POST /api/auth/login` with a raw body.
    pub async fn login_raw(&self, body: impl Into<reqwest::Body>) -> reqwest::Response {
        self.client
            .post(format!("{}/api/auth/login", self.address))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("login request")
    }

    /// Signs in; returns the body and the session cookie's value.
    pub async fn login(&self, name: &str, password: &str) -> (Value, String) {
        let body = json!({ "username": name, "password": password }).to_string();
        let resp = self.login_raw(body).await;
        let cookie = session_cookie(&resp).expect("a session cookie");
        let value = cookie
            .split(';')
            .next()
            .and_then(|kv| kv.strip_prefix("cfgsnap_session="))
            .expect("cfgsnap_session=…")
            .to_owned();
        (json_ok(resp, 200).await, value)
    }

    /// A request authenticated by the session cookie `cookie`.
    pub fn with_cookie(
        &self,
        method: reqwest::Method,
        path: &str,
        cookie: &str,
    ) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.address))
            .header("cookie", format!("cfgsnap_session={cookie}"))
    }
}

fn session_cookie(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("cfgsnap_session="))
        .map(str::to_owned)
}

fn devices_path(tenant: &str) -> String {
    format!("/api/tenants/{tenant}/devices")
}

async fn login_gives_a_token_and_a_strict_cookie_that_both_work(stack: Stack) {
    // Arrange
    let api = spawn_api(stack, |_| {}).await;
    api.add_user("alice", Some(TENANT_A), Role::Operator, PASSWORD)
        .await;

    // Act
    let body = json!({ "username": "alice", "password": PASSWORD }).to_string();
    let resp = api.login_raw(body).await;
    let cookie = session_cookie(&resp).expect("a session cookie");
    let login = json_ok(resp, 200).await;
    let (_, value) = api.login("alice", PASSWORD).await;
    let token = login["access_token"].as_str().expect("a token").to_owned();

    // Assert
    for attribute in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/",
        "Secure",
        "Max-Age=",
    ] {
        assert!(cookie.contains(attribute), "cookie lacks {attribute}");
    }
    assert_eq!(login["token_type"], "Bearer");
    assert_eq!(login["expires_in"], 900);
    assert_eq!(
        login["user"],
        json!({"username": "alice", "tenant_id": TENANT_A, "role": "operator"})
    );
    assert!(
        !login.to_string().contains(PASSWORD),
        "the password is not echoed"
    );
    let by_token = api.get(&devices_path(TENANT_A), &token).await;
    assert_eq!(by_token.status(), 200);
    let by_cookie = api.with_cookie(reqwest::Method::GET, &devices_path(TENANT_A), &value);
    assert_eq!(by_cookie.send().await.expect("sent").status(), 200);
    let me = json_ok(api.get("/api/auth/me", &token).await, 200).await;
    assert_eq!(me["user"]["username"], "alice");
    assert!(me["session_id"].is_string());
    assert!(
        me["csrf_token"].is_null(),
        "a bearer caller gets no CSRF token"
    );
    let other_tenant = api.get(&devices_path(TENANT_B), &token).await;
    assert_problem(other_tenant, 403, "forbidden").await;
}

async fn unknown_users_wrong_passwords_and_disabled_accounts_get_one_answer(stack: Stack) {
    // Arrange
    let api = spawn_api(stack, |s| s.auth.login_attempts_per_minute = 100).await;
    api.add_user("alice", Some(TENANT_A), Role::Viewer, PASSWORD)
        .await;
    api.add_user("dora", Some(TENANT_A), Role::Viewer, PASSWORD)
        .await;
    let admin = api.token("root", TENANT_A, Role::Admin);
    let disable = api
        .client
        .patch(format!("{}/api/tenants/{TENANT_A}/users/dora", api.address))
        .bearer_auth(&admin)
        .json(&json!({ "disabled": true }))
        .send()
        .await
        .expect("sent");
    assert_eq!(disable.status(), 200);

    // Act
    let mut bodies = Vec::new();
    for (name, password) in [
        ("nobody", PASSWORD),
        ("alice", "wrong password"),
        ("dora", PASSWORD),
    ] {
        let body = json!({ "username": name, "password": password }).to_string();
        let resp = api.login_raw(body).await;
        assert!(session_cookie(&resp).is_none(), "{name}: no session");
        bodies.push(assert_problem(resp, 401, "invalid_credentials").await);
    }

    // Assert
    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "one answer for all three"
    );
    let events = api
        .store
        .list_audit(TENANT_A, 50, None)
        .await
        .expect("audit");
    let failed = events
        .iter()
        .filter(|e| e.action.as_str() == "login_failed")
        .count();
    assert_eq!(
        failed, 2,
        "failures of tenant accounts are audited in the tenant"
    );
    assert!(
        events
            .iter()
            .all(|e| !e.detail.contains("wrong password") && !e.detail.contains(PASSWORD)),
        "no password in the audit log"
    );
}

async fn logout_ends_the_session_for_its_token_and_its_cookie(stack: Stack) {
    // Arrange
    let api = spawn_api(stack, |_| {}).await;
    api.add_user("alice", Some(TENANT_A), Role::Viewer, PASSWORD)
        .await;
    let (login, cookie) = api.login("alice", PASSWORD).await;
    let token = login["access_token"].as_str().expect("token").to_owned();
    let (second, _) = api.login("alice", PASSWORD).await;
    let second = second["access_token"].as_str().expect("token").to_owned();

    // Act
    let out = api.post("/api/auth/logout", &token).await;

    // Assert
    assert_eq!(out.status(), 204);
    let cleared = session_cookie(&out).expect("the cookie is cleared");
    assert!(cleared.contains("Max-Age=0"), "removal cookie");
    let replayed = api.get(&devices_path(TENANT_A), &token).await;
    assert_problem(replayed, 401, "invalid_token").await;
    let by_cookie = api.with_cookie(reqwest::Method::GET, &devices_path(TENANT_A), &cookie);
    assert_eq!(by_cookie.send().await.expect("sent").status(), 401);
    let other_session = api.get(&devices_path(TENANT_A), &second).await;
    assert_eq!(
        other_session.status(),
        200,
        "another session of the user stays"
    );
}

async fn a_new_password_disabling_or_deleting_ends_every_session_at_once(stack: Stack) {
    // Arrange
    let api = spawn_api(stack, |s| s.auth.login_attempts_per_minute = 100).await;
    let admin = api.token("root", TENANT_A, Role::Admin);
    let user_path = |name: &str| format!("{}/api/tenants/{TENANT_A}/users/{name}", api.address);
    for name in ["pat", "dis", "del"] {
        api.add_user(name, Some(TENANT_A), Role::Viewer, PASSWORD)
            .await;
    }
    let token = |body: Value| body["access_token"].as_str().expect("token").to_owned();
    let pat = token(api.login("pat", PASSWORD).await.0);
    let dis = token(api.login("dis", PASSWORD).await.0);
    let del = token(api.login("del", PASSWORD).await.0);

    // Act
    let changes = [
        api.client
            .patch(user_path("pat"))
            .json(&json!({ "password": "a brand new password" })),
        api.client
            .patch(user_path("dis"))
            .json(&json!({ "disabled": true })),
        api.client.delete(user_path("del")),
    ];
    for change in changes {
        let resp = change.bearer_auth(&admin).send().await.expect("sent");
        assert!(
            resp.status().is_success(),
            "change refused: {}",
            resp.status()
        );
    }

    // Assert
    for (name, token) in [("pat", &pat), ("dis", &dis), ("del", &del)] {
        let resp = api.get(&devices_path(TENANT_A), token).await;
        assert_eq!(resp.status(), 401, "{name}'s session still works");
    }
    assert_eq!(
        api.login_raw(json!({"username": "pat", "password": "a brand new password"}).to_string())
            .await
            .status(),
        200
    );
}

async fn cookie_changes_need_the_sessions_csrf_token_and_the_same_origin(stack: Stack) {
    // Arrange
    let api = spawn_api(stack, |_| {}).await;
    api.add_user("olga", Some(TENANT_A), Role::Operator, PASSWORD)
        .await;
    api.add_user("otto", Some(TENANT_A), Role::Operator, PASSWORD)
        .await;
    let (login, cookie) = api.login("olga", PASSWORD).await;
    let csrf = login["csrf_token"].as_str().expect("csrf token").to_owned();
    let (other, _) = api.login("otto", PASSWORD).await;
    let other_csrf = other["csrf_token"].as_str().expect("csrf token").to_owned();
    let logout = || api.with_cookie(reqwest::Method::POST, "/api/auth/logout", &cookie);

    // Act + Assert: refused without, with a wrong, with another session's token, cross-origin.
    assert_problem(logout().send().await.expect("sent"), 403, "csrf_failed").await;
    let wrong = logout().header("x-csrf-token", "x".repeat(43));
    assert_problem(wrong.send().await.expect("sent"), 403, "csrf_failed").await;
    let foreign = logout().header("x-csrf-token", &other_csrf);
    assert_problem(foreign.send().await.expect("sent"), 403, "csrf_failed").await;
    let cross = logout()
        .header("x-csrf-token", &csrf)
        .header("origin", "https://evil.example");
    assert_problem(cross.send().await.expect("sent"), 403, "csrf_failed").await;
    let me = api.with_cookie(reqwest::Method::GET, "/api/auth/me", &cookie);
    let me = json_ok(me.send().await.expect("sent"), 200).await;
    assert_eq!(
        me["csrf_token"],
        csrf.as_str(),
        "a cookie caller reads its CSRF token"
    );
    let same_origin = logout()
        .header("x-csrf-token", &csrf)
        .header("origin", api.address.as_str());
    assert_eq!(same_origin.send().await.expect("sent").status(), 204);
}

async fn sign_in_attempts_are_limited_per_user_name_with_retry_after(stack: Stack) {
    // Arrange
    let api = spawn_api(stack, |s| s.auth.login_attempts_per_minute = 3).await;
    api.add_user("alice", Some(TENANT_A), Role::Viewer, PASSWORD)
        .await;
    let attempt = json!({ "username": "alice", "password": "guess" }).to_string();

    // Act
    for _ in 0..3 {
        assert_eq!(api.login_raw(attempt.clone()).await.status(), 401);
    }
    let limited = api
        .login_raw(json!({ "username": "alice", "password": PASSWORD }).to_string())
        .await;

    // Assert
    let retry_after = limited.headers().get("retry-after").cloned();
    assert_problem(limited, 429, "rate_limited").await;
    let secs: u64 = retry_after
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .expect("Retry-After");
    assert!((1..=60).contains(&secs), "retry after {secs} s");
    let other_name = api
        .login_raw(json!({"username": "bob", "password": "x"}).to_string())
        .await;
    assert_eq!(other_name.status(), 401, "another name is not limited");
    let events = api
        .store
        .list_audit(TENANT_A, 50, None)
        .await
        .expect("audit");
    let failed = events
        .iter()
        .filter(|e| e.action.as_str() == "login_failed")
        .count();
    assert_eq!(
        failed, 3,
        "the refused attempts before the limit are audited"
    );
}

async fn hostile_sign_in_bodies_get_a_4xx_and_never_a_session(stack: Stack) {
    // Arrange
    let api = spawn_api(stack, |s| s.auth.login_attempts_per_minute = 100).await;
    api.add_user("alice", Some(TENANT_A), Role::Viewer, PASSWORD)
        .await;
    let long_name = "a".repeat(10_000);
    let long_password = "p".repeat(50_000);
    let bodies: Vec<(Vec<u8>, u16)> = vec![
        (
            json!({"username": "alice", "password": PASSWORD, "role": "admin"})
                .to_string()
                .into(),
            400,
        ),
        (json!({"username": "alice"}).to_string().into(), 400),
        (json!({"password": PASSWORD}).to_string().into(), 400),
        (
            b"{\"username\": \"alice\", \"password\": \"\xff\xfe\"}".to_vec(),
            400,
        ),
        (b"username=alice".to_vec(), 400),
        (
            json!({"username": long_name, "password": PASSWORD})
                .to_string()
                .into(),
            401,
        ),
        (
            json!({"username": "alice", "password": long_password})
                .to_string()
                .into(),
            401,
        ),
        (
            json!({"username": "alice\u{0}", "password": PASSWORD})
                .to_string()
                .into(),
            401,
        ),
        (vec![b' '; 100_000], 413),
    ];

    // Act + Assert
    for (i, (body, status)) in bodies.into_iter().enumerate() {
        let resp = api.login_raw(body).await;
        assert!(session_cookie(&resp).is_none(), "body {i}: no session");
        assert_eq!(resp.status().as_u16(), status, "body {i}");
    }
}

async fn a_token_naming_another_users_session_is_refused(stack: Stack) {
    // Arrange: alice's session, and a token signed with the node's own
    // secret that names bob with alice's sid.
    let api = spawn_api(stack, |_| {}).await;
    api.add_user("alice", Some(TENANT_A), Role::Viewer, PASSWORD)
        .await;
    api.add_user("bob", Some(TENANT_A), Role::Admin, PASSWORD)
        .await;
    let (login, _) = api.login("alice", PASSWORD).await;
    let me = json_ok(
        api.get("/api/auth/me", login["access_token"].as_str().expect("t"))
            .await,
        200,
    )
    .await;
    let sid = me["session_id"].as_str().expect("sid");
    let auth = cfgsnap::api::AuthConfig::hs256(super::SECRET, None, None).expect("secret");
    let forged = auth
        .mint_session_token(
            "bob",
            Some(TENANT_A),
            Role::Admin,
            sid,
            std::time::Duration::from_secs(60),
        )
        .expect("minted");

    // Act
    let resp = api.get(&devices_path(TENANT_A), &forged).await;

    // Assert
    assert_problem(resp, 401, "invalid_token").await;
}

async fn concurrent_sign_ins_each_get_their_own_session(stack: Stack) {
    // Arrange
    let api = spawn_api(stack, |s| s.auth.login_attempts_per_minute = 100).await;
    api.add_user("alice", Some(TENANT_A), Role::Viewer, PASSWORD)
        .await;

    // Act
    let logins = (0..8).map(|_| api.login("alice", PASSWORD));
    let results = futures_util::future::join_all(logins).await;

    // Assert
    let mut sids = std::collections::HashSet::new();
    for (body, _) in &results {
        let token = body["access_token"].as_str().expect("token");
        let me = json_ok(api.get("/api/auth/me", token).await, 200).await;
        sids.insert(me["session_id"].as_str().expect("sid").to_owned());
    }
    assert_eq!(sids.len(), 8, "eight distinct sessions");
}

async fn a_super_admin_account_signs_in_without_a_tenant_and_acts_in_any(stack: Stack) {
    // Arrange
    let api = spawn_api(stack, |_| {}).await;
    api.add_user("root", None, Role::SuperAdmin, PASSWORD).await;

    // Act
    let (login, _) = api.login("root", PASSWORD).await;
    let token = login["access_token"].as_str().expect("token");

    // Assert
    assert_eq!(login["user"]["tenant_id"], Value::Null);
    for tenant in [TENANT_A, TENANT_B] {
        assert_eq!(api.get(&devices_path(tenant), token).await.status(), 200);
    }
}

on_both_stacks!(
    login_gives_a_token_and_a_strict_cookie_that_both_work,
    unknown_users_wrong_passwords_and_disabled_accounts_get_one_answer,
    logout_ends_the_session_for_its_token_and_its_cookie,
    a_new_password_disabling_or_deleting_ends_every_session_at_once,
    cookie_changes_need_the_sessions_csrf_token_and_the_same_origin,
    sign_in_attempts_are_limited_per_user_name_with_retry_after,
    hostile_sign_in_bodies_get_a_4xx_and_never_a_session,
    a_token_naming_another_users_session_is_refused,
    concurrent_sign_ins_each_get_their_own_session,
    a_super_admin_account_signs_in_without_a_tenant_and_acts_in_any,
);
