//! A real Exim mail server (Debian's `exim4-daemon-light`) for tests: its own
//! configuration, spool, log, TLS certificate (signed by a CA made for it)
//! and mailbox in a tempdir, listening on free loopback ports, killed on
//! drop. It offers STARTTLS on [`Exim::port`], takes implicit TLS on
//! [`Exim::tls_port`], and, when started with a login, refuses recipients
//! until the client has logged in (PLAIN or LOGIN, offered over TLS only).
//! Every mail it accepts is appended to one mbox file; [`Exim::wait_for`]
//! reads it. Needs root (Exim drops to its own user for a `-C`
//! configuration, so the tempdir is handed to that user) and `openssl`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tempfile::TempDir;
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::time::Instant;

use crate::sshd::free_port;

/// Exim's binary, from `exim4-daemon-light`.
const EXIM: &str = "/usr/sbin/exim4";
/// The user Exim runs as on Debian; it owns the tempdir.
const EXIM_USER: &str = "Debian-exim";
/// How long a started Exim may take to listen, and a mail to arrive.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
const MAIL_TIMEOUT: Duration = Duration::from_secs(60);
/// Ports are picked by binding port 0 and releasing it; another process may
/// take one in between, so starting is retried.
const START_ATTEMPTS: usize = 5;

/// A running Exim; killed when dropped.
pub struct Exim {
    /// Plain SMTP with STARTTLS offered.
    pub port: u16,
    /// SMTPS: TLS from the first byte.
    pub tls_port: u16,
    /// The PEM certificate of the CA that signed the server's certificate
    /// (for `smtp_ca_file`).
    pub ca_file: PathBuf,
    dir: TempDir,
    _child: Child,
}

impl Exim {
    /// Starts Exim, requiring `login` (user, password) before any recipient
    /// when given; returns once both ports accept connections.
    pub async fn start(login: Option<(&str, &str)>) -> Exim {
        assert!(
            Path::new(EXIM).exists(),
            "{EXIM} is missing: install Debian's exim4-daemon-light \
             (scripts/test.sh does: apt-get install exim4-daemon-light)"
        );
        let dir = tempfile::tempdir().expect("tempdir for exim");
        let ca_file = make_certificates(dir.path()).await;
        for sub in ["spool", "log", "mail"] {
            std::fs::create_dir(dir.path().join(sub)).expect("exim directories");
        }
        give_to_exim(dir.path()).await;
        for _ in 0..START_ATTEMPTS {
            let (port, tls_port) = (free_port().await, free_port().await);
            let config = dir.path().join("exim.conf");
            // Exim wants its configuration owned by root and not writable
            // by others; it is written by the test process (root).
            std::fs::write(&config, exim_config(dir.path(), port, tls_port, login))
                .expect("write exim.conf");
            let mut child = Command::new(EXIM)
                .arg("-C")
                .arg(&config)
                .arg("-bdf")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .expect("run exim4");
            if wait_ready(&mut child, &[port, tls_port]).await {
                return Exim {
                    port,
                    tls_port,
                    ca_file,
                    dir,
                    _child: child,
                };
            }
        }
        panic!("exim did not start; its log:\n{}", read_log(dir.path()));
    }

    /// Exim's main log so far (envelopes and errors, never a mail's text).
    pub fn log(&self) -> String {
        read_log(self.dir.path())
    }

    /// The mails in the mailbox so far, each with the headers Exim added
    /// (`Envelope-to`, `Return-path`, `Received`).
    pub fn mails(&self) -> Vec<String> {
        let path = self.dir.path().join("mail/inbox");
        let Ok(text) = std::fs::read_to_string(path) else {
            return Vec::new();
        };
        split_mbox(&text)
    }

