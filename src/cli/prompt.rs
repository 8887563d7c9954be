//! Reading a new password for `cfgsnap user add` and `passwd`: from the
//! terminal without echo (asked twice) when stdin is one, else the first
//! line of stdin. Never from argv; errors say what is wrong, never the value.

use std::io::{BufRead as _, IsTerminal as _};

use zeroize::Zeroizing;

use crate::account::{InvalidCredential, Password, password};

/// Why no password could be read; never holds the password.
#[derive(Debug, thiserror::Error)]
pub(super) enum ReadError {
    /// Stdin ended before any byte.
    #[error("no password on stdin: pipe one line, or run on a terminal")]
    Missing,
    /// The terminal's two entries differ.
    #[error("the two passwords differ")]
    Mismatch,
    /// Stdin's line is not text.
    #[error("the password is not valid UTF-8")]
    NotUtf8,
    /// Too short or too long.
    #[error(transparent)]
    Invalid(#[from] InvalidCredential),
    /// The terminal or stdin failed.
    #[error("reading the password: {0}")]
    Io(#[from] std::io::Error),
}

/// From the terminal (asked twice, no echo) when stdin is one, else the
/// first line of stdin.
pub(super) fn read_password() -> Result<Password, ReadError> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        let first = Zeroizing::new(rpassword::prompt_password("New password: ")?);
        let second = Zeroizing::new(rpassword::prompt_password("Repeat it: ")?);
        if *first != *second {
            return Err(ReadError::Mismatch);
        }
        return Ok(Password::new(String::clone(&first))?);
    }
    read_line(stdin.lock())
}

/// The first line of `input` without its `\n` or `\r\n`. Reads at most a
/// little over [`password::MAX_LEN`] bytes, so a huge stdin costs nothing.
fn read_line(input: impl std::io::BufRead) -> Result<Password, ReadError> {
    let mut bytes = Zeroizing::new(Vec::new());
    let limit = u64::try_from(password::MAX_LEN + 3).unwrap_or(u64::MAX);
    input.take(limit).read_until(b'\n', &mut bytes)?;
    if bytes.is_empty() {
        return Err(ReadError::Missing);
    }
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
    }
    let text = std::str::from_utf8(&bytes).map_err(|_| ReadError::NotUtf8)?;
    Ok(Password::new(text.to_owned())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(input: &[u8]) -> Result<Password, ReadError> {
        read_line(std::io::BufReader::new(input))
    }

    #[test]
    fn one_line_is_read_without_its_line_ending() {
        for input in [
            &b"long enough\n"[..],
            b"long enough\r\n",
            b"long enough",
            b"long enough\nsecond line\n",
        ] {
            let p = read(input).expect("a valid password");
            let hash = password::hash(&p).expect("hashes");
            assert!(password::verify("long enough", &hash));
        }
    }

    #[test]
    fn missing_short_long_and_binary_input_is_refused() {
        assert!(matches!(read(b""), Err(ReadError::Missing)));
        assert!(matches!(read(b"\n"), Err(ReadError::Invalid(_))));
        assert!(matches!(read(b"short\n"), Err(ReadError::Invalid(_))));
        let long = vec![b'x'; password::MAX_LEN + 1];
        assert!(matches!(read(&long), Err(ReadError::Invalid(_))));
        let huge = vec![b'x'; 10 * password::MAX_LEN];
        assert!(matches!(read(&huge), Err(ReadError::Invalid(_))));
        assert!(matches!(read(b"\xff\xfe long\n"), Err(ReadError::NotUtf8)));
        let max = vec![b'x'; password::MAX_LEN];
        assert!(read(&max).is_ok());
    }
}
