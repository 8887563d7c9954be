//! A scratch directory under the temporary directory, removed on drop.

use std::path::{Path, PathBuf};

/// A directory removed (with its contents) when dropped.
pub struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    /// Creates `$TMPDIR/cfgsnap-bench-<random hex>` (`/tmp` when unset).
    pub fn new() -> std::io::Result<Scratch> {
        let dir =
            std::env::temp_dir().join(format!("cfgsnap-bench-{:016x}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir)?;
        Ok(Scratch { dir })
    }

    /// `name` inside the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            eprintln!("warning: could not remove {}: {e}", self.dir.display());
        }
    }
}
