//! How a sealed snapshot record is tied to its row: the additional data
//! authenticated with the content and the diff (so ciphertexts cannot be
//! swapped between rows), the labels of diff headers, and the reading of
//! stored enum names ([`UnknownName`] for one this version does not know).
//! Pure functions; ingest (`snapshot/`) and the read side (`history`) must
//! agree on them.

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

/// A stored name that no variant of an enum has: the database holds a value
/// this version does not know. Reading such a row fails with
/// [`Error::Unexpected`](super::Error::Unexpected) naming the column.
#[derive(Debug, thiserror::Error)]
#[error("unknown {what} {value:?} in the database")]
pub struct UnknownName {
    what: &'static str,
    value: String,
}

impl UnknownName {
    /// The error for `value`, a stored `what` (e.g. `trigger`).
    pub(crate) fn new(what: &'static str, value: String) -> Self {
        UnknownName { what, value }
    }
}

/// Reads a stored trigger name ([`Trigger::as_str`]).
impl TryFrom<String> for Trigger {
    type Error = UnknownName;

    fn try_from(value: String) -> Result<Self, UnknownName> {
        Trigger::ALL
            .into_iter()
            .find(|t| t.as_str() == value)
            .ok_or_else(|| UnknownName::new("trigger", value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_trigger_names_read_back_and_unknown_ones_are_errors() {
        for t in Trigger::ALL {
            assert_eq!(Trigger::try_from(t.as_str().to_owned()).ok(), Some(t));
            let json = serde_json::to_value(t).expect("serializes");
            assert_eq!(json, t.as_str());
        }
        let err = Trigger::try_from("cron".to_owned()).expect_err("unknown");
        assert_eq!(err.to_string(), r#"unknown trigger "cron" in the database"#);
    }
}
