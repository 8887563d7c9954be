//! `POST …/config-snapshot/trigger` through the local bus to a responder
//! running a test executor: each reply maps to its status and `code`, the
//! caller's rate limit, and the audit record of every outcome.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cfgsnap::api::Role;
use cfgsnap::backup::{self, Trigger, normalize::sha256_hex};
use serde_json::{Value, json};
use tokio::sync::Notify;

use super::{
    DEV_A1, DEV_A2, DEV_B1, Stack, TENANT_A, TENANT_B, TestApi, assert_problem, json_ok,
    on_both_stacks, spawn_api,
};
use crate::bus::{ScriptedExecutor, config_text};

async fn audited(api: &TestApi, outcome: &str) -> Value {
    // The row is written alongside the response: wait for that write.
    let background = &api.state.background;
    background.close();
    background.wait().await;
    background.reopen();
    let events = api
        .store
        .list_audit(TENANT_A, 500, None)
        .await
        .expect("audit");
    let event = events
        .iter()
        .find(|e| e.action.as_str() == "config_backup_manual_trigger")
        .expect("the trigger is audited");
    let detail = event.detail_json();
    assert_eq!(detail["outcome"], outcome, "audit detail: {detail}");
    assert_eq!(event.actor.as_deref(), Some("olga"));
    assert_eq!(event.device_id.as_deref(), Some(DEV_A1));
    detail
}

