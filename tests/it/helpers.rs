//! Shared helpers of the integration tests: the test kit's fleet, corpus and
//! tracing helpers under their old names, and a temporary `config.toml` for
//! the `cfgsnap` binary.
//!
//! Export text never goes into a helper's panic message: the corpus holds
//! real-looking secrets.

use std::path::{Path, PathBuf};

pub use cfgsnap_testkit::fleet::*;
pub use cfgsnap_testkit::{init_tracing, within};
use routeros_sim::Simulator;
use tempfile::TempDir;

/// The `cfgsnap` binary under test.
pub const CFGSNAP: &str = env!("CARGO_BIN_EXE_cfgsnap");

/// What [`CliConfig::write`] puts in `config.toml`.
#[derive(Debug, Clone)]
pub struct CliOptions {
    /// Password of the shared `[[credentials]]` (read from a file).
    pub password: String,
    /// `[backup].command_timeout`.
    pub command_timeout: &'static str,
    /// `[backup].job_timelimit`.
    pub job_timelimit: &'static str,
}

impl Default for CliOptions {
    fn default() -> Self {
        CliOptions {
            password: "admin".to_owned(),
            command_timeout: "3s",
            job_timelimit: "30s",
        }
    }
}

/// A temporary `config.toml` for the `cfgsnap` binary: device `dev-{i}` of
/// tenant `t1` per simulator device, a SQLite store, master key and known
/// hosts file, all in one tempdir.
pub struct CliConfig {
    dir: TempDir,
    path: PathBuf,
}

impl CliConfig {
    /// Writes the configuration for every device of `sim`.
    pub fn write(sim: &Simulator, options: &CliOptions) -> CliConfig {
        let dir = tempfile::tempdir().expect("tempdir for the CLI");
        let root = dir.path().display().to_string();
        let password_file = dir.path().join("password");
        std::fs::write(&password_file, format!("{}\n", options.password))
            .expect("write the password file");
        let mut text = format!(
            r#"[store]
url = "sqlite://{root}/cfgsnap.db"
encryption_key_file = "{root}/master.key"

[backup]
connect_timeout = "5s"
command_timeout = "{command_timeout}"
job_timelimit = "{job_timelimit}"
max_config_bytes = 33554432
command = "auto"
hide_sensitive = false
known_hosts_file = "{root}/known_hosts.json"

[log]
level = "error"

[[credentials]]
name = "sim"
username = "admin"
password_file = "{root}/password"

[[tenants]]
id = "{TENANT}"
name = "Test tenant"
"#,
            command_timeout = options.command_timeout,
            job_timelimit = options.job_timelimit,
        );
        for (i, addr) in sim.addrs().iter().enumerate() {
            text.push_str(&format!(
                "\n[[devices]]\nid = \"{}\"\ntenant = \"{TENANT}\"\nhost = \"{}\"\nport = {}\ncredentials = \"sim\"\n",
                device_id(i),
                addr.ip(),
                addr.port()
            ));
        }
        let path = dir.path().join("config.toml");
        std::fs::write(&path, text).expect("write config.toml");
        CliConfig { dir, path }
    }

    /// The `config.toml` file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The tempdir holding the config, store and keys.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}
