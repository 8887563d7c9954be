//! Rebuilds the crate when a migration is added or changed, so the embedded
//! `sqlx::migrate!` sets stay current.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
