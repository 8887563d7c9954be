//! JWT verification with the algorithm pinned by configuration: an HS256
//! secret (`auth.jwt_secret_env` / `auth.jwt_secret_file`), or an RS256 or
//! EdDSA public key (`auth.jwt_public_key_file`, the key type decides) —
//! never the token's own `alg`. `exp` is required, `nbf` honoured, `iss`
//! and `aud` checked when configured, and `sub`, `tenant_id`, `role` are
//! required claims. [`AuthConfig::mint_token`] serves `cfgsnap token`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::Duration;

use jsonwebtoken::errors::ErrorKind as JwtErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret as _, SecretBox};
use serde::{Deserialize, Serialize};

use super::caller::Caller;
use crate::account::Role;
use crate::api::error::ApiError;
use crate::config::AuthSettings;
use crate::id::TenantId;

/// Shortest accepted HS256 secret, in bytes (RFC 7518 §3.2: at least the
/// hash size).
pub const MIN_SECRET_BYTES: usize = 32;

/// Longest accepted `sub`: it becomes an audit actor and a rate-limit key.
const MAX_SUB_LEN: usize = 256;

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
const LEEWAY_SECS: u64 = 30;

/// The claims cfgsnap reads; all required. `exp` (and `nbf`, `iss`, `aud`)
/// are checked by `jsonwebtoken`'s [`Validation`].
#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    /// Required for every role but `super_admin`, which may act anywhere.
    tenant_id: Option<TenantId>,
    role: Role,
    /// The sign-in session of a token `POST /api/auth/login` issued.
    #[serde(default)]
    sid: Option<String>,
}

/// The claims `cfgsnap token` writes.
#[derive(Debug, Serialize)]
struct MintedClaims<'a> {
    sub: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    tenant_id: Option<&'a str>,
    role: Role,
    #[serde(skip_serializing_if = "Option::is_none")]
    sid: Option<&'a str>,
    iat: u64,
    exp: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<&'a str>,
}

/// A misconfigured `[auth]` section, or a token that cannot be minted.
#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    /// None of the key sources is set.
    #[error(
        "no JWT key configured: set auth.jwt_secret_env or auth.jwt_secret_file (HS256), or auth.jwt_public_key_file (RS256/EdDSA)"
    )]
    NoKey,
    /// More than one key source is set.
    #[error(
        "set exactly one of auth.jwt_secret_env, auth.jwt_secret_file and auth.jwt_public_key_file"
    )]
    Ambiguous,
    /// The secret's environment variable is unset or empty.
    #[error("auth.jwt_secret_env: environment variable {0} is unset or empty")]
    EnvMissing(String),
    /// A key file could not be read.
    #[error("cannot read {}", .path.display())]
    FileUnreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The HS256 secret is too short to be safe.
    #[error("the HS256 secret must be at least {MIN_SECRET_BYTES} bytes, got {0}")]
    SecretTooShort(usize),
    /// The public key is neither an RSA nor an Ed25519 PEM public key.
    #[error("{}: not an RSA or Ed25519 public key in PEM form", .0.display())]
    UnsupportedKey(PathBuf),
    /// Tokens can only be minted with an HS256 secret.
    #[error(
        "minting tokens needs an HS256 secret (auth.jwt_secret_env or auth.jwt_secret_file); with a public key, tokens come from the identity provider"
    )]
    NotHs256,
    /// Signing failed.
    #[error("signing the token failed")]
    Sign(#[source] jsonwebtoken::errors::Error),
}

/// Token verification (and, with an HS256 secret, minting), pinned to one
/// algorithm by configuration. Cheap to share behind an `Arc`.
pub struct AuthConfig {
    algorithm: Algorithm,
    decoding: DecodingKey,
    validation: Validation,
    signing: Option<EncodingKey>,
    issuer: Option<String>,
    audience: Option<String>,
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthConfig")
            .field("algorithm", &self.algorithm)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

/// Installs `jsonwebtoken`'s RustCrypto provider for the process (once;
/// later calls do nothing). The constructors of [`AuthConfig`] call it.
pub fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        if jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER
            .install_default()
            .is_err()
        {
            tracing::debug!("a jsonwebtoken crypto provider was already installed");
        }
    });
}

