//! A tenant's accounts over the API (DESIGN.md §11) on both stacks: admins
//! list, create, change and delete their own tenant's users; nobody reaches
//! above their own role or into another tenant; every change is audited;
//! bad names, passwords and bodies get a clear 4xx.

use cfgsnap::account::Role;
use serde_json::{Value, json};

use super::{Stack, TENANT_A, TENANT_B, TestApi, assert_problem, json_ok, spawn_api};

const PASSWORD: &str = "correct horse battery";

impl TestApi {
    fn users_url(&self, tenant: &str) -> String {
        format!("{}/api/tenants/{tenant}/users", self.address)
    }

    async fn create_user(&self, tenant: &str, token: &str, body: Value) -> reqwest::Response {
        let req = self.client.post(self.users_url(tenant)).bearer_auth(token);
        req.json(&body).send().await.expect("create request")
    }

    async fn patch_user(
        &self,
        tenant: &str,
        name: &str,
        token: &str,
        body: Value,
    ) -> reqwest::Response {
        let url = format!("{}/{name}", self.users_url(tenant));
        let req = self.client.patch(url).bearer_auth(token);
        req.json(&body).send().await.expect("patch request")
    }
}

fn user(name: &str, role: &str) -> Value {
    json!({ "username": name, "password": PASSWORD, "role": role })
}

async fn an_admin_creates_lists_changes_and_deletes_its_tenants_users(stack: Stack) {
    // Arrange
    let api = spawn_api(stack, |_| {}).await;
    let admin = api.token("ada", TENANT_A, Role::Admin);

    // Act
    let created = api
        .create_user(TENANT_A, &admin, user("vic", "viewer"))
        .await;
    let created = json_ok(created, 201).await;
    let changed = api
        .patch_user(TENANT_A, "vic", &admin, json!({"role": "operator"}))
        .await;
    let changed = json_ok(changed, 200).await;
    let listed = api
        .client
        .get(api.users_url(TENANT_A))
        .bearer_auth(&admin)
        .send()
        .await;
    let listed = json_ok(listed.expect("sent"), 200).await;
    let deleted = api
        .client
        .delete(format!("{}/vic", api.users_url(TENANT_A)))
        .bearer_auth(&admin);
    let deleted = deleted.send().await.expect("sent");

    // Assert
    assert_eq!(created["username"], "vic");
    assert_eq!(created["tenant_id"], TENANT_A);
    assert_eq!(created["role"], "viewer");
    assert_eq!(created["disabled"], false);
    assert_eq!(changed["role"], "operator");
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(1));
    let text = listed.to_string();
    assert!(
        !text.contains("argon2") && !text.contains(PASSWORD),
        "no hash, no password"
    );
    assert_eq!(deleted.status(), 204);
    let events = api
        .store
        .list_audit(TENANT_A, 50, None)
        .await
        .expect("audit");
    let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
    for action in ["user_created", "user_updated", "user_deleted"] {
        assert!(actions.contains(&action), "{action} audited");
    }
    assert!(events.iter().all(|e| e.actor.as_deref() == Some("ada")));
}

async fn nobody_reaches_above_their_role_or_into_another_tenant(stack: Stack) {
    // Arrange
    let api = spawn_api(stack, |_| {}).await;
    let admin = api.token("ada", TENANT_A, Role::Admin);
    let operator = api.token("olga", TENANT_A, Role::Operator);
    let admin_b = api.token("bea", TENANT_B, Role::Admin);
    api.add_user("vic", Some(TENANT_A), Role::Viewer, PASSWORD)
        .await;
    api.add_user("root", None, Role::SuperAdmin, PASSWORD).await;

    // Act + Assert
    let cases = [
        (
            api.create_user(TENANT_A, &operator, user("x1", "viewer"))
                .await,
            403,
            "forbidden",
        ),
        (
            api.create_user(TENANT_A, &admin, user("x2", "super_admin"))
                .await,
            403,
            "forbidden",
        ),
        (
            api.create_user(TENANT_A, &admin_b, user("x3", "viewer"))
                .await,
            403,
            "forbidden",
        ),
        (
            api.patch_user(TENANT_A, "vic", &admin, json!({"role": "super_admin"}))
                .await,
            403,
            "forbidden",
        ),
        (
            api.patch_user(TENANT_B, "vic", &admin_b, json!({"disabled": true}))
                .await,
            404,
            "user_not_found",
        ),
        (
            api.patch_user(TENANT_A, "root", &admin, json!({"disabled": true}))
                .await,
            404,
            "user_not_found",
        ),
        (
            api.patch_user(TENANT_A, "vic", &operator, json!({"disabled": true}))
                .await,
            403,
            "forbidden",
        ),
    ];
    for (resp, status, code) in cases {
        assert_problem(resp, status, code).await;
    }
    let vic = api.store.account("vic").await.expect("vic");
    assert_eq!(
        (vic.role, vic.disabled),
        (Role::Viewer, false),
        "vic is unchanged"
    );
}

async fn bad_names_passwords_and_bodies_get_a_clear_4xx(stack: Stack) {
    // Arrange
    let api = spawn_api(stack, |_| {}).await;
    let admin = api.token("ada", TENANT_A, Role::Admin);
    api.add_user("vic", Some(TENANT_A), Role::Viewer, PASSWORD)
        .await;
    let long = "u".repeat(65);

    // Act + Assert
    let cases = [
        (user("vic", "viewer"), 409, "user_exists"),
        (user(&long, "viewer"), 400, "bad_body"),
        (user("ä-user", "viewer"), 400, "bad_body"),
        (
            json!({"username": "x", "password": "short", "role": "viewer"}),
            400,
            "bad_body",
        ),
        (
            json!({"username": "x", "password": "p".repeat(1025), "role": "viewer"}),
            400,
            "bad_body",
        ),
        (
            json!({"username": "x", "password": PASSWORD, "role": "root"}),
            400,
            "bad_body",
        ),
        (
            json!({"username": "x", "password": PASSWORD, "role": "viewer", "tenant_id": TENANT_B}),
            400,
            "bad_body",
        ),
        (json!({"username": "x"}), 400, "bad_body"),
    ];
    for (body, status, code) in cases {
        let resp = api.create_user(TENANT_A, &admin, body).await;
        let problem = assert_problem(resp, status, code).await;
        assert!(
            !problem.to_string().contains(PASSWORD),
            "no password in the problem"
        );
    }
    let bad_path = api
        .patch_user(TENANT_A, "a%20b", &admin, json!({"disabled": true}))
        .await;
    assert_problem(bad_path, 400, "bad_id").await;
    let unknown = api
        .patch_user(TENANT_A, "nobody", &admin, json!({"disabled": true}))
        .await;
    assert_problem(unknown, 404, "user_not_found").await;
}

on_both_stacks!(
    an_admin_creates_lists_changes_and_deletes_its_tenants_users,
    nobody_reaches_above_their_role_or_into_another_tenant,
    bad_names_passwords_and_bodies_get_a_clear_4xx,
);
