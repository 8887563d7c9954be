//! `cfgsnap serve` as a child process, as the README runs it: started on a
//! configuration file, logging to a file, its HTTP port read from the log,
//! stopped with a signal. The caller names the binary (integration tests
//! pass `env!("CARGO_BIN_EXE_cfgsnap")`).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

/// A running `cfgsnap serve`, killed when dropped.
pub struct ServeProcess {
    /// The process.
    pub child: Child,
    /// Its HTTP port, when it serves the API.
    pub port: Option<u16>,
    /// Its log file.
    pub log: PathBuf,
}

/// How [`ServeProcess::start_with`] runs the node.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Whether the node serves the API: then `start_with` waits for its port.
    pub api: bool,
    /// `RUST_LOG` of the node.
    pub rust_log: &'static str,
    /// Where standard output goes (discarded when `None`).
    pub stdout: Option<PathBuf>,
    /// Whether a node that does not start shows its log in the failure (not
    /// for tests whose log may hold what they check is never logged).
    pub show_log: bool,
    /// More environment variables of the node.
    pub env: Vec<(&'static str, &'static str)>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            api: true,
            rust_log: "info",
            stdout: None,
            show_log: false,
            env: Vec::new(),
        }
    }
}

impl ServeProcess {
    /// Starts `{bin} serve --config {config}`, logging at `info` to `log`;
    /// with `api`, waits for its HTTP port. The log stays out of failure
    /// messages.
    pub async fn start(
        bin: impl AsRef<Path>,
        config: &Path,
        log: PathBuf,
        api: bool,
    ) -> ServeProcess {
        let options = ServeOptions {
            api,
            ..ServeOptions::default()
        };
        ServeProcess::start_with(bin, config, log, &options).await
    }

    /// Starts `{bin} serve --config {config}` as `options` say, logging to
    /// `log`.
    pub async fn start_with(
        bin: impl AsRef<Path>,
        config: &Path,
        log: PathBuf,
        options: &ServeOptions,
    ) -> ServeProcess {
        let stdout = match &options.stdout {
            Some(path) => Stdio::from(std::fs::File::create(path).expect("the stdout file")),
            None => Stdio::null(),
        };
        let child = Command::new(bin.as_ref())
            .args(["serve", "--config"])
            .arg(config)
            .env("RUST_LOG", options.rust_log)
            .envs(options.env.iter().copied())
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(std::fs::File::create(&log).expect("the log file can be created"))
            .kill_on_drop(true)
            .spawn()
            .expect("cfgsnap serve starts");
        let port = match options.api {
            true => Some(wait_for_port(&log, options.show_log).await),
            false => None,
        };
        ServeProcess { child, port, log }
    }

    /// `kill -9`, then reaps it.
    pub async fn kill(mut self) {
        self.child.kill().await.expect("kill -9 the node");
    }
}

/// Signals a child process by name (`TERM`, `KILL`, `HUP`, …).
pub fn signal(child: &Child, name: &str) {
    let pid = child.id().expect("the process runs").to_string();
    let status = std::process::Command::new("kill")
        .args(["-s", name, &pid])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -s {name}");
}

/// The port the node printed in its log (`HTTP API listening port=…`),
/// within a minute. `show_log` puts the log in the failure message (not for
/// tests whose log may hold what they check for).
pub async fn wait_for_port(log: &Path, show_log: bool) -> u16 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(port) = text
            .lines()
            .find(|l| l.contains("HTTP API listening"))
            .and_then(|l| l.split("port=").nth(1))
            .and_then(|p| p.split_whitespace().next())
            .and_then(|p| p.parse().ok())
        {
            return port;
        }
        let shown = if show_log {
            text.as_str()
        } else {
            "(withheld)"
        };
        assert!(
            tokio::time::Instant::now() < deadline,
            "cfgsnap serve did not start; log:\n{shown}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
