//! Pollers at sites (DESIGN-level layout of the README): a central node
//! (api, ingester) listing every device and two pollers, each a `cfgsnap
//! serve` process in a fleet partition of its own with only its site's
//! device. Every trigger reaches the device's owner and answers `201`; a
//! device the central node does not list answers `404` at once.

use std::time::{Duration, Instant};

use routeros_sim::DeviceSpec;

use super::servers::ServeProcess;
use super::{CENTRAL, POLLER, await_log};
use crate::app::{Infra, Stack, TestApp};
use crate::helpers::{start_simulator, within};

const TRIGGERS_PER_DEVICE: usize = 25;

/// `toml` without the `[[devices]]` block of `id`.
fn without_device(toml: &str, id: &str) -> String {
    let at = toml
        .find(&format!("id = \"{id}\"\n"))
        .expect("the device is listed");
    let start = toml[..at].rfind("[[devices]]").expect("its block");
    let end = at + toml[at..].find("credentials = \"sim\"\n").expect("its end") + 19;
    format!("{}{}", &toml[..start], &toml[end..])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn triggers_reach_the_poller_that_owns_the_device_and_every_one_answers_201() {
    within(Duration::from_secs(240), async {
        // Arrange
        let infra = Infra::new(Stack::Served).await;
        let sim = start_simulator(vec![DeviceSpec::default(); 2]).await;
        let dir = infra.dir.path();
        let base = infra
            .config(&sim, "")
            .replace("[auth]\n", "[auth]\ntrigger_rate_per_minute = 1000\n")
            .replace("interval = \"1h\"", "interval = \"24h\"")
            .replace("jitter = \"0s\"", "jitter = \"12h\"");
        let write = |name: &str, toml: String| {
            let path = dir.join(format!("{name}.toml"));
            let toml = toml.replace("known_hosts.json", &format!("known_hosts-{name}.json"));
            std::fs::write(&path, toml).expect("config");
            path
        };
        let central = write("central", format!("{base}{CENTRAL}"));
        let poller = |partition: &str, other: &str| {
            let roles = format!("{POLLER}partition = \"{partition}\"\n");
            write(partition, without_device(&format!("{base}{roles}"), other))
        };
        let (site_a, site_b) = (poller("site-a", "dev-1"), poller("site-b", "dev-0"));
        let central =
            ServeProcess::start(crate::helpers::CFGSNAP, &central, dir.join("c.log"), true).await;
        let a =
            ServeProcess::start(crate::helpers::CFGSNAP, &site_a, dir.join("a.log"), false).await;
        let b =
            ServeProcess::start(crate::helpers::CFGSNAP, &site_b, dir.join("b.log"), false).await;
        let app = TestApp::attach(central.port.expect("api"));
        // Both pollers subscribed once each answers a trigger of its own.
        for device in ["dev-0", "dev-1"] {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            loop {
                let status = app.trigger(device).await.status();
                if status == 201 {
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{device}'s poller never answered 201 (last {status})"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }

        // Act
        let mut statuses = Vec::new();
        for _ in 0..TRIGGERS_PER_DEVICE {
            for device in ["dev-0", "dev-1"] {
                statuses.push((device, app.trigger(device).await.status().as_u16()));
            }
        }
        let asked = Instant::now();
        let unknown = app.trigger("dev-9").await.status().as_u16();
        let took = asked.elapsed();

        // Assert
        let refused: Vec<_> = statuses.iter().filter(|(_, s)| *s != 201).collect();
        assert!(refused.is_empty(), "triggers not answered 201: {refused:?}");
        assert_eq!(unknown, 404);
        assert!(took < Duration::from_secs(2), "the 404 took {took:?}");
        for node in [&a, &b] {
            let log = std::fs::read_to_string(&node.log).expect("log");
            assert!(
                !log.contains("fleet partitions") && !log.contains("lacks devices"),
                "disjoint sites reported a conflict"
            );
        }
        for i in 0..2 {
            let served = sim.exports_served(i) as usize;
            assert!(
                served > TRIGGERS_PER_DEVICE,
                "dev-{i} exported {served} times"
            );
        }
        sim.shutdown().await;
        infra.finish().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_listed_by_two_partitions_is_reported_by_the_pollers() {
    within(Duration::from_secs(120), async {
        // Arrange: two site pollers on one NATS (same host name), both
        // listing both devices by mistake.
        let infra = Infra::new(Stack::Served).await;
        let sim = start_simulator(vec![DeviceSpec::default(); 2]).await;
        let dir = infra.dir.path();
        let base = infra
            .config(&sim, "")
            .replace("interval = \"1h\"", "interval = \"24h\"")
            .replace("jitter = \"0s\"", "jitter = \"12h\"");
        let mut nodes = Vec::new();
        let mut logs = Vec::new();

        // Act: each subscribes before its hello, so whichever starts
        // second hears the first's answer.
        for partition in ["site-a", "site-b"] {
            let toml = format!("{base}{POLLER}partition = \"{partition}\"\n")
                .replace("known_hosts.json", &format!("known_hosts-{partition}.json"));
            let path = dir.join(format!("{partition}.toml"));
            std::fs::write(&path, toml).expect("config");
            let log = dir.join(format!("{partition}.log"));
            nodes.push(
                ServeProcess::start(crate::helpers::CFGSNAP, &path, log.clone(), false).await,
            );
            logs.push(log);
        }

        // Assert: each names the shared devices.
        for log in &logs {
            await_log(log, "devices listed by two fleet partitions").await;
            let text = std::fs::read_to_string(log).expect("log");
            assert!(text.contains("dev-0") && text.contains("dev-1"), "{log:?}");
        }
        sim.shutdown().await;
        infra.finish().await;
    })
    .await;
}
