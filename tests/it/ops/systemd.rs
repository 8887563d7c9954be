//! The systemd unit in `dist/`: `systemd-analyze verify` accepts it and
//! `systemd-analyze security` rates its exposure "OK" or better.

use std::path::Path;

/// The unit as shipped.
fn unit() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("dist/cfgsnap.service");
    std::fs::read_to_string(path).expect("dist/cfgsnap.service is readable")
}

fn systemd_analyze(args: &[&str]) -> std::process::Output {
    std::process::Command::new("systemd-analyze")
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "systemd-analyze must be installed (apt-get install systemd, or run \
                 scripts/test.sh): {e}"
            )
        })
}

#[test]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    // Arrange: the unit with ExecStart pointing at the binary under test,
    // which verify requires to exist.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("cfgsnap.service");
    let text = unit().replace("/usr/local/bin/cfgsnap", env!("CARGO_BIN_EXE_cfgsnap"));
    std::fs::write(&path, text).expect("write the unit");
    // Act
    let out = systemd_analyze(&["verify", path.to_str().expect("utf-8")]);
    // Assert
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "systemd-analyze verify: {stderr}");
    assert!(!stderr.contains("cfgsnap.service"), "warnings: {stderr}");
}

#[test]
fn the_systemd_unit_is_rated_ok_or_better_by_systemd_analyze_security() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("cfgsnap.service");
    std::fs::write(&path, unit()).expect("write the unit");
    let out = systemd_analyze(&["security", "--offline=true", path.to_str().expect("utf-8")]);
    let report = String::from_utf8_lossy(&out.stdout);
    let overall = report
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no overall level in: {report}"));
    assert!(
        overall.contains(" OK") || overall.contains(" SAFE"),
        "{overall}"
    );
}
