//! Property tests of the wire parsers on hostile payloads: the trigger
//! request (parse, then the id checks the responder applies) and the
//! snapshot event (parse, then the `config_text_gzip` decoding the ingester
//! applies). No panics, errors of bounded size that never quote the input.
//! `fuzz/` runs the same entry points without bound.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use crate::bus::codec;

/// Planted in every generated string value: no error may repeat it.
const MARKER: &str = "MARKER-wire-7f3a";

/// Longest error text a parser may produce for any input.
const MAX_ERROR_CHARS: usize = 300;

/// Any JSON value, strings carrying [`MARKER`].
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        "\\PC{0,12}".prop_map(|s| Value::from(format!("{s}{MARKER}"))),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn good_request() -> Value {
    json!({"device_id": "r1", "tenant_id": "t1", "requested_by": "alice", "request_id": "x"})
}

fn good_event() -> Value {
    json!({
        "device_id": "r1",
        "tenant_id": "t1",
        "routeros_version": "7.16",
        "collected_at": "2024-05-01T10:00:00Z",
        "sha256_hash": "00",
        "config_text": format!("/ip address\nadd comment={MARKER}\n"),
        "normalization_version": 1,
        "trigger": "manual",
        "poller_id": "p",
        "warnings": [],
    })
}

/// A well-formed object with one field replaced, removed or added, then
/// serialized and perhaps truncated; or plain arbitrary bytes.
fn payload(good: fn() -> Value) -> impl Strategy<Value = Vec<u8>> {
    let field = prop::sample::select(vec![
        "device_id",
        "tenant_id",
        "requested_by",
        "request_id",
        "routeros_version",
        "collected_at",
        "sha256_hash",
        "config_text",
        "config_text_gzip",
        "config_ref",
        "normalization_version",
        "trigger",
        "poller_id",
        "warnings",
    ]);
    let mutated = (
        field,
        prop::option::of(json_value()),
        any::<prop::sample::Index>(),
        any::<bool>(),
    )
        .prop_map(move |(field, value, cut, truncate)| {
            let mut object = good();
            match value {
                Some(v) => object[field] = v,
                None => {
                    object.as_object_mut().map(|o| o.remove(field));
                }
            }
            let mut bytes = object.to_string().into_bytes();
            if truncate {
                bytes.truncate(cut.index(bytes.len() + 1));
            }
            bytes
        });
    prop_oneof![
        3 => mutated,
        1 => prop::collection::vec(any::<u8>(), 0..512),
        1 => json_value().prop_map(|v| v.to_string().into_bytes()),
    ]
}

/// What the responder does with a request: parse, then check both ids.
fn check_request(bytes: &[u8]) -> Result<(DeviceId, TenantId), String> {
    let request: TriggerRequest = from_json(bytes)?;
    let device = DeviceId::parse(&request.device_id).map_err(|e| format!("device_id: {e}"))?;
    let tenant = TenantId::parse(&request.tenant_id).map_err(|e| format!("tenant_id: {e}"))?;
    Ok((device, tenant))
}

/// What the ingester does before the store: parse, then resolve inline text.
fn check_event(bytes: &[u8]) -> Result<Option<String>, String> {
    let event: SnapshotEvent = from_json(bytes)?;
    match event.encoding() {
        Some(ContentEncoding::Plain) => Ok(event.config_text),
        Some(ContentEncoding::Gzip) => {
            codec::decode_gzip_base64(event.config_text_gzip.as_deref().unwrap_or_default())
                .map(Some)
        }
        Some(ContentEncoding::ObjectStore) => Ok(None),
        None => Err("exactly one text field must be set".to_owned()),
    }
}

fn assert_safe_error(error: &str) -> Result<(), TestCaseError> {
    prop_assert!(!error.is_empty());
    prop_assert!(
        error.chars().count() <= MAX_ERROR_CHARS,
        "error of {} chars",
        error.len()
    );
    prop_assert!(
        !error.contains(MARKER),
        "the error quotes the payload: {error}"
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn hostile_trigger_requests_never_panic_and_errors_never_quote_them(
        bytes in payload(good_request),
    ) {
        // Act
        let result = check_request(&bytes);

        // Assert
        match result {
            Ok((device, tenant)) => {
                prop_assert!(DeviceId::parse(device.as_str()).is_ok());
                prop_assert!(TenantId::parse(tenant.as_str()).is_ok());
            }
            Err(e) => assert_safe_error(&e)?,
        }
    }

    #[test]
    fn hostile_snapshot_events_never_panic_and_errors_never_quote_them(
        bytes in payload(good_event),
    ) {
        // Act
        let result = check_event(&bytes);

        // Assert
        if let Err(e) = result {
            assert_safe_error(&e)?;
        }
    }

    #[test]
    fn a_truncated_event_is_always_refused_as_truncated_or_invalid(
        cut in any::<prop::sample::Index>(),
    ) {
        // Arrange
        let bytes = good_event().to_string().into_bytes();
        let cut = cut.index(bytes.len());

        // Act
        let result = from_json::<SnapshotEvent>(&bytes[..cut]);

        // Assert
        let error = result.err().unwrap_or_default();
        prop_assert!(
            error.starts_with("truncated JSON") || error.starts_with("not valid JSON"),
            "cut at {cut}: {error}"
        );
    }

    #[test]
    fn gzip_fields_of_arbitrary_bytes_decode_or_fail_cleanly(
        bytes in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..512),
            prop::collection::vec(any::<u8>(), 0..512).prop_map(|b| codec::gzip(&b)),
        ],
    ) {
        // Act
        let result = codec::decode_gzip_base64(&codec::to_base64(&bytes));

        // Assert
        if let Err(e) = result {
            assert_safe_error(&e)?;
        }
    }
}
