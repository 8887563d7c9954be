//! A search request as validated: the matcher (literal or regex, always
//! through the `regex` crate, so no catastrophic backtracking), the device
//! filter (an id or a glob), the time window and the cursor. Every problem
//! is a [`super::Error::BadQuery`] with a detail that never echoes the
//! query back whole.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use regex::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};

use super::{Error, Result};

/// Longest query accepted, in bytes.
pub const MAX_QUERY_BYTES: usize = 1024;
/// Largest compiled regex (the `regex` crate's size limit), in bytes.
pub const MAX_REGEX_BYTES: usize = 1 << 20;
/// Hits per page when `limit` is not given.
pub const DEFAULT_LIMIT: u32 = 100;
/// Most hits per page.
pub const MAX_LIMIT: u32 = 1000;

/// Which versions are searched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// The newest version of every device.
    #[default]
    Current,
    /// Every stored version: when matching lines appeared and went.
    History,
}

/// A search as asked for, before validation.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// The text or pattern.
    pub q: String,
    /// Whether `q` is a regular expression.
    pub regex: bool,
    /// Case-insensitive matching.
    pub ignore_case: bool,
    /// Which versions.
    pub scope: Scope,
    /// A device id or a glob (`*`, `?`).
    pub device: Option<String>,
    /// History: only line lives that reach this time or later.
    pub since: Option<DateTime<Utc>>,
    /// History: only line lives that began by this time.
    pub until: Option<DateTime<Utc>>,
    /// Hits per page.
    pub limit: Option<u32>,
    /// Where the previous page stopped.
    pub cursor: Option<String>,
}

/// A validated search.
#[derive(Debug, Clone)]
pub struct Query {
    pub(super) matcher: Regex,
    /// Whether a text that does not match unmasked cannot match masked
    /// either, so masking can be skipped for it (see [`Query::unmasked_first`]).
    pub(super) unmasked_first: bool,
    pub(super) scope: Scope,
    pub(super) device: Option<DeviceFilter>,
    pub(super) since: Option<DateTime<Utc>>,
    pub(super) until: Option<DateTime<Utc>>,
    pub(super) limit: usize,
    pub(super) cursor: Option<Cursor>,
}

impl Query {
    /// Whether masking (§12) can never make `literal` appear in a text that
    /// lacks it. Masking replaces secret values with `********` and removes
    /// the later fragments of a value wrapped over `\` continuations, so the
    /// only new neighbours it makes are asterisks, or a continuation's
    /// indentation, line break and `\` next to what followed the fragment.
    /// A literal holding none of those is found in the masked text only
    /// where the unmasked text holds it too: a text without it is skipped
    /// unmasked, and only texts that match are masked (masking costs far
    /// more than matching).
    fn masking_cannot_create(literal: &str) -> bool {
        !literal
            .chars()
            .any(|c| c == '*' || c == '\\' || c.is_whitespace())
    }

    /// Validates `request`.
    ///
    /// # Errors
    /// [`Error::BadQuery`]: an empty or over-long query, a regex that does
    /// not parse or compiles too large, a bad device glob, `limit` out of
    /// range, `since` after `until`, or a cursor this server did not make.
    pub fn parse(request: &Request) -> Result<Query> {
        let q = &request.q;
        if q.is_empty() {
            return Err(Error::BadQuery("q must not be empty".into()));
        }
        if q.len() > MAX_QUERY_BYTES {
            return Err(Error::BadQuery(format!(
                "q is {} bytes; at most {MAX_QUERY_BYTES} are allowed",
                q.len()
            )));
        }
        let pattern = if request.regex {
            q.clone()
        } else {
            regex::escape(q)
        };
        let matcher = RegexBuilder::new(&pattern)
            .case_insensitive(request.ignore_case)
            .size_limit(MAX_REGEX_BYTES)
            .dfa_size_limit(MAX_REGEX_BYTES)
            .build()
            .map_err(|e| match e {
                regex::Error::CompiledTooBig(limit) => Error::BadQuery(format!(
                    "the regular expression compiles to more than {limit} bytes; simplify it"
                )),
                other => Error::BadQuery(format!("invalid regular expression: {other}")),
            })?;
        let limit = request.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(Error::BadQuery(format!(
                "limit must be between 1 and {MAX_LIMIT}"
            )));
        }
        if let (Some(since), Some(until)) = (request.since, request.until)
            && since > until
        {
            return Err(Error::BadQuery("since is after until".into()));
        }
        let device = request
            .device
            .as_deref()
            .map(DeviceFilter::parse)
            .transpose()?;
        let cursor = request.cursor.as_deref().map(Cursor::decode).transpose()?;
        Ok(Query {
            matcher,
            unmasked_first: !request.regex && Query::masking_cannot_create(q),
            scope: request.scope,
            device,
            since: request.since,
            until: request.until,
            limit: limit as usize,
            cursor,
        })
    }

    /// Whether `line` matches.
    pub fn is_match(&self, line: &str) -> bool {
        self.matcher.is_match(line)
    }
}

