//! Bearer tokens: only a token signed with the configured key and algorithm,
//! inside its validity window, with the configured `iss`/`aud` and all of
//! `sub`, `tenant_id`, `role` is accepted; everything else is 401 (or 403
//! for a valid caller without the rights).

use std::path::PathBuf;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cfgsnap::api::{AuthConfig, AuthConfigError, Role};
use cfgsnap::config::AuthSettings;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use super::{SECRET, Stack, TENANT_A, TENANT_B, assert_problem, on_both_stacks, spawn_api};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/jwt")
        .join(name)
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Valid claims for a viewer of tenant A; tests remove or change fields.
fn claims() -> Value {
    json!({"sub": "alice", "tenant_id": TENANT_A, "role": "viewer", "exp": now() + 600})
}

fn sign(claims: &Value, alg: Algorithm, key: &EncodingKey) -> String {
    cfgsnap::api::auth::install_crypto_provider();
    jsonwebtoken::encode(&Header::new(alg), claims, key).expect("test token signs")
}

fn hs256(claims: &Value) -> String {
    sign(claims, Algorithm::HS256, &EncodingKey::from_secret(SECRET))
}

fn rsa_key(name: &str) -> EncodingKey {
    EncodingKey::from_rsa_pem(&std::fs::read(fixture(name)).expect("fixture")).expect("RSA key")
}

fn with_public_key(name: &'static str) -> impl FnOnce(&mut cfgsnap::config::Settings) {
    move |s| {
        s.auth.jwt_secret_file = None;
        s.auth.jwt_public_key_file = Some(fixture(name));
    }
}

/// Asserts `token` is refused with 401 `invalid_token` and a Bearer challenge.
async fn assert_refused(api: &super::TestApi, token: &str, why: &str) {
    let resp = api.list_devices(TENANT_A, token).await;
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        challenge.starts_with("Bearer"),
        "{why}: challenge {challenge:?}"
    );
    let body = assert_problem(resp, 401, "invalid_token").await;
    assert!(
        !body["detail"].as_str().unwrap_or_default().contains(token),
        "{why}: token echoed"
    );
}

async fn a_valid_token_is_accepted(stack: Stack) {
    let api = spawn_api(stack, |_| {}).await;
    let resp = api.list_devices(TENANT_A, &hs256(&claims())).await;
    assert_eq!(resp.status().as_u16(), 200);
}

async fn missing_or_non_bearer_credentials_get_401_with_a_challenge(stack: Stack) {
    let api = spawn_api(stack, |_| {}).await;
    let url = format!("{}/api/tenants/{TENANT_A}/devices", api.address);
    for header in [
        None,
        Some("Basic YWxpY2U6cHc="),
        Some("Bearer"),
        Some("Token abc"),
    ] {
        let mut req = api.client.get(&url);
        if let Some(h) = header {
            req = req.header("authorization", h);
        }
        let resp = req.send().await.expect("sent");
        assert_eq!(
            resp.headers().get("www-authenticate").map(|v| v.as_bytes()),
            Some(&b"Bearer"[..]),
            "{header:?}"
        );
        assert_problem(resp, 401, "missing_token").await;
    }
}

async fn expired_not_yet_valid_and_badly_signed_tokens_get_401(stack: Stack) {
    let api = spawn_api(stack, |_| {}).await;
    let mut expired = claims();
    expired["exp"] = json!(now() - 3600);
    assert_refused(&api, &hs256(&expired), "expired").await;
    let mut early = claims();
    early["nbf"] = json!(now() + 3600);
    assert_refused(&api, &hs256(&early), "nbf in the future").await;
    let other = sign(
        &claims(),
        Algorithm::HS256,
        &EncodingKey::from_secret(b"another-secret-0123456789abcdef!!"),
    );
    assert_refused(&api, &other, "wrong secret").await;
    let hs512 = sign(
        &claims(),
        Algorithm::HS512,
        &EncodingKey::from_secret(SECRET),
    );
    assert_refused(&api, &hs512, "HS512 with the right secret").await;
    assert_refused(&api, "not.a.jwt", "garbage").await;
    let mut tampered = hs256(&claims());
    tampered.insert(tampered.find('.').expect("dot") + 2, 'x');
    assert_refused(&api, &tampered, "tampered payload").await;
}

