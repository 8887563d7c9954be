//! Encryption at rest (DESIGN.md §7): the master key, per-tenant keys, and the
//! sealing of config and diff text into the `key_id`, `nonce` and `ciphertext`
//! columns of a row. Text is deflate-compressed, then sealed with
//! XChaCha20-Poly1305 under an HKDF-SHA256 key per tenant. Key material and
//! plaintext never reach logs or errors. Entry points: [`MasterKey`], [`Cipher`].

use std::collections::HashMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chacha20poly1305::aead::rand_core::RngCore;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use flate2::Compression;
use flate2::read::DeflateDecoder;
use flate2::write::DeflateEncoder;
use hkdf::Hkdf;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

/// Length of a master key, in bytes.
pub const MASTER_KEY_LEN: usize = 32;

/// Length of a record nonce (XChaCha20-Poly1305's extended nonce), in bytes.
pub const NONCE_LEN: usize = 24;

/// Default bound on a record's decompressed size (1 GiB), see [`Cipher::with_max_plaintext`].
pub const DEFAULT_MAX_PLAINTEXT: usize = 1 << 30;

/// HKDF-Extract salt: fixed, so one pseudo-random key per master key serves every tenant.
const HKDF_SALT: &[u8] = b"cfgsnap/store/crypto/v1";
/// HKDF-Expand info prefix for tenant keys; the tenant id follows it.
const TENANT_KEY_INFO: &[u8] = b"cfgsnap/tenant-key/v1:";
/// HKDF-Expand info for the public key id; never a prefix of [`TENANT_KEY_INFO`].
const KEY_ID_INFO: &[u8] = b"cfgsnap/key-id/v1";
/// Bytes of HKDF output shown (as hex) in a key id.
const KEY_ID_LEN: usize = 8;
/// First byte of every sealed payload: raw deflate follows. Other values are reserved
/// for later codecs, so old records stay readable after a change.
const FORMAT_DEFLATE: u8 = 1;

/// Result type of this module.
pub type Result<T, E = CryptoError> = std::result::Result<T, E>;