impl AuthConfig {
    /// Reads the key named by `[auth]`: the HS256 secret from
    /// `jwt_secret_env` or `jwt_secret_file` (a trailing newline is
    /// ignored), or the PEM public key in `jwt_public_key_file` (RS256 for
    /// RSA, EdDSA for Ed25519). `issuer`/`audience` are required claims
    /// when set.
    ///
    /// # Errors
    /// [`AuthConfigError`] naming the setting that is missing or wrong.
    pub fn from_settings(settings: &AuthSettings) -> Result<AuthConfig, AuthConfigError> {
        let sources = usize::from(settings.jwt_secret_env.is_some())
            + usize::from(settings.jwt_secret_file.is_some())
            + usize::from(settings.jwt_public_key_file.is_some());
        if sources > 1 {
            return Err(AuthConfigError::Ambiguous);
        }
        let (issuer, audience) = (settings.issuer.clone(), settings.audience.clone());
        if let Some(var) = &settings.jwt_secret_env {
            let secret = std::env::var(var)
                .ok()
                .filter(|s| !s.is_empty())
                .ok_or_else(|| AuthConfigError::EnvMissing(var.clone()))?;
            let secret = SecretBox::new(Box::new(secret.into_bytes()));
            return Self::hs256(secret.expose_secret(), issuer, audience);
        }
        if let Some(path) = &settings.jwt_secret_file {
            let secret = SecretBox::new(Box::new(read(path)?));
            let trimmed = trim_newline(secret.expose_secret());
            return Self::hs256(trimmed, issuer, audience);
        }
        if let Some(path) = &settings.jwt_public_key_file {
            return Self::public_key_pem(&read(path)?, path, issuer, audience);
        }
        Err(AuthConfigError::NoKey)
    }

    /// Verification (and minting) with an HS256 `secret`.
    ///
    /// # Errors
    /// [`AuthConfigError::SecretTooShort`].
    pub fn hs256(
        secret: &[u8],
        issuer: Option<String>,
        audience: Option<String>,
    ) -> Result<AuthConfig, AuthConfigError> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(AuthConfigError::SecretTooShort(secret.len()));
        }
        install_crypto_provider();
        Ok(Self::build(
            Algorithm::HS256,
            DecodingKey::from_secret(secret),
            Some(EncodingKey::from_secret(secret)),
            issuer,
            audience,
        ))
    }

    /// Verification with a PEM public key: RS256 for RSA, EdDSA for Ed25519.
    /// `path` only names the key in errors.
    ///
    /// # Errors
    /// [`AuthConfigError::UnsupportedKey`] for anything else.
    pub fn public_key_pem(
        pem: &[u8],
        path: &Path,
        issuer: Option<String>,
        audience: Option<String>,
    ) -> Result<AuthConfig, AuthConfigError> {
        install_crypto_provider();
        // The PEM's key type decides the algorithm; the token never does.
        let (algorithm, key) = if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
            (Algorithm::RS256, key)
        } else if let Ok(key) = DecodingKey::from_ed_pem(pem) {
            (Algorithm::EdDSA, key)
        } else {
            return Err(AuthConfigError::UnsupportedKey(path.to_owned()));
        };
        Ok(Self::build(algorithm, key, None, issuer, audience))
    }

    fn build(
        algorithm: Algorithm,
        decoding: DecodingKey,
        signing: Option<EncodingKey>,
        issuer: Option<String>,
        audience: Option<String>,
    ) -> AuthConfig {
        let mut validation = Validation::new(algorithm);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        let mut required = vec!["exp"];
        if let Some(iss) = &issuer {
            validation.set_issuer(&[iss]);
            required.push("iss");
        }
        match &audience {
            Some(aud) => {
                validation.set_audience(&[aud]);
                required.push("aud");
            }
            // Without a configured audience any `aud` is acceptable.
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        AuthConfig {
            algorithm,
            decoding,
            validation,
            signing,
            issuer,
            audience,
        }
    }

    /// The pinned algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Verifies `token` and returns its caller.
    ///
    /// # Errors
    /// [`ApiError::InvalidToken`] saying which check failed.
    pub fn verify(&self, token: &str) -> Result<Caller, ApiError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| ApiError::InvalidToken(describe(e.kind())))?;
        let Claims {
            sub,
            tenant_id,
            role,
            sid,
        } = data.claims;
        if sub.is_empty() || sub.len() > MAX_SUB_LEN {
            return Err(ApiError::InvalidToken("sub must be 1 to 256 bytes"));
        }
        if tenant_id.is_none() && role != Role::SuperAdmin {
            return Err(ApiError::InvalidToken(
                "claims sub, tenant_id and role are required and role must be viewer, operator, admin or super_admin",
            ));
        }
        if sid
            .as_ref()
            .is_some_and(|s| s.is_empty() || s.len() > MAX_SUB_LEN)
        {
            return Err(ApiError::InvalidToken("sid must be 1 to 256 bytes"));
        }
        Ok(Caller {
            sub,
            tenant_id,
            role,
            sid,
            via_cookie: false,
            csrf_token: None,
        })
    }

    /// Whether this configuration can sign tokens (an HS256 secret), as
    /// local sign-in needs.
    pub fn can_mint(&self) -> bool {
        self.signing.is_some()
    }

    /// Mints the access token of sign-in session `sid` for `sub`, valid for
    /// `ttl` (and only while the session is open).
    ///
    /// # Errors
    /// [`AuthConfigError::NotHs256`] when verification uses a public key.
    pub fn mint_session_token(
        &self,
        sub: &str,
        tenant: Option<&str>,
        role: Role,
        sid: &str,
        ttl: Duration,
    ) -> Result<String, AuthConfigError> {
        self.mint(sub, tenant, role, Some(sid), ttl)
    }

    /// Mints a token for `sub` in `tenant` with `role`, valid for `ttl`,
    /// carrying the configured `iss` and `aud`.
    ///
    /// # Errors
    /// [`AuthConfigError::NotHs256`] when verification uses a public key.
    pub fn mint_token(
        &self,
        sub: &str,
        tenant: &TenantId,
        role: Role,
        ttl: Duration,
    ) -> Result<String, AuthConfigError> {
        self.mint(sub, Some(tenant.as_str()), role, None, ttl)
    }

    fn mint(
        &self,
        sub: &str,
        tenant_id: Option<&str>,
        role: Role,
        sid: Option<&str>,
        ttl: Duration,
    ) -> Result<String, AuthConfigError> {
        let key = self.signing.as_ref().ok_or(AuthConfigError::NotHs256)?;
        let now = jsonwebtoken::get_current_timestamp();
        let claims = MintedClaims {
            sub,
            tenant_id,
            role,
            sid,
            iat: now,
            exp: now.saturating_add(ttl.as_secs()),
            iss: self.issuer.as_deref(),
            aud: self.audience.as_deref(),
        };
        jsonwebtoken::encode(&Header::new(self.algorithm), &claims, key)
            .map_err(AuthConfigError::Sign)
    }
}

