//! Authentication (keys, passwords, the auth-failure fault) and host keys (stable
//! across restarts, changing under the host-key-change fault).

use std::sync::Arc;

use routeros_sim::{DeviceSpec, Fault};
use russh::ChannelMsg;

use super::{client_key, seen_fingerprint, ssh, start, stderr};

#[tokio::test]
async fn auth_failure_fault_makes_ssh_fail() {
    // Arrange
    let key = client_key();
    let spec = DeviceSpec::default()
        .with_authorized_key(key.public.clone())
        .with_fault(Fault::AuthFailure);
    let sim = start(vec![spec]).await;

    // Act
    let out = ssh(&sim, 0, &key, &[], "/export").await;

    // Assert
    assert_eq!(out.status.code(), Some(255));
    assert!(
        stderr(&out).contains("Permission denied"),
        "{}",
        stderr(&out)
    );
    assert!(out.stdout.is_empty());
}

#[tokio::test]
async fn host_key_change_fault_presents_a_new_key_per_connection() {
    // Arrange
    let key = client_key();
    let spec = DeviceSpec::default()
        .with_authorized_key(key.public.clone())
        .with_fault(Fault::HostKeyChange);
    let sim = start(vec![spec]).await;

    // Act
    let first = ssh(&sim, 0, &key, &[], "/export").await;
    let second = ssh(&sim, 0, &key, &[], "/export").await;

    // Assert
    assert!(first.status.success() && second.status.success());
    assert_ne!(seen_fingerprint(&first), seen_fingerprint(&second));
    assert_eq!(seen_fingerprint(&second), sim.host_key_fingerprint(0));
}

#[tokio::test]
async fn host_keys_survive_a_simulator_restart() {
    // Arrange
    let key = client_key();
    let specs = || {
        vec![
            DeviceSpec::default().with_authorized_key(key.public.clone()),
            DeviceSpec::default().with_authorized_key(key.public.clone()),
        ]
    };
    let sim = start(specs()).await;
    let before = [sim.host_key_fingerprint(0), sim.host_key_fingerprint(1)];
    sim.shutdown().await;

    // Act
    let sim = start(specs()).await;
    let out = ssh(&sim, 1, &key, &[], "/export").await;

    // Assert
    assert_eq!(
        before,
        [sim.host_key_fingerprint(0), sim.host_key_fingerprint(1)]
    );
    assert_ne!(before[0], before[1]);
    assert_eq!(seen_fingerprint(&out), before[1]);
}

/// Accepts any host key.
struct TrustingClient;

impl russh::client::Handler for TrustingClient {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        _key: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

#[tokio::test]
async fn password_auth_works_and_wrong_passwords_are_refused() {
    // Arrange
    let sim = start(vec![DeviceSpec::default()]).await;
    let config = Arc::new(russh::client::Config::default());
    let addr = sim.addrs()[0];

    // Act
    let mut session = russh::client::connect(config.clone(), addr, TrustingClient)
        .await
        .expect("connects");
    let ok = session
        .authenticate_password("admin", "admin")
        .await
        .expect("auth runs");
    let mut channel = session.channel_open_session().await.expect("channel");
    channel
        .exec(true, ":put [/system resource get version]")
        .await
        .expect("exec");
    let (mut stdout, mut exit) = (Vec::new(), None);
    while let Some(msg) = channel.wait().await {
        match msg {
            ChannelMsg::Data { data } => stdout.extend_from_slice(&data),
            ChannelMsg::ExitStatus { exit_status } => exit = Some(exit_status),
            _ => {}
        }
    }
    let mut other = russh::client::connect(config, addr, TrustingClient)
        .await
        .expect("connects");
    let wrong = other
        .authenticate_password("admin", "nope")
        .await
        .expect("auth runs");

    // Assert
    assert!(ok.success());
    assert_eq!(stdout, b"7.16 (stable)\r\n");
    assert_eq!(exit, Some(0));
    assert!(!wrong.success());
}
