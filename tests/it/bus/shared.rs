//! A NATS shared with the system cfgsnap interoperates with (DESIGN.md
//! §3.2): its pollers' stream `DEVICE_EVENTS` (here `DEVICE_EVENTS_<tag>`,
//! its ten subject families under the test's prefix) is used as it is and
//! never changed; the other start order gets NATS's overlap error, and the
//! README's migration works; a consumer reading like the other system's
//! backend gets cfgsnap's events with the seven fields; limits that can
//! drop events unread are flagged, cfgsnap's own are not.

use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, pull};
use async_nats::jetstream::context::CreateStreamErrorKind;
use async_nats::jetstream::stream::{self, DiscardPolicy};
use async_nats::jetstream::{self, ErrorCode};
use cfgsnap::bus::Bus;
use cfgsnap::config::BusSettings;
use futures_util::StreamExt as _;
use serde_json::Value;

use super::events::{event, ingest};
use super::{NATS_URL, Stack, TestBus, TestStore, config_text, eventually, settings_named, suffix};

const WAIT: Duration = Duration::from_secs(20);

/// The subject families of the other system's `DEVICE_EVENTS` stream.
pub const FAMILIES: [&str; 10] = [
    "device.status.>",
    "device.metrics.>",
    "device.interfaces.>",
    "device.firmware.>",
    "device.credential_changed.>",
    "config.changed.>",
    "config.snapshot.>",
    "config.push.rollback.>",
    "config.push.alert.>",
    "audit.session.end.>",
];

/// The stream `name` exactly as the other system's pollers create it, its
/// families under `prefix`: MaxAge 24 h, MaxBytes 64 MiB, DiscardOld.
pub fn foreign_config(name: &str, prefix: &str) -> stream::Config {
    stream::Config {
        name: name.to_owned(),
        subjects: FAMILIES.iter().map(|f| format!("{prefix}{f}")).collect(),
        max_age: Duration::from_secs(24 * 3600),
        max_bytes: 64 * 1024 * 1024,
        discard: DiscardPolicy::Old,
        ..Default::default()
    }
}

/// A JetStream context on a connection of its own (another program).
pub async fn other_program() -> jetstream::Context {
    let client = async_nats::connect(NATS_URL).await.expect("connects");
    jetstream::new(client)
}

/// Creates `config` as the pollers do (`CreateOrUpdateStream`) and returns
/// the configuration the server holds.
pub async fn create_like_the_pollers(config: stream::Config) -> stream::Config {
    let js = other_program().await;
    let info = js.create_or_update_stream(config).await;
    info.expect("the other system's stream is created").config
}

/// The configuration the server holds for stream `name`.
pub async fn stream_config(name: &str) -> stream::Config {
    let mut stream = other_program()
        .await
        .get_stream(name)
        .await
        .expect("stream");
    stream.info().await.expect("stream info").config.clone()
}

/// One test's names: bus settings whose snapshot subject is
/// `{prefix}config.snapshot`, and the other system's stream, deleted on drop.
pub struct SharedNames {
    pub stack: Stack,
    pub suffix: String,
    pub prefix: String,
    pub foreign: String,
}

impl SharedNames {
    pub fn new(stack: Stack) -> SharedNames {
        let s = suffix();
        SharedNames {
            stack,
            prefix: format!("test.{s}."),
            foreign: format!("DEVICE_EVENTS_{}", s.to_uppercase()),
            suffix: s,
        }
    }

    /// The test's bus settings (the same names on every call).
    pub fn settings(&self) -> BusSettings {
        BusSettings {
            snapshot_subject: format!("{}config.snapshot", self.prefix),
            ..settings_named(self.stack, &self.suffix)
        }
    }

    /// The other system's stream over this test's names.
    pub fn foreign_config(&self) -> stream::Config {
        foreign_config(&self.foreign, &self.prefix)
    }
}

