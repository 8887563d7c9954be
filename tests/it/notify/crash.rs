//! A node killed (`kill -9`) while a notification is in flight: after a
//! restart the row is delivered again, with the same `webhook-id`.

use cfgsnap_testkit::fleet::start_simulator;
use cfgsnap_testkit::{Infra, ServeProcess, Stack};
use routeros_sim::DeviceSpec;

use super::{Receiver, Reply, WHSEC, notify_section, secret_file, verify, webhook_target};
use crate::app::TestApp;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_delivers_after_restart_with_the_same_webhook_id() {
    cfgsnap_testkit::within(cfgsnap_testkit::trace::TEST_DEADLINE, async {
        // Arrange: the receiver holds the first delivery without answering.
        let infra = Infra::new(Stack::Embedded).await;
        let sim = start_simulator(vec![DeviceSpec::default().with_change_every(1)]).await;
        let receiver = Receiver::start(&[Reply::Hang]).await;
        let extra = format!(
            "[roles]\nscheduler = false\n{}{}",
            notify_section("timeout = \"2s\""),
            webhook_target(
                "ops",
                &receiver.url("/hook"),
                r#""config.changed""#,
                &secret_file(infra.dir.path()),
                ""
            )
        );
        let path = infra.dir.path().join("config.toml");
        std::fs::write(&path, infra.config(&sim, &extra)).expect("writing the configuration");
        let bin = env!("CARGO_BIN_EXE_cfgsnap");
        let node = ServeProcess::start(bin, &path, infra.dir.path().join("one.log"), true).await;
        let app = TestApp::attach(node.port.expect("the API port"));
        assert_eq!(app.trigger("dev-0").await.status(), 201);
        assert_eq!(app.trigger("dev-0").await.status(), 201);
        receiver.wait_for(1).await;
        // Act: kill -9 while the delivery is in flight, then start again.
        node.kill().await;
        let node = ServeProcess::start(bin, &path, infra.dir.path().join("two.log"), true).await;
        let requests = receiver.wait_for(2).await;
        // Assert
        assert_eq!(
            requests[0].header("webhook-id"),
            requests[1].header("webhook-id")
        );
        for r in &requests {
            verify(WHSEC, r).expect("signed");
            assert_eq!(r.json()["type"], "config.changed");
        }
        node.kill().await;
        receiver.stop().await;
        sim.shutdown().await;
        infra.finish().await;
    })
    .await;
}
