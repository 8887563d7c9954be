//! The [`MasterKey`]: 32 secret bytes from base64 text or an environment
//! variable, its public key id, and the per-tenant keys derived from it
//! with HKDF-SHA256. The bytes never leave this file except as a derived
//! key or the base64 a new key file holds.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chacha20poly1305::aead::OsRng;
use chacha20poly1305::aead::rand_core::RngCore;
use hkdf::Hkdf;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::{CryptoError, MASTER_KEY_LEN, Result};

/// HKDF-Extract salt: fixed, so one pseudo-random key per master key serves every tenant.
const HKDF_SALT: &[u8] = b"cfgsnap/store/crypto/v1";
/// HKDF-Expand info prefix for tenant keys; the tenant id follows it.
const TENANT_KEY_INFO: &[u8] = b"cfgsnap/tenant-key/v1:";
/// HKDF-Expand info for the public key id; never a prefix of [`TENANT_KEY_INFO`].
const KEY_ID_INFO: &[u8] = b"cfgsnap/key-id/v1";
/// Bytes of HKDF output shown (as hex) in a key id.
const KEY_ID_LEN: usize = 8;

/// A 32-byte master key from which tenant keys are derived.
///
/// The bytes live in a zeroize-on-drop secret; `Debug` shows only the key id.
pub struct MasterKey {
    bytes: SecretBox<[u8; MASTER_KEY_LEN]>,
    key_id: String,
}

impl MasterKey {
    /// Generates a fresh random key from the operating system's CSPRNG.
    pub fn generate() -> Self {
        Self::from_secret(SecretBox::init_with_mut(|b: &mut [u8; MASTER_KEY_LEN]| {
            OsRng.fill_bytes(b)
        }))
    }

    /// Decodes a key from standard base64 (surrounding whitespace ignored).
    ///
    /// # Errors
    ///
    /// [`CryptoError::MalformedKey`] unless the text is base64 of exactly 32 bytes.
    pub fn from_base64(text: &SecretString) -> Result<Self> {
        Self::decode(text.expose_secret(), "base64 text")
    }

    /// Reads a base64 key from the environment variable `var`.
    ///
    /// # Errors
    ///
    /// [`CryptoError::KeyNotFound`] when the variable is unset or blank,
    /// [`CryptoError::MalformedKey`] when it is not base64 of 32 bytes.
    pub fn from_env(var: &str) -> Result<Self> {
        let origin = format!("environment variable {var}");
        let text = match std::env::var(var) {
            Ok(text) => SecretString::from(text),
            Err(std::env::VarError::NotPresent) => return Err(CryptoError::KeyNotFound { origin }),
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(malformed(&origin, "not valid UTF-8".to_owned()));
            }
        };
        if text.expose_secret().trim().is_empty() {
            return Err(CryptoError::KeyNotFound { origin });
        }
        Self::decode(text.expose_secret(), &origin)
    }

    /// A short, stable, non-secret id of this key: 16 hex digits.
    ///
    /// It is HKDF-SHA256 output under its own label, so it reveals nothing about
    /// the key or the tenant keys. Records store it to find their key after rotation.
    pub fn key_id(&self) -> String {
        self.key_id.clone()
    }

    /// The AEAD key of `tenant_id`: HKDF-SHA256(salt, master, info ‖ tenant id).
    pub(super) fn tenant_key(&self, tenant_id: &str) -> Zeroizing<[u8; 32]> {
        let mut okm = Zeroizing::new([0u8; 32]);
        Hkdf::<Sha256>::new(Some(HKDF_SALT), self.bytes.expose_secret())
            .expand_multi_info(&[TENANT_KEY_INFO, tenant_id.as_bytes()], okm.as_mut_slice())
            .expect("BUG: 32 bytes is a valid HKDF-SHA256 output length");
        okm
    }

    /// The key as standard base64, as a key file holds it.
    pub(super) fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(BASE64.encode(self.bytes.expose_secret()))
    }

    /// The key id without a copy, for comparisons.
    pub(super) fn id(&self) -> &str {
        &self.key_id
    }

    fn from_secret(bytes: SecretBox<[u8; MASTER_KEY_LEN]>) -> Self {
        let mut id = [0u8; KEY_ID_LEN];
        Hkdf::<Sha256>::new(Some(HKDF_SALT), bytes.expose_secret())
            .expand(KEY_ID_INFO, &mut id)
            .expect("BUG: 8 bytes is a valid HKDF-SHA256 output length");
        Self {
            bytes,
            key_id: hex::encode(id),
        }
    }

    pub(super) fn decode(text: &str, origin: &str) -> Result<Self> {
        let decoded = Zeroizing::new(
            BASE64
                .decode(text.trim())
                // The decoder's message quotes the offending character: leave it out.
                .map_err(|_| malformed(origin, "not valid base64".to_owned()))?,
        );
        if decoded.len() != MASTER_KEY_LEN {
            let reason = format!(
                "decodes to {} bytes, expected {MASTER_KEY_LEN}",
                decoded.len()
            );
            return Err(malformed(origin, reason));
        }
        Ok(Self::from_secret(SecretBox::init_with_mut(
            |b: &mut [u8; MASTER_KEY_LEN]| b.copy_from_slice(&decoded),
        )))
    }
}

