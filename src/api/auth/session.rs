//! The browser side of sign-in sessions (DESIGN.md §11): the session cookie
//! (`cfgsnap_session`: HttpOnly, SameSite=Strict, Path=/, Secure unless
//! `[ui] insecure_cookies`), the CSRF header, the same-origin check, and the
//! timeouts a [`SessionPolicy`] holds.

use std::time::Duration;

use actix_web::HttpRequest;
use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::header;

use crate::config::Settings;

/// The session cookie's name.
pub const COOKIE: &str = "cfgsnap_session";
/// The header carrying the CSRF token of a cookie-authenticated change.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// How long sessions and their tokens live, and how the cookie is sent.
#[derive(Debug, Clone)]
pub struct SessionPolicy {
    /// A session unused this long ends.
    pub idle: Duration,
    /// A session ends this long after sign-in.
    pub absolute: Duration,
    /// Lifetime of the access tokens sign-in returns.
    pub token_ttl: Duration,
    /// Whether the cookie carries `Secure`.
    pub secure_cookie: bool,
}

impl SessionPolicy {
    /// The policy `[auth]` and `[ui]` configure.
    pub fn from_settings(settings: &Settings) -> SessionPolicy {
        SessionPolicy {
            idle: settings.auth.session_idle_timeout,
            absolute: settings.auth.session_absolute_timeout,
            token_ttl: settings.auth.access_token_ttl,
            secure_cookie: !settings.ui.insecure_cookies,
        }
    }

    /// The cookie holding a new session's secret, for the session's life.
    pub fn cookie(&self, secret: String) -> Cookie<'static> {
        let max_age = i64::try_from(self.absolute.as_secs()).unwrap_or(i64::MAX);
        self.base(secret)
            .max_age(actix_web::cookie::time::Duration::seconds(max_age))
            .finish()
    }

    /// A cookie that makes the browser forget the session's.
    pub fn removal(&self) -> Cookie<'static> {
        let mut cookie = self.base(String::new()).finish();
        cookie.make_removal();
        cookie
    }

    fn base(&self, value: String) -> actix_web::cookie::CookieBuilder<'static> {
        Cookie::build(COOKIE, value)
            .path("/")
            .http_only(true)
            .same_site(SameSite::Strict)
            .secure(self.secure_cookie)
    }
}

/// Whether the request's `Origin` (or, without one, `Referer`) names this
/// server's own origin; a request naming neither passes (non-browser
/// clients send neither; browsers send `Origin` on every change).
pub fn same_origin(req: &HttpRequest) -> bool {
    let named = req
        .headers()
        .get(header::ORIGIN)
        .or_else(|| req.headers().get(header::REFERER))
        .map(|v| v.to_str().unwrap_or(""));
    let Some(named) = named else {
        return true;
    };
    let info = req.connection_info();
    let own = format!("{}://{}", info.scheme(), info.host());
    named == own
        || named
            .strip_prefix(&own)
            .is_some_and(|rest| rest.starts_with('/'))
}
