//! File-backed host-key pins under concurrency: many first-use backups at
//! once, each pin on disk when its backup returns, all of them read back by
//! a fresh `KnownHosts`, the file owner-only, and no write once pinned.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use cfgsnap::backup::executor::SshExecutor;
use cfgsnap::backup::known_hosts::KnownHosts;
use cfgsnap::backup::{Executor as _, Trigger};
use routeros_sim::DeviceSpec;
use tokio::task::JoinSet;

use crate::helpers::{sim_device, start_simulator, test_limits, within};

/// Devices backed up at once.
const DEVICES: usize = 24;

fn on_disk(path: &Path) -> BTreeMap<String, String> {
    let bytes = std::fs::read(path).expect("read the known hosts file");
    serde_json::from_slice(&bytes).expect("the known hosts file is JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_use_backups_pin_every_key_durably_and_a_reload_reads_them() {
    within(Duration::from_secs(90), async {
        // Arrange
        let sim = start_simulator(vec![DeviceSpec::default(); DEVICES]).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("known_hosts.json");
        let known = KnownHosts::open(&path).await.expect("open");
        let executor = Arc::new(SshExecutor::new(test_limits(), known.clone()));

        // Act: every backup checks the file as soon as it returns.
        let mut runs = JoinSet::new();
        for i in 0..DEVICES {
            let (executor, device, path) = (executor.clone(), sim_device(&sim, i), path.clone());
            runs.spawn(async move {
                let outcome = executor
                    .run(&device, Trigger::Scheduled)
                    .await
                    .expect("first-use backup");
                let file = on_disk(&path);
                assert_eq!(
                    file.get(device.id.as_str()),
                    Some(&outcome.host_key_fingerprint),
                    "{} returned before its pin was on disk",
                    device.id
                );
            });
        }
        while let Some(joined) = runs.join_next().await {
            joined.expect("backup task");
        }
        let writes = known.file_writes();
        let reloaded = KnownHosts::open(&path).await.expect("reopen");

        // Assert
        for i in 0..DEVICES {
            let device = sim_device(&sim, i);
            assert_eq!(
                reloaded.get(&device.id).await.as_deref(),
                Some(sim.host_key_fingerprint(i).as_str()),
                "{} pinned after reload",
                device.id
            );
        }
        let mode = std::fs::metadata(&path)
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "owner-only");
        assert!((1..=DEVICES as u64).contains(&writes));
        for i in 0..DEVICES {
            executor
                .run(&sim_device(&sim, i), Trigger::Scheduled)
                .await
                .expect("pinned backup");
        }
        assert_eq!(known.file_writes(), writes, "pinned backups write nothing");
    })
    .await;
}