fn read(path: &Path) -> Result<Vec<u8>, AuthConfigError> {
    std::fs::read(path).map_err(|source| AuthConfigError::FileUnreadable {
        path: path.to_owned(),
        source,
    })
}

fn trim_newline(bytes: &[u8]) -> &[u8] {
    let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    bytes.strip_suffix(b"\r").unwrap_or(bytes)
}

/// What a rejected token got wrong, for the problem `detail`.
fn describe(kind: &JwtErrorKind) -> &'static str {
    match kind {
        JwtErrorKind::ExpiredSignature => "token expired",
        JwtErrorKind::ImmatureSignature => "token not yet valid (nbf)",
        JwtErrorKind::InvalidSignature => "signature does not verify",
        JwtErrorKind::InvalidAlgorithm => "algorithm not accepted",
        JwtErrorKind::InvalidIssuer => "wrong issuer",
        JwtErrorKind::InvalidAudience => "wrong audience",
        JwtErrorKind::MissingRequiredClaim(_) => "a required claim (exp, iss, aud) is missing",
        JwtErrorKind::Json(_) | JwtErrorKind::InvalidClaimFormat(_) => {
            "claims sub, tenant_id and role are required and role must be viewer, operator, admin or super_admin"
        }
        _ => "malformed token",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn minted_tokens_verify_with_their_claims() {
        let auth = AuthConfig::hs256(SECRET, Some("iss".into()), Some("aud".into())).expect("ok");
        let tenant = TenantId::parse("a").expect("valid");
        let token = auth
            .mint_token("alice", &tenant, Role::Admin, Duration::from_secs(60))
            .expect("minted");
        let caller = auth.verify(&token).expect("valid");
        assert_eq!(caller.sub, "alice");
        assert_eq!(caller.tenant_id, Some(tenant));
        assert_eq!(caller.role, Role::Admin);
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(matches!(
            AuthConfig::hs256(b"short", None, None),
            Err(AuthConfigError::SecretTooShort(5))
        ));
    }

    #[test]
    fn trailing_newlines_of_secret_files_are_ignored() {
        assert_eq!(trim_newline(b"abc\r\n"), b"abc");
        assert_eq!(trim_newline(b"abc\n"), b"abc");
        assert_eq!(trim_newline(b"abc"), b"abc");
    }
}
