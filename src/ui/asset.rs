//! The UI's static files, embedded in the binary: one stylesheet, our small
//! script and the vendored htmx (`assets/vendor`, pinned by checksum).
//! Each is served under a URL holding a hash of its content, so responses
//! can be cached for a year and a new build never serves a stale file.

use std::sync::LazyLock;

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, web};
use sha2::{Digest, Sha256};

/// One embedded file.
pub struct Asset {
    /// Its MIME type.
    content_type: &'static str,
    /// Its bytes.
    body: &'static [u8],
    /// Its URL, computed once.
    url: LazyLock<String>,
}

impl Asset {
    /// The content-hashed URL, e.g. `/ui/assets/app.1a2b3c4d5e6f.css`.
    pub fn url(&self) -> &str {
        self.url.as_str()
    }

    fn file_name(&self) -> &str {
        self.url().trim_start_matches("/ui/assets/")
    }
}

macro_rules! asset {
    ($stem:literal, $ext:literal, $type:literal, $path:literal) => {{
        const BODY: &[u8] = include_bytes!($path);
        Asset {
            content_type: $type,
            body: BODY,
            url: LazyLock::new(|| format!("/ui/assets/{}", hashed_name($stem, $ext, BODY))),
        }
    }};
}

/// `{stem}.{first 12 hex digits of the SHA-256}.{ext}`.
fn hashed_name(stem: &str, ext: &str, body: &[u8]) -> String {
    let hash = hex::encode(Sha256::digest(body));
    format!("{stem}.{}.{ext}", &hash[..12])
}

/// The stylesheet.
pub static CSS: Asset = asset!(
    "app",
    "css",
    "text/css; charset=utf-8",
    "../../assets/app.css"
);
/// Our script (progressive enhancement only).
pub static JS: Asset = asset!(
    "app",
    "js",
    "text/javascript; charset=utf-8",
    "../../assets/app.js"
);
/// htmx, vendored and pinned (`assets/vendor/README.md`).
pub static HTMX: Asset = asset!(
    "htmx",
    "js",
    "text/javascript; charset=utf-8",
    "../../assets/vendor/htmx.min.js"
);

static ALL: [&Asset; 3] = [&CSS, &JS, &HTMX];

/// `GET /ui/assets/{name}`: the asset with that hashed name, cached for a
/// year as immutable; any other name is `404`.
pub async fn serve(name: web::Path<String>) -> HttpResponse {
    let name = name.into_inner();
    match ALL.iter().find(|a| a.file_name() == name) {
        Some(asset) => HttpResponse::Ok()
            .content_type(asset.content_type)
            .insert_header((
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            ))
            .body(asset.body),
        None => HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .body("no such asset"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendored_htmx_matches_its_recorded_checksum() {
        let recorded = include_str!("../../assets/vendor/htmx.min.js.sha256");
        let expected = recorded.split_whitespace().next().expect("a checksum");
        assert_eq!(hex::encode(Sha256::digest(HTMX.body)), expected);
    }

    #[test]
    fn urls_carry_a_content_hash_and_differ_per_asset() {
        assert!(CSS.url().starts_with("/ui/assets/app.") && CSS.url().ends_with(".css"));
        assert!(JS.url().ends_with(".js") && HTMX.url().starts_with("/ui/assets/htmx."));
        assert_ne!(CSS.url(), JS.url());
    }
}
