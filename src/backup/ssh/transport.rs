//! The SSH transport: the shared client configuration (algorithms, window),
//! TCP connect, the handshake and the host-key policy, with russh and socket
//! errors mapped to `backup::Error`. Authentication is `login`'s job.

use std::borrow::Cow;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock, OnceLock};

use anyhow::anyhow;
use russh::client::{self, Handle};
use russh::keys::{Algorithm, HashAlg, PublicKeyOrCertificate};
use russh::{Preferred, cipher, kex, mac};
use tokio::io::BufReader;
use tokio::net::TcpStream;
use tracing::debug;

use crate::backup::{self, Device, Error};

/// Channel window: big enough that multi-MB exports stream without stalls;
/// russh re-opens it as data arrives.
const WINDOW_SIZE: u32 = 16 * 1024 * 1024;
/// The largest channel packet russh is willing to announce.
const MAX_PACKET_SIZE: u32 = 65_535;
/// Read buffer of a connection: a server's usual packets (OpenSSH sends
/// channel data 32 KiB at a time) and the bursts of small ones around them
/// fit; a larger read bypasses it.
const READ_BUFFER: usize = 32 * 1024;

/// The client configuration, shared by every connection.
static CONFIG: LazyLock<Arc<client::Config>> = LazyLock::new(|| Arc::new(client_config()));

fn client_config() -> client::Config {
    client::Config {
        nodelay: true,
        window_size: WINDOW_SIZE,
        maximum_packet_size: MAX_PACKET_SIZE,
        preferred: preferred_algorithms(),
        // Group exchange may hand out 2048-bit groups: no weaker than the fixed
        // group14 also allowed, and older servers may have nothing bigger.
        gex: client::GexParams::new(2048, 8192, 8192).expect("BUG: valid DH group-exchange sizes"),
        ..client::Config::default()
    }
}

/// russh's modern defaults first, then the legacy algorithms RouterOS v6
/// offers (DESIGN.md §5), so modern servers never negotiate down to them.
/// On a CPU with AES instructions AES-GCM goes before ChaCha20-Poly1305:
/// as strong, and there it decrypts an export several times faster.
fn preferred_algorithms() -> Preferred {
    let defaults = Preferred::DEFAULT;
    Preferred {
        cipher: Cow::Owned(cipher_order(&defaults.cipher, has_aes_instructions())),
        kex: Cow::Owned(append_missing(
            &defaults.kex,
            &[kex::DH_G14_SHA1, kex::DH_GEX_SHA256],
        )),
        key: Cow::Owned(append_missing(
            &defaults.key,
            &[Algorithm::Rsa { hash: None }],
        )),
        mac: Cow::Owned(append_missing(&defaults.mac, &[mac::HMAC_SHA1])),
        ..defaults
    }
}

/// `defaults` with AES-256-GCM moved to the front when `aes` (the CPU
/// has AES and carry-less multiply instructions).
fn cipher_order(defaults: &[cipher::Name], aes: bool) -> Vec<cipher::Name> {
    let mut order = defaults.to_vec();
    if aes && let Some(at) = order.iter().position(|c| *c == cipher::AES_256_GCM) {
        let gcm = order.remove(at);
        order.insert(0, gcm);
    }
    order
}

fn has_aes_instructions() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("aes")
            && std::arch::is_x86_feature_detected!("pclmulqdq")
    }
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("aes")
            && std::arch::is_aarch64_feature_detected!("pmull")
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

fn append_missing<T: Clone + PartialEq>(defaults: &[T], extra: &[T]) -> Vec<T> {
    let mut all = defaults.to_vec();
    for name in extra {
        if !all.contains(name) {
            all.push(name.clone());
        }
    }
    all
}

/// Host-key policy: refuse a key that differs from the pinned one (or, on a
/// re-key, from the one first presented) and remember what was presented.
pub(super) struct HostKeyCheck {
    pinned: Option<String>,
    presented: Arc<OnceLock<String>>,
}

impl client::Handler for HostKeyCheck {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let fingerprint = match key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key.fingerprint(HashAlg::Sha256),
            PublicKeyOrCertificate::Certificate(cert) => {
                cert.public_key().fingerprint(HashAlg::Sha256)
            }
        }
        .to_string();
        let first = self.presented.get_or_init(|| fingerprint.clone());
        let pinned_ok = self.pinned.as_ref().is_none_or(|pin| *pin == fingerprint);
        Ok(pinned_ok && *first == fingerprint)
    }
}

/// Connects over TCP and runs the SSH handshake. Returns the session and the
/// `SHA256:…` fingerprint of the accepted host key.
pub(super) async fn handshake(
    device: &Device,
    pinned: Option<&str>,
) -> backup::Result<(Handle<HostKeyCheck>, String)> {
    let target = format!("{}:{}", device.host, device.port);
    let stream = tcp_connect(&device.host, device.port, &target).await?;
    let presented = Arc::new(OnceLock::new());
    let handler = HostKeyCheck {
        pinned: pinned.map(str::to_owned),
        presented: Arc::clone(&presented),
    };
    // russh reads each packet as its length, then its body, straight from
    // the stream: buffered, a burst of packets costs a few reads, not two
    // system calls a packet.
    let stream = BufReader::with_capacity(READ_BUFFER, stream);
    let handle = client::connect_stream(Arc::clone(&CONFIG), stream, handler)
        .await
        .map_err(|e| handshake_error(e, &target, pinned, &presented))?;
    let fingerprint = presented
        .get()
        .cloned()
        .ok_or_else(|| anyhow!("the SSH handshake with {target} skipped the host key check"))?;
    Ok((handle, fingerprint))
}

