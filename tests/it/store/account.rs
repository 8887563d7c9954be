//! Accounts and sessions in the store, on both databases: user names are
//! unique, role and tenant fit together, the last enabled super_admin
//! stays, sessions are found only while open (not ended, not expired, not
//! idle, the account enabled), and a new password, disabling or deleting
//! ends them in the same transaction. Hashes never leave through listings.

use std::time::Duration;

use cfgsnap::account::{Role, Username};
use cfgsnap::store::Error;
use cfgsnap::store::account::{AccountChange, NewAccount};
use cfgsnap::store::session::{NewSession, SessionKey};
use chrono::Utc;

use super::TestStore;

fn account(name: &str, tenant: Option<&str>, role: Role) -> NewAccount {
    NewAccount {
        username: Username::parse(name).expect("valid name"),
        tenant_id: tenant.map(str::to_owned),
        role,
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned(),
    }
}

fn session(id: &str, account_id: i64, expires_in: chrono::Duration) -> NewSession {
    NewSession {
        session_id: id.to_owned(),
        account_id,
        secret_hash: format!("hash-of-{id}"),
        csrf_token: format!("csrf-{id}"),
        expires_at: Utc::now() + expires_in,
    }
}

const HOUR: Duration = Duration::from_secs(3600);

async fn accounts_are_unique_and_role_and_tenant_fit_together(t: &TestStore) {
    // Arrange
    let store = &t.store;
    store
        .create_account(&account("alice", Some("t1"), Role::Admin), None)
        .await
        .expect("created");

    // Act
    let taken = store
        .create_account(&account("alice", Some("t2"), Role::Viewer), None)
        .await;
    let no_tenant = store
        .create_account(&account("bob", None, Role::Admin), None)
        .await;
    let tenant_root = store
        .create_account(&account("root", Some("t1"), Role::SuperAdmin), None)
        .await;
    let listed = store.list_accounts(Some("t1")).await.expect("listed");

    // Assert
    assert!(matches!(taken, Err(Error::AccountExists)), "{taken:?}");
    assert!(
        matches!(no_tenant, Err(Error::InvalidAccount(_))),
        "{no_tenant:?}"
    );
    assert!(
        matches!(tenant_root, Err(Error::InvalidAccount(_))),
        "{tenant_root:?}"
    );
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].username.as_str(), listed[0].role),
        ("alice", Role::Admin)
    );
    let (_, hash) = store
        .credentials("alice")
        .await
        .expect("read")
        .expect("found");
    assert!(hash.starts_with("$argon2id$"));
    assert!(store.credentials("nobody").await.expect("read").is_none());
}

async fn the_last_enabled_super_admin_cannot_be_disabled_or_deleted(t: &TestStore) {
    // Arrange
    let store = &t.store;
    store
        .create_account(&account("root", None, Role::SuperAdmin), None)
        .await
        .expect("root");
    let disable = AccountChange {
        disabled: Some(true),
        ..AccountChange::default()
    };

    // Act + Assert
    let refused = store.update_account("root", &disable, None).await;
    assert!(matches!(refused, Err(Error::LastSuperAdmin)), "{refused:?}");
    let refused = store.delete_account("root", None).await;
    assert!(matches!(refused, Err(Error::LastSuperAdmin)), "{refused:?}");
    store
        .create_account(&account("root2", None, Role::SuperAdmin), None)
        .await
        .expect("root2");
    store
        .update_account("root", &disable, None)
        .await
        .expect("a second one allows it");
    let refused = store.delete_account("root2", None).await;
    assert!(
        matches!(refused, Err(Error::LastSuperAdmin)),
        "root2 is the last enabled one"
    );
    let demote = AccountChange {
        role: Some(Role::Admin),
        ..AccountChange::default()
    };
    let refused = store.update_account("root2", &demote, None).await;
    assert!(
        matches!(refused, Err(Error::InvalidAccount(_))),
        "{refused:?}"
    );
}