/// Why a key could not be loaded or a record could not be sealed or opened.
///
/// Messages name where a key came from (variable or file) but never include key
/// text, key bytes or record plaintext.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// Neither `store.encryption_key_env` nor `store.encryption_key_file` is configured.
    #[error("no master key configured: set store.encryption_key_env or store.encryption_key_file")]
    MissingKey,
    /// The configured key source (variable or file) is absent or empty.
    #[error("master key not found: {origin} is absent or empty")]
    KeyNotFound {
        /// Where the key was looked for, e.g. `environment variable CFGSNAP_MASTER_KEY`.
        origin: String,
    },
    /// The configured master key is not base64 of exactly 32 bytes.
    #[error("master key from {origin} is malformed: {reason}")]
    MalformedKey {
        /// Where the key came from.
        origin: String,
        /// What is wrong with it, without the key text.
        reason: String,
    },
    /// The record names a key id that is neither the current nor a previous key.
    #[error(
        "record was sealed with master key id {0}, which is neither the current nor a \
         previous key (wrong master key?)"
    )]
    UnknownKeyId(String),
    /// Authentication failed: the key, the tenant, the AAD or the bytes do not match.
    #[error("decryption failed: wrong master key or corrupted record")]
    DecryptionFailed,
    /// The plaintext is (or decompresses to) more than the configured bound.
    #[error("record plaintext exceeds the limit of {limit} bytes; refused")]
    PlaintextTooLarge {
        /// The bound in force, in bytes.
        limit: usize,
    },
    /// The decrypted payload is not a stream this version can decompress.
    #[error("decompressing record failed")]
    Decompression(#[source] io::Error),
    /// Reading or writing the master key file failed.
    #[error("{action} {}", path.display())]
    Io {
        /// The operation, e.g. `reading master key file`.
        action: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

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

    /// Reads a base64 key from the file at `path`.
    ///
    /// Logs a warning when the file is readable by group or others.
    ///
    /// # Errors
    ///
    /// [`CryptoError::KeyNotFound`] when the file does not exist or is blank,
    /// [`CryptoError::MalformedKey`] when it does not hold base64 of 32 bytes,
    /// [`CryptoError::Io`] when it cannot be read.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let origin = format!("file {}", path.display());
        let io_err = |source| CryptoError::Io {
            action: "reading master key file",
            path: path.to_owned(),
            source,
        };
        let mut file = match File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(CryptoError::KeyNotFound { origin });
            }
            Err(e) => return Err(io_err(e)),
        };
        warn_if_shared(path, &file);
        let mut raw = Zeroizing::new(Vec::new());
        file.read_to_end(&mut raw).map_err(io_err)?;
        let text = std::str::from_utf8(&raw)
            .map_err(|_| malformed(&origin, "not valid UTF-8".to_owned()))?;
        if text.trim().is_empty() {
            return Err(CryptoError::KeyNotFound { origin });
        }
        Self::decode(text, &origin)
    }

    /// Loads the key file at `path`, or creates it with a new random key when it
    /// does not exist; the flag is `true` when the key was generated.
    ///
    /// A new file holds the key in base64, has mode 0600, and its missing parent
    /// directories are created with mode 0700. Generation logs one line with the
    /// path and the key id (never the key).
    ///
    /// # Errors
    ///
    /// As [`MasterKey::from_file`] for an existing file (an empty one included),
    /// and [`CryptoError::Io`] when the file or its directory cannot be created.
    pub fn load_or_generate(path: impl AsRef<Path>) -> Result<(Self, bool)> {
        let path = path.as_ref();
        match fs::symlink_metadata(path) {
            Ok(_) => return Ok((Self::from_file(path)?, false)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(CryptoError::Io {
                    action: "checking master key file",
                    path: path.to_owned(),
                    source,
                });
            }
        }
        let key = Self::generate();
        if !key.write_new_file(path)? {
            // Another process created the file between the check and the create.
            return Ok((Self::from_file(path)?, false));
        }
        tracing::warn!(
            path = %path.display(),
            key_id = %key.key_id,
            "generated a new master key; back it up, stored snapshots cannot be read without it"
        );
        Ok((key, true))
    }

    /// A short, stable, non-secret id of this key: 16 hex digits.
    ///
    /// It is HKDF-SHA256 output under its own label, so it reveals nothing about
    /// the key or the tenant keys. Records store it to find their key after rotation.
    pub fn key_id(&self) -> String {
        self.key_id.clone()
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

    fn decode(text: &str, origin: &str) -> Result<Self> {
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

    /// Creates `path` holding this key; `Ok(false)` when the file already exists.
    fn write_new_file(&self, path: &Path) -> Result<bool> {
        let io_err = |action, path: &Path| {
            let path = path.to_owned();
            move |source| CryptoError::Io {
                action,
                path,
                source,
            }
        };
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        create_private_dir(dir).map_err(io_err("creating directory", dir))?;
        let mut file = match create_private_file(path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
            Err(e) => return Err(io_err("creating master key file", path)(e)),
        };
        let mut text = Zeroizing::new(BASE64.encode(self.bytes.expose_secret()));
        text.push('\n');
        let written = file
            .write_all(text.as_bytes())
            .and_then(|()| file.sync_all());
        if let Err(e) = written {
            // A half-written key file would fail every later start: take it away.
            remove_or_warn(path);
            return Err(io_err("writing master key file", path)(e));
        }
        // Losing the key loses every snapshot: make the new directory entry durable too.
        sync_dir(dir).map_err(io_err("syncing directory", dir))?;
        Ok(true)
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

fn malformed(origin: &str, reason: String) -> CryptoError {
    CryptoError::MalformedKey {
        origin: origin.to_owned(),
        reason,
    }
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

fn create_private_file(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

fn remove_or_warn(path: &Path) {
    if let Err(e) = fs::remove_file(path) {
        tracing::warn!(path = %path.display(), error.message = %e, "removing partial master key file failed");
    }
}

#[cfg(unix)]
fn warn_if_shared(path: &Path, file: &File) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = file.metadata()
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(path = %path.display(), "master key file is accessible to group or others; use mode 0600");
    }
}

#[cfg(not(unix))]
fn warn_if_shared(_path: &Path, _file: &File) {}

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
        let mut okm = Zeroizing::new([0u8; 32]);
        Hkdf::<Sha256>::new(Some(HKDF_SALT), self.key.bytes.expose_secret())
            .expand_multi_info(&[TENANT_KEY_INFO, tenant_id.as_bytes()], okm.as_mut_slice())
            .expect("BUG: 32 bytes is a valid HKDF-SHA256 output length");
        let cipher = Arc::new(XChaCha20Poly1305::new(Key::from_slice(okm.as_slice())));
        tenants.insert(tenant_id.to_owned(), Arc::clone(&cipher));
        cipher
    }
}

impl Cipher {
    /// Builds a cipher that seals with `current` and also opens records sealed
    /// under any of `previous` (duplicates of the current key are ignored).
    pub fn new(current: MasterKey, previous: Vec<MasterKey>) -> Self {
        let current_id = current.key_id.clone();
        let mut keys = vec![KeySlot::new(current)];
        for key in previous {
            if key.key_id != current_id && keys.iter().all(|s| s.key.key_id != key.key_id) {
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
            .find(|s| s.key.key_id == sealed.key_id)
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

    fn current(&self) -> &KeySlot {
        self.keys
            .first()
            .expect("BUG: Cipher::new always stores the current key")
    }
}

impl fmt::Debug for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|s| s.key.key_id.as_str()).collect();
        f.debug_struct("Cipher")
            .field("key_ids", &ids)
            .field("max_plaintext", &self.max_plaintext)
            .finish()
    }
}

/// `FORMAT_DEFLATE` followed by raw deflate of `plaintext`, zeroized on drop.
///
/// Level 1: on RouterOS exports about 2.8 times as fast as the default
/// level 6, for output about a quarter larger (an export of 100 KB stores
/// as about 22 KB instead of 18 KB). Deflate was the largest CPU cost of
/// storing a new version; the level is not recorded, any level decodes.
fn compress(plaintext: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(plaintext.len() / 4 + 64));
    out.push(FORMAT_DEFLATE);
    let mut encoder = DeflateEncoder::new(&mut *out, Compression::fast());
    encoder
        .write_all(plaintext)
        .expect("BUG: deflating into a Vec cannot fail");
    encoder
        .finish()
        .expect("BUG: deflating into a Vec cannot fail");
    out
}

