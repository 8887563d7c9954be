//! Who owns which device, across the responders on one NATS. A device
//! listed by two fleet partitions (`[roles] partition`) would be backed up
//! by both partitions' responders for every trigger, and a responder of the
//! shared partition that lacks a site's device answers `not_found` for it.
//! `check-config` sees one node's file only, so responders tell each other
//! their fleets on `{control}.fleet` and each logs a warning for what it
//! finds wrong:
//!
//! - at start-up and on every fleet reload a responder publishes a `hello`
//!   with its partition and device ids (in chunks of [`CHUNK`]);
//! - every responder answers a `hello` with a `here` of its own fleet, so
//!   nodes that started earlier are compared too;
//! - on either, a node compares the sender's devices with its own fleet.
//!
//! Best effort: core NATS, no persistence; on the local bus (one process)
//! there is nothing to compare and nothing runs.

use std::collections::HashSet;
use std::sync::Arc;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument as _, debug, info_span, warn};

use super::subscription::ControlInner;
use super::{Bus, Subscription};
use crate::config::Fleet;
use crate::id::DeviceId;

/// Device ids per notice: 2,000 ids of at most 64 bytes stay well below
/// NATS's default `max_payload` (1 MiB).
pub const CHUNK: usize = 2_000;

/// Largest number of device ids named in one warning.
const NAMED: usize = 10;

/// Whether a notice asks for answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    /// A node started or reloaded its fleet: everyone answers with `here`.
    Hello,
    /// An answer to a `hello`.
    Here,
}

/// One chunk of a responder's fleet.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetNotice {
    /// `hello` or `here`.
    pub kind: NoticeKind,
    /// The sender's `roles.node_id`.
    pub node_id: String,
    /// Random per process: tells a node's own notices apart from those of
    /// another process with the same `node_id` (the host name by default).
    pub instance: String,
    /// The sender's `roles.partition`; `None`: the shared partition.
    pub partition: Option<String>,
    /// Some of the devices it lists.
    pub devices: Vec<DeviceId>,
}

/// This node's side of the comparison.
#[derive(Debug, Clone)]
pub struct Ownership {
    /// `roles.node_id`.
    pub node_id: String,
    /// Random per process ([`FleetNotice::instance`]).
    pub instance: String,
    /// `roles.partition`.
    pub partition: Option<String>,
}

impl Bus {
    /// Publishes `notice` on `{control}.fleet`, best effort; nothing on the
    /// local bus.
    async fn publish_fleet_notice(&self, notice: &FleetNotice) -> super::Result<()> {
        let Bus::Nats(n) = self else { return Ok(()) };
        let payload = serde_json::to_vec(notice).context("serializing a fleet notice")?;
        n.publish_core(n.subjects.fleet_notice(), payload).await
    }

    /// Every node's fleet notices; `None` on the local bus.
    async fn subscribe_fleet_notices(&self) -> super::Result<Option<Subscription<FleetNotice>>> {
        let Bus::Nats(n) = self else { return Ok(None) };
        let subscriber = n.subscribe(n.subjects.fleet_notice(), None).await?;
        n.round_trip().await?;
        Ok(Some(Subscription {
            inner: ControlInner::Nats(subscriber),
            kind: "fleet",
        }))
    }
}

/// Starts comparing this node's fleet with the other responders' until
/// `shutdown`. Returns once subscribed and the first `hello` is out.
///
/// # Errors
/// When NATS refuses the subscription.
pub async fn spawn_ownership_check(
    bus: &Bus,
    me: Ownership,
    mut fleet: watch::Receiver<Arc<Fleet>>,
    shutdown: CancellationToken,
    tracker: &TaskTracker,
) -> super::Result<()> {
    let Some(mut notices) = bus.subscribe_fleet_notices().await? else {
        return Ok(());
    };
    let bus = bus.clone();
    announce(&bus, &me, &fleet.borrow_and_update(), NoticeKind::Hello).await;
    let task = async move {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                changed = fleet.changed() => {
                    if changed.is_err() { return }
                    let current = fleet.borrow_and_update().clone();
                    announce(&bus, &me, &current, NoticeKind::Hello).await;
                }
                next = notices.next() => {
                    let Some((_, notice)) = next else { return };
                    if notice.instance == me.instance {
                        continue;
                    }
                    let current = fleet.borrow().clone();
                    compare(&me, &current, &notice);
                    if notice.kind == NoticeKind::Hello {
                        announce(&bus, &me, &current, NoticeKind::Here).await;
                    }
                }
            }
        }
    };
    tracker.spawn(task.instrument(info_span!("bus.ownership")));
    Ok(())
}

/// Publishes this node's fleet in chunks (one empty notice for an empty
/// fleet, so a `hello` is still answered).
async fn announce(bus: &Bus, me: &Ownership, fleet: &Fleet, kind: NoticeKind) {
    let ids: Vec<DeviceId> = fleet.devices.iter().map(|d| d.id.clone()).collect();
    let mut chunks: Vec<&[DeviceId]> = ids.chunks(CHUNK).collect();
    if chunks.is_empty() {
        chunks.push(&[]);
    }
    for chunk in chunks {
        let notice = FleetNotice {
            kind,
            node_id: me.node_id.clone(),
            instance: me.instance.clone(),
            partition: me.partition.clone(),
            devices: chunk.to_vec(),
        };
        if let Err(e) = bus.publish_fleet_notice(&notice).await {
            debug!(error.message = %e, "publishing a fleet notice failed");
            return;
        }
    }
}

