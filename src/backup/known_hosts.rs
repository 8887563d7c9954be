//! Host keys pinned on first use, kept in a small JSON file
//! (`backup.known_hosts_file`, `{"device_id": "SHA256:…"}`, owner-only).
//!
//! The executor asks [`KnownHosts::get`] before connecting and calls
//! [`KnownHosts::pin`] after the first successful login. Concurrent changes
//! are coalesced: each joins the open batch, and one writer at a time writes
//! every waiting change in one go (temporary file, fsync, rename, fsync of
//! the directory). A change returns only once the file holding it is on disk,
//! so a crash never loses an acknowledged pin nor leaves a half-written file.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions, Permissions};
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use anyhow::Context as _;
use tokio::sync::OwnedMutexGuard;

use super::HostKeys;
use crate::id::DeviceId;

/// The pinned host keys of all devices, shared by all executors.
#[derive(Clone)]
pub struct KnownHosts {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    state: Mutex<State>,
    /// Held by the one write in progress (FIFO, so no batch starves).
    writer: Arc<tokio::sync::Mutex<()>>,
    /// Files written so far, for figures and tests.
    writes: AtomicU64,
}

struct State {
    /// What the file on disk holds; `get` reads only this. Shared with
    /// the writer while it encodes the next file, so that neither a copy
    /// nor the encoding happens under the lock.
    pins: Arc<BTreeMap<String, Pin>>,
    /// Changes of the open batch, in arrival order (`None` forgets).
    pending: Vec<(String, Option<String>)>,
    /// The batch that changes join until a writer takes it.
    open: Arc<Batch>,
}

/// A pinned fingerprint and its line of the file, encoded once: a write
/// copies the lines of the pins it does not change, so a file of 10,000
/// pins costs a copy, not a JSON encoding of every entry.
#[derive(Clone)]
struct Pin {
    fingerprint: String,
    /// `  "device": "fingerprint"`, as `serde_json`'s pretty printer writes it.
    line: Vec<u8>,
}

impl Pin {
    fn new(device: &str, fingerprint: String) -> Pin {
        const INFALLIBLE: &str = "BUG: encoding a string into a Vec cannot fail";
        let mut line = b"  ".to_vec();
        serde_json::to_writer(&mut line, device).expect(INFALLIBLE);
        line.extend_from_slice(b": ");
        serde_json::to_writer(&mut line, &fingerprint).expect(INFALLIBLE);
        Pin { fingerprint, line }
    }
}

/// A batch's changes by device, the last of each device's winning: a new
/// pin (its line encoded once, for the file and then for memory) or `None`
/// to forget.
type Changes = BTreeMap<String, Option<Pin>>;

/// One write of the file: its outcome, shared by every change it carries.
#[derive(Default)]
struct Batch {
    outcome: OnceLock<Result<(), String>>,
}

