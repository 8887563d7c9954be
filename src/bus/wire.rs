//! The JSON on the wire (DESIGN.md §3.1, §3.2): trigger request and reply,
//! snapshot events with the large-config extension, unchanged claims (an
//! event without its text) and their replies, host-key-reset notices.
//! Attempt reports are [`AttemptReport`](crate::backup::AttemptReport) as is.
//!
//! Incoming JSON is read leniently (unknown fields ignored, RFC 3339 or naive
//! UTC timestamps, unknown `error_kind`s as `internal`), outgoing JSON omits
//! absent optionals. Nothing here logs or formats config text.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::backup::{AttemptStatus, ErrorKind, Outcome, Trigger};
use crate::id::{DeviceId, TenantId};
use crate::store::snapshot::NewSnapshot;

pub use super::json::{describe_json_error, from_json, parse_time, rfc3339};

/// `message` of a successful trigger reply.
pub const MESSAGE_COLLECTED: &str = "Config snapshot collected";
/// `message` of a `locked` trigger reply.
pub const MESSAGE_LOCKED: &str = "backup already in progress";

/// A manual trigger (DESIGN.md §3.1). Ids are raw strings here: the
/// responder validates them, so a bad id gets a `bad_request` reply that
/// names the field rather than a parse error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriggerRequest {
    /// The device to back up.
    pub device_id: String,
    /// Its tenant; must own the device.
    pub tenant_id: String,
    /// Who asked (the caller's `sub`), for logs.
    #[serde(
        default,
        deserialize_with = "super::json::lenient_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub requested_by: Option<String>,
    /// The caller's correlation id, for logs.
    #[serde(
        default,
        deserialize_with = "super::json::lenient_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub request_id: Option<String>,
}

impl TriggerRequest {
    /// A request for `device` of `tenant`.
    pub fn new(device: &DeviceId, tenant: &TenantId) -> Self {
        Self {
            device_id: device.to_string(),
            tenant_id: tenant.to_string(),
            requested_by: None,
            request_id: None,
        }
    }
}

/// The reply to a trigger (DESIGN.md §3.1); absent optionals are omitted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriggerReply {
    /// `success`, `failed` or `locked`.
    pub status: AttemptStatus,
    /// Hash of the collected snapshot (success).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256_hash: Option<String>,
    /// Human text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Human text of the failure (failed); never holds secrets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Machine kind of the failure (failed).
    #[serde(
        default,
        deserialize_with = "super::json::lenient_kind",
        skip_serializing_if = "Option::is_none"
    )]
    pub error_kind: Option<ErrorKind>,
    /// When the export was taken (success), RFC 3339 UTC.
    #[serde(
        default,
        serialize_with = "super::json::ser_opt_time",
        deserialize_with = "super::json::de_opt_time",
        skip_serializing_if = "Option::is_none"
    )]
    pub collected_at: Option<DateTime<Utc>>,
    /// RouterOS version, if known (success).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routeros_version: Option<String>,
    /// Non-fatal problems of the collection.
    #[serde(
        default,
        deserialize_with = "super::json::lenient_list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub warnings: Vec<String>,
}

impl TriggerReply {
    /// The reply to a successful backup.
    pub fn success(outcome: &Outcome) -> Self {
        Self {
            status: AttemptStatus::Success,
            sha256_hash: Some(outcome.sha256_hash.clone()),
            message: Some(MESSAGE_COLLECTED.to_owned()),
            error: None,
            error_kind: None,
            collected_at: Some(outcome.collected_at),
            routeros_version: outcome.routeros_version.clone(),
            warnings: outcome.warnings.clone(),
        }
    }

    /// The reply when another backup of the device holds the lock.
    pub fn locked() -> Self {
        Self {
            message: Some(MESSAGE_LOCKED.to_owned()),
            ..Self::empty(AttemptStatus::Locked)
        }
    }

