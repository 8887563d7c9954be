//! Faults survived, against real servers: NATS restarted during a pass,
//! PostgreSQL cut off during ingest, Redis restarted, `kill -9` of a node,
//! SQLite on a full filesystem, hostile devices among healthy ones, SIGTERM
//! under load, and a poller lost among two. Each test breaks infrastructure
//! of its own (its own `nats-server` or `redis-server`, a relay in front of
//! PostgreSQL), never the machine's shared services.

mod disk_full;
mod hostile_fleet;
mod kill;
mod nats_restart;
mod pg_outage;
mod pollers;
mod redis_restart;
mod servers;
mod shutdown;

use std::time::Duration;

use sqlx::PgPool;

/// Snapshots in a PostgreSQL store: (rows, distinct devices).
pub async fn snapshot_counts(pool: &PgPool) -> (i64, i64) {
    sqlx::query_as("SELECT count(*), count(DISTINCT device_id) FROM snapshot")
        .fetch_one(pool)
        .await
        .expect("count snapshots")
}

/// Waits (bounded by `limit`) until `pool` holds snapshots of at least
/// `devices` devices.
pub async fn await_devices_stored(pool: &PgPool, devices: i64, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let (_, stored) = snapshot_counts(pool).await;
        if stored >= devices {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {stored} of {devices} devices stored within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
