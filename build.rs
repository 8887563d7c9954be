//! Rebuilds the crate when a migration is added or changed, so the embedded
//! `sqlx::migrate!` sets stay current, and stamps the git commit into
//! `cfgsnap --version` (`CFGSNAP_GIT_COMMIT`, `unknown` outside a checkout).

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=migrations");
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=CFGSNAP_GIT_COMMIT={commit}");
    // Stamp again when HEAD moves or the branch it names gets a commit.
    if let Some(p) = git(&["rev-parse", "--git-path", "HEAD"]) {
        println!("cargo:rerun-if-changed={p}");
    }
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"])
        && let Some(p) = git(&["rev-parse", "--git-path", &branch])
    {
        println!("cargo:rerun-if-changed={p}");
    }
}

/// The trimmed output of `git ARGS`, or `None` when git fails.
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}
