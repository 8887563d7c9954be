//! Local accounts (DESIGN.md §11), apart from storage and HTTP: the
//! [`Role`] ladder, validated [`Username`]s and passwords, Argon2id hashing
//! ([`password`]) and the random secrets of sessions ([`secret`]). The store
//! keeps accounts and sessions (`store::account`); the API signs people in
//! (`api::session`); the CLI manages accounts (`cli::user`).

pub mod password;
mod role;
pub mod secret;

use std::fmt;

pub use password::Password;
pub use role::Role;

/// Longest user name, in bytes.
pub const MAX_USERNAME_LEN: usize = 64;

/// A user name: 1 to 64 of `A-Z a-z 0-9 . _ @ -`, so it is safe in logs,
/// audit details and URLs. Built only through [`Username::parse`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct Username(String);

/// Why a user name or password is refused; says what is wrong, never the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidCredential {
    /// An empty, over-long or oddly spelled user name.
    #[error("user names are 1 to 64 characters of A-Z, a-z, 0-9, '.', '_', '@' and '-'")]
    Username,
    /// A password too short or too long.
    #[error(
        "passwords are {min} to {max} bytes long",
        min = password::MIN_LEN,
        max = password::MAX_LEN
    )]
    PasswordLength,
}

impl Username {
    /// Validates `s`.
    ///
    /// # Errors
    /// [`InvalidCredential::Username`] unless it has the documented shape.
    pub fn parse(s: &str) -> Result<Username, InvalidCredential> {
        let ok = (1..=MAX_USERNAME_LEN).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'@' | b'-'));
        match ok {
            true => Ok(Username(s.to_owned())),
            false => Err(InvalidCredential::Username),
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Username {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Username::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_have_one_shape() {
        for ok in [
            "a",
            "ada.lovelace",
            "ops_1@example.net",
            "x-y",
            &"u".repeat(64),
        ] {
            assert_eq!(Username::parse(ok).map(|u| u.0), Ok(ok.to_owned()));
        }
        for bad in [
            "",
            " ada",
            "ada ",
            "a/b",
            "ädä",
            "a\u{0}b",
            "a;b",
            &"u".repeat(65),
        ] {
            assert_eq!(Username::parse(bad), Err(InvalidCredential::Username));
        }
    }
}
