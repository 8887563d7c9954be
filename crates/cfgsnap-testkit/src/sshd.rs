//! A real OpenSSH `sshd` for tests: its own host key, `sshd_config`, authorized
//! keys and log in a tempdir, listening on a free loopback port, killed on drop.
//! Every session runs the configured `ForceCommand`, whatever command the
//! client asks for. Needs the `openssh-server` package (`/usr/sbin/sshd`).
//!
//! Entry points: [`Sshd::start`] and [`Sshd::device`]; [`user_key`] and
//! [`key_auth`] for client keys; [`device_at`] and [`free_port`] for devices
//! with nothing (or something else) behind them.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use cfgsnap::backup::{Auth, Credentials, Device};
use cfgsnap::id::{DeviceId, TenantId};
use tempfile::TempDir;
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::time::Instant;

/// How long a started sshd may take to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Ports are picked by binding port 0 and releasing it; another process may
/// take the port in between, so starting is retried.
const START_ATTEMPTS: usize = 5;

/// Key types the helpers generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    /// `ssh-keygen -t ed25519`.
    Ed25519,
    /// `ssh-keygen -t rsa -b 2048`.
    Rsa,
}

/// What the server looks like.
#[derive(Debug, Clone)]
pub struct SshdOptions {
    /// Type of the generated host key.
    pub host_key: KeyType,
    /// Shell command run for every session (`ForceCommand`).
    pub force_command: String,
    /// Public key files (`*.pub`) allowed to log in as the current user.
    pub authorized_keys: Vec<PathBuf>,
    /// Extra `sshd_config` lines; they win over the defaults (sshd keeps the
    /// first value it reads for a keyword).
    pub extra_config: Vec<String>,
}

impl SshdOptions {
    /// An ed25519-host-key server running `force_command`, admitting `authorized`.
    pub fn new(force_command: impl Into<String>, authorized: &[&Path]) -> Self {
        SshdOptions {
            host_key: KeyType::Ed25519,
            force_command: force_command.into(),
            authorized_keys: authorized.iter().map(|p| p.to_path_buf()).collect(),
            extra_config: Vec::new(),
        }
    }
}

/// A running sshd; killed when dropped.
pub struct Sshd {
    /// Loopback port it listens on.
    pub port: u16,
    /// Private host key; the public one is beside it with `.pub` appended.
    pub host_key: PathBuf,
    dir: TempDir,
    child: Child,
}

impl Sshd {
    /// Generates a host key, writes the config and starts sshd in the
    /// foreground (`-D -e -f`), returning once it accepts connections.
    pub async fn start(options: SshdOptions) -> Sshd {
        ensure_privsep_dir();
        let dir = tempfile::tempdir().expect("tempdir for sshd");
        let host_key = generate_key(dir.path(), "host_key", options.host_key, "").await;
        let mut authorized = String::new();
        for key in &options.authorized_keys {
            authorized.push_str(&std::fs::read_to_string(key).expect("read an authorized key"));
        }
        std::fs::write(dir.path().join("authorized_keys"), authorized)
            .expect("write authorized_keys");
        for _ in 0..START_ATTEMPTS {
            let port = free_port().await;
            let config = sshd_config(dir.path(), &host_key, port, &options);
            let config_path = dir.path().join("sshd_config");
            std::fs::write(&config_path, config).expect("write sshd_config");
            let mut child = spawn_sshd(&config_path, &dir.path().join("sshd.log"));
            if wait_ready(&mut child, port).await {
                return Sshd {
                    port,
                    host_key,
                    dir,
                    child,
                };
            }
        }
        panic!("sshd did not start; its log:\n{}", read_log(dir.path()));
    }

    /// The listening sshd's process id (its CPU time is the devices' half).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// sshd's log so far (it never contains command output).
    pub fn log(&self) -> String {
        read_log(self.dir.path())
    }

    /// `SHA256:…` fingerprint of the host key, as `ssh-keygen -lf` prints it.
    pub async fn host_key_fingerprint(&self) -> String {
        fingerprint(&pub_path(&self.host_key)).await
    }

    /// A device pointing at this server, logging in as the current user.
    pub async fn device(&self, auth: Auth) -> Device {
        device_at(self.port, auth).await
    }
}

/// A device at `127.0.0.1:port`, logging in as the current user.
pub async fn device_at(port: u16, auth: Auth) -> Device {
    Device {
        id: DeviceId::parse("sshd-test").expect("valid device id"),
        tenant: TenantId::parse("test").expect("valid tenant id"),
        name: "OpenSSH test server".to_owned(),
        host: "127.0.0.1".to_owned(),
        port,
        credentials: Credentials {
            name: "test".to_owned(),
            username: current_user().await,
            auth,
        },
        interval: None,
        enabled: true,
    }
}