    /// A `failed` reply with `error_kind` = `kind` and `error` = `error`.
    pub fn failed(kind: ErrorKind, error: String) -> Self {
        Self {
            error: Some(error),
            error_kind: Some(kind),
            ..Self::empty(AttemptStatus::Failed)
        }
    }

    fn empty(status: AttemptStatus) -> Self {
        Self {
            status,
            sha256_hash: None,
            message: None,
            error: None,
            error_kind: None,
            collected_at: None,
            routeros_version: None,
            warnings: Vec::new(),
        }
    }
}

/// A collected snapshot on its way to the ingester (DESIGN.md §3.2).
///
/// The seven fields of the originating system (`device_id`, `tenant_id`,
/// `routeros_version`, `collected_at`, `sha256_hash`, `config_text`,
/// `normalization_version`), plus `trigger`, `poller_id` and `warnings`.
///
/// Large-config extension: exactly one of three fields carries the text.
/// `config_text` (plain, as in the originating system) when the event fits
/// in the server's `max_payload`; else `config_text_gzip`, the base64
/// (standard alphabet, padded) of the gzip of the UTF-8 text; else
/// `config_ref`, a gzip object in the JetStream object store. Consumers that
/// only know `config_text` fail on the other two rather than store nothing.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotEvent {
    /// The device.
    pub device_id: DeviceId,
    /// Its tenant.
    pub tenant_id: TenantId,
    /// RouterOS version, `null` when unknown.
    #[serde(default)]
    pub routeros_version: Option<String>,
    /// When the export was taken, RFC 3339 UTC.
    #[serde(
        serialize_with = "super::json::ser_time",
        deserialize_with = "super::json::de_time"
    )]
    pub collected_at: DateTime<Utc>,
    /// Lowercase hex SHA-256 of the normalized text.
    pub sha256_hash: String,
    /// The normalized export (plain). Holds device secrets: never log it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_text: Option<String>,
    /// Normalization rules (DESIGN.md §6).
    pub normalization_version: u32,
    /// `scheduled` or `manual`; `scheduled` when absent.
    #[serde(default = "default_trigger")]
    pub trigger: Trigger,
    /// Node that collected it.
    #[serde(default)]
    pub poller_id: Option<String>,
    /// Non-fatal problems of the collection.
    #[serde(default, deserialize_with = "super::json::lenient_list")]
    pub warnings: Vec<String>,
    /// Extension: base64 of the gzip of the text, instead of `config_text`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_text_gzip: Option<String>,
    /// Extension: the text as an object store object, instead of `config_text`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_ref: Option<ConfigRef>,
}

/// Where the text of a large event lives: `{"bucket","name","size","encoding"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigRef {
    /// Object store bucket (`bus.object_bucket`).
    pub bucket: String,
    /// Object name.
    pub name: String,
    /// Size of the stored object in bytes.
    pub size: u64,
    /// `gzip`: the object is the gzip of the UTF-8 text.
    pub encoding: String,
}

/// How an event carries its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentEncoding {
    /// `config_text`.
    Plain,
    /// `config_text_gzip`.
    Gzip,
    /// `config_ref`.
    ObjectStore,
}

fn default_trigger() -> Trigger {
    Trigger::Scheduled
}

impl SnapshotEvent {
    /// The event of a successful backup, text inline.
    pub fn from_outcome(outcome: &Outcome, poller_id: Option<String>) -> Self {
        Self {
            config_text: Some(outcome.config_text.clone()),
            ..Self::claim_from_outcome(outcome, poller_id)
        }
    }

    /// The unchanged claim of a successful backup: its event without text.
    pub fn claim_from_outcome(outcome: &Outcome, poller_id: Option<String>) -> Self {
        Self {
            device_id: outcome.device_id.clone(),
            tenant_id: outcome.tenant_id.clone(),
            routeros_version: outcome.routeros_version.clone(),
            collected_at: outcome.collected_at,
            sha256_hash: outcome.sha256_hash.clone(),
            config_text: None,
            normalization_version: crate::backup::normalize::NORMALIZATION_VERSION,
            trigger: outcome.trigger,
            poller_id,
            warnings: outcome.warnings.clone(),
            config_text_gzip: None,
            config_ref: None,
        }
    }

