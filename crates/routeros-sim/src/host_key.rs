//! Host keys and SSH algorithm sets of simulated devices.
//!
//! Keys are derived from the device index (Ed25519 from a hashed seed, RSA from a
//! seeded SHA-256 counter-mode generator), so a device keeps its key across simulator
//! restarts; RSA keys are cached per process because generating them is slow.
//! Entry points: [`stable_key`], [`random_key`], [`server_config`].

use std::borrow::Cow;
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use russh::keys::ssh_key::private::{Ed25519Keypair, RsaKeypair};
use russh::keys::ssh_key::rand_core::{TryCryptoRng, TryRng};
use russh::keys::{Algorithm, HashAlg, PrivateKey};
use russh::server::Config;
use russh::{MethodKind, MethodSet, Preferred, SshId, cipher, kex, mac};
use sha2::{Digest, Sha256};

use super::HostKeyKind;

/// RSA modulus size of generated host keys.
const RSA_BITS: usize = 2048;

/// Process-wide cache of derived RSA keys, by seed.
static RSA_CACHE: LazyLock<Mutex<HashMap<[u8; 32], PrivateKey>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// A deterministic byte stream: SHA-256(seed || counter) blocks. Good enough to derive
/// test host keys reproducibly; not a general-purpose CSPRNG.
struct SeededRng {
    seed: [u8; 32],
    counter: u64,
    block: [u8; 32],
    used: usize,
}

impl SeededRng {
    fn new(seed: [u8; 32]) -> Self {
        SeededRng {
            seed,
            counter: 0,
            block: [0; 32],
            used: 32,
        }
    }
}

impl TryRng for SeededRng {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut b = [0; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut b = [0; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        for byte in dst {
            if self.used == self.block.len() {
                let mut h = Sha256::new();
                h.update(self.seed);
                h.update(self.counter.to_le_bytes());
                self.block = h.finalize().into();
                self.counter += 1;
                self.used = 0;
            }
            *byte = self.block[self.used];
            self.used += 1;
        }
        Ok(())
    }
}

impl TryCryptoRng for SeededRng {}

/// The seed of device `index`'s key of `kind`.
fn seed(kind: HostKeyKind, index: usize) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(format!("routeros-sim host key {kind:?} {index}"));
    h.finalize().into()
}

/// Builds a key of `kind` from `seed` (RSA keys are cached).
fn key_from_seed(kind: HostKeyKind, seed: [u8; 32]) -> PrivateKey {
    match kind {
        HostKeyKind::Ed25519 => PrivateKey::from(Ed25519Keypair::from_seed(&seed)),
        HostKeyKind::Rsa => {
            let cached = RSA_CACHE
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&seed)
                .cloned();
            if let Some(key) = cached {
                return key;
            }
            let key = PrivateKey::from(
                RsaKeypair::random(&mut SeededRng::new(seed), RSA_BITS)
                    .expect("BUG: RSA key generation from a valid size fails"),
            );
            RSA_CACHE
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(seed, key.clone());
            key
        }
    }
}

/// Device `index`'s stable host key. Slow (a second or so) the first time for RSA:
/// call it from a blocking context.
pub(crate) fn stable_key(kind: HostKeyKind, index: usize) -> PrivateKey {
    key_from_seed(kind, seed(kind, index))
}

/// A fresh random host key (for the host-key-change fault); not cached.
pub(crate) fn random_key(kind: HostKeyKind) -> PrivateKey {
    let seed: [u8; 32] = rand::random();
    match kind {
        HostKeyKind::Ed25519 => PrivateKey::from(Ed25519Keypair::from_seed(&seed)),
        HostKeyKind::Rsa => PrivateKey::from(
            RsaKeypair::random(&mut SeededRng::new(seed), RSA_BITS)
                .expect("BUG: RSA key generation from a valid size fails"),
        ),
    }
}

/// `SHA256:…` fingerprint of a host key, as OpenSSH prints it.
pub(crate) fn fingerprint(key: &PrivateKey) -> String {
    key.public_key().fingerprint(HashAlg::Sha256).to_string()
}

/// The algorithms of RouterOS v6: kex `diffie-hellman-group14-sha1` and
/// `diffie-hellman-group-exchange-sha256`, AES-CTR, MAC `hmac-sha1`, host key
/// `ssh-rsa`; no strict-kex or ext-info extensions.
pub(crate) fn legacy_preferred() -> Preferred {
    Preferred {
        kex: Cow::Borrowed(&[kex::DH_G14_SHA1, kex::DH_GEX_SHA256]),
        key: Cow::Borrowed(&[Algorithm::Rsa { hash: None }]),
        cipher: Cow::Borrowed(&[
            cipher::AES_128_CTR,
            cipher::AES_192_CTR,
            cipher::AES_256_CTR,
        ]),
        mac: Cow::Borrowed(&[mac::HMAC_SHA1]),
        ..Preferred::default()
    }
}

/// The algorithms of RouterOS v7: russh's defaults without the post-quantum
/// hybrid kex `mlkem768x25519-sha256`, which RouterOS does not offer (and
/// whose cost would make simulated backups dearer than real ones).
pub(crate) fn modern_preferred() -> Preferred {
    let defaults = Preferred::default();
    let kex: Vec<kex::Name> = defaults
        .kex
        .iter()
        .filter(|name| **name != kex::MLKEM768X25519_SHA256)
        .cloned()
        .collect();
    Preferred {
        kex: Cow::Owned(kex),
        ..defaults
    }
}

/// The russh server configuration of a device presenting `key`.
pub(crate) fn server_config(key: PrivateKey, legacy: bool, hang: bool) -> Arc<Config> {
    Arc::new(Config {
        // What RouterOS itself announces.
        server_id: SshId::Standard(Cow::Borrowed("SSH-2.0-ROSSSH")),
        methods: MethodSet::from(&[MethodKind::Password, MethodKind::PublicKey][..]),
        auth_rejection_time: Duration::from_millis(5),
        auth_rejection_time_initial: Some(Duration::ZERO),
        keys: vec![key],
        preferred: if legacy {
            legacy_preferred()
        } else {
            modern_preferred()
        },
        // A hanging device never gives up on its own.
        inactivity_timeout: if hang {
            None
        } else {
            Some(Duration::from_secs(600))
        },
        nodelay: true,
        ..Config::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_v7_device_offers_curve25519_but_no_post_quantum_kex() {
        let kex = modern_preferred().kex;
        assert!(kex.contains(&kex::CURVE25519));
        assert!(!kex.contains(&kex::MLKEM768X25519_SHA256));
    }

    #[test]
    fn ed25519_keys_are_stable_per_index_and_distinct_across_indices() {
        let a = fingerprint(&stable_key(HostKeyKind::Ed25519, 0));
        assert_eq!(a, fingerprint(&stable_key(HostKeyKind::Ed25519, 0)));
        assert_ne!(a, fingerprint(&stable_key(HostKeyKind::Ed25519, 1)));
        assert!(a.starts_with("SHA256:"));
    }

    #[test]
    fn seeded_rng_is_reproducible() {
        let mut a = SeededRng::new([7; 32]);
        let mut b = SeededRng::new([7; 32]);
        let (mut x, mut y) = ([0u8; 100], [0u8; 100]);
        a.try_fill_bytes(&mut x).expect("infallible");
        b.try_fill_bytes(&mut y).expect("infallible");
        assert_eq!(x, y);
        assert_ne!(x[..32], x[32..64]);
    }
}