/// A device id or glob: `*` any run of characters, `?` one character.
#[derive(Debug, Clone)]
pub struct DeviceFilter(Regex);

impl DeviceFilter {
    /// Parses a filter; only the device id alphabet and `*`, `?` are allowed.
    ///
    /// # Errors
    /// [`Error::BadQuery`] for anything else or more than 64 characters.
    pub fn parse(glob: &str) -> Result<DeviceFilter> {
        let ok = (1..=64).contains(&glob.len())
            && glob
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'*' | b'?'));
        if !ok {
            return Err(Error::BadQuery(
                "device must be 1-64 characters of A-Z, a-z, 0-9, '_', '-' and the wildcards '*', '?'"
                    .into(),
            ));
        }
        let mut pattern = String::from("^");
        for c in glob.chars() {
            match c {
                '*' => pattern.push_str(".*"),
                '?' => pattern.push('.'),
                c => pattern.push(c),
            }
        }
        pattern.push('$');
        Regex::new(&pattern)
            .map(DeviceFilter)
            .map_err(|e| Error::BadQuery(format!("device: {e}")))
    }

    /// Whether `device_id` is selected.
    pub fn matches(&self, device_id: &str) -> bool {
        self.0.is_match(device_id)
    }
}

/// Where a page stopped: the device it stopped in and how many of that
/// device's hits were already returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cursor {
    /// Device id.
    pub d: String,
    /// Hits of that device already returned.
    pub o: usize,
}

impl Cursor {
    /// The opaque form handed to clients.
    pub fn encode(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        URL_SAFE_NO_PAD.encode(json)
    }