    /// `Nats-Msg-Id`: `{device_id}:{sha256_hash}:{collected_at}`, the
    /// timestamp exactly as in the JSON.
    pub fn msg_id(&self) -> String {
        format!(
            "{}:{}:{}",
            self.device_id,
            self.sha256_hash,
            rfc3339(&self.collected_at)
        )
    }

    /// Which field carries the text; `None` unless exactly one does.
    pub fn encoding(&self) -> Option<ContentEncoding> {
        match (
            self.config_text.is_some(),
            self.config_text_gzip.is_some(),
            self.config_ref.is_some(),
        ) {
            (true, false, false) => Some(ContentEncoding::Plain),
            (false, true, false) => Some(ContentEncoding::Gzip),
            (false, false, true) => Some(ContentEncoding::ObjectStore),
            _ => None,
        }
    }

    /// A copy of everything but the text fields.
    pub(crate) fn without_content(&self) -> Self {
        Self {
            device_id: self.device_id.clone(),
            tenant_id: self.tenant_id.clone(),
            routeros_version: self.routeros_version.clone(),
            collected_at: self.collected_at,
            sha256_hash: self.sha256_hash.clone(),
            config_text: None,
            normalization_version: self.normalization_version,
            trigger: self.trigger,
            poller_id: self.poller_id.clone(),
            warnings: self.warnings.clone(),
            config_text_gzip: None,
            config_ref: None,
        }
    }

    /// What the store ingests, with the text resolved by the caller.
    pub fn to_new_snapshot(&self, config_text: String) -> NewSnapshot {
        NewSnapshot {
            tenant_id: self.tenant_id.clone(),
            device_id: self.device_id.clone(),
            sha256_hash: self.sha256_hash.clone(),
            collected_at: self.collected_at,
            trigger: self.trigger,
            routeros_version: self.routeros_version.clone(),
            config_text,
            normalization_version: self.normalization_version,
            poller_id: self.poller_id.clone(),
            warnings: self.warnings.clone(),
        }
    }
}

impl fmt::Debug for SnapshotEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let len = |s: &Option<String>| s.as_ref().map(|t| format!("<{} bytes>", t.len()));
        f.debug_struct("SnapshotEvent")
            .field("device_id", &self.device_id)
            .field("tenant_id", &self.tenant_id)
            .field("sha256_hash", &self.sha256_hash)
            .field("collected_at", &self.collected_at)
            .field("config_text", &len(&self.config_text))
            .field("config_text_gzip", &len(&self.config_text_gzip))
            .field("config_ref", &self.config_ref)
            .field("trigger", &self.trigger)
            .field("poller_id", &self.poller_id)
            .finish_non_exhaustive()
    }
}

/// The ingesters' answer to an unchanged claim: a snapshot event without
/// any text field, sent by a poller on `{control}.unchanged.{tenant}.{device}`
/// (core request-reply) when the device's previous backup handed over the
/// same hash. `recorded` means it is committed as a duplicate of the
/// device's newest snapshot; `publish` (with a reason) that the poller must
/// publish the event in full, as it does when no ingester answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnchangedReply {
    /// `recorded` or `publish`.
    pub status: UnchangedStatus,
    /// The device's newest snapshot (recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<i64>,
    /// Why not (publish); never holds config text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What became of an unchanged claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnchangedStatus {
    /// Committed as a duplicate of the device's newest snapshot.
    Recorded,
    /// Not confirmed: publish the event in full.
    Publish,
}

impl UnchangedReply {
    /// Committed as a duplicate of `snapshot_id`.
    pub fn recorded(snapshot_id: i64) -> Self {
        Self {
            status: UnchangedStatus::Recorded,
            snapshot_id: Some(snapshot_id),
            reason: None,
        }
    }

