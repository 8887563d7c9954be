//! SSH user authentication: turns the configured [`Auth`] into something to
//! offer (a password, or a private key read and decrypted off the async
//! runtime) and offers it. Errors never carry passwords, passphrases or key bytes.

use std::path::Path;
use std::sync::Arc;

use anyhow::anyhow;
use russh::client::Handle;
use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg};
use secrecy::zeroize::Zeroizing;
use secrecy::{ExposeSecret, SecretString};

use super::transport::{HostKeyCheck, unreachable_with};
use crate::backup::{self, Auth, Error};

/// Credentials ready to offer: a password, or a decoded private key.
pub(super) enum Login {
    Password(SecretString),
    Key(Arc<PrivateKey>),
}

impl Login {
    /// Reads and decrypts a key file; a password is only cloned.
    pub(super) async fn prepare(auth: &Auth) -> backup::Result<Login> {
        match auth {
            Auth::Password(password) => Ok(Login::Password(password.clone())),
            Auth::Key { path, passphrase } => {
                let (path, passphrase) = (path.clone(), passphrase.clone());
                // Reading is blocking I/O and decryption (bcrypt KDF) is CPU-bound.
                tokio::task::spawn_blocking(move || load_key(&path, passphrase.as_ref()))
                    .await
                    .map_err(|e| anyhow::Error::new(e).context("loading the SSH key"))?
                    .map(|key| Login::Key(Arc::new(key)))
            }
        }
    }

    /// Logs in as `username`; a refusal is [`Error::AuthRejected`].
    pub(super) async fn authenticate(
        self,
        mut handle: Handle<HostKeyCheck>,
        username: &str,
    ) -> backup::Result<Handle<HostKeyCheck>> {
        let lost = |e| unreachable_with("connection lost during authentication", e);
        let accepted = match self {
            Login::Password(password) => handle
                .authenticate_password(username, password.expose_secret())
                .await
                .map(|result| result.success()),
            Login::Key(key) => authenticate_key(&mut handle, username, key).await,
        }
        .map_err(lost)?;
        if accepted {
            Ok(handle)
        } else {
            Err(Error::AuthRejected {
                username: username.to_owned(),
            })
        }
    }
}

/// Offers the key with each signature hash the server may accept, best first.
async fn authenticate_key(
    handle: &mut Handle<HostKeyCheck>,
    username: &str,
    key: Arc<PrivateKey>,
) -> Result<bool, russh::Error> {
    for hash in signature_hashes(handle, &key).await? {
        let attempt = PrivateKeyWithHashAlg::new(Arc::clone(&key), hash);
        if handle
            .authenticate_publickey(username, attempt)
            .await?
            .success()
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// RSA signature hashes to try (`None` is SHA-1 `ssh-rsa`); other key types
/// have one signature algorithm.
async fn signature_hashes(
    handle: &Handle<HostKeyCheck>,
    key: &PrivateKey,
) -> Result<Vec<Option<HashAlg>>, russh::Error> {
    if !key.algorithm().is_rsa() {
        return Ok(vec![None]);
    }
    let all = [Some(HashAlg::Sha512), Some(HashAlg::Sha256), None];
    Ok(match handle.best_supported_rsa_hash().await? {
        // `server-sig-algs` lists what the server implements, which may be
        // more than it accepts (OpenSSH's PubkeyAcceptedAlgorithms).
        Some(Some(best)) => std::iter::once(Some(best))
            .chain(all.into_iter().filter(|hash| *hash != Some(best)))
            .collect(),
        Some(None) => vec![None],
        // No `server-sig-algs`: a server older than RFC 8308/8332 such as
        // RouterOS v6, most likely SHA-1 only.
        None => vec![None, Some(HashAlg::Sha512), Some(HashAlg::Sha256)],
    })
}

/// Loads an OpenSSH/PKCS#8/PKCS#1 private key. Errors name the file and the
/// problem, never the passphrase or key bytes.
fn load_key(path: &Path, passphrase: Option<&SecretString>) -> backup::Result<PrivateKey> {
    let shown = path.display().to_string();
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
        Error::Unexpected(anyhow::Error::new(e).context(format!("reading the SSH key {shown}")))
    })?);
    russh::keys::decode_secret_key(&text, passphrase.map(|p| p.expose_secret()))
        .map_err(|e| key_error(&e, &shown, passphrase.is_some()))
}

fn key_error(e: &russh::keys::Error, shown: &str, has_passphrase: bool) -> Error {
    // The decoder's own message is dropped: it describes the key's bytes,
    // which must not reach logs, and says nothing an operator can act on.
    let problem = match e {
        russh::keys::Error::KeyIsEncrypted if !has_passphrase => {
            "it is encrypted and no passphrase is configured"
        }
        russh::keys::Error::UnsupportedKeyType { .. } => "unsupported key type",
        _ if has_passphrase => "wrong passphrase, or not a valid private key",
        _ => "not a valid private key",
    };
    Error::Unexpected(anyhow!("cannot load the SSH key {shown}: {problem}"))
}
