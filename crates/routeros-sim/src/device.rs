//! One simulated device's shared state: its spec, host key, counters, and the reply it
//! gives to each command (faults included).
//!
//! Shared by the device's listener and all its connections; it does no network I/O.
//! Entry points: [`Device::new`], [`Device::reply_to`].

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use russh::keys::PublicKey;
use russh::server::Config;

use super::command::{self, Command};
use super::export;
use super::generate::HugeExport;
use super::host_key;
use super::lines::ExportRequest;
use super::{DeviceSpec, Fault, HostKeyKind};

/// Size of the garbage fault's output.
const GARBAGE_BYTES: usize = 4096;

/// What to send back on an exec channel.
pub(crate) enum Reply {
    /// Send these bytes, then exit status 0, EOF and close.
    Text(Vec<u8>),
    /// Send `body` `chunk` bytes at a time, pausing `every` in between, then finish.
    Drip {
        body: Vec<u8>,
        chunk: usize,
        every: Duration,
    },
    /// Send the first half of the body, then drop the TCP connection.
    Disconnect(Vec<u8>),
    /// Stream a generated export chunk by chunk, then finish.
    Huge(HugeExport),
    /// Send nothing and keep the channel open.
    Hang,
}

/// A simulated device.
pub(crate) struct Device {
    /// Position in the simulator's device list; seeds keys and generated configs.
    pub index: usize,
    /// The behaviour.
    pub spec: DeviceSpec,
    legacy: bool,
    key_kind: HostKeyKind,
    stable_config: Arc<Config>,
    fingerprint: Mutex<String>,
    served: AtomicU64,
}

impl Device {
    /// Prepares device `index`: derives its host key (off the async threads: RSA
    /// generation takes a while) and its SSH configuration.
    pub(crate) async fn new(index: usize, spec: DeviceSpec) -> io::Result<Device> {
        let legacy = export::is_legacy(&spec.routeros_version);
        // RouterOS v6 offers only `ssh-rsa`.
        let key_kind = if legacy {
            HostKeyKind::Rsa
        } else {
            spec.host_key
        };
        let key = tokio::task::spawn_blocking(move || host_key::stable_key(key_kind, index))
            .await
            .map_err(io::Error::other)?;
        let hang = spec.fault == Some(Fault::HangAfterExec);
        Ok(Device {
            index,
            legacy,
            key_kind,
            fingerprint: Mutex::new(host_key::fingerprint(&key)),
            stable_config: host_key::server_config(key, legacy, hang),
            served: AtomicU64::new(0),
            spec,
        })
    }

    /// The SSH configuration for a new connection: the stable one, or one with a fresh
    /// key under the host-key-change fault.
    pub(crate) async fn connection_config(&self) -> io::Result<Arc<Config>> {
        if self.spec.fault != Some(Fault::HostKeyChange) {
            return Ok(self.stable_config.clone());
        }
        let kind = self.key_kind;
        let key = tokio::task::spawn_blocking(move || host_key::random_key(kind))
            .await
            .map_err(io::Error::other)?;
        *self
            .fingerprint
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = host_key::fingerprint(&key);
        Ok(host_key::server_config(key, self.legacy, false))
    }

    /// `SHA256:…` of the host key presented most recently (or the stable one).
    pub(crate) fn fingerprint(&self) -> String {
        self.fingerprint
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// How many `/export` commands were answered.
    pub(crate) fn exports_served(&self) -> u64 {
        self.served.load(Ordering::SeqCst)
    }

    /// True when `user`/`password` may log in.
    pub(crate) fn accepts_password(&self, user: &str, password: &str) -> bool {
        self.spec.fault != Some(Fault::AuthFailure)
            && user == self.spec.username
            && self.spec.password.as_deref() == Some(password)
    }

    /// True when `user` may log in with `key`.
    pub(crate) fn accepts_key(&self, user: &str, key: &PublicKey) -> bool {
        self.spec.fault != Some(Fault::AuthFailure)
            && user == self.spec.username
            && self
                .spec
                .authorized_keys
                .iter()
                .any(|k| k.key_data() == key.key_data())
    }

    /// The reply to one exec command line.
    pub(crate) fn reply_to(&self, line: &str) -> Reply {
        match command::parse(line, self.legacy) {
            Command::Nothing => Reply::Text(Vec::new()),
            Command::VersionProbe => {
                Reply::Text(format!("{} (stable)\r\n", self.spec.routeros_version).into_bytes())
            }
            Command::Error(text) => Reply::Text(format!("{text}\r\n").into_bytes()),
            Command::Export(request) => self.export_reply(request),
        }
    }

    /// Counts the export and builds its reply, applying the device's fault.
    fn export_reply(&self, request: ExportRequest) -> Reply {
        let number = self.served.fetch_add(1, Ordering::SeqCst) + 1;
        let variant = self
            .spec
            .change_every
            .filter(|&k| k > 0)
            .map(|k| number / u64::from(k));
        let now = chrono::Local::now().naive_local();
        let render = || export::render(&self.spec, self.index, request, now, variant).into_bytes();
        match &self.spec.fault {
            Some(Fault::HangAfterExec) => Reply::Hang,
            Some(Fault::Garbage) => Reply::Text(garbage()),
            Some(Fault::RouterOsError(text)) => Reply::Text(format!("{text}\r\n").into_bytes()),
            Some(Fault::HugeOutput { bytes }) => Reply::Huge(HugeExport::new(
                export::header(&self.spec.routeros_version, now),
                self.index,
                *bytes,
            )),
            Some(Fault::SlowDrip { chunk, every }) => Reply::Drip {
                body: render(),
                chunk: *chunk,
                every: *every,
            },
            Some(Fault::DisconnectMidOutput) => Reply::Disconnect(render()),
            Some(Fault::AuthFailure | Fault::HostKeyChange) | None => Reply::Text(render()),
        }
    }
}

/// Random bytes that are never valid UTF-8 (every 64th byte is `0xFF`).
fn garbage() -> Vec<u8> {
    (0..GARBAGE_BYTES)
        .map(|i| if i % 64 == 0 { 0xFF } else { rand::random() })
        .collect()
}