    /// Waits until `n` mails are in the mailbox; returns them all.
    pub async fn wait_for(&self, n: usize) -> Vec<String> {
        let deadline = Instant::now() + MAIL_TIMEOUT;
        loop {
            let mails = self.mails();
            if mails.len() >= n {
                return mails;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} mails arrived; exim's log:\n{}",
                mails.len(),
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Splits an mbox file at its `From ` separator lines (Exim escapes such
/// lines inside a mail as `>From `).
fn split_mbox(text: &str) -> Vec<String> {
    let mut mails: Vec<String> = Vec::new();
    for line in text.lines() {
        if line.starts_with("From ") {
            mails.push(String::new());
        } else if let Some(mail) = mails.last_mut() {
            mail.push_str(line);
            mail.push('\n');
        }
    }
    mails
}

/// A CA and a server certificate for 127.0.0.1 and localhost signed by it,
/// made with `openssl`; returns the CA certificate's path.
async fn make_certificates(dir: &Path) -> PathBuf {
    let run = |args: &[&str]| {
        let mut command = Command::new("openssl");
        command.args(args).current_dir(dir).stdin(Stdio::null());
        command.stdout(Stdio::null()).stderr(Stdio::null());
        let step = args.join(" ");
        async move {
            let status = command.status().await.expect("run openssl");
            assert!(status.success(), "openssl {step} failed");
        }
    };
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
         extendedKeyUsage=serverAuth\n",
    )
    .expect("write server.ext");
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=cfgsnap test CA",
    ])
    .await;
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "key.pem",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ])
    .await;
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "cert.pem",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ])
    .await;
    dir.join("ca.pem")
}

/// Hands the tempdir to Exim's user: Exim runs as that user for a `-C`
/// configuration and writes its spool, log and mailbox there.
async fn give_to_exim(dir: &Path) {
    let status = Command::new("chown")
        .args(["-R", &format!("{EXIM_USER}:{EXIM_USER}")])
        .arg(dir)
        .status()
        .await
        .expect("run chown");
    assert!(
        status.success(),
        "chown to {EXIM_USER} failed: the mail tests run as root (as scripts/test.sh does)"
    );
}

/// The configuration: every recipient accepted (after a login when one is
/// required) and appended to `mail/inbox`.
fn exim_config(dir: &Path, port: u16, tls_port: u16, login: Option<(&str, &str)>) -> String {
    let d = dir.display();
    let (require_login, authenticators) = match login {
        None => (String::new(), String::new()),
        Some((user, password)) => (
            "  deny !authenticated = *\n".to_owned(),
            format!(
                "begin authenticators\n\
                 plain:\n  driver = plaintext\n  public_name = PLAIN\n  server_prompts = :\n\
                 \x20 server_advertise_condition = ${{if def:tls_in_cipher}}\n\
                 \x20 server_condition = ${{if and{{{{eq{{$auth2}}{{{user}}}}}{{eq{{$auth3}}{{{password}}}}}}}}}\n\
                 \x20 server_set_id = $auth2\n\
                 login:\n  driver = plaintext\n  public_name = LOGIN\n\
                 \x20 server_prompts = Username:: : Password::\n\
                 \x20 server_advertise_condition = ${{if def:tls_in_cipher}}\n\
                 \x20 server_condition = ${{if and{{{{eq{{$auth1}}{{{user}}}}}{{eq{{$auth2}}{{{password}}}}}}}}}\n\
                 \x20 server_set_id = $auth1\n"
            ),
        ),
    };
    format!(
        "exim_path = {EXIM}\nprimary_hostname = mail.test\n\
         spool_directory = {d}/spool\nlog_file_path = {d}/log/%slog\npid_file_path = {d}/exim.pid\n\
         daemon_smtp_ports = {port} : {tls_port}\ntls_on_connect_ports = {tls_port}\n\
         local_interfaces = 127.0.0.1\ntls_certificate = {d}/cert.pem\ntls_privatekey = {d}/key.pem\n\
         tls_advertise_hosts = *\nhost_lookup =\nrfc1413_hosts =\nacl_smtp_rcpt = rcpt\n\
         begin acl\nrcpt:\n{require_login}  accept\n\
         begin routers\nall:\n  driver = accept\n  transport = mailbox\n\
         begin transports\nmailbox:\n  driver = appendfile\n  file = {d}/mail/inbox\n\
         \x20 user = {EXIM_USER}\n  envelope_to_add\n  return_path_add\n\
         {authenticators}"
    )
}

async fn wait_ready(child: &mut Child, ports: &[u16]) -> bool {
    let deadline = Instant::now() + READY_TIMEOUT;
    for port in ports {
        loop {
            if TcpStream::connect(("127.0.0.1", *port)).await.is_ok() {
                break;
            }
            if child.try_wait().ok().flatten().is_some() || Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    true
}

fn read_log(dir: &Path) -> String {
    let mut out = String::new();
    for name in ["mainlog", "rejectlog", "paniclog"] {
        if let Ok(text) = std::fs::read_to_string(dir.join("log").join(name)) {
            out.push_str(&format!("--- {name}\n{text}"));
        }
    }
    out
}
