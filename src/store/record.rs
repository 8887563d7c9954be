//! How a sealed snapshot record is tied to its row: the additional data
//! authenticated with the content and the diff (so ciphertexts cannot be
//! swapped between rows), the labels of diff headers and the stored names
//! of enums. Pure functions; ingest (`snapshot/`) and the read side
//! (`history`) must agree on them.

use crate::backup::Trigger;

/// Additional data binding a sealed export to its device and hash.
pub(crate) fn content_aad(device_id: &str, sha256_hash: &str) -> Vec<u8> {
    format!("cfgsnap:snapshot:v1:{device_id}:{sha256_hash}").into_bytes()
}

/// Additional data binding a sealed diff to its snapshot.
pub(crate) fn diff_aad(device_id: &str, snapshot_id: i64) -> Vec<u8> {
    format!("cfgsnap:diff:v1:{device_id}:{snapshot_id}").into_bytes()
}

/// `r1@3f0c1d2e4b5a`: a diff header naming the device and the short hash.
pub(crate) fn diff_label(device_id: &str, sha256_hash: &str) -> String {
    format!(
        "{device_id}@{}",
        sha256_hash.get(..12).unwrap_or(sha256_hash)
    )
}

/// The stored name of a trigger.
pub(crate) fn trigger_str(t: Trigger) -> &'static str {
    match t {
        Trigger::Scheduled => "scheduled",
        Trigger::Manual => "manual",
    }
}
