//! Encryption at rest (DESIGN.md §7): the master key, per-tenant keys, and the
//! sealing of config and diff text into the `key_id`, `nonce` and `ciphertext`
//! columns of a row. Text is deflate-compressed, then sealed with
//! XChaCha20-Poly1305 under an HKDF-SHA256 key per tenant. Key material and
//! plaintext never reach logs or errors. Entry points: [`MasterKey`], [`Cipher`].
//!
//! Layout: `master_key` (the key and what is derived from it), `key_file`
//! (loading and generating the key file), `key_dir` (previous keys beside
//! it, rotation and retirement), `keyring` (the cipher a running store
//! keeps in step with the key files), `cipher` (sealing and opening
//! records), `deflate` (the compressed payload format). This file holds the
//! public surface: constants and [`CryptoError`].

use std::io;
use std::path::PathBuf;

mod cipher;
mod deflate;
mod key_dir;
mod key_file;
mod keyring;
mod master_key;

pub use cipher::{Cipher, Sealed};
pub use key_dir::{
    is_key_id, previous_key_path, read_key_set, read_previous_keys, retire_key_file,
    rotate_key_file,
};
pub use keyring::Keyring;
pub use master_key::MasterKey;

/// Length of a master key, in bytes.
pub const MASTER_KEY_LEN: usize = 32;

/// Length of a record nonce (XChaCha20-Poly1305's extended nonce), in bytes.
pub const NONCE_LEN: usize = 24;

/// Default bound on a record's decompressed size (1 GiB), see [`Cipher::with_max_plaintext`].
pub const DEFAULT_MAX_PLAINTEXT: usize = 1 << 30;

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