impl KnownHosts {
    /// Opens the file at `path`; a missing file is an empty set.
    ///
    /// # Errors
    /// When the file exists but cannot be read or is not the expected JSON.
    pub async fn open(path: &Path) -> anyhow::Result<Self> {
        let pins: BTreeMap<String, String> = match tokio::fs::read(path).await {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("parsing known hosts file {}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("reading known hosts file {}", path.display()));
            }
        };
        Ok(Self {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                state: Mutex::new(State {
                    pins: Arc::new(
                        pins.into_iter()
                            .map(|(device, fingerprint)| {
                                let pin = Pin::new(&device, fingerprint);
                                (device, pin)
                            })
                            .collect(),
                    ),
                    pending: Vec::new(),
                    open: Arc::default(),
                }),
                writer: Arc::new(tokio::sync::Mutex::new(())),
                writes: AtomicU64::new(0),
            }),
        })
    }

    /// The fingerprint pinned for `device`, if any (only pins already on disk).
    pub async fn get(&self, device: &DeviceId) -> Option<String> {
        self.inner
            .state()
            .pins
            .get(device.as_str())
            .map(|pin| pin.fingerprint.clone())
    }

    /// Pins `fingerprint` for `device`; returns once the file holding it is on
    /// disk. Pins arriving while a write is in progress share the next write.
    ///
    /// # Errors
    /// When the file cannot be written; the pin is then not kept in memory either.
    ///
    /// # Cancel safety
    /// A pin cancelled before it returns may or may not be written.
    pub async fn pin(&self, device: &DeviceId, fingerprint: &str) -> anyhow::Result<()> {
        self.change(device, Some(fingerprint.to_owned())).await
    }

    /// Forgets the pinned key of `device` (an admin's host-key reset).
    ///
    /// # Errors
    /// When the file cannot be written.
    pub async fn forget(&self, device: &DeviceId) -> anyhow::Result<()> {
        let known = {
            let state = self.inner.state();
            state.pins.contains_key(device.as_str())
                || state.pending.iter().any(|(d, _)| d == device.as_str())
        };
        if !known {
            return Ok(());
        }
        self.change(device, None).await
    }

    /// How many times the file has been written since it was opened.
    pub fn file_writes(&self) -> u64 {
        self.inner.writes.load(Ordering::Relaxed)
    }

    /// Joins the open batch, then either finds it written by an earlier
    /// writer or writes it (with every change that joined it meanwhile).
    async fn change(&self, device: &DeviceId, value: Option<String>) -> anyhow::Result<()> {
        let batch = {
            let mut state = self.inner.state();
            state.pending.push((device.to_string(), value));
            state.open.clone()
        };
        let guard = self.inner.writer.clone().lock_owned().await;
        if batch.outcome.get().is_some() {
            drop(guard);
        } else {
            // The write runs on a blocking thread that owns the writer guard:
            // it completes (and records its outcome) even if this future is
            // dropped, and no other write starts before it ends.
            let (inner, mine) = (self.inner.clone(), batch.clone());
            tokio::task::spawn_blocking(move || inner.write_batch(&mine, guard))
                .await
                .context("writing the known hosts file")?;
        }
        match batch.outcome.get() {
            Some(Ok(())) => Ok(()),
            Some(Err(message)) => Err(anyhow::anyhow!("{message}")),
            None => Err(anyhow::anyhow!(
                "an earlier write of the known hosts file did not finish"
            )),
        }
    }
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, State> {
        // Never held across an await or a write; a panic while holding it
        // leaves consistent data (plain inserts), so poisoning is ignored.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Writes `batch` if it is still the open one: the pins on disk plus
    /// every pending change; on success those become the pins on disk.
    fn write_batch(&self, batch: &Arc<Batch>, _writer: OwnedMutexGuard<()>) {
        let (on_disk, pending) = {
            let mut state = self.state();
            if !Arc::ptr_eq(&state.open, batch) {
                // Taken by a writer that never finished (a panic): leave the
                // outcome unset, the caller reports it.
                return;
            }
            state.open = Arc::default();
            (Arc::clone(&state.pins), std::mem::take(&mut state.pending))
        };
        let count = pending.len();
        let changes = changes(pending);
        let written = persist(&self.path, &encode(&on_disk, &changes));
        drop(on_disk);
        self.writes.fetch_add(1, Ordering::Relaxed);
        let outcome = match written {
            Ok(()) => {
                let mut state = self.state();
                // Unshared by now (the writer dropped its share), so no copy.
                let pins = Arc::make_mut(&mut state.pins);
                for (device, pin) in changes {
                    match pin {
                        Some(pin) => pins.insert(device, pin),
                        None => pins.remove(&device),
                    };
                }
                Ok(())
            }
            Err(e) => Err(format!("{e:#} ({count} pending changes dropped)")),
        };
        // Set only here, by the writer that took the batch.
        let _ = batch.outcome.set(outcome);
    }
}

impl HostKeys for KnownHosts {
    async fn pinned(&self, device: &DeviceId) -> anyhow::Result<Option<String>> {
        Ok(self.get(device).await)
    }

    async fn pin(&self, device: &DeviceId, fingerprint: &str) -> anyhow::Result<()> {
        if self.get(device).await.is_none() {
            KnownHosts::pin(self, device, fingerprint).await?;
        }
        Ok(())
    }
}

/// `pending`, in arrival order, as [`Changes`]: each new pin encoded, the
/// last change of each device kept.
fn changes(pending: Vec<(String, Option<String>)>) -> Changes {
    pending
        .into_iter()
        .map(|(device, value)| {
            let pin = value.map(|fingerprint| Pin::new(&device, fingerprint));
            (device, pin)
        })
        .collect()
}

