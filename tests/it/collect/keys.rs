//! Key authentication through one executor's key cache: a rotated key file
//! is used by the next backup without a reload, and a key file that cannot
//! be read fails the backup and is read again once it is back.

use std::path::Path;
use std::time::Duration;

use cfgsnap::backup::{Auth, Device, ErrorKind};
use routeros_sim::DeviceSpec;

use crate::helpers::{
    ScratchSshExecutor, client_key_pair, sim_device, start_simulator, test_limits, within,
};

/// Puts `from`'s key at `to` the way rotation tools do: a new file renamed over the old.
fn rotate(from: &Path, to: &Path) {
    let staged = to.with_extension("new");
    std::fs::copy(from, &staged).expect("stage the key");
    std::fs::rename(&staged, to).expect("rename the key into place");
}

fn with_key(mut device: Device, path: &Path) -> Device {
    device.credentials.auth = Auth::Key {
        path: path.to_owned(),
        passphrase: None,
    };
    device
}

#[tokio::test]
async fn a_rotated_key_file_is_used_by_the_next_backup_without_a_reload() {
    within(Duration::from_secs(60), async {
        // Arrange: the device accepts key A only; the configured file holds A.
        let dir = tempfile::tempdir().expect("tempdir");
        let (key_a, public_a) = client_key_pair(dir.path(), "a");
        let (key_b, _) = client_key_pair(dir.path(), "b");
        let configured = dir.path().join("id_device");
        rotate(&key_a, &configured);
        let sim = start_simulator(vec![DeviceSpec::default().with_authorized_key(public_a)]).await;
        let device = with_key(sim_device(&sim, 0), &configured);
        let executor = ScratchSshExecutor::new(test_limits()).await;

        // Act: A, then B rotated in, then A again, through the same executor.
        let first = executor.run(&device).await;
        rotate(&key_b, &configured);
        let rotated = executor.run(&device).await;
        rotate(&key_a, &configured);
        let restored = executor.run(&device).await;

        // Assert: each backup logged in with the key the file held at the time.
        assert!(first.is_ok(), "key A: {:?}", first.err().map(|e| e.kind()));
        assert_eq!(
            rotated.err().map(|e| e.kind()),
            Some(ErrorKind::AuthFailed),
            "key B is not authorized, so a cached key A must not be offered"
        );
        assert!(
            restored.is_ok(),
            "key A again: {:?}",
            restored.err().map(|e| e.kind())
        );
    })
    .await;
}

#[tokio::test]
async fn a_missing_key_file_fails_the_backup_and_is_read_once_it_is_back() {
    within(Duration::from_secs(60), async {
        // Arrange
        let dir = tempfile::tempdir().expect("tempdir");
        let (key, public) = client_key_pair(dir.path(), "a");
        let configured = dir.path().join("id_device");
        let sim = start_simulator(vec![DeviceSpec::default().with_authorized_key(public)]).await;
        let device = with_key(sim_device(&sim, 0), &configured);
        let executor = ScratchSshExecutor::new(test_limits()).await;

        // Act
        let missing = executor.run(&device).await;
        rotate(&key, &configured);
        let present = executor.run(&device).await;

        // Assert: the error names the file, and the failure was not cached.
        let error = missing.expect_err("no key file yet");
        assert_eq!(error.kind(), ErrorKind::Internal);
        assert!(error.to_string().contains("id_device"), "error: {error}");
        assert!(present.is_ok(), "{:?}", present.err().map(|e| e.kind()));
    })
    .await;
}