/// Inverts [`compress`], reading at most `max` bytes of output.
fn decompress(payload: &[u8], max: usize) -> Result<Vec<u8>> {
    let invalid = |msg: &str| {
        CryptoError::Decompression(io::Error::new(io::ErrorKind::InvalidData, msg.to_owned()))
    };
    let (&format, body) = payload
        .split_first()
        .ok_or_else(|| invalid("empty record payload"))?;
    if format != FORMAT_DEFLATE {
        return Err(invalid("unknown record format byte"));
    }
    let mut out = Vec::new();
    // One byte past the bound tells "exactly max" from "more than max".
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    if let Err(e) = DeflateDecoder::new(body).take(limit).read_to_end(&mut out) {
        out.zeroize();
        return Err(CryptoError::Decompression(e));
    }
    if out.len() > max {
        out.zeroize();
        return Err(CryptoError::PlaintextTooLarge { limit: max });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn a_real_export_stores_compressed_and_a_default_level_record_still_opens() {
        // Arrange: the largest corpus export, and a record deflated at level 6
        // as earlier versions wrote it.
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/corpus/routeros/defm-mikrobackups__rawconf_anna_latest.rsc"
        );
        let export = std::fs::read(path).expect("read the corpus export");
        let mut old = vec![FORMAT_DEFLATE];
        let mut encoder = DeflateEncoder::new(&mut old, Compression::default());
        encoder.write_all(&export).expect("deflate");
        encoder.finish().expect("deflate");

        // Act
        let new = compress(&export);

        // Assert: sizes only, never the export's text.
        assert!(
            new.len() * 4 < export.len(),
            "{} of {} bytes",
            new.len(),
            export.len()
        );
        assert_eq!(decompress(&new, export.len()).expect("inflate new"), export);
        assert_eq!(decompress(&old, export.len()).expect("inflate old"), export);
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

    #[test]
    fn load_or_generate_creates_a_private_key_file_and_then_loads_it() {
        use std::os::unix::fs::PermissionsExt;
        // Arrange
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("data").join("master.key");
        // Act
        let (first, generated) =
            MasterKey::load_or_generate(&path).expect("load or generate key file");
        let (second, generated_again) =
            MasterKey::load_or_generate(&path).expect("load or generate key file");
        // Assert
        assert!(generated);
        assert!(!generated_again);
        assert_eq!(first.key_id(), second.key_id());
        let mode = fs::metadata(&path)
            .expect("key file metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let text = fs::read_to_string(&path).expect("read key file");
        assert_eq!(
            BASE64
                .decode(text.trim())
                .expect("key file holds base64")
                .len(),
            MASTER_KEY_LEN
        );
        let sealed = Cipher::new(first, Vec::new())
            .seal("t", b"", b"x")
            .expect("seal");
        assert_eq!(
            Cipher::new(second, Vec::new())
                .open("t", b"", &sealed)
                .expect("open"),
            b"x"
        );
    }

    #[derive(Clone, Default)]
    struct LogBuffer(Arc<Mutex<Vec<u8>>>);

    impl Write for LogBuffer {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().expect("log buffer").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn generating_a_key_logs_one_line_with_the_path_and_not_the_key() {
        // Arrange
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("master.key");
        let logs = LogBuffer::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        // Act
        let (key, _) = tracing::subscriber::with_default(subscriber, || {
            // Other tests' threads may have cached "no subscriber is
            // interested" for this callsite; recompute it for this one.
            tracing::callsite::rebuild_interest_cache();
            MasterKey::load_or_generate(&path).expect("generate key file")
        });
        // Assert
        let logged = String::from_utf8(logs.0.lock().expect("log buffer").clone()).expect("utf-8");
        let key_text = fs::read_to_string(&path).expect("read key file");
        assert_eq!(logged.lines().count(), 1, "{logged}");
        assert!(logged.contains("generated a new master key"), "{logged}");
        assert!(logged.contains(&key.key_id()), "{logged}");
        assert!(logged.contains(&path.display().to_string()), "{logged}");
        assert!(!logged.contains(key_text.trim()), "{logged}");
    }

    #[test]
    fn load_or_generate_loads_an_existing_key_file_without_regenerating() {
        // Arrange
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("master.key");
        let text = BASE64.encode([42u8; MASTER_KEY_LEN]);
        fs::write(&path, format!("  {text}\n")).expect("write test file");
        let expected = MasterKey::from_base64(&SecretString::from(text)).expect("valid key");
        // Act
        let (key, generated) = MasterKey::load_or_generate(&path).expect("load key file");
        // Assert
        assert!(!generated);
        assert_eq!(key.key_id(), expected.key_id());
    }

    #[test]
    fn load_or_generate_refuses_an_existing_malformed_or_empty_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("master.key");
        fs::write(&path, "c2VjcmV0\n").expect("write test file");
        let err = MasterKey::load_or_generate(&path).expect_err("should fail");
        assert!(matches!(err, CryptoError::MalformedKey { .. }));
        assert!(!err.to_string().contains("c2VjcmV0"));
        fs::write(&path, "").expect("write test file");
        let err = MasterKey::load_or_generate(&path).expect_err("should fail");
        assert!(matches!(err, CryptoError::KeyNotFound { .. }));
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
