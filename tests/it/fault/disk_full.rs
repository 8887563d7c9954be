//! SQLite on a filesystem that fills up: `cfgsnap backup` fails with an
//! error that says so, and once space is freed the database is intact, reads
//! as before and stores the next backup. (With no byte left, SQLite cannot
//! even open its WAL index, so reads wait for space too.) The filesystem is a small
//! tmpfs of the test's own (mounting needs root, as `scripts/test.sh` has).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Output;

use routeros_sim::{DeviceSpec, Export};
use sqlx::Connection as _;

use crate::helpers::{CliConfig, CliOptions, start_simulator, within};

use crate::helpers::CFGSNAP as BIN;

/// A tmpfs mounted for the test, unmounted on drop.
struct SmallFs {
    path: PathBuf,
}

impl SmallFs {
    fn mount(path: &Path, size: &str) -> SmallFs {
        std::fs::create_dir_all(path).expect("mount point");
        let out = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(path)
            .output()
            .expect("mount runs");
        assert!(
            out.status.success(),
            "mounting a {size} tmpfs needs root (run the suite as root, as CI does): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SmallFs {
            path: path.to_owned(),
        }
    }

    /// Writes a filler file until the filesystem refuses more.
    fn fill(&self) -> PathBuf {
        let filler = self.path.join("filler");
        let mut file = std::fs::File::create(&filler).expect("filler file");
        let chunk = vec![0u8; 4096];
        while file
            .write_all(&chunk)
            .and_then(|()| file.sync_data())
            .is_ok()
        {}
        filler
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let status = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.path)
            .status();
        if !status.is_ok_and(|s| s.success()) {
            eprintln!("could not unmount {}", self.path.display());
        }
    }
}

async fn cli(config: &Path, args: &[&str]) -> Output {
    tokio::process::Command::new(BIN)
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .await
        .expect("cfgsnap runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_filesystem_fails_the_backup_clearly_and_leaves_the_database_usable() {
    within(std::time::Duration::from_secs(120), async {
        // Arrange: a device whose config changes on every export, so every
        // backup writes a new version; the store on a 2 MiB tmpfs.
        let sim = start_simulator(vec![
            DeviceSpec::default()
                .with_export(Export::Generated { lines: 2000 })
                .with_change_every(1),
        ])
        .await;
        let cfg = CliConfig::write(&sim, &CliOptions::default());
        let fs = SmallFs::mount(&cfg.dir().join("small"), "2m");
        let db = fs.path.join("cfgsnap.db");
        let text = std::fs::read_to_string(cfg.path()).expect("config");
        let moved = text.replace(
            &format!("sqlite://{}/cfgsnap.db", cfg.dir().display()),
            &format!("sqlite://{}", db.display()),
        );
        assert_ne!(text, moved, "the store is moved onto the small filesystem");
        std::fs::write(cfg.path(), moved).expect("config");
        let first = cli(cfg.path(), &["backup", "--device", "dev-0"]).await;
        assert!(first.status.success(), "the first backup is stored");

        // Act: the filesystem fills up, then a backup runs.
        let filler = fs.fill();
        let full = cli(cfg.path(), &["backup", "--device", "dev-0"]).await;
        std::fs::remove_file(&filler).expect("free the space");
        let history = cli(cfg.path(), &["history", "--device", "dev-0", "--json"]).await;
        let after = cli(cfg.path(), &["backup", "--device", "dev-0"]).await;

        // Assert: a failure that names the cause, nothing of the config.
        let stderr = String::from_utf8_lossy(&full.stderr);
        assert_eq!(full.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains("the filesystem holding the database is full"),
            "the error says the disk is full: {stderr}"
        );
        assert!(!stderr.contains("/ip address"), "no config text in errors");
        // Once there is room the database reads as before the failure and
        // takes the next version.
        assert!(history.status.success(), "history reads the store");
        let listed = String::from_utf8_lossy(&history.stdout);
        assert_eq!(
            listed.lines().count(),
            1,
            "one snapshot kept, one JSON line"
        );
        assert!(after.status.success(), "a backup after freeing space works");
        let printed: serde_json::Value =
            serde_json::from_slice(&after.stdout).expect("backup JSON");
        assert_eq!(printed["stored"], true);
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
            .await
            .expect("open the database");
        let check: String = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_one(&mut conn)
            .await
            .expect("integrity check");
        assert_eq!(check, "ok");
        let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM snapshot")
            .fetch_one(&mut conn)
            .await
            .expect("count");
        assert_eq!(rows, 2);
        conn.close().await.expect("close");
        drop(fs);
        sim.shutdown().await;
    })
    .await;
}
