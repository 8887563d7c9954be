//! The master key file: [`MasterKey::from_file`] reads it (warning when
//! others may read it), [`MasterKey::load_or_generate`] creates it with a
//! fresh key, mode 0600, durably, when it does not exist. Never overwrites
//! an existing file.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::Path;

use zeroize::Zeroizing;

use super::master_key::{MasterKey, malformed};
use super::{CryptoError, Result};

impl MasterKey {
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
            key_id = %key.id(),
            "generated a new master key; back it up, stored snapshots cannot be read without it"
        );
        Ok((key, true))
    }

    /// Creates `path` holding this key; `Ok(false)` when the file already exists.
    pub(super) fn write_new_file(&self, path: &Path) -> Result<bool> {
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
        let mut text = self.to_base64();
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
        tracing::warn!(
            path = %path.display(),
            error.message = %e,
            "removing partial master key file failed"
        );
    }
}

#[cfg(unix)]
fn warn_if_shared(path: &Path, file: &File) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = file.metadata()
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            path = %path.display(),
            "master key file is accessible to group or others; use mode 0600"
        );
    }
}

#[cfg(not(unix))]
fn warn_if_shared(_path: &Path, _file: &File) {}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as BASE64;
    use secrecy::SecretString;

    use super::*;
    use crate::store::crypto::{Cipher, MASTER_KEY_LEN};

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
        // Arrange + Act: a test on another thread may rebuild the callsite
        // interest cache between our rebuild and the log line, leaving it
        // uninterested; generate a fresh key (at most three times) until the
        // line reaches our subscriber.
        let dir = tempfile::tempdir().expect("temp dir");
        let mut attempt = 0;
        let (path, key, logs) = loop {
            let path = dir.path().join(format!("master-{attempt}.key"));
            let logs = LogBuffer::default();
            let writer = logs.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_writer(move || writer.clone())
                .with_ansi(false)
                .finish();
            let (key, _) = tracing::subscriber::with_default(subscriber, || {
                tracing::callsite::rebuild_interest_cache();
                MasterKey::load_or_generate(&path).expect("generate key file")
            });
            let empty = logs.0.lock().expect("log buffer").is_empty();
            attempt += 1;
            if !empty || attempt == 3 {
                break (path, key, logs);
            }
        };
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
}
