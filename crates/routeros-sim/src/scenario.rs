//! Scenario files: per-device overrides of the simulator's base spec, in TOML.
//!
//! ```toml
//! [[device]]
//! index = 3                      # 0-based device index (required)
//! fault = "hang"                 # see `Fault`'s names
//! routeros_version = "6.49.10"
//! latency_ms = 500
//! change_every = 2
//! export = "path.rsc"            # relative to the scenario file
//! ```
//!
//! Also `lines`, `host_key` (`ed25519`/`rsa`), `username`, `password`. Unknown keys
//! are errors. Entry points: [`Scenario::load`], [`Scenario::parse`], [`Scenario::apply`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::{DeviceSpec, Error, Export, Fault, HostKeyKind, Result};

/// Overrides for one device; `None` fields keep the base spec's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceOverride {
    /// The device index (0-based).
    pub index: usize,
    /// RouterOS version.
    pub routeros_version: Option<String>,
    /// Delay before each command's output.
    pub latency: Option<Duration>,
    /// `change_every` (at least 1).
    pub change_every: Option<u32>,
    /// Export file, resolved against the scenario file's directory.
    pub export: Option<PathBuf>,
    /// Generated export size in lines (ignored when `export` is set).
    pub lines: Option<usize>,
    /// Fault.
    pub fault: Option<Fault>,
    /// Host key kind.
    pub host_key: Option<HostKeyKind>,
    /// User name.
    pub username: Option<String>,
    /// Password.
    pub password: Option<String>,
}

/// A parsed scenario file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scenario {
    /// The per-device overrides, in file order.
    pub devices: Vec<DeviceOverride>,
    /// Where the scenario came from (file name or `<inline>`), for error messages.
    origin: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    #[serde(default)]
    device: Vec<RawDevice>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDevice {
    index: usize,
    routeros_version: Option<String>,
    latency_ms: Option<u64>,
    change_every: Option<u32>,
    export: Option<PathBuf>,
    lines: Option<usize>,
    fault: Option<String>,
    host_key: Option<HostKeyKind>,
    username: Option<String>,
    password: Option<String>,
}

impl Scenario {
    /// Reads and parses a scenario file; relative `export` paths are resolved against
    /// the file's directory.
    ///
    /// # Errors
    /// [`Error::Scenario`] naming the file, with the line and column of a syntax error.
    pub fn load(path: &Path) -> Result<Scenario> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| Error::Scenario {
            origin: origin.clone(),
            message: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        parse_with(&text, &origin, base)
    }

    /// Parses scenario text; relative `export` paths stay relative.
    ///
    /// # Errors
    /// [`Error::Scenario`] with the line and column of a syntax error, or naming the
    /// `[[device]]` entry whose value is invalid.
    pub fn parse(text: &str) -> Result<Scenario> {
        parse_with(text, "<inline>", Path::new(""))
    }

    /// Applies the overrides to `specs` (index `i` is `specs[i]`), reading export files.
    ///
    /// # Errors
    /// [`Error::Scenario`] when an index is out of range, [`Error::ExportFile`] or
    /// [`Error::ExportNotUtf8`] when an export file cannot be used.
    pub fn apply(&self, specs: &mut [DeviceSpec]) -> Result<()> {
        for o in &self.devices {
            let count = specs.len();
            let spec = specs.get_mut(o.index).ok_or_else(|| Error::Scenario {
                origin: self.origin.clone(),
                message: format!(
                    "device index {} is out of range: the simulator runs {count} device(s), \
                     indices 0..{count}",
                    o.index
                ),
            })?;
            apply_one(o, spec)?;
        }
        Ok(())
    }
}

/// Applies one override.
fn apply_one(o: &DeviceOverride, spec: &mut DeviceSpec) -> Result<()> {
    if let Some(v) = &o.routeros_version {
        spec.routeros_version.clone_from(v);
    }
    if let Some(l) = o.latency {
        spec.latency = l;
    }
    if let Some(k) = o.change_every {
        spec.change_every = Some(k);
    }
    match (&o.export, o.lines) {
        (Some(path), _) => spec.export = Export::from_file(path)?,
        (None, Some(lines)) => spec.export = Export::Generated { lines },
        (None, None) => {}
    }
    if let Some(f) = &o.fault {
        spec.fault = Some(f.clone());
    }
    if let Some(k) = o.host_key {
        spec.host_key = k;
    }
    if let Some(u) = &o.username {
        spec.username.clone_from(u);
    }
    if let Some(p) = &o.password {
        spec.password = Some(p.clone());
    }
    Ok(())
}

