//! Passwords: length limits, Argon2id hashing with OWASP's parameters, and
//! verification that takes the same time whether or not the user exists.
//!
//! Hashing costs ~19 MiB and tens of milliseconds by design: callers run it
//! on the blocking pool. A [`Password`] never prints its value.

use std::fmt;
use std::sync::LazyLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use secrecy::{ExposeSecret as _, SecretString};

use super::InvalidCredential;

/// Shortest accepted password, in bytes.
pub const MIN_LEN: usize = 8;
/// Longest accepted password, in bytes: hashing cost must not depend on
/// what a caller sends.
pub const MAX_LEN: usize = 1024;

/// OWASP's Argon2id recommendation: 19 MiB, 2 passes, 1 lane.
const MEMORY_KIB: u32 = 19 * 1024;
const PASSES: u32 = 2;
const LANES: u32 = 1;

/// A password within the length limits.
#[derive(Clone)]
pub struct Password(SecretString);

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(..)")
    }
}

impl Password {
    /// Checks the length of `s`.
    ///
    /// # Errors
    /// [`InvalidCredential::PasswordLength`] outside [`MIN_LEN`]..=[`MAX_LEN`].
    pub fn new(s: String) -> Result<Password, InvalidCredential> {
        match (MIN_LEN..=MAX_LEN).contains(&s.len()) {
            true => Ok(Password(SecretString::from(s))),
            false => Err(InvalidCredential::PasswordLength),
        }
    }

    fn bytes(&self) -> &[u8] {
        self.0.expose_secret().as_bytes()
    }
}

fn argon2() -> Argon2<'static> {
    let params = Params::new(MEMORY_KIB, PASSES, LANES, None)
        .expect("BUG: OWASP's Argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// The PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`) of `password` with a
/// fresh random salt.
///
/// # Errors
/// Only if the hasher fails, which it does not for valid parameters.
pub fn hash(password: &Password) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    let hash = argon2()
        .hash_password(password.bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))?;
    Ok(hash.to_string())
}

/// Whether `password` matches the PHC string `stored`. A malformed stored
/// hash matches nothing.
pub fn verify(password: &str, stored: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    argon2()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

/// A hash of a random password, verified against for unknown users so that
/// a wrong user name costs what a wrong password costs.
static DUMMY: LazyLock<String> = LazyLock::new(|| {
    let random = super::secret::random_token();
    let password = Password(SecretString::from(random));
    hash(&password).unwrap_or_default()
});

/// Spends the time of one verification and fails: for unknown user names.
pub fn verify_dummy(password: &str) -> bool {
    std::hint::black_box(verify(password, &DUMMY));
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let password = Password::new("correct horse".into()).expect("long enough");
        let stored = hash(&password).expect("hashes");
        assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify("correct horse", &stored));
        assert!(!verify("correct horsf", &stored));
        assert!(!verify("correct horse", "not a hash"));
        assert!(!verify_dummy("correct horse"));
    }

    #[test]
    fn lengths_are_limited_and_values_never_printed() {
        assert!(Password::new("short".into()).is_err());
        assert!(Password::new("x".repeat(MAX_LEN + 1)).is_err());
        let p = Password::new("a-secret-value".into()).expect("ok");
        assert!(!format!("{p:?}").contains("secret-value"));
    }
}