/// Generates a key pair `dir/name` (+ `.pub`) with `ssh-keygen`; `passphrase`
/// may be empty. Returns the private key's path.
pub async fn generate_key(dir: &Path, name: &str, key_type: KeyType, passphrase: &str) -> PathBuf {
    let path = dir.join(name);
    let mut command = Command::new("ssh-keygen");
    command
        .args(["-q", "-N", passphrase, "-C", "cfgsnap-test", "-f"])
        .arg(&path);
    match key_type {
        KeyType::Ed25519 => command.args(["-t", "ed25519"]),
        KeyType::Rsa => command.args(["-t", "rsa", "-b", "2048"]),
    };
    let status = command
        .stdin(Stdio::null())
        .status()
        .await
        .expect("run ssh-keygen");
    assert!(status.success(), "ssh-keygen failed: {status}");
    path
}

/// A fresh user key pair (`id_user`) in its own tempdir, which must outlive its use.
pub async fn user_key(key_type: KeyType, passphrase: &str) -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir for a user key");
    let key = generate_key(dir.path(), "id_user", key_type, passphrase).await;
    (dir, key)
}

/// Key authentication with the private key at `path`.
pub fn key_auth(path: &Path, passphrase: Option<&str>) -> Auth {
    Auth::Key {
        path: path.to_path_buf(),
        passphrase: passphrase.map(|p| p.to_owned().into()),
    }
}

/// The `SHA256:…` fingerprint of a public key file (`ssh-keygen -lf`).
pub async fn fingerprint(public_key: &Path) -> String {
    let output = Command::new("ssh-keygen")
        .args(["-E", "sha256", "-lf"])
        .arg(public_key)
        .output()
        .await
        .expect("run ssh-keygen -lf");
    assert!(output.status.success(), "ssh-keygen -lf failed");
    let text = String::from_utf8(output.stdout).expect("utf-8 fingerprint");
    text.split_whitespace()
        .nth(1)
        .expect("a fingerprint field")
        .to_owned()
}

/// The public key path of a private key generated by [`generate_key`].
pub fn pub_path(private_key: &Path) -> PathBuf {
    let mut path = private_key.as_os_str().to_owned();
    path.push(".pub");
    PathBuf::from(path)
}

/// The user the tests run as (sshd only lets an unprivileged sshd log in as itself).
pub async fn current_user() -> String {
    let output = Command::new("id")
        .arg("-un")
        .output()
        .await
        .expect("run id -un");
    String::from_utf8(output.stdout)
        .expect("utf-8 user name")
        .trim()
        .to_owned()
}

/// A loopback port nobody listens on right now.
pub async fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
    listener.local_addr().expect("local address").port()
}

fn sshd_config(dir: &Path, host_key: &Path, port: u16, options: &SshdOptions) -> String {
    let mut config: Vec<String> = options.extra_config.clone();
    config.extend([
        "ListenAddress 127.0.0.1".to_owned(),
        format!("Port {port}"),
        format!("HostKey {}", host_key.display()),
        format!("PidFile {}", dir.join("sshd.pid").display()),
        format!(
            "AuthorizedKeysFile {}",
            dir.join("authorized_keys").display()
        ),
        "UsePAM no".to_owned(),
        "StrictModes no".to_owned(),
        "PermitRootLogin prohibit-password".to_owned(),
        "PubkeyAuthentication yes".to_owned(),
        "PasswordAuthentication no".to_owned(),
        "KbdInteractiveAuthentication no".to_owned(),
        "AllowTcpForwarding no".to_owned(),
        "X11Forwarding no".to_owned(),
        "PermitTTY no".to_owned(),
        "PrintMotd no".to_owned(),
        "UseDNS no".to_owned(),
        "LogLevel VERBOSE".to_owned(),
        format!("ForceCommand {}", options.force_command),
    ]);
    config.join("\n") + "\n"
}

fn spawn_sshd(config: &Path, log: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("open sshd log");
    Command::new(sshd_path())
        .args(["-D", "-e", "-f"])
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("spawn sshd")
}

/// sshd re-executes itself, so it must be started by absolute path.
fn sshd_path() -> PathBuf {
    ["/usr/sbin/sshd", "/usr/local/sbin/sshd", "/sbin/sshd"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("sshd not found: install the openssh-server package")
}

/// sshd running as root refuses to start without its privilege separation dir.
fn ensure_privsep_dir() {
    let dir = Path::new("/run/sshd");
    if !dir.exists()
        && let Err(e) = std::fs::create_dir_all(dir)
    {
        eprintln!("cannot create /run/sshd ({e}); sshd may refuse to start as root");
    }
}

/// Polls until sshd accepts a connection; false if it exits first or never does.
async fn wait_ready(child: &mut Child, port: u16) -> bool {
    let deadline = Instant::now() + READY_TIMEOUT;
    while Instant::now() < deadline {
        if child.try_wait().expect("poll sshd").is_some() {
            return false;
        }
        if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

fn read_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("sshd.log")).unwrap_or_default()
}
