//! Output faults: hang, disconnect mid-output, huge output, garbage, RouterOS error
//! text and slow drip.

use std::time::{Duration, Instant};

use routeros_sim::{DeviceSpec, Export, Fault};

use super::{client_key, ssh, ssh_within, start, stderr};

#[tokio::test]
async fn output_faults_behave_as_named() {
    // Arrange
    let key = client_key();
    let base = || DeviceSpec::default().with_authorized_key(key.public.clone());
    let sim = start(vec![
        base().with_fault(Fault::HangAfterExec),
        base().with_fault(Fault::DisconnectMidOutput),
        base().with_fault(Fault::HugeOutput { bytes: 3_000_000 }),
        base().with_fault(Fault::Garbage),
        base().with_fault(Fault::RouterOsError("no such item (4)".into())),
        base()
            .with_export(Export::Generated { lines: 20 })
            .with_fault(Fault::SlowDrip {
                chunk: 200,
                every: Duration::from_millis(20),
            }),
    ])
    .await;

    // Act
    let hang = ssh_within(&sim, 0, &key, &[], "/export", Duration::from_secs(2)).await;
    let cut = ssh(&sim, 1, &key, &[], "/export").await;
    let huge = ssh(&sim, 2, &key, &[], "/export").await;
    let garbage = ssh(&sim, 3, &key, &[], "/export").await;
    let error = ssh(&sim, 4, &key, &[], "/export").await;
    let started = Instant::now();
    let drip = ssh(&sim, 5, &key, &[], "/export").await;

    // Assert
    assert!(
        hang.is_none(),
        "a hanging device must not finish the command"
    );
    assert_eq!(cut.status.code(), Some(255), "{}", stderr(&cut));
    let cut_text = String::from_utf8_lossy(&cut.stdout);
    assert!(cut_text.starts_with("# ") && !cut_text.contains("/system identity"));
    assert!(huge.status.success() && huge.stdout.len() >= 3_000_000);
    assert!(huge.stdout.ends_with(b"\r\n"));
    assert!(
        std::str::from_utf8(&garbage.stdout).is_err(),
        "garbage must not be UTF-8"
    );
    assert_eq!(error.stdout, b"no such item (4)\r\n");
    assert!(drip.status.success() && drip.stdout.ends_with(b"\r\n"));
    let pauses = drip.stdout.len() / 200;
    assert!(started.elapsed() >= Duration::from_millis(20 * pauses as u64));
    assert_eq!(sim.exports_served(1), 1);
}
