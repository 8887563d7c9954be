//! The [`Keyring`]: the store's [`Cipher`], kept in step with the key
//! directory while a node runs. Before sealing or opening it checks whether
//! the current key file was replaced (a `stat`, compared with the one seen
//! last); when it was, it reloads the current and previous key files, so a
//! rotation by `cfgsnap key rotate` reaches a running node at its next
//! write or read, without a signal or restart. Keys once loaded are never
//! forgotten by a running node.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use super::cipher::{Cipher, Sealed};
use super::key_dir::read_key_set;
use super::{MasterKey, Result};

/// The cipher of a store and, for a key file, where to reload it from.
#[derive(Clone)]
pub struct Keyring {
    inner: Arc<Inner>,
}

struct Inner {
    cipher: RwLock<Cipher>,
    /// The current key file, when keys come from files.
    path: Option<PathBuf>,
    /// The identity of the current key file when last loaded.
    seen: Mutex<Option<Stamp>>,
}

/// What changes when a key file is replaced: inode, size and mtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime_ns: i128,
}

impl Keyring {
    /// A keyring that never changes (a key from an environment variable).
    pub fn fixed(cipher: Cipher) -> Self {
        Self::build(cipher, None)
    }

    /// The current key file at `path` and the previous keys beside it,
    /// reloaded whenever the current file is replaced.
    ///
    /// # Errors
    /// As [`read_key_set`].
    pub fn from_key_file(path: &Path) -> Result<Self> {
        let stamp = stamp(path);
        let (current, previous) = read_key_set(path)?;
        let ring = Self::build(Cipher::new(current, previous), Some(path.to_owned()));
        *ring
            .inner
            .seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = stamp;
        Ok(ring)
    }

    fn build(cipher: Cipher, path: Option<PathBuf>) -> Self {
        Self {
            inner: Arc::new(Inner {
                cipher: RwLock::new(cipher),
                path,
                seen: Mutex::new(None),
            }),
        }
    }

    /// The cipher in force now, after picking up a replaced key file.
    pub fn cipher(&self) -> Cipher {
        self.refresh();
        self.inner
            .cipher
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// As [`Cipher::seal`], with the current key in force now.
    ///
    /// # Errors
    /// As [`Cipher::seal`].
    pub fn seal(&self, tenant_id: &str, aad: &[u8], plaintext: &[u8]) -> Result<Sealed> {
        self.cipher().seal(tenant_id, aad, plaintext)
    }

    /// As [`Cipher::open`], with the keys in force now.
    ///
    /// # Errors
    /// As [`Cipher::open`].
    pub fn open(&self, tenant_id: &str, aad: &[u8], sealed: &Sealed) -> Result<Vec<u8>> {
        self.cipher().open(tenant_id, aad, sealed)
    }

    /// The key id new records are sealed with.
    pub fn current_key_id(&self) -> String {
        self.cipher().current_key_id()
    }

    /// Reloads the key files when the current one was replaced since it was
    /// last read. A file that cannot be read now is logged (never its
    /// content) and the keys in force stay.
    pub fn refresh(&self) {
        let Some(path) = &self.inner.path else {
            return;
        };
        let now = stamp(path);
        let mut seen = self
            .inner
            .seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if now.is_none() || now == *seen {
            return;
        }
        match read_key_set(path) {
            Ok((current, previous)) => {
                let mut cipher = self
                    .inner
                    .cipher
                    .write()
                    .unwrap_or_else(PoisonError::into_inner);
                let old_id = cipher.current_key_id();
                let mut keys: Vec<MasterKey> = previous;
                keys.extend(cipher.keys());
                *cipher = Cipher::new(current, keys);
                *seen = now;
                if cipher.current_key_id() != old_id {
                    tracing::info!(
                        old_key_id = %old_id,
                        new_key_id = %cipher.current_key_id(),
                        "master key file replaced; sealing with the new key"
                    );
                }
            }
            Err(e) => {
                tracing::warn!(
                    path = %path.display(),
                    error.message = %e,
                    "master key file changed but cannot be read; keeping the keys in force"
                );
            }
        }
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cipher = self
            .inner
            .cipher
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("Keyring")
            .field("cipher", &*cipher)
            .field("path", &self.inner.path)
            .finish()
    }
}

#[cfg(unix)]
fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    Some(Stamp {
        dev: meta.dev(),
        ino: meta.ino(),
        len: meta.len(),
        mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
    })
}

#[cfg(not(unix))]
fn stamp(_path: &Path) -> Option<Stamp> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::crypto::key_dir::rotate_key_file;

    #[test]
    fn a_rotated_key_file_is_picked_up_at_the_next_seal_and_old_records_still_open() {
        // Arrange
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("master.key");
        MasterKey::load_or_generate(&path).expect("key file");
        let ring = Keyring::from_key_file(&path).expect("keyring");
        let before = ring.seal("t", b"row", b"text").expect("seal");
        // Act
        let (old, new) = rotate_key_file(&path).expect("rotate");
        let after = ring.seal("t", b"row", b"text").expect("seal");
        // Assert
        assert_eq!(before.key_id, old.key_id());
        assert_eq!(after.key_id, new.key_id());
        assert_eq!(ring.open("t", b"row", &before).expect("open old"), b"text");
        assert_eq!(ring.open("t", b"row", &after).expect("open new"), b"text");
    }

    #[test]
    fn a_key_file_replaced_by_garbage_keeps_the_keys_in_force() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("master.key");
        let (key, _) = MasterKey::load_or_generate(&path).expect("key file");
        let ring = Keyring::from_key_file(&path).expect("keyring");
        std::fs::write(&path, "not a key at all, and longer\n").expect("overwrite");
        assert_eq!(ring.current_key_id(), key.key_id());
    }
}
