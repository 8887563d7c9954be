//! Secrets in served configurations (DESIGN.md §12) on both stacks: below
//! `auth.reveal_secrets_role` content, download and diff are masked (a
//! changed secret still shows as changed, without either value), at or
//! above it they are served as stored, and `?reveal=true` is refused below
//! and audited above. Secret values never appear in assertion messages.

use cfgsnap::account::Role;

use super::{DEV_A1, Stack, TENANT_A, assert_problem, spawn_api};

const OLD_SECRET: &str = "old-psk-8f3a91c2";
const NEW_SECRET: &str = "new-psk-77d0e4b5";

fn export(psk: &str) -> String {
    format!(
        "# software id = TEST-1234\n/interface wireless security-profiles\n\
         add authentication-types=wpa2-psk mode=dynamic-keys name=office \\\n    \
         wpa2-pre-shared-key={psk}\n/system identity\nset name=r1\n"
    )
}

async fn text(resp: reqwest::Response) -> String {
    assert_eq!(resp.status(), 200, "status of {}", resp.url().path());
    resp.text().await.expect("body")
}

async fn viewers_get_masked_text_and_admins_the_stored_one(stack: Stack) {
    // Arrange
    let api = spawn_api(stack, |_| {}).await;
    let first = api.seed(TENANT_A, DEV_A1, &export(OLD_SECRET), 10).await;
    let second = api.seed(TENANT_A, DEV_A1, &export(NEW_SECRET), 5).await;
    let viewer = api.token("vic", TENANT_A, Role::Viewer);
    let operator = api.token("olga", TENANT_A, Role::Operator);
    let admin = api.token("ada", TENANT_A, Role::Admin);

    // Act
    let masked = text(
        api.snapshot_content(TENANT_A, DEV_A1, second, &viewer)
            .await,
    )
    .await;
    let download = text(
        api.download_snapshot(TENANT_A, DEV_A1, second, &operator)
            .await,
    )
    .await;
    let diff = text(
        api.snapshot_diff(TENANT_A, DEV_A1, second, "", &viewer)
            .await,
    )
    .await;
    let against = format!("against={first}");
    let diff_against = text(
        api.snapshot_diff(TENANT_A, DEV_A1, second, &against, &viewer)
            .await,
    )
    .await;
    let raw = text(api.snapshot_content(TENANT_A, DEV_A1, second, &admin).await).await;
    let raw_diff = text(
        api.snapshot_diff(TENANT_A, DEV_A1, second, "", &admin)
            .await,
    )
    .await;

    // Assert
    for (what, body) in [
        ("content", &masked),
        ("download", &download),
        ("diff", &diff),
        ("diff against", &diff_against),
    ] {
        assert!(
            !body.contains(OLD_SECRET) && !body.contains(NEW_SECRET),
            "a secret leaked into the {what}"
        );
    }
    assert!(
        masked.contains("wpa2-pre-shared-key=********"),
        "the value is masked"
    );
    assert_eq!(
        masked.lines().count(),
        export(NEW_SECRET).lines().count(),
        "same line count"
    );
    for d in [&diff, &diff_against] {
        assert!(
            d.contains("+    wpa2-pre-shared-key=******** (changed)"),
            "the change shows"
        );
        assert!(
            d.contains("-    wpa2-pre-shared-key=********"),
            "the old line shows"
        );
    }
    assert!(raw.contains(NEW_SECRET), "an admin sees the stored text");
    assert!(
        raw_diff.contains(OLD_SECRET) && raw_diff.contains(NEW_SECRET),
        "and the stored diff"
    );
}

async fn reveal_is_refused_below_the_role_and_audited_at_it(stack: Stack) {
    // Arrange
    let api = spawn_api(stack, |s| s.auth.reveal_secrets_role = Role::Operator).await;
    let sid = api.seed(TENANT_A, DEV_A1, &export(OLD_SECRET), 5).await;
    let viewer = api.token("vic", TENANT_A, Role::Viewer);
    let operator = api.token("olga", TENANT_A, Role::Operator);
    let content = |q: &str| {
        format!("/api/tenants/{TENANT_A}/devices/{DEV_A1}/config-snapshots/{sid}/content?{q}")
    };

    // Act
    let refused = api.get(&content("reveal=true"), &viewer).await;
    let plain = text(api.get(&content(""), &operator).await).await;
    let revealed = text(api.get(&content("reveal=true"), &operator).await).await;

    // Assert
    assert_problem(refused, 403, "forbidden").await;
    assert!(
        plain.contains(OLD_SECRET),
        "operator is at the configured reveal role"
    );
    assert!(revealed.contains(OLD_SECRET));
    let events = api
        .store
        .list_audit(TENANT_A, 50, None)
        .await
        .expect("audit");
    let reveals: Vec<_> = events
        .iter()
        .filter(|e| e.action.as_str() == "config_secrets_revealed")
        .collect();
    assert_eq!(reveals.len(), 1, "only the explicit reveal is audited");
    assert_eq!(reveals[0].actor.as_deref(), Some("olga"));
    assert_eq!(reveals[0].device_id.as_deref(), Some(DEV_A1));
    assert!(
        !reveals[0].detail.contains(OLD_SECRET),
        "the audit holds no secret"
    );
}

on_both_stacks!(
    viewers_get_masked_text_and_admins_the_stored_one,
    reveal_is_refused_below_the_role_and_audited_at_it,
);