/// Parses and validates scenario text.
fn parse_with(text: &str, origin: &str, base: &Path) -> Result<Scenario> {
    let bad = |message: String| Error::Scenario {
        origin: origin.to_owned(),
        message,
    };
    let raw: RawScenario = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
    let mut devices: Vec<DeviceOverride> = Vec::with_capacity(raw.device.len());
    for (n, d) in raw.device.into_iter().enumerate() {
        let entry = format!("[[device]] #{} (index {})", n + 1, d.index);
        if devices.iter().any(|o| o.index == d.index) {
            return Err(bad(format!("{entry}: index {} appears twice", d.index)));
        }
        if d.change_every == Some(0) {
            return Err(bad(format!("{entry}: change_every must be at least 1")));
        }
        let fault = match &d.fault {
            Some(f) => Some(
                f.parse::<Fault>()
                    .map_err(|e| bad(format!("{entry}: {e}")))?,
            ),
            None => None,
        };
        devices.push(DeviceOverride {
            index: d.index,
            routeros_version: d.routeros_version,
            latency: d.latency_ms.map(Duration::from_millis),
            change_every: d.change_every,
            export: d.export.map(|p| base.join(p)),
            lines: d.lines,
            fault,
            host_key: d.host_key,
            username: d.username,
            password: d.password,
        });
    }
    Ok(Scenario {
        devices,
        origin: origin.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_device_entry_parses() {
        let text = r#"
            [[device]]
            index = 3
            fault = "hang"
            routeros_version = "6.49.10"
            latency_ms = 500
            change_every = 2
            export = "path.rsc"
            host_key = "rsa"

            [[device]]
            index = 0
            fault = "slow-drip:16:10"
            lines = 50
        "#;
        let s = Scenario::parse(text).expect("valid scenario");
        assert_eq!(s.devices.len(), 2);
        let d = &s.devices[0];
        assert_eq!(d.index, 3);
        assert_eq!(d.fault, Some(Fault::HangAfterExec));
        assert_eq!(d.routeros_version.as_deref(), Some("6.49.10"));
        assert_eq!(d.latency, Some(Duration::from_millis(500)));
        assert_eq!(d.change_every, Some(2));
        assert_eq!(d.export.as_deref(), Some(Path::new("path.rsc")));
        assert_eq!(d.host_key, Some(HostKeyKind::Rsa));
        assert_eq!(s.devices[1].lines, Some(50));
    }

    #[test]
    fn malformed_scenarios_give_clear_errors() {
        let cases = [
            ("[[device]]\nindex = ", "line 2"),
            (
                "[[device]]\nindex = 1\nfualt = \"hang\"\n",
                "unknown field `fualt`",
            ),
            ("[[device]]\nfault = \"hang\"\n", "missing field `index`"),
            (
                "[[device]]\nindex = 1\nfault = \"explode\"\n",
                "invalid fault \"explode\"",
            ),
            (
                "[[device]]\nindex = 1\n[[device]]\nindex = 1\n",
                "appears twice",
            ),
            ("[[device]]\nindex = 1\nchange_every = 0\n", "at least 1"),
            (
                "[[device]]\nindex = 1\nhost_key = \"dsa\"\n",
                "unknown variant",
            ),
        ];
        for (text, expected) in cases {
            let err = Scenario::parse(text).expect_err(text).to_string();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
    }

    #[test]
    fn apply_overrides_only_the_named_device_and_checks_the_index() {
        let s = Scenario::parse("[[device]]\nindex = 1\nrouteros_version = \"6.48\"\nlines = 10\n")
            .expect("valid scenario");
        let mut specs = vec![DeviceSpec::default(), DeviceSpec::default()];
        s.apply(&mut specs).expect("index in range");
        assert_eq!(specs[0].routeros_version, "7.16");
        assert_eq!(specs[1].routeros_version, "6.48");
        assert_eq!(specs[1].export, Export::Generated { lines: 10 });
        let err = s.apply(&mut specs[..1]).expect_err("index 1 out of range");
        assert!(err.to_string().contains("out of range"), "{err}");
    }
}
