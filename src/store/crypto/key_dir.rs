//! The key directory: the current master key file and, beside it, the
//! previous keys a rotation keeps (`master.key.<key id>`) until they are
//! retired. [`rotate_key_file`] swaps in a new key atomically,
//! [`read_key_set`] loads the current and previous keys, [`retire_key_file`]
//! deletes one previous key. Key bytes never reach logs or errors.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::master_key::MasterKey;
use super::{CryptoError, Result};

/// Hex digits in a key id ([`MasterKey::key_id`]).
const KEY_ID_HEX: usize = 16;

/// Whether `text` has the form of a key id: 16 lowercase hex digits.
pub fn is_key_id(text: &str) -> bool {
    text.len() == KEY_ID_HEX && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Where the previous key `key_id` is kept beside the current key file
/// `current`: the same name with `.<key_id>` appended.
pub fn previous_key_path(current: &Path, key_id: &str) -> PathBuf {
    let mut name = current.file_name().unwrap_or_default().to_os_string();
    name.push(".");
    name.push(key_id);
    current.with_file_name(name)
}

/// The current key from `current` and the previous keys kept beside it.
///
/// # Errors
/// As [`MasterKey::from_file`] for any of them, and
/// [`CryptoError::MalformedKey`] when a previous key's file name does not
/// match its key id.
pub fn read_key_set(current: &Path) -> Result<(MasterKey, Vec<MasterKey>)> {
    let key = MasterKey::from_file(current)?;
    Ok((key, read_previous_keys(current)?))
}

/// The previous keys kept beside `current` (`<name>.<key id>` files).
///
/// # Errors
/// As [`read_key_set`].
pub fn read_previous_keys(current: &Path) -> Result<Vec<MasterKey>> {
    let dir = parent_dir(current);
    let prefix = format!(
        "{}.",
        current.file_name().unwrap_or_default().to_string_lossy()
    );
    let entries = fs::read_dir(dir).map_err(|source| CryptoError::Io {
        action: "listing the master key directory",
        path: dir.to_owned(),
        source,
    })?;
    let mut keys = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| CryptoError::Io {
            action: "listing the master key directory",
            path: dir.to_owned(),
            source,
        })?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(id) = name.strip_prefix(&prefix).filter(|id| is_key_id(id)) else {
            continue;
        };
        let path = entry.path();
        let key = MasterKey::from_file(&path)?;
        if key.id() != id {
            return Err(CryptoError::MalformedKey {
                origin: format!("file {}", path.display()),
                reason: format!("its name says key id {id} but it holds key {}", key.id()),
            });
        }
        keys.push(key);
    }
    keys.sort_by(|a, b| a.id().cmp(b.id()));
    Ok(keys)
}

/// Makes a new random key current: keeps the current key as a previous
/// key file (`<name>.<old id>`, mode 0600), then replaces `current` with
/// the new key by an atomic rename. Returns `(old, new)`.
///
/// Each step is durable before the next, so a crash leaves either the old
/// key current (nothing changed) or the new one with the old one kept.
///
/// # Errors
/// As [`MasterKey::from_file`], and [`CryptoError::Io`] when a file cannot
/// be written or renamed.
pub fn rotate_key_file(current: &Path) -> Result<(MasterKey, MasterKey)> {
    let old = MasterKey::from_file(current)?;
    let kept = previous_key_path(current, old.id());
    if !old.write_new_file(&kept)? {
        // Kept by an earlier, interrupted rotation: it must hold the same key.
        let existing = MasterKey::from_file(&kept)?;
        if existing.id() != old.id() {
            return Err(CryptoError::MalformedKey {
                origin: format!("file {}", kept.display()),
                reason: format!("it should hold key {} but holds another key", old.id()),
            });
        }
    }
    let new = MasterKey::generate();
    let staging = previous_key_path(current, "new");
    remove_if_present(&staging)?;
    if !new.write_new_file(&staging)? {
        return Err(io_error(
            "creating",
            &staging,
            io::ErrorKind::AlreadyExists.into(),
        ));
    }
    fs::rename(&staging, current).map_err(|e| io_error("renaming into", current, e))?;
    sync_parent(current)?;
    tracing::warn!(
        path = %current.display(),
        old_key_id = %old.id(),
        new_key_id = %new.id(),
        "master key rotated; back up the new key file"
    );
    Ok((old, new))
}

/// Deletes the previous key file of `key_id` beside `current`; `Ok(false)`
/// when there is none.
///
/// # Errors
/// [`CryptoError::Io`] when it cannot be removed.
pub fn retire_key_file(current: &Path, key_id: &str) -> Result<bool> {
    let path = previous_key_path(current, key_id);
    match fs::remove_file(&path) {
        Ok(()) => {
            sync_parent(&path)?;
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_error("removing", &path, e)),
    }
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

fn remove_if_present(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_error("removing", path, e)),
        _ => Ok(()),
    }
}

fn sync_parent(path: &Path) -> Result<()> {
    let dir = parent_dir(path);
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error("syncing directory", dir, e))
}

fn io_error(action: &'static str, path: &Path, source: io::Error) -> CryptoError {
    CryptoError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::crypto::Cipher;

    #[test]
    fn rotation_keeps_the_old_key_beside_the_new_one_and_retire_removes_it() {
        // Arrange
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("master.key");
        let (first, _) = MasterKey::load_or_generate(&path).expect("key file");
        let sealed = Cipher::new(first.clone(), Vec::new())
            .seal("t", b"row", b"text")
            .expect("seal");
        // Act
        let (old, new) = rotate_key_file(&path).expect("rotate");
        let (current, previous) = read_key_set(&path).expect("key set");
        // Assert
        assert_eq!(old.id(), first.id());
        assert_eq!(current.id(), new.id());
        assert_ne!(new.id(), old.id());
        assert_eq!(previous.len(), 1);
        assert_eq!(previous[0].id(), old.id());
        let cipher = Cipher::new(current, previous);
        assert_eq!(cipher.open("t", b"row", &sealed).expect("open"), b"text");
        assert!(!previous_key_path(&path, "new").exists());
        assert!(retire_key_file(&path, old.id()).expect("retire"));
        assert!(!retire_key_file(&path, old.id()).expect("retire again"));
        assert!(read_previous_keys(&path).expect("previous").is_empty());
    }

    #[test]
    fn a_previous_key_file_under_the_wrong_name_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("master.key");
        MasterKey::load_or_generate(&path).expect("key file");
        let other = MasterKey::generate();
        let wrong = previous_key_path(&path, "0123456789abcdef");
        assert!(other.write_new_file(&wrong).expect("write"));
        let err = read_key_set(&path).expect_err("should fail");
        assert!(err.to_string().contains("0123456789abcdef"), "{err}");
    }

    #[test]
    fn key_ids_are_sixteen_lowercase_hex_digits() {
        assert!(is_key_id("0123456789abcdef"));
        for bad in [
            "",
            "0123456789ABCDEF",
            "0123456789abcde",
            "../../etc/passwd",
            "new",
        ] {
            assert!(!is_key_id(bad), "{bad}");
        }
    }
}