async fn sessions_are_open_only_until_ended_expired_or_idle(t: &TestStore) {
    // Arrange
    let store = &t.store;
    let alice = store
        .create_account(&account("alice", Some("t1"), Role::Viewer), None)
        .await
        .expect("alice");
    store
        .create_session(&session(
            "live",
            alice.account_id,
            chrono::Duration::hours(1),
        ))
        .await
        .expect("live");
    store
        .create_session(&session(
            "old",
            alice.account_id,
            chrono::Duration::seconds(-1),
        ))
        .await
        .expect("old");
    store
        .create_session(&session(
            "bye",
            alice.account_id,
            chrono::Duration::hours(1),
        ))
        .await
        .expect("bye");

    // Act
    let ended = store.end_session("bye").await.expect("ended");
    let again = store.end_session("bye").await.expect("no-op");
    let live = store
        .open_session(SessionKey::Id("live"), HOUR)
        .await
        .expect("read");
    let by_secret = store
        .open_session(SessionKey::SecretHash("hash-of-live"), HOUR)
        .await
        .expect("read");
    let idle = store
        .open_session(SessionKey::Id("live"), Duration::ZERO)
        .await
        .expect("read");
    let expired = store
        .open_session(SessionKey::Id("old"), HOUR)
        .await
        .expect("read");
    let gone = store
        .open_session(SessionKey::Id("bye"), HOUR)
        .await
        .expect("read");
    let listed = store.list_sessions(alice.account_id).await.expect("listed");

    // Assert
    assert!(ended && !again, "a session ends once");
    let live = live.expect("the live session is open");
    assert_eq!(
        (live.account.username.as_str(), live.csrf_token.as_str()),
        ("alice", "csrf-live")
    );
    assert_eq!(
        by_secret.map(|s| s.session.session_id),
        Some("live".to_owned())
    );
    assert!(idle.is_none(), "idle past the timeout");
    assert!(expired.is_none(), "past its absolute expiry");
    assert!(gone.is_none(), "ended");
    let ids: Vec<_> = listed.iter().map(|s| s.session_id.as_str()).collect();
    assert_eq!(ids, ["live"]);
}

async fn a_new_password_disabling_or_deleting_ends_the_accounts_sessions(t: &TestStore) {
    // Arrange
    let store = &t.store;
    let mut ids = Vec::new();
    for name in ["pat", "dis", "del"] {
        let a = store
            .create_account(&account(name, Some("t1"), Role::Viewer), None)
            .await
            .expect("created");
        store
            .create_session(&session(name, a.account_id, chrono::Duration::hours(1)))
            .await
            .expect("session");
        ids.push(a.account_id);
    }
    let new_password = AccountChange {
        password_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$bmV3$bmV3".to_owned()),
        ..AccountChange::default()
    };
    let disable = AccountChange {
        disabled: Some(true),
        ..AccountChange::default()
    };
    let rename_role = AccountChange {
        role: Some(Role::Operator),
        ..AccountChange::default()
    };

    // Act
    store
        .update_account("pat", &new_password, Some("ada"))
        .await
        .expect("password");
    store
        .update_account("dis", &disable, Some("ada"))
        .await
        .expect("disabled");
    store
        .delete_account("del", Some("ada"))
        .await
        .expect("deleted");

    // Assert
    for name in ["pat", "dis", "del"] {
        let open = store
            .open_session(SessionKey::Id(name), HOUR)
            .await
            .expect("read");
        assert!(open.is_none(), "{name}'s session still open");
    }
    let enabled = AccountChange {
        disabled: Some(false),
        ..AccountChange::default()
    };
    store
        .update_account("dis", &enabled, None)
        .await
        .expect("enabled");
    store
        .update_account("pat", &rename_role, None)
        .await
        .expect("role");
    assert!(
        store
            .open_session(SessionKey::Id("dis"), HOUR)
            .await
            .expect("read")
            .is_none(),
        "enabling reopens nothing"
    );
    let events = store.list_audit("t1", 50, None).await.expect("audit");
    let updates = events
        .iter()
        .filter(|e| e.action.as_str() == "user_updated")
        .count();
    assert_eq!(updates, 4);
    assert!(
        events.iter().all(|e| !e.detail.contains("argon2")),
        "no hash in the audit log"
    );
}

on_both_stacks!(
    with TestStore;
    accounts_are_unique_and_role_and_tenant_fit_together,
    the_last_enabled_super_admin_cannot_be_disabled_or_deleted,
    sessions_are_open_only_until_ended_expired_or_idle,
    a_new_password_disabling_or_deleting_ends_the_accounts_sessions,
);
