//! Every subject, stream, durable and bucket name of the bus, built in one
//! place from `[bus]` (whose defaults are the DESIGN.md §3 contract names).
//!
//! Ids enter subjects only as [`TenantId`] / [`DeviceId`], which were
//! validated (DESIGN.md §2), so no `.`, `*`, `>` or whitespace can split or
//! widen a subject. The configured names themselves are checked by
//! [`Subjects::new`].

use crate::config::BusSettings;
use crate::id::{DeviceId, TenantId};

/// The names the bus uses, from `[bus]`.
#[derive(Debug, Clone)]
pub struct Subjects {
    /// Request-reply subject of manual triggers (`config.backup.trigger`).
    pub trigger: String,
    /// Queue group of the trigger responders (`cfgsnap-responders`).
    pub queue_group: String,
    /// Prefix of snapshot events (`config.snapshot`).
    pub snapshot: String,
    /// JetStream stream cfgsnap creates for snapshot events when no stream
    /// captures them (`CONFIG_SNAPSHOTS`); see `nats::EventStream`.
    pub stream: String,
    /// Durable pull consumer of the ingesters (`cfgsnap-ingest`); also the
    /// queue group in which ingesters share attempt reports.
    pub durable: String,
    /// Object store bucket for configs too large for one message.
    pub object_bucket: String,
    /// Prefix of attempt reports and host-key-reset notices (`cfgsnap.control`).
    pub control: String,
}

impl Subjects {
    /// Takes the names from `settings` and checks them.
    ///
    /// # Errors
    /// A description of every name that is not a valid subject (empty
    /// tokens, whitespace, wildcards) or stream/consumer/bucket name.
    pub fn new(settings: &BusSettings) -> Result<Subjects, String> {
        let mut problems = Vec::new();
        for (key, value) in [
            ("bus.trigger_subject", &settings.trigger_subject),
            ("bus.snapshot_subject", &settings.snapshot_subject),
            ("bus.control_subject", &settings.control_subject),
            // A queue group may hold dots: a fleet partition is appended as
            // `{queue_group}.{partition}`.
            ("bus.queue_group", &settings.queue_group),
        ] {
            if !is_literal_subject(value) {
                problems.push(format!("{key}: {value:?} is not a literal NATS subject"));
            }
        }
        for (key, value) in [
            ("bus.stream", &settings.stream),
            ("bus.durable", &settings.durable),
            ("bus.object_bucket", &settings.object_bucket),
        ] {
            if !is_name(value) {
                problems.push(format!(
                    "{key}: {value:?} must be 1-64 characters of A-Z, a-z, 0-9, '_' and '-'"
                ));
            }
        }
        if !problems.is_empty() {
            return Err(problems.join("; "));
        }
        Ok(Subjects {
            trigger: settings.trigger_subject.clone(),
            queue_group: settings.queue_group.clone(),
            snapshot: settings.snapshot_subject.clone(),
            stream: settings.stream.clone(),
            durable: settings.durable.clone(),
            object_bucket: settings.object_bucket.clone(),
            control: settings.control_subject.clone(),
        })
    }

    /// `{snapshot}.>`: the subjects of the stream.
    pub fn snapshot_all(&self) -> String {
        format!("{}.>", self.snapshot)
    }

    /// `{snapshot}.create.>`: what the ingesters consume.
    pub fn snapshot_create_all(&self) -> String {
        format!("{}.create.>", self.snapshot)
    }

    /// `{snapshot}.create.{tenant}.{device}`: where one device's events go.
    pub fn snapshot_create(&self, tenant: &TenantId, device: &DeviceId) -> String {
        format!("{}.create.{tenant}.{device}", self.snapshot)
    }

    /// `{snapshot}.create.{device}`: where the other system's pollers
    /// publish (DESIGN.md §3.2); the tenant is in the payload only.
    pub fn snapshot_create_device(&self, device: &DeviceId) -> String {
        format!("{}.create.{device}", self.snapshot)
    }