    /// Not confirmed, because of `reason`.
    pub fn publish(reason: impl Into<String>) -> Self {
        Self {
            status: UnchangedStatus::Publish,
            snapshot_id: None,
            reason: Some(reason.into()),
        }
    }
}

/// An admin reset a device's pinned host key; pollers that pin keys in a
/// local file forget theirs. Sent on `{control}.hostkey_reset.{device_id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostKeyReset {
    /// The device.
    pub device_id: DeviceId,
    /// Its tenant.
    pub tenant_id: TenantId,
    /// Who reset it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// When.
    #[serde(
        serialize_with = "super::json::ser_time",
        deserialize_with = "super::json::de_time"
    )]
    pub at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_omit_absent_fields() {
        let json = serde_json::to_value(TriggerReply::locked()).expect("serializes");
        assert_eq!(
            json,
            serde_json::json!({"status": "locked", "message": "backup already in progress"})
        );
        let failed = TriggerReply::failed(ErrorKind::BadRequest, "x".into());
        let json = serde_json::to_value(failed).expect("serializes");
        assert_eq!(
            json,
            serde_json::json!({"status": "failed", "error": "x", "error_kind": "bad_request"})
        );
    }

    #[test]
    fn unknown_error_kinds_read_as_internal() {
        let reply: TriggerReply =
            serde_json::from_str(r#"{"status":"failed","error_kind":"cosmic_rays"}"#)
                .expect("parses");
        assert_eq!(reply.error_kind, Some(ErrorKind::Internal));
        let reply: TriggerReply =
            serde_json::from_str(r#"{"status":"success","warnings":null,"collected_at":null}"#)
                .expect("parses");
        assert!(reply.warnings.is_empty() && reply.collected_at.is_none());
    }

    #[test]
    fn the_other_systems_seven_field_event_reads_as_a_scheduled_backup() {
        let json = br#"{"device_id":"r1","tenant_id":"acme","routeros_version":"7.15",
            "collected_at":"2024-05-01T10:00:00Z","sha256_hash":"ab","config_text":"x",
            "normalization_version":1}"#;
        let event: SnapshotEvent = from_json(json).expect("seven fields are a valid event");
        assert_eq!(event.trigger, Trigger::Scheduled);
        assert_eq!(event.poller_id, None);
        assert!(event.warnings.is_empty());
        assert_eq!(event.encoding(), Some(ContentEncoding::Plain));
        let missing_tenant = br#"{"device_id":"r1","collected_at":"2024-05-01T10:00:00Z",
            "sha256_hash":"ab","config_text":"x","normalization_version":1}"#;
        let err = from_json::<SnapshotEvent>(missing_tenant).expect_err("no tenant");
        assert!(err.contains("tenant_id"), "{err}");
    }

    #[test]
    fn json_errors_never_quote_values() {
        let secret = "/user add name=admin password=hunter2";
        let bytes = format!(
            r#"{{"device_id":"r1","tenant_id":"t","normalization_version":"{secret}","sha256_hash":"x","collected_at":"2024-05-01T10:00:00Z"}}"#
        );
        let err = from_json::<SnapshotEvent>(bytes.as_bytes()).expect_err("wrong type");
        assert!(!err.contains("hunter2"), "{err}");
        assert!(err.contains("normalization_version"), "{err}");
        let err = from_json::<SnapshotEvent>(br#"{"device_id":"a.b"}"#).expect_err("bad id");
        assert!(
            err.contains("device_id") && err.contains("may only"),
            "{err}"
        );
        let err = from_json::<SnapshotEvent>(br#"{"device_id":"#).expect_err("truncated");
        assert!(err.starts_with("truncated JSON"), "{err}");
    }
}

#[cfg(test)]
#[path = "wire_props.rs"]
mod props;
