//! Sealing and opening records ([`Cipher`], [`Sealed`]): deflate, then
//! XChaCha20-Poly1305 under the tenant's key derived from the current master
//! key; opening finds the key by the record's key id, so records sealed
//! before a rotation still open. Never logs or returns plaintext in errors.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

use super::deflate::{compress, decompress};
use super::master_key::MasterKey;
use super::{CryptoError, DEFAULT_MAX_PLAINTEXT, NONCE_LEN, Result};

/// A sealed record: the three columns a row stores.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    /// [`MasterKey::key_id`] of the master key the record was sealed under.
    pub key_id: String,
    /// The random 24-byte XChaCha20-Poly1305 nonce.
    pub nonce: Vec<u8>,
    /// The AEAD output: a format byte and the deflated text, encrypted, plus the 16-byte tag.
    pub ciphertext: Vec<u8>,
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealed")
            .field("key_id", &self.key_id)
            .field("nonce", &hex::encode(&self.nonce))
            .field("ciphertext_len", &self.ciphertext.len())
            .finish()
    }
}

/// Seals and opens records under per-tenant keys derived from the master keys.
///
/// New records use the current key; records sealed under a previous key still
/// open, found by their key id. Derived tenant keys are cached. Cloning is cheap
/// (an `Arc`) and the cipher is `Send + Sync`. Sealing and opening are CPU work
/// proportional to the text: call them from blocking contexts for big records.
#[derive(Clone)]
pub struct Cipher {
    /// The current key first, then the previous ones.
    keys: Arc<[KeySlot]>,
    max_plaintext: usize,
}

/// A master key and the tenant ciphers derived from it so far.
struct KeySlot {
    key: MasterKey,
    tenants: Mutex<HashMap<String, Arc<XChaCha20Poly1305>>>,
}

impl KeySlot {
    fn new(key: MasterKey) -> Self {
        Self {
            key,
            tenants: Mutex::new(HashMap::new()),
        }
    }

    /// The AEAD for `tenant_id`: key = HKDF-SHA256(salt, master, info ‖ tenant id).
    fn tenant_cipher(&self, tenant_id: &str) -> Arc<XChaCha20Poly1305> {
        // The map is only ever inserted into whole, so a poisoned lock holds valid data.
        let mut tenants = self.tenants.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(cipher) = tenants.get(tenant_id) {
            return Arc::clone(cipher);
        }
        let okm = self.key.tenant_key(tenant_id);
        let cipher = Arc::new(XChaCha20Poly1305::new(Key::from_slice(okm.as_slice())));
        tenants.insert(tenant_id.to_owned(), Arc::clone(&cipher));
        cipher
    }
}

impl Cipher {
    /// Builds a cipher that seals with `current` and also opens records sealed
    /// under any of `previous` (duplicates of the current key are ignored).
    pub fn new(current: MasterKey, previous: Vec<MasterKey>) -> Self {
        let current_id = current.key_id();
        let mut keys = vec![KeySlot::new(current)];
        for key in previous {
            if key.id() != current_id && keys.iter().all(|s| s.key.id() != key.id()) {
                keys.push(KeySlot::new(key));
            }
        }
        Self {
            keys: keys.into(),
            max_plaintext: DEFAULT_MAX_PLAINTEXT,
        }
    }

    /// Sets the largest plaintext, in bytes, that [`Cipher::seal`] accepts and
    /// [`Cipher::open`] decompresses (default [`DEFAULT_MAX_PLAINTEXT`]).
    ///
    /// Opening stops decompressing at the bound, so a small record that inflates
    /// to gigabytes (a decompression bomb) costs memory in proportion to `bytes`, not
    /// to the bomb.
    pub fn with_max_plaintext(mut self, bytes: usize) -> Self {
        self.max_plaintext = bytes;
        self
    }

    /// The key id new records are sealed with.
    pub fn current_key_id(&self) -> String {
        self.current().key.key_id()
    }

