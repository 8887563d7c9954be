//! JSON helpers of the wire types: RFC 3339 timestamps written with `Z`
//! and read leniently, lenient optional fields, and parse errors that
//! describe the problem without quoting the input (it may be config text).

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serializer};

use crate::backup::ErrorKind;

/// RFC 3339 in UTC with `Z`, as few fraction digits as needed (0, 3, 6 or 9).
pub fn rfc3339(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// RFC 3339 with any offset, or a naive ISO 8601 time taken as UTC
/// (`2024-05-01T10:00:00`, `2024-05-01 10:00:00.5`), as other pollers send.
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f%:z") {
        return Some(t.with_timezone(&Utc));
    }
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
        .map(|n| n.and_utc())
}

pub(crate) fn ser_time<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(t))
}

pub(crate) fn ser_opt_time<S: Serializer>(
    t: &Option<DateTime<Utc>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => ser_time(t, s),
        None => s.serialize_none(),
    }
}

pub(crate) fn de_time<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    let s = String::deserialize(d)?;
    parse_time(&s).ok_or_else(|| serde::de::Error::custom("must be an RFC 3339 timestamp"))
}

pub(crate) fn de_opt_time<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<DateTime<Utc>>, D::Error> {
    let s = Option::<String>::deserialize(d)?;
    Ok(s.as_deref().and_then(parse_time))
}

/// A string, a number (as text) or null; other JSON types read as absent.
pub(crate) fn lenient_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => Some(s),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

/// A list of strings; `null` reads as empty.
pub(crate) fn lenient_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

/// A known `error_kind`, `internal` for one this version does not know.
pub(crate) fn lenient_kind<'de, D: Deserializer<'de>>(d: D) -> Result<Option<ErrorKind>, D::Error> {
    let s = Option::<String>::deserialize(d)?;
    Ok(s.map(|s| {
        serde_json::from_value(serde_json::Value::String(s)).unwrap_or(ErrorKind::Internal)
    }))
}

/// Describes why JSON did not parse as `T` without quoting the input:
/// serde's "invalid type" messages echo values, which may be config text.
pub fn describe_json_error(e: &serde_path_to_error::Error<serde_json::Error>) -> String {
    use serde_json::error::Category;
    let inner = e.inner();
    let at = format!("line {}, column {}", inner.line(), inner.column());
    match inner.classify() {
        Category::Eof => format!("truncated JSON ({at})"),
        Category::Syntax => format!("not valid JSON ({at})"),
        Category::Io => "unreadable input".to_owned(),
        Category::Data => {
            let path = e.path().to_string();
            let text = inner.to_string();
            let safe = ["missing field", "must ", "may only"];
            let what = if safe.iter().any(|p| text.starts_with(p)) {
                text.split(" at line ")
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            } else {
                "wrong type or invalid value".to_owned()
            };
            if path == "." {
                format!("{what} ({at})")
            } else {
                format!("{path}: {what}")
            }
        }
    }
}

/// Parses `T` from JSON bytes; the error is [`describe_json_error`]'s text.
pub fn from_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| describe_json_error(&e))?;
    de.end()
        .map_err(|e| format!("trailing data after the JSON value (column {})", e.column()))?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rfc3339_and_naive_timestamps() {
        let want = "2024-05-01T10:00:00Z";
        for s in [
            "2024-05-01T10:00:00Z",
            "2024-05-01T12:00:00+02:00",
            "2024-05-01T10:00:00",
            "2024-05-01 10:00:00",
            "2024-05-01T10:00:00.000",
            "2024-05-01 10:00:00+00:00",
        ] {
            let t = parse_time(s).unwrap_or_else(|| panic!("{s} parses"));
            assert_eq!(rfc3339(&t), want, "{s}");
        }
        assert!(parse_time("yesterday").is_none());
    }
}