impl Clone for MasterKey {
    fn clone(&self) -> Self {
        Self {
            bytes: SecretBox::init_with_mut(|b: &mut [u8; MASTER_KEY_LEN]| {
                b.copy_from_slice(self.bytes.expose_secret())
            }),
            key_id: self.key_id.clone(),
        }
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

pub(super) fn malformed(origin: &str, reason: String) -> CryptoError {
    CryptoError::MalformedKey {
        origin: origin.to_owned(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ids_are_stable_short_hex_and_not_a_plain_hash_of_the_key() {
        use sha2::Digest;
        let text = SecretString::from(BASE64.encode([7u8; MASTER_KEY_LEN]));
        let a = MasterKey::from_base64(&text).expect("valid key");
        let b = MasterKey::from_base64(&text).expect("valid key");
        assert_eq!(a.key_id(), b.key_id());
        assert_eq!(a.key_id().len(), 2 * KEY_ID_LEN);
        assert!(a.key_id().bytes().all(|c| c.is_ascii_hexdigit()));
        let plain_hash = hex::encode(Sha256::digest([7u8; MASTER_KEY_LEN]));
        assert!(!plain_hash.starts_with(&a.key_id()));
        assert_ne!(a.key_id(), MasterKey::generate().key_id());
    }

    #[test]
    fn malformed_keys_give_clear_errors_without_the_input() {
        let wrong_length = BASE64.encode(b"only-sixteen-byt");
        let inputs = ["not*base64*at*all!", wrong_length.as_str(), "   "];
        for input in inputs {
            let err = MasterKey::from_base64(&SecretString::from(input)).expect_err("should fail");
            let message = err.to_string();
            assert!(matches!(err, CryptoError::MalformedKey { .. }), "{message}");
            assert!(message.starts_with("master key from base64 text is malformed"));
            if !input.trim().is_empty() {
                assert!(!message.contains(input.trim()), "{message}");
            }
            assert!(!format!("{err:?}").contains("base64*"));
        }
        let err =
            MasterKey::from_base64(&SecretString::from(wrong_length)).expect_err("should fail");
        assert!(err.to_string().contains("decodes to 16 bytes, expected 32"));
    }

    #[test]
    fn an_unset_environment_variable_is_reported_by_name() {
        let err =
            MasterKey::from_env("CFGSNAP_TEST_SURELY_UNSET_MASTER_KEY").expect_err("should fail");
        assert!(matches!(err, CryptoError::KeyNotFound { .. }));
        assert!(
            err.to_string()
                .contains("CFGSNAP_TEST_SURELY_UNSET_MASTER_KEY")
        );
    }
}