    /// Compresses `plaintext`, then encrypts it for `tenant_id` with a fresh random nonce.
    ///
    /// `aad` is authenticated, not stored: pass the same bytes to [`Cipher::open`].
    /// Binding the row (e.g. device id and content hash) stops ciphertexts from
    /// being swapped between rows.
    ///
    /// # Errors
    ///
    /// [`CryptoError::PlaintextTooLarge`] above the bound, as such a record could not be opened.
    pub fn seal(&self, tenant_id: &str, aad: &[u8], plaintext: &[u8]) -> Result<Sealed> {
        if plaintext.len() > self.max_plaintext {
            return Err(CryptoError::PlaintextTooLarge {
                limit: self.max_plaintext,
            });
        }
        let slot = self.current();
        let payload = compress(plaintext);
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let ciphertext = slot
            .tenant_cipher(tenant_id)
            .encrypt(&nonce, Payload { msg: &payload, aad })
            .expect("BUG: XChaCha20-Poly1305 only refuses messages over 256 GiB");
        Ok(Sealed {
            key_id: slot.key.key_id(),
            nonce: nonce.to_vec(),
            ciphertext,
        })
    }

    /// Decrypts a record sealed for `tenant_id` with the same `aad`, then decompresses it.
    ///
    /// # Errors
    ///
    /// [`CryptoError::UnknownKeyId`] when no configured key has the record's key id,
    /// [`CryptoError::DecryptionFailed`] when the key, tenant, AAD, nonce or bytes
    /// do not match (never garbage), [`CryptoError::PlaintextTooLarge`] past the bound.
    pub fn open(&self, tenant_id: &str, aad: &[u8], sealed: &Sealed) -> Result<Vec<u8>> {
        let slot = self
            .keys
            .iter()
            .find(|s| s.key.id() == sealed.key_id)
            .ok_or_else(|| CryptoError::UnknownKeyId(sealed.key_id.clone()))?;
        if sealed.nonce.len() != NONCE_LEN {
            return Err(CryptoError::DecryptionFailed);
        }
        let payload = Payload {
            msg: &sealed.ciphertext,
            aad,
        };
        let decrypted = Zeroizing::new(
            slot.tenant_cipher(tenant_id)
                .decrypt(XNonce::from_slice(&sealed.nonce), payload)
                .map_err(|_| CryptoError::DecryptionFailed)?,
        );
        decompress(&decrypted, self.max_plaintext)
    }

    /// The ids of the keys this cipher opens, the current one first.
    pub fn key_ids(&self) -> Vec<String> {
        self.keys.iter().map(|s| s.key.key_id()).collect()
    }

    /// The keys this cipher holds, the current one first.
    pub(super) fn keys(&self) -> Vec<MasterKey> {
        self.keys.iter().map(|s| s.key.clone()).collect()
    }

    fn current(&self) -> &KeySlot {
        self.keys
            .first()
            .expect("BUG: Cipher::new always stores the current key")
    }
}