/// What is wrong between this node's fleet and one notice of another node.
#[derive(Debug, PartialEq, Eq)]
pub enum Conflict {
    /// Both list these devices in different partitions: triggers for them
    /// run on both.
    TwoPartitions(Vec<DeviceId>),
    /// This node is in the shared partition and lacks these devices of a
    /// partitioned node: it answers `not_found` for them.
    SharedLacks(Vec<DeviceId>),
}

/// Compares `notice` with this node's `fleet` and logs a conflict.
fn compare(me: &Ownership, fleet: &Fleet, notice: &FleetNotice) {
    let own: HashSet<&str> = fleet.devices.iter().map(|d| d.id.as_str()).collect();
    let Some(conflict) = conflict(me, &own, notice) else {
        return;
    };
    let (devices, message) = match &conflict {
        Conflict::TwoPartitions(d) => (
            d,
            "devices listed by two fleet partitions: every trigger for them runs in both; list each device in one partition only",
        ),
        Conflict::SharedLacks(d) => (
            d,
            "this responder of the shared partition lacks devices of a partitioned node and answers not_found for them; give it a [roles] partition",
        ),
    };
    let named: Vec<&str> = devices.iter().take(NAMED).map(DeviceId::as_str).collect();
    warn!(
        other_node = %notice.node_id,
        other_partition = notice.partition.as_deref().unwrap_or("(shared)"),
        partition = me.partition.as_deref().unwrap_or("(shared)"),
        count = devices.len(),
        devices = ?named,
        "{message}"
    );
}

/// The conflict between this node's devices (`own`) and `notice`, if any.
pub fn conflict(me: &Ownership, own: &HashSet<&str>, notice: &FleetNotice) -> Option<Conflict> {
    if notice.partition == me.partition || notice.instance == me.instance {
        return None; // High availability: the same partition may share devices.
    }
    let (listed, missing): (Vec<&DeviceId>, Vec<&DeviceId>) = notice
        .devices
        .iter()
        .partition(|d| own.contains(d.as_str()));
    if !listed.is_empty() {
        return Some(Conflict::TwoPartitions(
            listed.into_iter().cloned().collect(),
        ));
    }
    if me.partition.is_none() && !missing.is_empty() {
        return Some(Conflict::SharedLacks(
            missing.into_iter().cloned().collect(),
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me(partition: Option<&str>) -> Ownership {
        Ownership {
            node_id: "host".into(),
            instance: "me".into(),
            partition: partition.map(str::to_owned),
        }
    }

    fn notice(partition: Option<&str>, devices: &[&str]) -> FleetNotice {
        FleetNotice {
            kind: NoticeKind::Hello,
            node_id: "host".into(),
            instance: "other".into(),
            partition: partition.map(str::to_owned),
            devices: devices
                .iter()
                .map(|d| DeviceId::parse(d).expect("id"))
                .collect(),
        }
    }

    fn ids(list: &[&str]) -> Vec<DeviceId> {
        list.iter()
            .map(|d| DeviceId::parse(d).expect("id"))
            .collect()
    }

    #[test]
    fn a_device_in_two_partitions_is_a_conflict() {
        let own = HashSet::from(["a", "b"]);
        let found = conflict(
            &me(Some("site-a")),
            &own,
            &notice(Some("site-b"), &["b", "c"]),
        );
        assert_eq!(found, Some(Conflict::TwoPartitions(ids(&["b"]))));
    }

    #[test]
    fn pollers_of_one_partition_may_share_devices() {
        let own = HashSet::from(["a", "b"]);
        assert_eq!(
            conflict(&me(Some("ha")), &own, &notice(Some("ha"), &["a", "b"])),
            None
        );
        assert_eq!(
            conflict(&me(None), &own, &notice(None, &["a", "b", "c"])),
            None
        );
    }

    #[test]
    fn disjoint_sites_are_fine_but_a_shared_responder_lacking_them_is_not() {
        let own = HashSet::from(["a"]);
        assert_eq!(
            conflict(&me(Some("site-a")), &own, &notice(Some("site-b"), &["b"])),
            None
        );
        assert_eq!(
            conflict(&me(None), &own, &notice(Some("site-b"), &["b"])),
            Some(Conflict::SharedLacks(ids(&["b"])))
        );
    }

    #[test]
    fn own_notices_are_never_a_conflict() {
        let own = HashSet::from(["a"]);
        let mut mine = notice(Some("x"), &["a"]);
        mine.instance = "me".into();
        assert_eq!(conflict(&me(Some("y")), &own, &mine), None);
    }

    #[test]
    fn hostile_notices_do_not_parse() {
        for bad in [
            r#"{"kind":"hello","node_id":"n","instance":"i","partition":null,"devices":["a.b"]}"#,
            r#"{"kind":"hello","node_id":"n","instance":"i","partition":null,"devices":["*"]}"#,
            r#"{"kind":"boom","node_id":"n","instance":"i","partition":null,"devices":[]}"#,
            r#"{"kind":"hello","node_id":"n","instance":"i","partition":null,"devices":[],"x":1}"#,
        ] {
            assert!(serde_json::from_str::<FleetNotice>(bad).is_err(), "{bad}");
        }
    }
}
