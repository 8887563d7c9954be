//! `[search]`: how long a search may scan, and the optional cache of
//! decrypted newest versions (DESIGN.md §15).

use std::time::Duration;

use serde::Deserialize;

/// `[search]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct SearchSettings {
    /// A search answers `partial: true` with what it found after this long.
    #[serde(with = "humantime_serde")]
    pub deadline: Duration,
    /// Bytes of decrypted newest versions kept in memory between searches;
    /// 0 turns the cache off.
    pub cache_bytes: u64,
}

impl Default for SearchSettings {
    fn default() -> Self {
        SearchSettings {
            deadline: Duration::from_secs(10),
            cache_bytes: 0,
        }
    }
}

/// Longest `[search] deadline` accepted.
pub const MAX_DEADLINE: Duration = Duration::from_secs(300);
