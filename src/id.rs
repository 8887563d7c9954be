//! Validated identifiers: `TenantId` and `DeviceId` (DESIGN.md §2).
//!
//! Ids end up inside NATS subjects and Redis keys, where `.`, `*`, `>` and
//! whitespace are special, so they are only ever built through `parse`, which
//! accepts 1–64 characters of `[A-Za-z0-9_-]`.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// Longest accepted id, in bytes (all accepted characters are ASCII).
pub const MAX_ID_LEN: usize = 64;

/// Why a string is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The string is empty.
    #[error("must not be empty")]
    Empty,
    /// The string is longer than [`MAX_ID_LEN`].
    #[error("must be at most {MAX_ID_LEN} characters, got {0}")]
    TooLong(usize),
    /// The string holds a character outside `[A-Za-z0-9_-]`.
    #[error("may only contain A-Z, a-z, 0-9, '_' and '-'")]
    BadCharacter,
}

fn check(s: &str) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::Empty);
    }
    let chars = s.chars().count();
    if chars > MAX_ID_LEN {
        return Err(IdError::TooLong(chars));
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(IdError::BadCharacter);
    }
    Ok(())
}

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Validates `s` as an id (DESIGN.md §2).
            ///
            /// # Errors
            /// [`IdError`] when `s` is empty, too long or holds a character
            /// outside `[A-Za-z0-9_-]`.
            pub fn parse(s: &str) -> Result<Self, IdError> {
                check(s).map(|()| Self(s.to_owned()))
            }

            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

id_type!(
    /// A tenant's id: 1–64 characters of `[A-Za-z0-9_-]`.
    TenantId
);
id_type!(
    /// A device's id, unique across tenants: 1–64 characters of `[A-Za-z0-9_-]`.
    DeviceId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_uuids_and_simple_names() {
        for ok in [
            "r1",
            "core-router_01",
            "6f9619ff-8b86-d011-b42d-00cf4fc964ff",
            &"a".repeat(64),
        ] {
            assert!(DeviceId::parse(ok).is_ok(), "{ok} should be valid");
        }
    }

    #[test]
    fn rejects_subject_and_key_metacharacters() {
        for bad in [
            "a.b", "a*", ">", "a b", "a\tb", "a/b", "..", "é", "a:b", "%2e",
        ] {
            assert_eq!(DeviceId::parse(bad), Err(IdError::BadCharacter), "{bad:?}");
        }
    }

    #[test]
    fn rejects_empty_and_too_long() {
        assert_eq!(TenantId::parse(""), Err(IdError::Empty));
        assert_eq!(TenantId::parse(&"a".repeat(65)), Err(IdError::TooLong(65)));
    }

    #[test]
    fn deserializing_validates() {
        let err = serde_json::from_str::<DeviceId>("\"a.b\"").expect_err("must reject");
        assert!(err.to_string().contains("may only contain"));
        let ok: DeviceId = serde_json::from_str("\"r1\"").expect("valid");
        assert_eq!(ok.as_str(), "r1");
    }
}
