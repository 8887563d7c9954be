//! Redis locks (deadpool-redis): `SET key token NX PX ttl` to take, Lua
//! compare-and-delete / compare-and-expire to release and extend. Every call
//! is bounded by short timeouts, so a dead Redis fails fast instead of
//! hanging a backup.

use std::sync::LazyLock;
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use deadpool_redis::redis::{self, AsyncConnectionConfig, Script};
use deadpool_redis::{Manager, Pool, Runtime};

use super::{Error, Result};
use crate::id::DeviceId;

const RELEASE: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";
const EXTEND: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end";

static RELEASE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(RELEASE));
static EXTEND_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(EXTEND));

/// Connect, response and pool-wait timeouts of every Redis call.
const TIMEOUT: Duration = Duration::from_secs(2);

/// Locks in Redis, shared by every node of a fleet.
#[derive(Clone)]
pub struct RedisLocker {
    pool: Pool,
    prefix: String,
}

impl std::fmt::Debug for RedisLocker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password: never print it.
        f.debug_struct("RedisLocker")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisLocker {
    /// A pool for `url`; connects lazily.
    ///
    /// # Errors
    /// A malformed URL.
    pub fn connect(url: &str, prefix: &str) -> Result<Self> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT));
        let manager = Manager::new_with_config(url, config)
            .map_err(|e| Error::Unexpected(anyhow::anyhow!("invalid lock.url: {:?}", e.kind())))?;
        let pool = Pool::builder(manager)
            .max_size(32)
            .wait_timeout(Some(TIMEOUT))
            .create_timeout(Some(TIMEOUT))
            .recycle_timeout(Some(TIMEOUT))
            .runtime(Runtime::Tokio1)
            .build()
            .context("building the Redis pool")?;
        Ok(Self {
            pool,
            prefix: prefix.to_owned(),
        })
    }

    fn key(&self, device: &DeviceId) -> String {
        format!("{}{device}", self.prefix)
    }

    async fn conn(&self) -> Result<deadpool_redis::Connection> {
        self.pool
            .get()
            .await
            .map_err(|e| Error::Unavailable(anyhow::Error::new(e).context("connecting to Redis")))
    }

    pub(super) async fn try_acquire(
        &self,
        device: &DeviceId,
        token: &str,
        ttl: Duration,
    ) -> Result<bool> {
        let mut conn = self.conn().await?;
        let reply: Option<String> = redis::cmd("SET")
            .arg(self.key(device))
            .arg(token)
            .arg("NX")
            .arg("PX")
            .arg(millis(ttl))
            .query_async(&mut conn)
            .await
            .map_err(unavailable("taking a device lock"))?;
        Ok(reply.is_some())
    }

    pub(super) async fn extend(
        &self,
        device: &DeviceId,
        token: &str,
        ttl: Duration,
    ) -> Result<bool> {
        let mut conn = self.conn().await?;
        let n: i64 = EXTEND_SCRIPT
            .key(self.key(device))
            .arg(token)
            .arg(millis(ttl))
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable("extending a device lock"))?;
        Ok(n == 1)
    }

    pub(super) async fn release(&self, device: &DeviceId, token: &str) -> Result<()> {
        let mut conn = self.conn().await?;
        let _deleted: i64 = RELEASE_SCRIPT
            .key(self.key(device))
            .arg(token)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable("releasing a device lock"))?;
        Ok(())
    }

    pub(super) async fn last_success(&self, device: &DeviceId) -> Result<Option<DateTime<Utc>>> {
        let mut conn = self.conn().await?;
        let value: Option<String> = redis::cmd("GET")
            .arg(format!("{}:last_success", self.key(device)))
            .query_async(&mut conn)
            .await
            .map_err(unavailable("reading the last success"))?;
        // A value another system wrote in another format is ignored, not fatal.
        Ok(value.and_then(|v| parse_instant(&v)))
    }

    pub(super) async fn record_success(
        &self,
        device: &DeviceId,
        at: DateTime<Utc>,
        keep: Duration,
    ) -> Result<()> {
        let mut conn = self.conn().await?;
        let () = redis::cmd("SET")
            .arg(format!("{}:last_success", self.key(device)))
            .arg(at.to_rfc3339())
            .arg("PX")
            .arg(millis(keep))
            .query_async(&mut conn)
            .await
            .map_err(unavailable("recording the last success"))?;
        Ok(())
    }

    pub(super) async fn ping(&self) -> Result<()> {
        let mut conn = self.conn().await?;
        let _: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .map_err(unavailable("pinging Redis"))?;
        Ok(())
    }
}

/// RFC 3339, or Unix seconds (as other pollers may write).
fn parse_instant(v: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(v)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            v.parse::<f64>()
                .ok()
                .and_then(|s| DateTime::from_timestamp_millis((s * 1000.0) as i64))
        })
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

fn unavailable(action: &'static str) -> impl FnOnce(redis::RedisError) -> Error {
    move |e| Error::Unavailable(anyhow::Error::new(e).context(action))
}
