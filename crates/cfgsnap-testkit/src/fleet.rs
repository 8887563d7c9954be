//! The simulated fleet and the corpus: simulated RouterOS devices on
//! loopback and the [`Device`]s pointing at them, the real exports of
//! `tests/corpus/routeros`, and the real SSH executor with scratch host-key
//! pins.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cfgsnap::backup::Executor as _;
use cfgsnap::backup::executor::SshExecutor;
use cfgsnap::backup::known_hosts::KnownHosts;
use cfgsnap::backup::normalize::{normalize, sha256_hex};
use cfgsnap::backup::{self, Auth, Command, Credentials, Device, Limits, Outcome, Trigger};
use cfgsnap::id::{DeviceId, TenantId};
use routeros_sim::{self as sim, DeviceSpec, Export, Simulator};
use russh::keys::PublicKey;
use tempfile::TempDir;

/// The real exports, see `SOURCES.md` there.
pub const CORPUS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/corpus/routeros");

/// The tenant every test device belongs to.
pub const TENANT: &str = "t1";

/// Starts one simulated device per spec, each on its own OS-chosen port of
/// 127.0.0.1.
pub async fn start_simulator(specs: Vec<DeviceSpec>) -> Simulator {
    crate::init_tracing();
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

/// The real [`SshExecutor`], pinning host keys in `known_hosts.json` of a
/// tempdir of its own (removed with it).
pub struct ScratchSshExecutor {
    /// The executor under test.
    pub executor: SshExecutor<KnownHosts>,
    /// The pins it uses (shared with the executor).
    pub known_hosts: KnownHosts,
    _dir: TempDir,
}

impl ScratchSshExecutor {
    /// A new executor with `limits` and no pinned key.
    pub async fn new(limits: Limits) -> ScratchSshExecutor {
        let dir = tempfile::tempdir().expect("tempdir for known hosts");
        let known_hosts = KnownHosts::open(&dir.path().join("known_hosts.json"))
            .await
            .expect("open known hosts");
        ScratchSshExecutor {
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