/// The file's JSON, as `serde_json::to_vec_pretty` writes a map: the pins
/// on disk and the `changes` merged in key order, every line copied from
/// its encoding.
fn encode(on_disk: &BTreeMap<String, Pin>, changes: &Changes) -> Vec<u8> {
    let size = on_disk.values().map(|p| p.line.len() + 2).sum::<usize>();
    let mut out = Vec::with_capacity(size + 64 * changes.len() + 4);
    let mut first = true;
    let mut emit = |pin: &Pin| {
        out.extend_from_slice(if first { b"{\n" } else { b",\n" });
        out.extend_from_slice(&pin.line);
        first = false;
    };
    let mut changes = changes.iter().peekable();
    for (device, pin) in on_disk {
        while let Some((_, change)) = changes.next_if(|(d, _)| *d < device) {
            change.iter().for_each(&mut emit);
        }
        match changes.next_if(|(d, _)| *d == device) {
            Some((_, change)) => change.iter().for_each(&mut emit),
            None => emit(pin),
        }
    }
    changes.for_each(|(_, change)| change.iter().for_each(&mut emit));
    out.extend_from_slice(if first { b"{}" } else { b"\n}" });
    out
}

/// Replaces the file with `body`, owner-only: a temporary file written and
/// fsync'd, renamed over the old one, then the directory fsync'd so the
/// rename itself survives a crash.
fn persist(path: &Path, body: &[u8]) -> anyhow::Result<()> {
    let dir = match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            dir
        }
        None => Path::new("."),
    };
    let tmp = path.with_extension("json.tmp");
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("opening {}", tmp.display()))?;
    // `mode` applies only to a new file; a leftover one keeps its own.
    file.set_permissions(Permissions::from_mode(0o600))
        .and_then(|()| file.write_all(body))
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    drop(file);
    std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::time::Duration;

    use super::*;

    fn id(i: usize) -> DeviceId {
        DeviceId::parse(&format!("r{i}")).expect("id")
    }

    #[test]
    fn a_merged_file_is_what_serde_json_would_write_for_the_map() {
        // Arrange: pins on disk, then changes before, between, on and after them.
        let mut pins = BTreeMap::new();
        for (device, fp) in [("r2", "SHA256:b"), ("r4", "SHA256:d"), ("r6", "SHA256:f")] {
            pins.insert(device.to_owned(), Pin::new(device, fp.to_owned()));
        }
        let change = |d: &str, v: Option<&str>| (d.to_owned(), v.map(str::to_owned));
        let pending = vec![
            change("r1", Some("SHA256:a")),
            change("r4", None),
            change("r6", Some("SHA256:old")),
            change("r6", Some("SHA256:new")),
            change("r9", Some("SHA256:z")),
            change("r5", None),
        ];

        // Act
        let merged = encode(&pins, &changes(pending));
        let empty = encode(&BTreeMap::new(), &Changes::new());

        // Assert
        let expected: BTreeMap<&str, &str> = [
            ("r1", "SHA256:a"),
            ("r2", "SHA256:b"),
            ("r6", "SHA256:new"),
            ("r9", "SHA256:z"),
        ]
        .into();
        assert_eq!(merged, serde_json::to_vec_pretty(&expected).expect("json"));
        assert_eq!(empty, b"{}");
    }

    fn on_disk(path: &Path) -> BTreeMap<String, String> {
        serde_json::from_slice(&std::fs::read(path).expect("read")).expect("json")
    }

    #[tokio::test]
    async fn a_pin_survives_reopening_and_forget_removes_it() {
        // Arrange
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub/known_hosts.json");
        let id = DeviceId::parse("r1").expect("id");
        let hosts = KnownHosts::open(&path).await.expect("open");
        assert_eq!(hosts.get(&id).await, None);

        // Act
        hosts.pin(&id, "SHA256:abc").await.expect("pin");
        let reopened = KnownHosts::open(&path).await.expect("reopen");

        // Assert
        assert_eq!(reopened.get(&id).await.as_deref(), Some("SHA256:abc"));
        reopened.forget(&id).await.expect("forget");
        let again = KnownHosts::open(&path).await.expect("reopen");
        assert_eq!(again.get(&id).await, None);
    }

    #[tokio::test]
    async fn a_corrupt_file_is_an_error_not_an_empty_set() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("known_hosts.json");
        std::fs::write(&path, b"{not json").expect("write");
        assert!(KnownHosts::open(&path).await.is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_pins_are_each_on_disk_when_they_return_and_a_reload_reads_them_all() {
        // Arrange
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("known_hosts.json");
        let hosts = KnownHosts::open(&path).await.expect("open");
        let n = 300;

        // Act: every task checks the file itself as soon as its pin returns.
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..n {
            let (hosts, path) = (hosts.clone(), path.clone());
            tasks.spawn(async move {
                let fingerprint = format!("SHA256:key-{i}");
                hosts.pin(&id(i), &fingerprint).await.expect("pin");
                assert_eq!(
                    on_disk(&path).get(&format!("r{i}")),
                    Some(&fingerprint),
                    "pin {i} returned before it was on disk"
                );
            });
        }
        while let Some(joined) = tasks.join_next().await {
            joined.expect("pin task");
        }

        // Assert
        let reopened = KnownHosts::open(&path).await.expect("reopen");
        for i in 0..n {
            assert_eq!(reopened.get(&id(i)).await, Some(format!("SHA256:key-{i}")));
        }
        assert!(hosts.file_writes() <= n as u64);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pins_waiting_on_a_write_in_progress_share_one_write() {
        // Arrange: a write in progress, simulated by holding the writer.
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("known_hosts.json");
        let hosts = KnownHosts::open(&path).await.expect("open");
        let busy = hosts.inner.writer.clone().lock_owned().await;
        let n = 50;
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..n {
            let hosts = hosts.clone();
            tasks.spawn(async move { hosts.pin(&id(i), &format!("SHA256:{i}")).await });
        }
        for _ in 0..500 {
            if hosts.inner.state().pending.len() == n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(hosts.inner.state().pending.len(), n, "all pins queued");
        assert_eq!(hosts.get(&id(0)).await, None, "not visible before on disk");

        // Act
        drop(busy);
        while let Some(joined) = tasks.join_next().await {
            joined.expect("pin task").expect("pin");
        }

        // Assert
        assert_eq!(hosts.file_writes(), 1);
        let keys: BTreeSet<String> = on_disk(&path).into_keys().collect();
        assert_eq!(keys.len(), n);
    }

    #[tokio::test]
    async fn a_failed_write_fails_its_pins_and_keeps_nothing_in_memory() {
        // Arrange: once opened, the parent "directory" becomes a regular file.
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("blocker/known_hosts.json");
        let hosts = KnownHosts::open(&path).await.expect("open");
        std::fs::write(dir.path().join("blocker"), b"").expect("write");

        // Act
        let first = hosts.pin(&id(1), "SHA256:a").await;
        let second = hosts.pin(&id(2), "SHA256:b").await;

        // Assert
        assert!(first.is_err() && second.is_err());
        assert_eq!(hosts.get(&id(1)).await, None);
        assert_eq!(hosts.get(&id(2)).await, None);
        assert!(hosts.inner.state().pending.is_empty());
    }

    #[tokio::test]
    async fn the_file_is_owner_only_even_over_a_leftover_temporary_file() {
        // Arrange
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("known_hosts.json");
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, b"stale").expect("write");
        std::fs::set_permissions(&tmp, Permissions::from_mode(0o644)).expect("chmod");
        let hosts = KnownHosts::open(&path).await.expect("open");

        // Act
        hosts.pin(&id(1), "SHA256:a").await.expect("pin");

        // Assert
        let mode = std::fs::metadata(&path)
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(!tmp.exists());
    }

    #[tokio::test]
    async fn a_file_written_by_hand_in_compact_json_is_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("known_hosts.json");
        std::fs::write(&path, br#"{"r1":"SHA256:x","r2":"SHA256:y"}"#).expect("write");
        let hosts = KnownHosts::open(&path).await.expect("open");
        assert_eq!(hosts.get(&id(2)).await.as_deref(), Some("SHA256:y"));
    }
}
