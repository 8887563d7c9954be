//! SSH user authentication: turns the configured [`Auth`] into something to
//! offer (a password, or a private key read and decrypted off the async
//! runtime, once per file version: [`KeyCache`]) and offers it. Errors never
//! carry passwords, passphrases or key bytes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use anyhow::anyhow;
use russh::client::Handle;
use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg};
use secrecy::zeroize::Zeroizing;
use secrecy::{ExposeSecret, SecretString};

use super::transport::{HostKeyCheck, unreachable_with};
use crate::backup::{self, Auth, Error};

/// Credentials ready to offer: a password, or a decoded private key.
pub(super) enum Login {
    Password(SecretString),
    Key(Arc<PrivateKey>),
}

/// Decoded private keys by file, so that a fleet sharing one key file reads
/// and decrypts it once, not once per backup (an encrypted key costs a bcrypt
/// KDF run, tens of milliseconds of CPU). An entry is used only while the
/// file's size, modification time and inode are those it was read with, and
/// with the same passphrase: a rotated key file is read again on the next
/// backup, with no reload needed. Failures are never kept. Clones share the
/// cache.
#[derive(Clone, Default)]
pub struct KeyCache {
    entries: Arc<Mutex<HashMap<PathBuf, Slot>>>,
}

/// One file's entry; its lock is held while the file is read, so concurrent
/// first uses of one key decode it once.
type Slot = Arc<tokio::sync::Mutex<Option<CachedKey>>>;

impl std::fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let files = self
            .entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        f.debug_struct("KeyCache").field("files", &files).finish()
    }
}

/// A decoded key and what it was decoded from.
struct CachedKey {
    stamp: FileStamp,
    passphrase: Option<SecretString>,
    key: Arc<PrivateKey>,
}

/// What tells one version of a key file from the next.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

impl FileStamp {
    fn of(path: &Path) -> Option<FileStamp> {
        use std::os::unix::fs::MetadataExt as _;
        // A stat of a local configuration file: cheap enough to run inline.
        let meta = std::fs::metadata(path).ok()?;
        Some(FileStamp {
            len: meta.len(),
            modified: meta.modified().ok(),
            inode: meta.ino(),
        })
    }
}

fn same_passphrase(a: Option<&SecretString>, b: Option<&SecretString>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => a.expose_secret() == b.expose_secret(),
        _ => false,
    }
}

impl KeyCache {
    /// The decoded key of `path`: from the cache while the file is
    /// unchanged, else read and decrypted on a blocking thread (concurrent
    /// callers for one file wait for that one read).
    async fn key(
        &self,
        path: &Path,
        passphrase: Option<&SecretString>,
    ) -> backup::Result<Arc<PrivateKey>> {
        let slot = {
            let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(entries.entry(path.to_owned()).or_default())
        };
        let mut slot = slot.lock().await;
        // Taken before the read: a file that changes during it differs from
        // this stamp next time and is read again.
        let stamp = FileStamp::of(path);
        if let (Some(cached), Some(stamp)) = (slot.as_ref(), &stamp)
            && cached.stamp == *stamp
            && same_passphrase(cached.passphrase.as_ref(), passphrase)
        {
            return Ok(Arc::clone(&cached.key));
        }
        let (owned, secret) = (path.to_owned(), passphrase.cloned());
        // Reading is blocking I/O and decryption (bcrypt KDF) is CPU-bound.
        let key = tokio::task::spawn_blocking(move || load_key(&owned, secret.as_ref()))
            .await
            .map_err(|e| anyhow::Error::new(e).context("loading the SSH key"))??;
        let key = Arc::new(key);
        *slot = stamp.map(|stamp| CachedKey {
            stamp,
            passphrase: passphrase.cloned(),
            key: Arc::clone(&key),
        });
        Ok(key)
    }
}

impl Login {
    /// The key from `keys` (read and decrypted when not cached); a password
    /// is only cloned.
    pub(super) async fn prepare(auth: &Auth, keys: &KeyCache) -> backup::Result<Login> {
        match auth {
            Auth::Password(password) => Ok(Login::Password(password.clone())),
            Auth::Key { path, passphrase } => {
                keys.key(path, passphrase.as_ref()).await.map(Login::Key)
            }
        }
    }

    /// Logs in as `username`; a refusal is [`Error::AuthRejected`].
    pub(super) async fn authenticate(
        self,
        mut handle: Handle<HostKeyCheck>,
        username: &str,
    ) -> backup::Result<Handle<HostKeyCheck>> {
        let lost = |e| unreachable_with("connection lost during authentication", e);
        let accepted = match self {
            Login::Password(password) => handle
                .authenticate_password(username, password.expose_secret())
                .await
                .map(|result| result.success()),
            Login::Key(key) => authenticate_key(&mut handle, username, key).await,
        }
        .map_err(lost)?;
        if accepted {
            Ok(handle)
        } else {
            Err(Error::AuthRejected {
                username: username.to_owned(),
            })
        }
    }
}