    /// Parses [`Cursor::encode`]'s output.
    ///
    /// # Errors
    /// [`Error::BadQuery`] for anything else.
    pub fn decode(text: &str) -> Result<Cursor> {
        let bad = || Error::BadQuery("cursor is not one this server handed out".into());
        if text.len() > 256 {
            return Err(bad());
        }
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| bad())?;
        let cursor: Cursor = serde_json::from_slice(&bytes).map_err(|_| bad())?;
        if crate::id::DeviceId::parse(&cursor.d).is_err() {
            return Err(bad());
        }
        Ok(cursor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(q: &str) -> Request {
        Request {
            q: q.into(),
            ..Request::default()
        }
    }

    #[test]
    fn a_literal_masking_cannot_create_is_in_the_unmasked_text_wherever_it_is_in_the_masked() {
        // Secrets bare, quoted, in a script and wrapped over continuations
        // (whose later fragments masking removes).
        let raw = "/ppp secret\n\
                   add name=u1 password=hunter2 service=pppoe\n\
                   add name=u2 password=\"two words\" profile=p\n\
                   /interface wireguard peers\n\
                   add allowed-address=10.0.0.2/32 preshared-key=abcdefghij\\\n    \
                   klmnopqrst public-key=PUB\n\
                   /system script\n\
                   add name=s source=\":local p \\\"x\\\"; /ppp secret add password=inner\"\n";
        let masked = crate::backup::redact::redact(raw);
        for secret in ["hunter2", "two words", "klmnopqrst", "inner"] {
            assert!(!masked.contains(secret), "{secret} is masked");
        }
        let chars: Vec<char> = masked.chars().collect();
        for len in 1..=12 {
            for window in chars.windows(len) {
                let literal: String = window.iter().collect();
                if Query::masking_cannot_create(&literal) {
                    assert!(raw.contains(&literal), "{literal:?} appears only masked");
                }
            }
        }
        // And the rule refuses what masking does make.
        for made in ["***", "=**", "\\", " comment", "a b"] {
            assert!(!Query::masking_cannot_create(made), "{made:?}");
        }
        assert!(
            !Query::parse(&Request {
                regex: true,
                ..request("hunter")
            })
            .expect("parses")
            .unmasked_first
        );
        assert!(
            Query::parse(&request("10.0.0.2"))
                .expect("parses")
                .unmasked_first
        );
    }

    fn detail(r: &Request) -> String {
        match Query::parse(r) {
            Err(Error::BadQuery(d)) => d,
            other => panic!("expected bad_query, got {other:?}"),
        }
    }

    #[test]
    fn a_literal_query_matches_literally() {
        let q = Query::parse(&request("10.0.0.1/32 (x)")).expect("valid");
        assert!(q.is_match("add address=10.0.0.1/32 (x)"));
        assert!(!q.is_match("add address=10.0.0.11/32"));
        assert!(!q.is_match("add address=10a0b0c1/32 (x)"));
    }

    #[test]
    fn ignore_case_applies_to_literals_and_regexes() {
        let mut r = request("RADIUS");
        assert!(!Query::parse(&r).expect("valid").is_match("/radius"));
        r.ignore_case = true;
        assert!(Query::parse(&r).expect("valid").is_match("/radius"));
        r.regex = true;
        r.q = "^/RAD.*S$".into();
        assert!(Query::parse(&r).expect("valid").is_match("/radius"));
    }

    #[test]
    fn bad_input_is_a_bad_query_with_a_clear_detail() {
        assert!(detail(&request("")).contains("empty"));
        assert!(detail(&request(&"a".repeat(1025))).contains("1024"));
        let mut r = request("(unclosed");
        r.regex = true;
        assert!(detail(&r).contains("invalid regular expression"));
        r.q = "\\w{1000}{1000}".into();
        assert!(detail(&r).contains("compiles to more than"));
        let mut r = request("x");
        r.limit = Some(0);
        assert!(detail(&r).contains("limit"));
        r.limit = Some(5000);
        assert!(detail(&r).contains("limit"));
        let mut r = request("x");
        r.device = Some("r1; drop".into());
        assert!(detail(&r).contains("device"));
        let mut r = request("x");
        r.cursor = Some("garbage!".into());
        assert!(detail(&r).contains("cursor"));
        r.cursor = Some(URL_SAFE_NO_PAD.encode(br#"{"d":"a.b","o":1}"#));
        assert!(detail(&r).contains("cursor"));
        let mut r = request("x");
        r.since = Some(Utc::now());
        r.until = Some(Utc::now() - chrono::Duration::hours(1));
        assert!(detail(&r).contains("since"));
    }

    #[test]
    fn device_globs_select_by_wildcards_only() {
        let f = DeviceFilter::parse("core-*").expect("valid");
        assert!(f.matches("core-1") && f.matches("core-"));
        assert!(!f.matches("edge-1") && !f.matches("xcore-1"));
        let f = DeviceFilter::parse("r?").expect("valid");
        assert!(f.matches("r1") && !f.matches("r12"));
        let exact = DeviceFilter::parse("r1").expect("valid");
        assert!(exact.matches("r1") && !exact.matches("r10"));
    }

    #[test]
    fn cursors_round_trip() {
        let c = Cursor {
            d: "r1".into(),
            o: 7,
        };
        assert_eq!(Cursor::decode(&c.encode()).expect("valid"), c);
    }
}
