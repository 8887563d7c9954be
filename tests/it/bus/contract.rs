//! The wire contracts as other programs see them (DESIGN.md §3): plain
//! async-nats clients triggering, answering and reading the stream, and
//! host-key-reset notices.

use std::sync::Arc;

use cfgsnap::backup::{self, normalize::sha256_hex};
use cfgsnap::bus::{ContentEncoding, HostKeyReset};
use cfgsnap::id::{DeviceId, TenantId};
use futures_util::StreamExt as _;
use serde_json::{Value, json};

use super::events::event;
use super::trigger::{TIMEOUT, request, respond};
use super::{NATS_URL, ScriptedExecutor, Stack, TestBus, TestStore, config_text, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_nats_client_trigger_gets_the_executors_hash() {
    crate::helpers::within(super::TEST_LIMIT, async {
        // Arrange
        let tb = TestBus::start(Stack::Served).await;
        let executor = Arc::new(ScriptedExecutor::succeeding());
        respond(&tb, &tb.bus, Arc::clone(&executor)).await;
        let client = async_nats::connect(NATS_URL)
            .await
            .expect("client connects");
        let body = json!({"device_id": "r1", "tenant_id": "t1"}).to_string();

        // Act: exactly what the originating system sends.
        let message = client
            .request(tb.settings.trigger_subject.clone(), body.into())
            .await
            .expect("a reply");

        // Assert
        let reply: Value = serde_json::from_slice(&message.payload).expect("JSON reply");
        assert_eq!(reply["status"], "success");
        assert_eq!(reply["sha256_hash"], sha256_hex(&config_text("r1")));
        assert_eq!(reply["message"], "Config snapshot collected");
        assert_eq!(reply["routeros_version"], "7.15");
        let at = reply["collected_at"]
            .as_str()
            .expect("collected_at is a string");
        assert!(
            at.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(at).is_ok(),
            "{at}"
        );
        for absent in ["error", "error_kind", "warnings"] {
            assert!(
                reply.get(absent).is_none(),
                "{absent} should be omitted: {reply}"
            );
        }
        let trigger = executor
            .last_trigger
            .lock()
            .expect("lock")
            .get("r1")
            .copied();
        assert_eq!(trigger, Some(backup::Trigger::Manual));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_trigger_without_a_reply_subject_is_ignored() {
    crate::helpers::within(super::TEST_LIMIT, async {
        // Arrange
        let tb = TestBus::start(Stack::Served).await;
        let executor = Arc::new(ScriptedExecutor::succeeding());
        respond(&tb, &tb.bus, Arc::clone(&executor)).await;
        let client = async_nats::connect(NATS_URL)
            .await
            .expect("client connects");
        let body = json!({"device_id": "r1", "tenant_id": "t1"}).to_string();

        // Act
        let subject = tb.settings.trigger_subject.clone();
        client
            .publish(subject, body.into())
            .await
            .expect("publishes");
        super::sync(&client).await;
        let reply = tb.bus.request_trigger(&request("r1", "t1"), TIMEOUT).await;

        // Assert: only the request with a reply subject ran.
        assert_eq!(
            reply.expect("reply").sha256_hash,
            Some(sha256_hex(&config_text("r1")))
        );
        assert_eq!(executor.runs(), 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostkey_reset_notices_reach_every_subscriber() {
    crate::helpers::within(super::TEST_LIMIT, async {
        for stack in [Stack::Served, Stack::Embedded] {
            // Arrange
            let tb = TestBus::start(stack).await;
            let mut first = tb.bus.subscribe_hostkey_resets().await.expect("subscribes");
            let mut second = tb.bus.subscribe_hostkey_resets().await.expect("subscribes");
            let notice = HostKeyReset {
                device_id: DeviceId::parse("r1").expect("id"),
                tenant_id: TenantId::parse("t1").expect("id"),
                actor: Some("admin".into()),
                at: chrono::Utc::now(),
            };

            // Act
            tb.bus
                .publish_hostkey_reset(&notice)
                .await
                .expect("publishes");

            // Assert
            for sub in [&mut first, &mut second] {
                let got = tokio::time::timeout(TIMEOUT, sub.next())
                    .await
                    .expect("in time");
                let (subject, got) = got.expect("a notice");
                assert_eq!(
                    subject,
                    format!("{}.hostkey_reset.r1", tb.settings.control_subject)
                );
                assert_eq!(got.device_id, notice.device_id);
            }
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_nats_subscriber_sees_the_contract_subject_and_queue_group() {
    crate::helpers::within(super::TEST_LIMIT, async {
        // Arrange: the defaults are the contract names.
        let defaults = cfgsnap::config::BusSettings::default();
        assert_eq!(defaults.trigger_subject, "config.backup.trigger");
        assert_eq!(defaults.queue_group, "cfgsnap-responders");
        let tb = TestBus::start(Stack::Served).await;
        let client = async_nats::connect(NATS_URL)
            .await
            .expect("client connects");
        let mut responder = client
            .queue_subscribe(
                tb.settings.trigger_subject.clone(),
                tb.settings.queue_group.clone(),
            )
            .await
            .expect("subscribes");
        super::sync(&client).await;

        // Act: our bus asks; a foreign responder answers.
        let req = request("r1", "t1");
        let ask = tb.bus.request_trigger(&req, TIMEOUT);
        let answer = async {
            let next = tokio::time::timeout(TIMEOUT, responder.next()).await;
            let message = next.expect("a request in time").expect("a request");
            let body: Value = serde_json::from_slice(&message.payload).expect("JSON");
            let reply = json!({"status": "success", "sha256_hash": "ab", "collected_at": "2024-05-01T10:00:00"});
            let reply_to = message.reply.expect("a reply subject");
            client
                .publish(reply_to, reply.to_string().into())
                .await
                .expect("replies");
            body
        };
        let (reply, body) = tokio::join!(ask, answer);

        // Assert
        assert_eq!(body, json!({"device_id": "r1", "tenant_id": "t1"}));
        let reply = reply.expect("a reply");
        assert_eq!(reply.sha256_hash.as_deref(), Some("ab"));
        assert!(
            reply.collected_at.is_some(),
            "naive timestamps are read as UTC"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_config_travels_plain_with_the_contract_fields() {
    crate::helpers::within(super::TEST_LIMIT, async {
        // Arrange: a plain NATS consumer of the stream sees the §3.2 JSON.
        let tb = TestBus::start(Stack::Served).await;
        let ts = TestStore::start(&[("t1", "r1")]).await;
        let event = event(&ts, "r1", "/system identity\nset name=r1\n");
        let client = async_nats::connect(super::NATS_URL)
            .await
            .expect("connects");
        let js = async_nats::jetstream::new(client);

        // Act
        let published = tb.bus.publish_snapshot(&event).await.expect("published");
        let stream = js
            .get_stream(&tb.settings.stream)
            .await
            .expect("stream exists");
        let subject = format!("{}.create.t1.r1", tb.settings.snapshot_subject);
        let message = stream
            .get_last_raw_message_by_subject(&subject)
            .await
            .expect("stored");

        // Assert
        assert_eq!(published.encoding, ContentEncoding::Plain);
        let id = message
            .headers
            .get("Nats-Msg-Id")
            .map(|v| v.as_str().to_owned());
        let collected_at = cfgsnap::bus::wire::rfc3339(&event.collected_at);
        assert_eq!(id, Some(format!("r1:{}:{collected_at}", event.sha256_hash)));
        let json: serde_json::Value = serde_json::from_slice(&message.payload).expect("JSON");
        for field in [
            "device_id",
            "tenant_id",
            "routeros_version",
            "collected_at",
            "sha256_hash",
            "config_text",
            "normalization_version",
            "trigger",
            "poller_id",
            "warnings",
        ] {
            assert!(json.get(field).is_some(), "missing {field}");
        }
        assert_eq!(json["collected_at"], collected_at);
        assert_eq!(json["trigger"], "manual");
        assert_eq!(json["normalization_version"], 1);
        assert!(json.get("config_text_gzip").is_none() && json.get("config_ref").is_none());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_answers_until_the_bus_is_closed() {
    crate::helpers::within(super::TEST_LIMIT, async {
        for stack in [Stack::Served, Stack::Embedded] {
            // Arrange
            let tb = TestBus::start(stack).await;

            // Act
            let before = tb.bus.ping().await;
            tb.bus.close().await.expect("closes");

            // Assert
            assert!(before.is_ok(), "{before:?}");
            if stack == Stack::Served {
                eventually(TIMEOUT, "ping to fail after close", || async {
                    tb.bus.ping().await.is_err()
                })
                .await;
            }
        }
    })
    .await;
}