impl fmt::Debug for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|s| s.key.id()).collect();
        f.debug_struct("Cipher")
            .field("key_ids", &ids)
            .field("max_plaintext", &self.max_plaintext)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as BASE64;
    use secrecy::SecretString;

    use super::*;
    use crate::store::crypto::MASTER_KEY_LEN;

    const CONFIG: &str = "# 2024-05-01 12:00:00 by RouterOS 7.14\n\
        /interface bridge\nadd name=bridge1\n\
        /system identity\nset name=MARKER-edge-router-7f3a9c\n\
        /ip firewall filter\nadd action=accept chain=input protocol=icmp\n";
    const MARKER: &[u8] = b"set name=MARKER-edge-router-7f3a9c";

    fn cipher() -> Cipher {
        Cipher::new(MasterKey::generate(), Vec::new())
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn sealed_text_opens_to_the_original() {
        // Arrange
        let cipher = cipher();
        // Act
        let sealed = cipher
            .seal("acme", b"dev-1", CONFIG.as_bytes())
            .expect("seal");
        let opened = cipher.open("acme", b"dev-1", &sealed).expect("open");
        // Assert
        assert_eq!(opened, CONFIG.as_bytes());
        assert_eq!(sealed.nonce.len(), NONCE_LEN);
        assert_eq!(sealed.key_id, cipher.current_key_id());
    }

    #[test]
    fn empty_plaintext_round_trips() {
        let cipher = cipher();
        let sealed = cipher.seal("acme", b"", b"").expect("seal");
        assert_eq!(cipher.open("acme", b"", &sealed).expect("open"), b"");
    }

    #[test]
    fn a_record_sealed_for_one_tenant_cannot_be_opened_as_another() {
        // Arrange
        let cipher = cipher();
        let a = cipher
            .seal("tenant-a", b"row", CONFIG.as_bytes())
            .expect("seal");
        let b = cipher
            .seal("tenant-b", b"row", CONFIG.as_bytes())
            .expect("seal");
        // Act
        let a_as_b = cipher.open("tenant-b", b"row", &a);
        // Assert
        assert_ne!(a.ciphertext, b.ciphertext);
        assert!(matches!(a_as_b, Err(CryptoError::DecryptionFailed)));
        // The same nonce under both tenant keys still gives different bytes.
        let nonce = XNonce::from_slice(&a.nonce);
        let under_a = cipher
            .current()
            .tenant_cipher("tenant-a")
            .encrypt(nonce, &b"x"[..]);
        let under_b = cipher
            .current()
            .tenant_cipher("tenant-b")
            .encrypt(nonce, &b"x"[..]);
        assert_ne!(under_a.expect("encrypt"), under_b.expect("encrypt"));
    }

    #[test]
    fn a_different_master_key_is_reported_as_an_unknown_key_id() {
        let sealed = cipher()
            .seal("acme", b"row", CONFIG.as_bytes())
            .expect("seal");
        let err = cipher()
            .open("acme", b"row", &sealed)
            .expect_err("should fail");
        assert!(matches!(err, CryptoError::UnknownKeyId(ref id) if *id == sealed.key_id));
    }

    #[test]
    fn a_wrong_master_key_under_a_matching_key_id_fails_with_decryption_failed() {
        // Arrange: a record claims the configured key id but was sealed under another key.
        let other = cipher();
        let configured = cipher();
        let mut sealed = other.seal("acme", b"row", CONFIG.as_bytes()).expect("seal");
        sealed.key_id = configured.current_key_id();
        // Act
        let err = configured
            .open("acme", b"row", &sealed)
            .expect_err("should fail");
        // Assert
        assert!(matches!(err, CryptoError::DecryptionFailed));
        assert_eq!(
            err.to_string(),
            "decryption failed: wrong master key or corrupted record"
        );
    }

    #[test]
    fn a_mismatched_aad_fails_with_decryption_failed() {
        let cipher = cipher();
        let sealed = cipher
            .seal("acme", b"dev-1:abc", CONFIG.as_bytes())
            .expect("seal");
        let err = cipher
            .open("acme", b"dev-2:abc", &sealed)
            .expect_err("should fail");
        assert!(matches!(err, CryptoError::DecryptionFailed));
    }

    #[test]
    fn tampered_ciphertext_or_nonce_fails_with_decryption_failed() {
        let cipher = cipher();
        let sealed = cipher
            .seal("acme", b"row", CONFIG.as_bytes())
            .expect("seal");
        let mut flipped = sealed.clone();
        flipped.ciphertext[3] ^= 0x01;
        let mut short_nonce = sealed.clone();
        short_nonce.nonce.truncate(12);
        let mut truncated = sealed;
        truncated.ciphertext.truncate(10);
        for bad in [flipped, short_nonce, truncated] {
            let err = cipher.open("acme", b"row", &bad).expect_err("should fail");
            assert!(matches!(err, CryptoError::DecryptionFailed), "{bad:?}");
        }
    }

    #[test]
    fn an_authentic_payload_in_an_unknown_format_is_a_decompression_error() {
        // Arrange: a payload from a future writer, sealed under the right key.
        let cipher = cipher();
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let ciphertext = cipher
            .current()
            .tenant_cipher("acme")
            .encrypt(&nonce, &[9u8, 1, 2, 3][..])
            .expect("encrypt");
        let sealed = Sealed {
            key_id: cipher.current_key_id(),
            nonce: nonce.to_vec(),
            ciphertext,
        };
        // Act
        let err = cipher.open("acme", b"", &sealed).expect_err("should fail");
        // Assert
        assert!(matches!(err, CryptoError::Decompression(_)), "{err}");
    }

    #[test]
    fn two_seals_of_the_same_text_use_different_nonces() {
        let cipher = cipher();
        let first = cipher
            .seal("acme", b"row", CONFIG.as_bytes())
            .expect("seal");
        let second = cipher
            .seal("acme", b"row", CONFIG.as_bytes())
            .expect("seal");
        assert_ne!(first.nonce, second.nonce);
        assert_ne!(first.ciphertext, second.ciphertext);
    }

    #[test]
    fn ciphertext_holds_no_plaintext_line() {
        // Arrange
        let cipher = cipher();
        // Act
        let sealed = cipher
            .seal("acme", b"row", CONFIG.as_bytes())
            .expect("seal");
        // Assert
        assert!(!contains(&sealed.ciphertext, MARKER));
        assert!(!contains(&sealed.ciphertext, b"MARKER"));
        assert!(!format!("{sealed:?}").contains("MARKER"));
    }

    #[test]
    fn a_rotated_cipher_opens_old_records_and_seals_with_the_new_key() {
        // Arrange
        let old = MasterKey::generate();
        let new = MasterKey::generate();
        let sealed_old = Cipher::new(old.clone(), Vec::new())
            .seal("acme", b"row", CONFIG.as_bytes())
            .expect("seal");
        // Act
        let rotated = Cipher::new(new.clone(), vec![old.clone()]);
        let opened = rotated.open("acme", b"row", &sealed_old).expect("open");
        let sealed_new = rotated
            .seal("acme", b"row", CONFIG.as_bytes())
            .expect("seal");
        // Assert
        assert_eq!(opened, CONFIG.as_bytes());
        assert_eq!(sealed_old.key_id, old.key_id());
        assert_eq!(sealed_new.key_id, new.key_id());
        assert_ne!(sealed_new.key_id, sealed_old.key_id);
        assert_eq!(
            rotated.open("acme", b"row", &sealed_new).expect("open"),
            CONFIG.as_bytes()
        );
    }

    #[test]
    fn a_decompression_bomb_is_refused_by_the_bound() {
        // Arrange: 16 MiB of one repeated line deflates to a few KiB.
        let bomb = b"add chain=forward action=drop\n".repeat(16 << 15);
        let cipher = cipher();
        let sealed = cipher.seal("acme", b"", &bomb).expect("seal");
        assert!(sealed.ciphertext.len() < 100 * 1024);
        let bounded = cipher.clone().with_max_plaintext(1 << 20);
        // Act
        let err = bounded.open("acme", b"", &sealed).expect_err("should fail");
        // Assert
        assert!(matches!(err, CryptoError::PlaintextTooLarge { limit } if limit == 1 << 20));
        assert_eq!(
            cipher.open("acme", b"", &sealed).expect("open").len(),
            bomb.len()
        );
    }

    #[test]
    fn a_plaintext_of_exactly_the_bound_opens_and_one_byte_more_is_refused_at_seal() {
        let cipher = cipher().with_max_plaintext(1000);
        let sealed = cipher.seal("acme", b"", &[b'a'; 1000]).expect("seal");
        assert_eq!(cipher.open("acme", b"", &sealed).expect("open").len(), 1000);
        let err = cipher
            .seal("acme", b"", &[b'a'; 1001])
            .expect_err("should fail");
        assert!(matches!(
            err,
            CryptoError::PlaintextTooLarge { limit: 1000 }
        ));
    }

    #[test]
    fn debug_output_shows_no_key_bytes() {
        // Arrange
        let raw = [0xA5u8; MASTER_KEY_LEN];
        let text = BASE64.encode(raw);
        let key = MasterKey::from_base64(&SecretString::from(text.clone())).expect("valid key");
        // Act
        let outputs = [
            format!("{key:?}"),
            format!("{:?}", Cipher::new(key.clone(), vec![key])),
        ];
        // Assert
        for output in outputs {
            assert!(!output.contains(&text), "{output}");
            assert!(!output.to_lowercase().contains("a5a5"), "{output}");
            assert!(!output.contains("165"), "{output}");
        }
    }

    #[test]
    fn cipher_is_send_sync_and_cloneable() {
        fn assert_traits<T: Send + Sync + Clone + 'static>() {}
        assert_traits::<Cipher>();
        assert_traits::<MasterKey>();
    }

    #[test]
    fn tenant_keys_are_cached_per_master_key() {
        let cipher = cipher();
        let first = cipher.current().tenant_cipher("acme");
        let second = cipher.current().tenant_cipher("acme");
        assert!(Arc::ptr_eq(&first, &second));
        assert!(!Arc::ptr_eq(
            &first,
            &cipher.current().tenant_cipher("other")
        ));
    }
}