/// Offers the key with each signature hash the server may accept, best first.
async fn authenticate_key(
    handle: &mut Handle<HostKeyCheck>,
    username: &str,
    key: Arc<PrivateKey>,
) -> Result<bool, russh::Error> {
    for hash in signature_hashes(handle, &key).await? {
        let attempt = PrivateKeyWithHashAlg::new(Arc::clone(&key), hash);
        if handle
            .authenticate_publickey(username, attempt)
            .await?
            .success()
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// RSA signature hashes to try (`None` is SHA-1 `ssh-rsa`); other key types
/// have one signature algorithm.
async fn signature_hashes(
    handle: &Handle<HostKeyCheck>,
    key: &PrivateKey,
) -> Result<Vec<Option<HashAlg>>, russh::Error> {
    if !key.algorithm().is_rsa() {
        return Ok(vec![None]);
    }
    let all = [Some(HashAlg::Sha512), Some(HashAlg::Sha256), None];
    Ok(match handle.best_supported_rsa_hash().await? {
        // `server-sig-algs` lists what the server implements, which may be
        // more than it accepts (OpenSSH's PubkeyAcceptedAlgorithms).
        Some(Some(best)) => std::iter::once(Some(best))
            .chain(all.into_iter().filter(|hash| *hash != Some(best)))
            .collect(),
        Some(None) => vec![None],
        // No `server-sig-algs`: a server older than RFC 8308/8332 such as
        // RouterOS v6, most likely SHA-1 only.
        None => vec![None, Some(HashAlg::Sha512), Some(HashAlg::Sha256)],
    })
}

/// Loads an OpenSSH/PKCS#8/PKCS#1 private key. Errors name the file and the
/// problem, never the passphrase or key bytes.
fn load_key(path: &Path, passphrase: Option<&SecretString>) -> backup::Result<PrivateKey> {
    let shown = path.display().to_string();
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
        Error::Unexpected(anyhow::Error::new(e).context(format!("reading the SSH key {shown}")))
    })?);
    russh::keys::decode_secret_key(&text, passphrase.map(|p| p.expose_secret()))
        .map_err(|e| key_error(&e, &shown, passphrase.is_some()))
}

fn key_error(e: &russh::keys::Error, shown: &str, has_passphrase: bool) -> Error {
    // The decoder's own message is dropped: it describes the key's bytes,
    // which must not reach logs, and says nothing an operator can act on.
    let problem = match e {
        russh::keys::Error::KeyIsEncrypted if !has_passphrase => {
            "it is encrypted and no passphrase is configured"
        }
        russh::keys::Error::UnsupportedKeyType { .. } => "unsupported key type",
        _ if has_passphrase => "wrong passphrase, or not a valid private key",
        _ => "not a valid private key",
    };
    Error::Unexpected(anyhow!("cannot load the SSH key {shown}: {problem}"))
}

#[cfg(test)]
mod tests {
    use russh::keys::ssh_key::LineEnding;
    use russh::keys::ssh_key::private::Ed25519Keypair;

    use super::*;

    /// Writes the Ed25519 key of `seed` to `path` as a new file renamed into place.
    fn write_key(path: &Path, seed: u8) {
        let key = PrivateKey::from(Ed25519Keypair::from_seed(&[seed; 32]));
        let text = key.to_openssh(LineEnding::LF).expect("encode the key");
        let staged = path.with_extension("new");
        std::fs::write(&staged, text.as_bytes()).expect("write the key");
        std::fs::rename(&staged, path).expect("rename the key into place");
    }

    #[tokio::test]
    async fn an_unchanged_key_file_is_decoded_once() {
        // Arrange
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("id");
        write_key(&path, 1);
        let cache = KeyCache::default();

        // Act
        let first = cache.key(&path, None).await.expect("first read");
        let second = cache.clone().key(&path, None).await.expect("second read");

        // Assert: the same decoded key, shared by the clone.
        assert!(Arc::ptr_eq(&first, &second));
    }

    #[tokio::test]
    async fn a_replaced_key_file_is_read_again() {
        // Arrange
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("id");
        write_key(&path, 1);
        let cache = KeyCache::default();
        let old = cache.key(&path, None).await.expect("first read");

        // Act
        write_key(&path, 2);
        let new = cache.key(&path, None).await.expect("second read");

        // Assert
        assert_ne!(old.public_key(), new.public_key());
    }

    #[tokio::test]
    async fn another_passphrase_reads_the_file_again() {
        // Arrange
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("id");
        write_key(&path, 1);
        let cache = KeyCache::default();
        let plain = cache.key(&path, None).await.expect("first read");

        // Act: an unencrypted key ignores the passphrase, but the entry must not match.
        let secret = SecretString::from("changed".to_owned());
        let again = cache.key(&path, Some(&secret)).await.expect("second read");

        // Assert
        assert!(!Arc::ptr_eq(&plain, &again));
        assert_eq!(plain.public_key(), again.public_key());
    }

    #[tokio::test]
    async fn a_failed_read_is_not_kept() {
        // Arrange
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("id");
        let cache = KeyCache::default();

        // Act
        let missing = cache.key(&path, None).await;
        std::fs::write(&path, "not a key").expect("write garbage");
        let garbage = cache.key(&path, None).await;
        write_key(&path, 3);
        let valid = cache.key(&path, None).await;

        // Assert: each error names the file, never its bytes.
        let missing = missing.err().map(|e| e.to_string()).unwrap_or_default();
        let garbage = garbage.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(missing.contains("reading the SSH key"), "{missing}");
        assert!(garbage.contains("not a valid private key"), "{garbage}");
        assert!(!garbage.contains("not a key"), "{garbage}");
        assert!(valid.is_ok());
    }
}