    /// The raw device token of a `{snapshot}.create.{device}` subject;
    /// `None` for any other shape. The token is not validated.
    pub fn parse_snapshot_create_device<'a>(&self, subject: &'a str) -> Option<&'a str> {
        let rest = subject.strip_prefix(self.snapshot.as_str())?;
        let device = rest.strip_prefix(".create.")?;
        (!device.is_empty() && !device.contains('.')).then_some(device)
    }

    /// The raw `(tenant, device)` tokens of a `{snapshot}.create.{tenant}.{device}`
    /// subject; `None` for any other shape. The tokens are not validated.
    pub fn parse_snapshot_create<'a>(&self, subject: &'a str) -> Option<(&'a str, &'a str)> {
        parse_two(subject, &self.snapshot, "create")
    }

    /// `{control}.attempt.{tenant}.{device}`: one attempt report.
    pub fn attempt(&self, tenant: &TenantId, device: &DeviceId) -> String {
        format!("{}.attempt.{tenant}.{device}", self.control)
    }

    /// `{control}.attempt.>`: all attempt reports.
    pub fn attempt_all(&self) -> String {
        format!("{}.attempt.>", self.control)
    }

    /// The raw `(tenant, device)` tokens of an attempt subject.
    pub fn parse_attempt<'a>(&self, subject: &'a str) -> Option<(&'a str, &'a str)> {
        parse_two(subject, &self.control, "attempt")
    }

    /// `{control}.unchanged.{tenant}.{device}`: a poller asks the ingesters
    /// to record an export as unchanged without its text (request-reply).
    pub fn unchanged(&self, tenant: &TenantId, device: &DeviceId) -> String {
        format!("{}.unchanged.{tenant}.{device}", self.control)
    }

    /// `{control}.unchanged.*.*`: every unchanged claim.
    pub fn unchanged_all(&self) -> String {
        format!("{}.unchanged.*.*", self.control)
    }

    /// `{control}.hostkey_reset.{device}`: an admin reset a device's host key.
    pub fn hostkey_reset(&self, device: &DeviceId) -> String {
        format!("{}.hostkey_reset.{device}", self.control)
    }

    /// `{control}.fleet`: which devices each responder owns (see
    /// `bus::ownership`).
    pub fn fleet_notice(&self) -> String {
        format!("{}.fleet", self.control)
    }

    /// `{control}.hostkey_reset.*`: all host-key-reset notices.
    pub fn hostkey_reset_all(&self) -> String {
        format!("{}.hostkey_reset.*", self.control)
    }
}

/// `{prefix}.{kind}.{a}.{b}` → `(a, b)`.
fn parse_two<'a>(subject: &'a str, prefix: &str, kind: &str) -> Option<(&'a str, &'a str)> {
    let rest = subject.strip_prefix(prefix)?.strip_prefix('.')?;
    let rest = rest.strip_prefix(kind)?.strip_prefix('.')?;
    let (a, b) = rest.split_once('.')?;
    (!a.is_empty() && !b.is_empty() && !b.contains('.')).then_some((a, b))
}

/// Dot-separated non-empty tokens without whitespace or wildcards.
fn is_literal_subject(s: &str) -> bool {
    !s.is_empty()
        && s.split('.')
            .all(|t| !t.is_empty() && t != "*" && t != ">" && !t.chars().any(char::is_whitespace))
}

/// Stream, consumer, queue group and bucket names: the id alphabet.
fn is_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subjects() -> Subjects {
        Subjects::new(&BusSettings::default()).expect("defaults are valid")
    }

    #[test]
    fn defaults_build_the_contract_subjects() {
        let s = subjects();
        let t = TenantId::parse("acme").expect("id");
        let d = DeviceId::parse("r1").expect("id");
        assert_eq!(s.snapshot_create(&t, &d), "config.snapshot.create.acme.r1");
        assert_eq!(s.snapshot_all(), "config.snapshot.>");
        assert_eq!(s.snapshot_create_device(&d), "config.snapshot.create.r1");
        assert_eq!(s.attempt(&t, &d), "cfgsnap.control.attempt.acme.r1");
        assert_eq!(s.hostkey_reset(&d), "cfgsnap.control.hostkey_reset.r1");
        assert_eq!(s.unchanged(&t, &d), "cfgsnap.control.unchanged.acme.r1");
        assert_eq!(s.unchanged_all(), "cfgsnap.control.unchanged.*.*");
        assert_eq!(s.fleet_notice(), "cfgsnap.control.fleet");
        assert_eq!(s.trigger, "config.backup.trigger");
        assert_eq!(s.queue_group, "cfgsnap-responders");
        assert_eq!(s.stream, "CONFIG_SNAPSHOTS");
        assert_eq!(s.durable, "cfgsnap-ingest");
    }

    #[test]
    fn parses_only_well_formed_event_subjects() {
        let s = subjects();
        assert_eq!(
            s.parse_snapshot_create("config.snapshot.create.acme.r1"),
            Some(("acme", "r1"))
        );
        for bad in [
            "config.snapshot.create.acme",
            "config.snapshot.create.acme.r1.x",
            "config.snapshot.delete.acme.r1",
            "config.snapshotx.create.acme.r1",
            "other.create.acme.r1",
        ] {
            assert_eq!(s.parse_snapshot_create(bad), None, "{bad}");
        }
    }

    #[test]
    fn parses_the_other_systems_event_subjects_by_device_alone() {
        let s = subjects();
        assert_eq!(
            s.parse_snapshot_create_device("config.snapshot.create.r1"),
            Some("r1")
        );
        for bad in [
            "config.snapshot.create.",
            "config.snapshot.create.acme.r1",
            "config.snapshot.delete.r1",
            "config.snapshotx.create.r1",
        ] {
            assert_eq!(s.parse_snapshot_create_device(bad), None, "{bad}");
        }
    }

    #[test]
    fn rejects_wildcards_and_bad_names() {
        let settings = BusSettings {
            trigger_subject: "config.*.trigger".into(),
            stream: "CONFIG.SNAPSHOTS".into(),
            ..BusSettings::default()
        };
        let err = Subjects::new(&settings).expect_err("invalid");
        assert!(err.contains("bus.trigger_subject"), "{err}");
        assert!(err.contains("bus.stream"), "{err}");
    }
}