async fn alg_none_is_refused(stack: Stack) {
    let api = spawn_api(stack, |_| {}).await;
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let mut admin = claims();
    admin["role"] = json!("super_admin");
    let payload = URL_SAFE_NO_PAD.encode(admin.to_string());
    for token in [
        format!("{header}.{payload}."),
        format!("{header}.{payload}"),
    ] {
        assert_refused(&api, &token, "alg none").await;
    }
}

async fn missing_claims_and_unknown_roles_are_refused(stack: Stack) {
    let api = spawn_api(stack, |_| {}).await;
    for field in ["sub", "tenant_id", "role", "exp"] {
        let mut c = claims();
        c.as_object_mut().expect("object").remove(field);
        assert_refused(&api, &hs256(&c), field).await;
    }
    for (field, value) in [
        ("role", json!("root")),
        ("role", json!("Admin")),
        ("role", json!(3)),
        ("tenant_id", json!("a.b")),
        ("sub", json!("")),
        ("exp", json!("tomorrow")),
    ] {
        let mut c = claims();
        c[field] = value.clone();
        assert_refused(&api, &hs256(&c), &format!("{field}={value}")).await;
    }
}

async fn issuer_and_audience_are_checked_when_configured(stack: Stack) {
    let api = spawn_api(stack, |s| {
        s.auth.issuer = Some("https://idp.test".into());
        s.auth.audience = Some("cfgsnap".into());
    })
    .await;
    let mut good = claims();
    good["iss"] = json!("https://idp.test");
    good["aud"] = json!("cfgsnap");
    assert_eq!(
        api.list_devices(TENANT_A, &hs256(&good))
            .await
            .status()
            .as_u16(),
        200
    );
    for (field, value) in [
        ("iss", Some("https://evil.test")),
        ("aud", Some("other")),
        ("iss", None),
        ("aud", None),
    ] {
        let mut c = good.clone();
        match value {
            Some(v) => c[field] = json!(v),
            None => drop(c.as_object_mut().expect("object").remove(field)),
        }
        assert_refused(&api, &hs256(&c), &format!("{field}={value:?}")).await;
    }
}

async fn an_rs256_configuration_refuses_hs256_and_foreign_keys(stack: Stack) {
    let api = spawn_api(stack, with_public_key("rsa.pub.pem")).await;
    let ok = sign(&claims(), Algorithm::RS256, &rsa_key("rsa.key"));
    assert_eq!(api.list_devices(TENANT_A, &ok).await.status().as_u16(), 200);
    // Algorithm confusion: the public key's PEM used as an HMAC secret.
    let pem = std::fs::read(fixture("rsa.pub.pem")).expect("fixture");
    let confused = sign(&claims(), Algorithm::HS256, &EncodingKey::from_secret(&pem));
    assert_refused(&api, &confused, "HS256 signed with the public key").await;
    assert_refused(&api, &hs256(&claims()), "HS256 with the test secret").await;
    let foreign = sign(&claims(), Algorithm::RS256, &rsa_key("rsa-other.key"));
    assert_refused(&api, &foreign, "another RSA key").await;
    let ps256 = sign(&claims(), Algorithm::PS256, &rsa_key("rsa.key"));
    assert_refused(&api, &ps256, "PS256 with the right key").await;
}

async fn an_eddsa_configuration_accepts_only_eddsa(stack: Stack) {
    let api = spawn_api(stack, with_public_key("ed25519.pub.pem")).await;
    let ed = EncodingKey::from_ed_pem(&std::fs::read(fixture("ed25519.key")).expect("fixture"))
        .expect("Ed25519 key");
    let ok = sign(&claims(), Algorithm::EdDSA, &ed);
    assert_eq!(api.list_devices(TENANT_A, &ok).await.status().as_u16(), 200);
    assert_refused(&api, &hs256(&claims()), "HS256").await;
    let rs = sign(&claims(), Algorithm::RS256, &rsa_key("rsa.key"));
    assert_refused(&api, &rs, "RS256").await;
}

