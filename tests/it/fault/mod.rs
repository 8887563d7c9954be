//! Faults survived, against real servers: NATS restarted during a pass,
//! PostgreSQL cut off during ingest, Redis restarted, `kill -9` of a node,
//! SQLite on a full filesystem, hostile devices among healthy ones, SIGTERM
//! under load, and a poller lost among two. Each test breaks infrastructure
//! of its own (its own `nats-server` or `redis-server`, a relay in front of
//! PostgreSQL), never the machine's shared services.

mod backend_down;
mod disk_full;
mod hostile_fleet;
mod kill;
mod nats_restart;
mod pg_outage;
mod pollers;
mod redis_restart;
pub(crate) mod servers;
mod shutdown;
mod sites;

use std::path::Path;
use std::time::Duration;

use deadpool_redis::redis;
use sqlx::PgPool;

/// `[roles]` of a central node: API and ingester.
pub const CENTRAL: &str = "[roles]\napi = true\ningester = true\nretention = false\nscheduler = false\nresponder = false\n";
/// `[roles]` of a poller: scheduler and responder, no store.
pub const POLLER: &str = "[roles]\napi = false\ningester = false\nretention = false\nscheduler = true\nresponder = true\n";

/// Audit events with `action` in a PostgreSQL store.
pub async fn audit_count(pool: &PgPool, action: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM audit_event WHERE action = $1")
        .bind(action)
        .fetch_one(pool)
        .await
        .expect("count audit events")
}

/// The remaining TTL (ms) of every device lock under `prefix` in the Redis
/// at `url` (the `:last_success` and `:published` records beside them left
/// out).
pub async fn lock_ttls(url: &str, prefix: &str) -> Vec<i64> {
    let mut redis = redis::Client::open(url)
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| panic!("Redis must run at {url} (scripts/test.sh starts it): {e}"));
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut redis)
        .await
        .expect("KEYS");
    let mut ttls = Vec::new();
    let beside = |k: &&String| k.ends_with(":last_success") || k.ends_with(":published");
    for key in keys.iter().filter(|k| !beside(k)) {
        let ttl: i64 = redis::cmd("PTTL")
            .arg(key)
            .query_async(&mut redis)
            .await
            .expect("PTTL");
        ttls.push(ttl);
    }
    ttls
}

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

/// Waits (bounded) until the log holds `needle`.
pub async fn await_log(log: &Path, needle: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(log)
        .unwrap_or_default()
        .contains(needle)
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the log never said {needle:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