impl Drop for SharedNames {
    fn drop(&mut self) {
        let name = self.foreign.clone();
        // Best effort, on a thread of its own: Drop cannot await.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let _deleted = other_program().await.delete_stream(&name).await.is_ok();
            });
        });
        let _joined = cleanup.join().is_ok();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cfgsnap_uses_the_other_systems_stream_as_it_is_and_flags_its_limits() {
    crate::helpers::within(super::TEST_LIMIT, async {
        // Arrange
        super::require_nats().await;
        let names = SharedNames::new(Stack::Served);
        let before = create_like_the_pollers(names.foreign_config()).await;

        // Act
        let tb = TestBus::with_settings(names.settings()).await;

        // Assert
        let used = tb.bus.event_stream().expect("a NATS bus").clone();
        assert_eq!(used.name, names.foreign);
        assert!(!used.owned, "cfgsnap did not create it");
        let risk = used.limits.drop_risk().expect("64 MiB with discard old");
        assert!(risk.contains("max bytes"), "{risk}");
        let own = other_program()
            .await
            .get_stream(&names.settings().stream)
            .await;
        assert!(own.is_err(), "no stream of cfgsnap's own beside it");
        assert_eq!(stream_config(&names.foreign).await, before);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cfgsnaps_own_stream_is_created_when_none_captures_the_subjects_and_is_not_flagged() {
    crate::helpers::within(super::TEST_LIMIT, async {
        // Arrange
        super::require_nats().await;
        let names = SharedNames::new(Stack::Served);

        // Act
        let tb = TestBus::with_settings(names.settings()).await;
        let again = TestBus::with_settings(names.settings()).await;

        // Assert
        let used = tb.bus.event_stream().expect("a NATS bus");
        assert_eq!(used.name, names.settings().stream);
        assert!(used.owned);
        assert_eq!(used.limits.drop_risk(), None);
        assert_eq!(again.bus.event_stream(), Some(used), "a restart finds it");
        let config = stream_config(&names.settings().stream).await;
        assert_eq!(
            config.subjects,
            vec![format!("{}.>", names.settings().snapshot_subject)]
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bus_stream_naming_another_programs_stream_does_not_take_it_over() {
    crate::helpers::within(super::TEST_LIMIT, async {
        // Arrange: bus.stream names the other system's stream, which holds
        // the subjects.
        super::require_nats().await;
        let names = SharedNames::new(Stack::Served);
        let before = create_like_the_pollers(names.foreign_config()).await;
        let settings = BusSettings {
            stream: names.foreign.clone(),
            ..names.settings()
        };

        // Act
        let tb = TestBus::with_settings(settings).await;

        // Assert
        let used = tb.bus.event_stream().expect("a NATS bus");
        assert!(!used.owned, "a name is not ownership");
        assert_eq!(stream_config(&names.foreign).await, before);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_other_system_cannot_create_its_stream_after_cfgsnap_until_the_readme_migration() {
    crate::helpers::within(super::TEST_LIMIT, async {
        // Arrange: cfgsnap first, with its own stream.
        super::require_nats().await;
        let names = SharedNames::new(Stack::Served);
        let tb = TestBus::with_settings(names.settings()).await;
        let js = other_program().await;

        // Act: the other system's poller starts.
        let refused = js.create_or_update_stream(names.foreign_config()).await;

        // Assert: NATS answers with its subject-overlap error.
        let err = refused.expect_err("overlapping subjects are refused");
        match err.kind() {
            CreateStreamErrorKind::JetStream(e) => {
                assert_eq!(e.error_code(), ErrorCode::STREAM_SUBJECT_OVERLAP, "{e}");
            }
            other => panic!("expected a JetStream error, got {other:?}"),
        }

        // Act: the README's migration: stop cfgsnap, remove its stream,
        // start the other system, start cfgsnap again.
        tb.stop().await;
        drop(tb);
        js.delete_stream(&names.settings().stream).await.ok();
        let before = create_like_the_pollers(names.foreign_config()).await;
        let restarted = TestBus::with_settings(names.settings()).await;

        // Assert
        let used = restarted.bus.event_stream().expect("a NATS bus");
        assert_eq!(used.name, names.foreign);
        assert_eq!(stream_config(&names.foreign).await, before);
    })
    .await;
}

/// The other system's backend: durable `config_snapshot_ingest` on
/// `{prefix}config.snapshot.>` of its stream.
async fn backend_consumer(names: &SharedNames) -> pull::Stream {
    let js = other_program().await;
    let stream = js.get_stream(&names.foreign).await.expect("stream");
    let consumer = stream
        .create_consumer(pull::Config {
            durable_name: Some("config_snapshot_ingest".into()),
            filter_subject: format!("{}config.snapshot.>", names.prefix),
            ack_policy: AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .expect("the backend's durable");
    consumer.messages().await.expect("messages")
}

/// The seven fields the other system's backend reads, with their JSON types.
fn assert_seven_fields(json: &Value) {
    let text = |k: &str| json[k].as_str().is_some_and(|s| !s.is_empty());
    for key in ["device_id", "tenant_id", "sha256_hash", "config_text"] {
        assert!(text(key), "{key} is a non-empty string");
    }
    assert!(json["routeros_version"].is_string() || json["routeros_version"].is_null());
    let at = json["collected_at"].as_str().unwrap_or_default();
    assert!(
        chrono::DateTime::parse_from_rfc3339(at).is_ok(),
        "collected_at is RFC 3339"
    );
    assert!(
        json["normalization_version"].is_u64(),
        "normalization_version is an integer"
    );
    let hash = json["sha256_hash"].as_str().unwrap_or_default();
    assert!(hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_other_systems_backend_and_cfgsnap_each_receive_every_event_with_the_seven_fields() {
    crate::helpers::within(super::TEST_LIMIT, async {
        // Arrange: its stream, its backend's durable and cfgsnap's ingester.
        super::require_nats().await;
        let names = SharedNames::new(Stack::Served);
        create_like_the_pollers(names.foreign_config()).await;
        let tb = TestBus::with_settings(names.settings()).await;
        let ts = TestStore::start(&[("t1", "r1"), ("t2", "r2")]).await;
        ingest(&tb, &tb.bus, &ts).await;
        let mut backend = backend_consumer(&names).await;
        let events = [
            event(&ts, "r1", &config_text("r1")),
            event(&ts, "r2", &config_text("r2")),
        ];

        // Act
        for e in &events {
            tb.bus.publish_snapshot(e).await.expect("published");
        }

        // Assert: the backend gets both, with the seven fields.
        let mut seen = Vec::new();
        for _ in &events {
            let next = tokio::time::timeout(WAIT, backend.next()).await;
            let message = next
                .expect("in time")
                .expect("a message")
                .expect("no error");
            let json: Value = serde_json::from_slice(&message.payload).expect("JSON");
            assert_seven_fields(&json);
            seen.push(json["device_id"].as_str().unwrap_or_default().to_owned());
            message.ack().await.expect("acked");
        }
        seen.sort();
        assert_eq!(seen, ["r1", "r2"]);
        eventually(WAIT, "cfgsnap stored both", || async {
            ts.snapshots("t1", "r1").await.len() == 1 && ts.snapshots("t2", "r2").await.len() == 1
        })
        .await;
        assert!(matches!(tb.bus, Bus::Nats(_)));
        tb.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_other_systems_stream_every_unchanged_backup_is_published_in_full() {
    crate::helpers::within(super::TEST_LIMIT, async {
        // Arrange: its stream and backend, cfgsnap's ingester (which would
        // confirm unchanged claims) and a pipeline with Redis locks.
        super::require_nats().await;
        let names = SharedNames::new(Stack::Served);
        create_like_the_pollers(names.foreign_config()).await;
        let tb = TestBus::with_settings(names.settings()).await;
        let ts = TestStore::start(&[("t1", "r1")]).await;
        ingest(&tb, &tb.bus, &ts).await;
        let mut backend = backend_consumer(&names).await;
        let text = std::sync::Arc::new(std::sync::Mutex::new(config_text("r1")));
        let pipeline = super::claims::pipeline(&tb, &text);
        let device = ts.fleet.device("r1").expect("configured");

        // Act: three backups of the same export.
        for _ in 0..3 {
            cfgsnap::backup::Executor::run(&pipeline, device, cfgsnap::backup::Trigger::Scheduled)
                .await
                .expect("backup");
        }

        // Assert: the backend reads all three, text included (its backend
        // may count on an event per backup), not only the first.
        for _ in 0..3 {
            let next = tokio::time::timeout(WAIT, backend.next()).await;
            let message = next
                .expect("every event in time")
                .expect("a message")
                .expect("no error");
            let json: Value = serde_json::from_slice(&message.payload).expect("JSON");
            assert_seven_fields(&json);
            message.ack().await.expect("acked");
        }
        tb.stop().await;
    })
    .await;
}