async fn roles_are_ordered_and_tenants_enforced(stack: Stack) {
    let api = spawn_api(stack, |_| {}).await;
    let viewer = api.token("v", TENANT_A, Role::Viewer);
    let operator = api.token("o", TENANT_A, Role::Operator);
    let admin = api.token("a", TENANT_A, Role::Admin);
    let root = api.token("r", TENANT_B, Role::SuperAdmin);
    assert_problem(
        api.list_audit_events(TENANT_A, "", &viewer).await,
        403,
        "forbidden",
    )
    .await;
    assert_problem(
        api.list_audit_events(TENANT_A, "", &operator).await,
        403,
        "forbidden",
    )
    .await;
    assert_eq!(
        api.list_audit_events(TENANT_A, "", &admin)
            .await
            .status()
            .as_u16(),
        200
    );
    assert_problem(api.list_devices(TENANT_B, &admin).await, 403, "forbidden").await;
    assert_eq!(
        api.list_audit_events(TENANT_A, "", &root)
            .await
            .status()
            .as_u16(),
        200
    );
    assert_eq!(
        api.list_devices(TENANT_A, &root).await.status().as_u16(),
        200
    );
}

on_both_stacks!(
    a_valid_token_is_accepted,
    missing_or_non_bearer_credentials_get_401_with_a_challenge,
    expired_not_yet_valid_and_badly_signed_tokens_get_401,
    alg_none_is_refused,
    missing_claims_and_unknown_roles_are_refused,
    issuer_and_audience_are_checked_when_configured,
    an_rs256_configuration_refuses_hs256_and_foreign_keys,
    an_eddsa_configuration_accepts_only_eddsa,
    roles_are_ordered_and_tenants_enforced,
);

#[test]
fn auth_settings_problems_are_reported_clearly() {
    let settings = |f: fn(&mut AuthSettings)| {
        let mut s = AuthSettings::default();
        f(&mut s);
        AuthConfig::from_settings(&s)
    };
    assert!(matches!(settings(|_| {}), Err(AuthConfigError::NoKey)));
    assert!(matches!(
        settings(|s| {
            s.jwt_secret_env = Some("X".into());
            s.jwt_public_key_file = Some("k.pem".into());
        }),
        Err(AuthConfigError::Ambiguous)
    ));
    let unset = settings(|s| s.jwt_secret_env = Some("CFGSNAP_TEST_SURELY_UNSET_VAR".into()));
    let err = unset.expect_err("unset variable");
    assert!(
        err.to_string().contains("CFGSNAP_TEST_SURELY_UNSET_VAR"),
        "{err}"
    );
    let missing = settings(|s| s.jwt_secret_file = Some("/nonexistent/jwt.secret".into()));
    assert!(matches!(
        missing,
        Err(AuthConfigError::FileUnreadable { .. })
    ));
    let ec = AuthConfig::from_settings(&AuthSettings {
        jwt_public_key_file: Some(fixture("ec.pub.pem")),
        ..AuthSettings::default()
    });
    assert!(matches!(ec, Err(AuthConfigError::UnsupportedKey(_))));
}

#[test]
fn tokens_can_be_minted_only_with_an_hs256_secret() {
    let rsa = AuthConfig::from_settings(&AuthSettings {
        jwt_public_key_file: Some(fixture("rsa.pub.pem")),
        ..AuthSettings::default()
    })
    .expect("RSA key loads");
    assert_eq!(rsa.algorithm(), Algorithm::RS256);
    let tenant = cfgsnap::id::TenantId::parse(TENANT_A).expect("tenant");
    let minted = rsa.mint_token(
        "a",
        &tenant,
        Role::Admin,
        std::time::Duration::from_secs(60),
    );
    assert!(matches!(minted, Err(AuthConfigError::NotHs256)));
}
