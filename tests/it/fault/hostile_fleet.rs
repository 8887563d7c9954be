//! Ten hostile devices among 500 healthy ones, backed up by `cfgsnap serve`
//! on the embedded defaults: every healthy device is stored within its
//! interval, each hostile one ends in its own error kind, and the node's
//! peak memory stays bounded although one device streams 1 GiB and
//! `RUST_BACKTRACE=1` is set.

use std::time::Duration;

use cfgsnap_testkit::serve::ServeOptions;
use routeros_sim::{DeviceSpec, Export, Fault};
use sqlx::Connection as _;

use super::servers::ServeProcess;
use crate::app::{Infra, Stack, TestApp};
use crate::helpers::{closed_port, start_simulator, within};

const HEALTHY: usize = 500;
/// Peak resident memory allowed to the node (the hostile 1 GiB export is
/// capped at `max_config_bytes` = 1 MiB). The debug build peaks near 70 MiB;
/// with error backtraces captured and logged it went over 250 MiB.
const PEAK_RSS_KIB: u64 = 160 * 1024;

/// The hostile devices, appended after the healthy ones, with the error
/// kind each must end in.
fn hostile() -> Vec<(DeviceSpec, &'static str)> {
    let base = DeviceSpec::default;
    vec![
        (base().with_fault(Fault::HangAfterExec), "timeout"),
        (
            base()
                .with_export(Export::Generated { lines: 1000 })
                .with_fault(Fault::SlowDrip {
                    chunk: 64,
                    every: Duration::from_millis(50),
                }),
            "timeout",
        ),
        (
            base().with_fault(Fault::HugeOutput { bytes: 1 << 30 }),
            "too_large",
        ),
        (base().with_fault(Fault::Garbage), "invalid_output"),
        (base().with_fault(Fault::DisconnectMidOutput), "unreachable"),
        (base().with_fault(Fault::AuthFailure), "auth_failed"),
        (
            base().with_fault(Fault::RouterOsError(
                "bad command name export (line 1 column 2)".into(),
            )),
            "command_failed",
        ),
        // Pinned on its first backup; a new key on the next one.
        (base().with_fault(Fault::HostKeyChange), "hostkey_mismatch"),
        (base().with_fault(Fault::HangAfterExec), "timeout"),
    ]
}

/// The node's peak resident set (`VmHWM`) in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/<pid>/status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_devices_among_500_healthy_ones_fail_alone_and_memory_stays_bounded() {
    within(Duration::from_secs(240), async {
        // Arrange: 500 healthy devices, 9 hostile simulated ones and one
        // whose port is closed: ten hostile in all.
        let hostile = hostile();
        let mut specs = vec![DeviceSpec::default(); HEALTHY];
        specs.extend(hostile.iter().map(|(spec, _)| spec.clone()));
        let sim = start_simulator(specs).await;
        let infra = Infra::new(Stack::Embedded).await;
        let dead = format!(
            "[[devices]]\nid = \"dev-dead\"\ntenant = \"t1\"\nhost = \"127.0.0.1\"\nport = {}\ncredentials = \"sim\"\n",
            closed_port().await
        );
        let toml = infra
            .config(&sim, &dead)
            .replace("interval = \"1h\"", "interval = \"120s\"")
            .replace("max_concurrent = 8", "max_concurrent = 64\nmax_config_bytes = 1048576");
        let config = infra.dir.path().join("config.toml");
        std::fs::write(&config, toml).expect("config");
        // As an operator debugging a panic runs it: every failing device's
        // error would capture a backtrace, and logging it would load the
        // binary's debug info (~200 MB in this build).
        let options = ServeOptions {
            env: vec![("RUST_BACKTRACE", "1")],
            ..ServeOptions::default()
        };
        let log = infra.dir.path().join("serve.log");
        let node = ServeProcess::start_with(crate::helpers::CFGSNAP, &config, log, &options).await;
        let app = TestApp::attach(node.port.expect("api"));
        let db = format!("sqlite://{}/cfgsnap.db", infra.dir.path().display());

        // Act: the first scheduled pass, then a second backup of the device
        // whose host key changes.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            let mut conn = sqlx::SqliteConnection::connect(&db).await.expect("open db");
            let stored: i64 = sqlx::query_scalar(
                "SELECT count(DISTINCT device_id) FROM snapshot",
            )
            .fetch_one(&mut conn)
            .await
            .expect("count");
            conn.close().await.expect("close");
            // The healthy ones and the host-key device's first, pinning, backup.
            if stored > HEALTHY as i64 {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "only {stored} devices stored within the 120 s interval"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let rekeyed = format!("dev-{}", HEALTHY + 7);
        let mismatch = app.trigger(&rekeyed).await;
        assert_eq!(mismatch.status(), 502, "the changed host key is refused");
        // Every hostile device has reached its verdict.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let devices = loop {
            let devices = app.devices().await;
            let decided = devices
                .iter()
                .filter(|d| d["last_status"].is_string())
                .count();
            if decided == devices.len() {
                break devices;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{decided} of {} devices have a backup state",
                devices.len()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let peak = peak_rss_kib(node.child.id().expect("running"));
        node.kill().await;

        // Assert
        let kind_of = |id: &str| {
            devices
                .iter()
                .find(|d| d["device_id"] == id)
                .map(|d| (d["last_status"].clone(), d["last_error_kind"].clone()))
                .expect("device listed")
        };
        for i in 0..HEALTHY {
            let (status, _) = kind_of(&format!("dev-{i}"));
            assert_eq!(status, "success", "dev-{i}");
        }
        for (j, (_, kind)) in hostile.iter().enumerate() {
            let id = format!("dev-{}", HEALTHY + j);
            assert_eq!(kind_of(&id), ("failed".into(), (*kind).into()), "{id}");
        }
        assert_eq!(kind_of("dev-dead"), ("failed".into(), "unreachable".into()));
        assert!(
            peak < PEAK_RSS_KIB,
            "peak RSS {peak} KiB over {PEAK_RSS_KIB} KiB"
        );
        sim.shutdown().await;
        infra.finish().await;
    })
    .await;
}