/// Resolves `host` and connects to the first address that answers.
async fn tcp_connect(host: &str, port: u16, target: &str) -> backup::Result<TcpStream> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| {
            unreachable_with(
                "DNS lookup failed",
                anyhow::Error::new(e).context(format!("resolving {target}")),
            )
        })?
        .collect();
    let mut last_error = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => {
                // Without it each round trip stalls on delayed ACKs.
                if let Err(e) = stream.set_nodelay(true) {
                    debug!(error = %e, "set_nodelay failed");
                }
                return Ok(stream);
            }
            Err(e) => last_error = Some(e),
        }
    }
    Err(match last_error {
        Some(e) => unreachable_with(
            io_reason(&e),
            anyhow::Error::new(e).context(format!("connecting to {target}")),
        ),
        None => unreachable_with(
            "DNS lookup returned no address",
            anyhow!("resolving {target}"),
        ),
    })
}

fn handshake_error(
    e: russh::Error,
    target: &str,
    pinned: Option<&str>,
    presented: &OnceLock<String>,
) -> Error {
    match (&e, pinned, presented.get()) {
        (russh::Error::UnknownKey, Some(pinned), Some(seen)) if pinned != seen => {
            Error::HostKeyMismatch {
                pinned: pinned.to_owned(),
                presented: seen.clone(),
            }
        }
        (
            russh::Error::IO(_)
            | russh::Error::Disconnect
            | russh::Error::HUP
            | russh::Error::SendError
            | russh::Error::RecvError,
            ..,
        ) => unreachable_with(
            "connection closed during the SSH handshake",
            anyhow::Error::new(e).context(format!("SSH handshake with {target}")),
        ),
        _ => {
            Error::Unexpected(anyhow::Error::new(e).context(format!("SSH handshake with {target}")))
        }
    }
}

fn io_reason(e: &io::Error) -> &'static str {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused",
        io::ErrorKind::ConnectionReset => "connection reset",
        io::ErrorKind::HostUnreachable => "no route to host",
        io::ErrorKind::NetworkUnreachable => "network unreachable",
        io::ErrorKind::TimedOut => "connection timed out",
        _ => "TCP connect failed",
    }
}

/// A [`Error::DeviceUnreachable`] with a short reason and its cause.
pub(super) fn unreachable_with(reason: &str, source: impl Into<anyhow::Error>) -> Error {
    Error::DeviceUnreachable {
        reason: reason.to_owned(),
        source: Some(source.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn position<T: PartialEq>(list: &[T], item: &T) -> usize {
        list.iter()
            .position(|x| x == item)
            .expect("algorithm listed")
    }

    #[test]
    fn legacy_routeros_algorithms_come_after_the_modern_ones() {
        let preferred = &CONFIG.preferred;
        assert!(
            position(&preferred.kex, &kex::DH_G14_SHA1)
                > position(&preferred.kex, &kex::CURVE25519)
        );
        assert!(preferred.kex.contains(&kex::DH_GEX_SHA256));
        assert_eq!(preferred.mac.last(), Some(&mac::HMAC_SHA1));
        assert!(
            position(&preferred.mac, &mac::HMAC_SHA1) > position(&preferred.mac, &mac::HMAC_SHA256)
        );
        assert!(preferred.key.contains(&Algorithm::Rsa { hash: None }));
        assert!(CONFIG.nodelay);
    }

    #[test]
    fn aes_gcm_leads_only_on_a_cpu_with_aes_and_every_cipher_stays_offered() {
        let defaults = Preferred::DEFAULT.cipher;
        let with_aes = cipher_order(&defaults, true);
        assert_eq!(with_aes.first(), Some(&cipher::AES_256_GCM));
        assert_eq!(with_aes[1], cipher::CHACHA20_POLY1305);
        assert_eq!(with_aes.len(), defaults.len());
        assert_eq!(cipher_order(&defaults, false), defaults.to_vec());
    }

    /// vendor/README.md: russh's buffers are not locked into memory one by
    /// one (the unit keeps the whole process out of swap). Were the
    /// crates.io russh-cryptovec built again (a russh upgrade leaves the
    /// patch unused), this buffer would be locked: `VmLck` counts it.
    #[cfg(target_os = "linux")]
    #[test]
    fn russh_buffers_are_not_locked_into_memory() {
        let buffer = russh::CryptoVec::with_capacity(256 * 1024);
        let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
        let locked_kb: u64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmLck:"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kb| kb.parse().ok())
            .expect("a VmLck line");
        assert_eq!(locked_kb, 0, "locked while a russh buffer is held");
        drop(buffer);
    }
}