async fn a_successful_backup_answers_201_with_the_snapshot(stack: Stack) {
    // Arrange
    let api = spawn_api(stack, |_| {}).await;
    let executor = Arc::new(ScriptedExecutor::succeeding());
    api.respond(Arc::clone(&executor), None).await;
    let token = api.token("olga", TENANT_A, Role::Operator);

    // Act
    let body = json_ok(api.trigger(TENANT_A, DEV_A1, &token).await, 201).await;

    // Assert
    assert_eq!(body["status"], "success");
    assert_eq!(body["tenant_id"], TENANT_A);
    assert_eq!(body["device_id"], DEV_A1);
    assert_eq!(body["sha256_hash"], sha256_hex(&config_text(DEV_A1)));
    assert!(body["collected_at"].is_string());
    assert_eq!(body["routeros_version"], "7.15");
    assert!(body["message"].is_string());
    assert_eq!(body["warnings"], json!([]));
    let last = executor
        .last_trigger
        .lock()
        .expect("lock")
        .get(DEV_A1)
        .copied();
    assert_eq!(last, Some(Trigger::Manual));
    let detail = audited(&api, "success").await;
    assert_eq!(detail["sha256_hash"], body["sha256_hash"]);
    let metrics = api.metrics().await.text().await.expect("metrics");
    assert!(
        metrics.contains(r#"cfgsnap_trigger_responses_total{status="201"} 1"#),
        "{metrics}"
    );
}

type Case = (fn() -> backup::Error, u16, &'static str);

async fn replies_map_to_statuses_and_codes(stack: Stack) {
    let cases: Vec<Case> = vec![
        (|| backup::Error::LockHeld, 409, "backup_in_progress"),
        (
            || backup::Error::AuthRejected {
                username: "admin".into(),
            },
            502,
            "auth_failed",
        ),
        (
            || backup::Error::DeviceUnreachable {
                reason: "connection refused".into(),
                source: None,
            },
            502,
            "unreachable",
        ),
        (
            || backup::Error::InvalidOutput("empty".into()),
            502,
            "invalid_output",
        ),
        (
            || backup::Error::LockUnavailable(anyhow::anyhow!("redis down")),
            503,
            "lock_unavailable",
        ),
    ];
    for (error, status, code) in cases {
        // Arrange
        let api = spawn_api(stack, |_| {}).await;
        api.respond(Arc::new(ScriptedExecutor::new(move |_| Err(error()))), None)
            .await;
        let token = api.token("olga", TENANT_A, Role::Operator);

        // Act + Assert
        let body = assert_problem(api.trigger(TENANT_A, DEV_A1, &token).await, status, code).await;
        if status == 502 {
            assert!(!body["detail"].as_str().unwrap_or_default().is_empty());
        }
        let outcome = if status == 409 { "locked" } else { "failed" };
        let detail = audited(&api, outcome).await;
        if outcome == "failed" {
            assert_eq!(detail["error_kind"], code);
        }
    }
}

async fn a_device_the_responder_does_not_know_is_404(stack: Stack) {
    let api = spawn_api(stack, |_| {}).await;
    // The responder's fleet lacks dev-a1 (another node with an older config).
    let other = crate::bus::fleet(&[("t1", "r1")]);
    api.respond(Arc::new(ScriptedExecutor::succeeding()), Some(other))
        .await;
    let token = api.token("olga", TENANT_A, Role::Operator);
    assert_problem(
        api.trigger(TENANT_A, DEV_A1, &token).await,
        404,
        "not_found",
    )
    .await;
}

async fn no_responder_is_503_and_a_slow_one_504(stack: Stack) {
    // Arrange
    let api = spawn_api(stack, |s| {
        s.bus.trigger_timeout = Duration::from_millis(500)
    })
    .await;
    let token = api.token("olga", TENANT_A, Role::Operator);

    // Act + Assert: nobody listens.
    let started = Instant::now();
    assert_problem(
        api.trigger(TENANT_A, DEV_A1, &token).await,
        503,
        "no_responder",
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "no-responders must answer at once"
    );
    audited(&api, "no_responder").await;

    // A responder whose device never answers.
    let gate = Arc::new(Notify::new());
    let mut executor = ScriptedExecutor::succeeding();
    executor.gate = Some(Arc::clone(&gate));
    api.respond(Arc::new(executor), None).await;
    let started = Instant::now();
    assert_problem(
        api.trigger(TENANT_A, DEV_A2, &token).await,
        504,
        "trigger_timeout",
    )
    .await;
    assert!(started.elapsed() >= Duration::from_millis(500));
    gate.notify_waiters();
}

async fn unknown_and_foreign_devices_are_refused_before_anything_is_sent(stack: Stack) {
    let api = spawn_api(stack, |_| {}).await;
    let executor = Arc::new(ScriptedExecutor::succeeding());
    api.respond(Arc::clone(&executor), None).await;
    let operator = api.token("olga", TENANT_A, Role::Operator);
    let viewer = api.token("vic", TENANT_A, Role::Viewer);

    assert_problem(
        api.trigger(TENANT_A, "nope", &operator).await,
        404,
        "device_not_found",
    )
    .await;
    assert_problem(
        api.trigger(TENANT_A, DEV_B1, &operator).await,
        404,
        "device_not_found",
    )
    .await;
    assert_problem(
        api.trigger(TENANT_B, DEV_B1, &operator).await,
        403,
        "forbidden",
    )
    .await;
    assert_problem(
        api.trigger(TENANT_A, DEV_A1, &viewer).await,
        403,
        "forbidden",
    )
    .await;
    assert_problem(
        api.trigger(TENANT_A, DEV_A1, "").await,
        401,
        "missing_token",
    )
    .await;
    assert_problem(api.trigger(TENANT_A, "a.b", &operator).await, 400, "bad_id").await;
    assert_problem(api.trigger("t*", DEV_A1, &operator).await, 400, "bad_id").await;
    assert_eq!(executor.runs(), 0, "no backup may run");
}

async fn callers_over_their_rate_get_429_with_retry_after(stack: Stack) {
    // Arrange
    let api = spawn_api(stack, |s| s.auth.trigger_rate_per_minute = 2).await;
    api.respond(Arc::new(ScriptedExecutor::succeeding()), None)
        .await;
    let olga = api.token("olga", TENANT_A, Role::Operator);

    // Act
    for _ in 0..2 {
        assert_eq!(
            api.trigger(TENANT_A, DEV_A1, &olga).await.status().as_u16(),
            201
        );
    }
    let limited = api.trigger(TENANT_A, DEV_A1, &olga).await;

    // Assert
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .ok()
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in whole seconds");
    assert!((1..=30).contains(&retry_after), "Retry-After {retry_after}");
    assert_problem(limited, 429, "rate_limited").await;
    // The limit is per caller, and unknown devices count too.
    let other = api.token("otto", TENANT_A, Role::Operator);
    assert_eq!(
        api.trigger(TENANT_A, DEV_A2, &other)
            .await
            .status()
            .as_u16(),
        201
    );
    assert_problem(
        api.trigger(TENANT_A, "nope", &olga).await,
        429,
        "rate_limited",
    )
    .await;
    assert!(!api.state.limiter.is_empty());
    api.state.limiter.prune();
}

async fn unauthenticated_floods_never_spend_a_callers_quota(stack: Stack) {
    let api = spawn_api(stack, |s| s.auth.trigger_rate_per_minute = 2).await;
    api.respond(Arc::new(ScriptedExecutor::succeeding()), None)
        .await;
    // A forged token naming olga, and no token at all.
    let forged = {
        let claims = json!({"sub": "olga", "tenant_id": TENANT_A, "role": "operator", "exp": chrono::Utc::now().timestamp() + 600});
        let key = jsonwebtoken::EncodingKey::from_secret(b"not-the-secret-0123456789abcdef!!");
        jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).expect("signs")
    };
    for _ in 0..10 {
        assert_problem(
            api.trigger(TENANT_A, DEV_A1, &forged).await,
            401,
            "invalid_token",
        )
        .await;
        assert_problem(
            api.trigger(TENANT_A, DEV_A1, "").await,
            401,
            "missing_token",
        )
        .await;
    }
    let viewer = api.token("olga", TENANT_A, Role::Viewer);
    for _ in 0..5 {
        assert_problem(
            api.trigger(TENANT_A, DEV_A1, &viewer).await,
            403,
            "forbidden",
        )
        .await;
    }
    let olga = api.token("olga", TENANT_A, Role::Operator);
    for _ in 0..2 {
        assert_eq!(
            api.trigger(TENANT_A, DEV_A1, &olga).await.status().as_u16(),
            201
        );
    }
}

async fn oversized_trigger_bodies_get_413(stack: Stack) {
    let api = spawn_api(stack, |_| {}).await;
    let executor = Arc::new(ScriptedExecutor::succeeding());
    api.respond(Arc::clone(&executor), None).await;
    let token = api.token("olga", TENANT_A, Role::Operator);
    let url = format!(
        "{}/api/tenants/{TENANT_A}/devices/{DEV_A1}/config-snapshot/trigger",
        api.address
    );
    let resp = api
        .client
        .post(url)
        .bearer_auth(&token)
        .body(vec![b'{'; 2 * 1024 * 1024])
        .send()
        .await;
    assert_problem(resp.expect("sent"), 413, "payload_too_large").await;
    assert_eq!(executor.runs(), 0);
}

on_both_stacks!(
    a_successful_backup_answers_201_with_the_snapshot,
    replies_map_to_statuses_and_codes,
    a_device_the_responder_does_not_know_is_404,
    no_responder_is_503_and_a_slow_one_504,
    unknown_and_foreign_devices_are_refused_before_anything_is_sent,
    callers_over_their_rate_get_429_with_retry_after,
    unauthenticated_floods_never_spend_a_callers_quota,
    oversized_trigger_bodies_get_413,
);
