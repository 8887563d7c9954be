//! Whole nodes on a NATS where the other system's pollers came first
//! (DESIGN.md §3.2): `cfgsnap serve` starts beside their stream
//! (`DEVICE_EVENTS_<tag>`, its ten subject families under the run's prefix),
//! its backups land there and are stored, the stream's configuration stays
//! as it was, and its limits are reported as able to drop events, in the
//! log and in `/metrics`; a node on its own stream reports no such risk.

use std::time::Duration;

use async_nats::jetstream::stream;
use cfgsnap_testkit::serve::{ServeProcess, signal};
use routeros_sim::DeviceSpec;
use sqlx::PgPool;

use super::{Infra, Stack, TestApp, spawn_app};
use crate::bus::shared::{create_like_the_pollers, foreign_config, other_program, stream_config};
use crate::fault::await_devices_stored;
use crate::helpers::{CFGSNAP, start_simulator, within};

const DROP_RISK: &str = "cfgsnap_bus_stream_drop_risk";

/// Both devices' events are in the run's `DEVICE_EVENTS`, and cfgsnap made
/// no stream of its own.
async fn assert_events_in_their_stream(infra: &Infra) {
    let js = other_program().await;
    let foreign = infra.foreign_stream();
    let events = js.get_stream(&foreign).await.expect("their stream");
    for device in ["dev-0", "dev-1"] {
        let subject = format!("t{}.config.snapshot.create.t1.{device}", infra.tag);
        let last = events.get_last_raw_message_by_subject(&subject).await;
        assert!(last.is_ok(), "no event of {device} in {foreign}");
    }
    let own = format!("T{}_SNAPSHOTS", infra.tag.to_uppercase());
    assert!(
        js.get_stream(own).await.is_err(),
        "cfgsnap created no stream of its own"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_backs_up_into_the_other_systems_stream_and_leaves_its_configuration_unchanged() {
    within(Duration::from_secs(180), async {
        // Arrange: the other system's stream first, as its pollers create it.
        let infra = Infra::new(Stack::Served).await;
        let foreign = infra.foreign_stream();
        let before =
            create_like_the_pollers(foreign_config(&foreign, &infra.subject_prefix())).await;
        let sim = start_simulator(vec![DeviceSpec::default(); 2]).await;
        let config = infra.dir.path().join("config.toml");
        // No scheduled run in the first hour: the triggers are the backups.
        let toml = infra
            .config(&sim, "")
            .replace("jitter = \"0s\"", "jitter = \"1h\"");
        std::fs::write(&config, toml).expect("config");
        let log = infra.dir.path().join("serve.log");

        // Act
        let node = ServeProcess::start(CFGSNAP, &config, log.clone(), true).await;
        let app = TestApp::attach(node.port.expect("the api role serves"));
        let answers = [
            app.trigger("dev-0").await.status(),
            app.trigger("dev-1").await.status(),
        ];

        // Assert: ready, both backups stored and in the other system's stream.
        assert_eq!(answers.map(|s| s.as_u16()), [201, 201]);
        let ready = app
            .client
            .get(format!("{}/readyz", app.address))
            .send()
            .await;
        assert_eq!(
            ready.expect("readyz").status(),
            200,
            "limits do not make it unready"
        );
        let pool = PgPool::connect(&infra.store_url).await.expect("store pool");
        await_devices_stored(&pool, 2, Duration::from_secs(60)).await;
        assert_events_in_their_stream(&infra).await;
        assert!(app.metrics().await.contains(&format!("{DROP_RISK} 1")));
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let warned = text.lines().any(|l| {
            l.contains("WARN") && l.contains(&foreign) && l.contains("can drop snapshot events")
        });
        assert!(warned, "no start-up warning about the stream's limits");

        // Assert: after a clean stop, their stream is unchanged, field for field.
        let mut child = node.child;
        signal(&child, "TERM");
        let exited = tokio::time::timeout(Duration::from_secs(30), child.wait()).await;
        assert!(exited.expect("exits").expect("wait").success());
        let after: stream::Config = stream_config(&foreign).await;
        assert_eq!(after, before);
        pool.close().await;
        sim.shutdown().await;
        infra.finish().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_reports_a_drop_risk_for_a_short_lived_stream_and_none_for_its_own() {
    within(Duration::from_secs(120), async {
        // Arrange: one run on its own stream, one beside a stream that keeps
        // events an hour.
        let own = Infra::new(Stack::Served).await;
        let short = Infra::new(Stack::Served).await;
        let hour = stream::Config {
            max_age: Duration::from_secs(3600),
            max_bytes: -1,
            ..foreign_config(&short.foreign_stream(), &short.subject_prefix())
        };
        create_like_the_pollers(hour).await;
        let sim = start_simulator(vec![DeviceSpec::default()]).await;

        // Act
        let on_own = spawn_app(&own.config(&sim, "")).await;
        let on_short = spawn_app(&short.config(&sim, "")).await;

        // Assert
        assert!(on_own.metrics().await.contains(&format!("{DROP_RISK} 0")));
        assert!(on_short.metrics().await.contains(&format!("{DROP_RISK} 1")));
        on_own.stop().await;
        on_short.stop().await;
        sim.shutdown().await;
        own.finish().await;
        short.finish().await;
    })
    .await;
}
