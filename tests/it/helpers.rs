//! Shared helpers of the integration tests: test tracing, an in-process
//! routeros-sim on loopback, devices and short limits pointing at it, an
//! executor pinning host keys in a temporary file, and a temporary
//! `config.toml` for the `cfgsnap` binary.
//!
//! Export text never goes into a helper's panic message: the corpus holds
//! real-looking secrets.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::Duration;

use cfgsnap::backup::Executor as _;
use cfgsnap::backup::executor::SshExecutor;
use cfgsnap::backup::known_hosts::KnownHosts;
use cfgsnap::backup::normalize::{normalize, sha256_hex};
use cfgsnap::backup::{self, Auth, Command, Credentials, Device, Limits, Outcome, Trigger};
use cfgsnap::config::LogFormat;
use cfgsnap::id::{DeviceId, TenantId};
use cfgsnap::sim::{self, DeviceSpec, Export, Simulator};
use cfgsnap::telemetry;
use russh::keys::PublicKey;
use tempfile::TempDir;

/// The real exports, see `SOURCES.md` there.
pub const CORPUS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus/routeros");

/// The tenant every test device belongs to.
pub const TENANT: &str = "t1";

/// Tracing for the tests, installed once: silent unless `TEST_LOG` is set
/// (`TEST_LOG=1` logs at debug, any other value is used as the filter when
/// `RUST_LOG` is unset).
static TRACING: LazyLock<()> = LazyLock::new(|| {
    let Some(value) = std::env::var_os("TEST_LOG") else {
        return;
    };
    let value = value.to_string_lossy();
    let filter = match value.as_ref() {
        "" | "1" | "true" => "debug",
        other => other,
    };
    telemetry::init(telemetry::subscriber(
        filter,
        LogFormat::Text,
        std::io::stdout,
    ));
});

/// Installs the test tracing subscriber (once per process).
pub fn init_tracing() {
    LazyLock::force(&TRACING);
}

/// Runs `test` with a deadline, so a hanging device can never hang the suite.
pub async fn within<F: Future>(limit: Duration, test: F) -> F::Output {
    init_tracing();
    match tokio::time::timeout(limit, test).await {
        Ok(output) => output,
        Err(_) => panic!("the test did not finish within {limit:?}"),
    }
}

/// Starts one simulated device per spec, each on its own OS-chosen port of
/// 127.0.0.1.
pub async fn start_simulator(specs: Vec<DeviceSpec>) -> Simulator {
    init_tracing();
    let listen: SocketAddr = "127.0.0.1:0".parse().expect("valid address");
    sim::start(listen, specs)
        .await
        .expect("the simulator starts")
}

/// The id of simulator device `i` in devices and configs: `dev-{i}`.
pub fn device_id(i: usize) -> String {
    format!("dev-{i}")
}

/// Simulator device `i` as cfgsnap sees it: password auth `admin`/`admin`,
/// tenant `t1`.
pub fn sim_device(sim: &Simulator, i: usize) -> Device {
    sim_device_with_password(sim, i, "admin")
}

/// Simulator device `i`, logging in as `admin` with `password`.
pub fn sim_device_with_password(sim: &Simulator, i: usize, password: &str) -> Device {
    device_at(sim.addrs()[i], &device_id(i), password)
}

/// A device at `addr` with id `id`, logging in as `admin` with `password`.
pub fn device_at(addr: SocketAddr, id: &str, password: &str) -> Device {
    Device {
        id: DeviceId::parse(id).expect("valid device id"),
        tenant: TenantId::parse(TENANT).expect("valid tenant id"),
        name: format!("{id} (simulated)"),
        host: addr.ip().to_string(),
        port: addr.port(),
        credentials: Credentials {
            name: "sim".to_owned(),
            username: "admin".to_owned(),
            auth: Auth::Password(password.to_owned().into()),
        },
        interval: None,
        enabled: true,
    }
}

/// Generates an unencrypted Ed25519 client key pair `dir/name` (+ `.pub`)
/// with `ssh-keygen`; returns the private key's path and the public key.
pub fn client_key_pair(dir: &Path, name: &str) -> (PathBuf, PublicKey) {
    let private = dir.join(name);
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&private)
        .status()
        .expect("ssh-keygen runs");
    assert!(status.success(), "ssh-keygen failed");
    let public = std::fs::read_to_string(private.with_extension("pub")).expect("public key");
    let public = PublicKey::from_openssh(public.trim()).expect("valid public key");
    (private, public)
}

/// Limits for tests: connect 5 s, command 3 s, job 10 s, 32 MiB cap, `auto`
/// showing secrets.
pub fn test_limits() -> Limits {
    Limits {
        connect_timeout: Duration::from_secs(5),
        command_timeout: Duration::from_secs(3),
        job_timelimit: Duration::from_secs(10),
        max_config_bytes: 32 * 1024 * 1024,
        command: Command::Auto {
            hide_sensitive: false,
        },
    }
}

/// An [`SshExecutor`] pinning host keys in `known_hosts.json` of its own tempdir.
pub struct TestExecutor {
    /// The executor under test.
    pub executor: SshExecutor<KnownHosts>,
    /// The pins it uses (shared with the executor).
    pub known_hosts: KnownHosts,
    _dir: TempDir,
}

impl TestExecutor {
    /// A new executor with `limits` and no pinned key.
    pub async fn new(limits: Limits) -> TestExecutor {
        let dir = tempfile::tempdir().expect("tempdir for known hosts");
        let known_hosts = KnownHosts::open(&dir.path().join("known_hosts.json"))
            .await
            .expect("open known hosts");
        TestExecutor {
            executor: SshExecutor::new(limits, known_hosts.clone()),
            known_hosts,
            _dir: dir,
        }
    }

    /// One scheduled run against `device`.
    pub async fn run(&self, device: &Device) -> backup::Result<Outcome> {
        self.executor.run(device, Trigger::Scheduled).await
    }
}

/// The text of corpus file `name`.
pub fn corpus_file(name: &str) -> String {
    let path = Path::new(CORPUS_DIR).join(name);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading corpus file {}: {e}", path.display()))
}

/// A v7 or v6 device serving corpus file `name`, with the version of its header.
pub fn corpus_device(name: &str) -> DeviceSpec {
    let text = corpus_file(name);
    DeviceSpec::default()
        .with_version(&header_version(&text))
        .with_export(Export::Text(text))
}

/// The identity cfgsnap must give an export of `text`: the SHA-256 of its
/// normalized form, whatever its header says.
pub fn normalized_hash(text: &str) -> String {
    sha256_hex(&normalize(text).text)
}

/// The RouterOS version in the header of `text`.
pub fn header_version(text: &str) -> String {
    normalize(text)
        .routeros_version
        .expect("the export has a timestamp header")
}

/// A loopback port nobody listens on (bound, then released).
pub async fn closed_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind port 0");
    listener.local_addr().expect("local address").port()
}

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
