//! Redis locks: a script that does `SET key token NX PX ttl` and takes the
//! published hash beside it to take, Lua compare-and-delete /
//! compare-and-expire to release and extend; after a success, one script
//! records the success and the published hash and releases the lock. Every call is bounded by short
//! timeouts, so a dead Redis fails fast instead of hanging a backup.
//!
//! Connections come from a deadpool pool of deadpool-redis's multiplexed
//! connections, recycled without a round trip: deadpool-redis's own
//! recycling sends `UNWATCH` + `PING` at every checkout, doubling the round
//! trips of a backup. A connection that fails is dropped instead of going
//! back, and a command whose connection was found lost (Redis restarted,
//! an idle connection cut) runs once more on a new one, the idle ones
//! dropped with it.

use std::sync::LazyLock;
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use deadpool::managed::{self, Metrics, Object, RecycleResult};
use deadpool_redis::Runtime;
use deadpool_redis::redis::aio::MultiplexedConnection;
use deadpool_redis::redis::{
    self, AsyncConnectionConfig, FromRedisValue, RedisError, Script, ScriptInvocation,
};

use super::{Error, Result};
use crate::id::DeviceId;

/// Compare-and-delete of the lock `KEYS[1]` holding token `ARGV[1]`.
const RELEASE: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";
const EXTEND: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end";

/// `SET key token NX PX ttl`; when that took the lock, `GETDEL` of
/// `{key}:published` in the same step. Replies `[1, hash or nil]` when
/// taken, `[0, nil]` when held.
const ACQUIRE: &str = "if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then \
     local published = redis.call('GET', KEYS[2]) \
     if published then redis.call('DEL', KEYS[2]) end \
     return {1, published} \
     end \
     return {0, false}";

/// `SET {key}:last_success at PX keep`; then, if the lock is still ours,
/// `SET {key}:published hash PX keep` (unless the hash is empty) and the
/// lock's deletion: the end of a successful backup in one round trip.
const RELEASE_AFTER_SUCCESS: &str = "redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3]) \
     if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end \
     if ARGV[4] ~= '' then redis.call('SET', KEYS[3], ARGV[4], 'PX', ARGV[3]) end \
     return redis.call('DEL', KEYS[1])";

static ACQUIRE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(ACQUIRE));
static RELEASE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(RELEASE));
static RELEASE_AFTER_SUCCESS_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| Script::new(RELEASE_AFTER_SUCCESS));
static EXTEND_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(EXTEND));

/// Connect, response and pool-wait timeouts of every Redis call.
const TIMEOUT: Duration = Duration::from_secs(2);

/// Connections kept: each is multiplexed, so a few carry many backups.
const POOL_SIZE: usize = 8;

/// deadpool-redis's manager, with a recycle that trusts the connection:
/// one that failed never comes back (see [`RedisLocker::call`]).
struct Manager(deadpool_redis::Manager);

impl managed::Manager for Manager {
    type Type = MultiplexedConnection;
    type Error = RedisError;

    async fn create(&self) -> std::result::Result<MultiplexedConnection, RedisError> {
        self.0.create().await
    }

    async fn recycle(
        &self,
        _: &mut MultiplexedConnection,
        _: &Metrics,
    ) -> RecycleResult<RedisError> {
        Ok(())
    }
}

type Pool = managed::Pool<Manager>;

/// One Redis command or script call, repeatable on a new connection.
enum Call<'a> {
    Command(redis::Cmd),
    Script(ScriptInvocation<'a>),
}

impl Call<'_> {
    async fn run<T: FromRedisValue>(
        &self,
        conn: &mut MultiplexedConnection,
    ) -> redis::RedisResult<T> {
        match self {
            Call::Command(cmd) => cmd.query_async(conn).await,
            Call::Script(invocation) => invocation.invoke_async(conn).await,
        }
    }
}

/// The connection is gone (reset, closed, broken pipe), so the command
/// may run again on a new one. A timeout is not: Redis may be alive and
/// slow, and a second wait would double the bound.
fn connection_lost(e: &RedisError) -> bool {
    (e.is_connection_dropped() || e.is_io_error()) && !e.is_timeout()
}

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
        let manager = deadpool_redis::Manager::new_with_config(url, config)
            .map_err(|e| Error::Unexpected(anyhow::anyhow!("invalid lock.url: {:?}", e.kind())))?;
        let pool = Pool::builder(Manager(manager))
            .max_size(POOL_SIZE)
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

    /// Runs `call` and returns its reply (see [`RedisLocker::call_twice`]).
    async fn call<T: FromRedisValue>(&self, call: &Call<'_>, action: &'static str) -> Result<T> {
        Ok(self.call_twice(call, action).await?.0)
    }

    /// Runs `call`; a failed connection is dropped from the pool, and after
    /// a lost one the call runs once more on a new connection. Returns the
    /// reply and whether it came from that second try.
    async fn call_twice<T: FromRedisValue>(
        &self,
        call: &Call<'_>,
        action: &'static str,
    ) -> Result<(T, bool)> {
        let mut retried = false;
        loop {
            let mut conn = self.pool.get().await.map_err(|e| {
                Error::Unavailable(anyhow::Error::new(e).context("connecting to Redis"))
            })?;
            match call.run(&mut conn).await {
                Ok(reply) => return Ok((reply, retried)),
                Err(e) => {
                    // Whatever went wrong, this connection is not trusted again.
                    drop(Object::take(conn));
                    if retried || !connection_lost(&e) {
                        return Err(Error::Unavailable(anyhow::Error::new(e).context(action)));
                    }
                    // Redis closed one, so it most likely closed them all (a
                    // restart): the idle ones go too, and the second try
                    // runs on a new connection.
                    drop(self.pool.retain(|_, _| false));
                    retried = true;
                }
            }
        }
    }

    /// `None` when the lock is held; else it is ours, with the published
    /// hash its previous holder left (now deleted).
    pub(super) async fn try_acquire(
        &self,
        device: &DeviceId,
        token: &str,
        ttl: Duration,
    ) -> Result<Option<Option<String>>> {
        let key = self.key(device);
        let mut invocation = ACQUIRE_SCRIPT.prepare_invoke();
        invocation
            .key(&key)
            .key(self.published_key(device))
            .arg(token)
            .arg(millis(ttl));
        let ((taken, published), retried): ((i64, Option<String>), bool) = self
            .call_twice(&Call::Script(invocation), "taking a device lock")
            .await?;
        if taken == 1 {
            return Ok(Some(published));
        }
        if !retried {
            return Ok(None);
        }
        // The first try may have taken the lock before its connection broke:
        // then it is ours, and the published hash it took is lost (the next
        // backup hands its text over in full).
        let mut get = redis::cmd("GET");
        get.arg(&key);
        let holder: Option<String> = self
            .call(&Call::Command(get), "taking a device lock")
            .await?;
        Ok((holder.as_deref() == Some(token)).then_some(None))
    }

    pub(super) async fn extend(
        &self,
        device: &DeviceId,
        token: &str,
        ttl: Duration,
    ) -> Result<bool> {
        let mut invocation = EXTEND_SCRIPT.prepare_invoke();
        invocation.key(self.key(device)).arg(token).arg(millis(ttl));
        let n: i64 = self
            .call(&Call::Script(invocation), "extending a device lock")
            .await?;
        Ok(n == 1)
    }

    pub(super) async fn release(&self, device: &DeviceId, token: &str) -> Result<()> {
        let mut invocation = RELEASE_SCRIPT.prepare_invoke();
        invocation.key(self.key(device)).arg(token);
        let _deleted: i64 = self
            .call(&Call::Script(invocation), "releasing a device lock")
            .await?;
        Ok(())
    }

    pub(super) async fn release_after_success(
        &self,
        device: &DeviceId,
        token: &str,
        at: DateTime<Utc>,
        keep: Duration,
        published: Option<&str>,
    ) -> Result<()> {
        let mut invocation = RELEASE_AFTER_SUCCESS_SCRIPT.prepare_invoke();
        invocation
            .key(self.key(device))
            .key(self.success_key(device))
            .key(self.published_key(device))
            .arg(token)
            .arg(at.to_rfc3339())
            .arg(millis(keep))
            .arg(published.unwrap_or_default());
        let _deleted: i64 = self
            .call(
                &Call::Script(invocation),
                "recording the last success and releasing a device lock",
            )
            .await?;
        Ok(())
    }

    fn success_key(&self, device: &DeviceId) -> String {
        format!("{}:last_success", self.key(device))
    }

    fn published_key(&self, device: &DeviceId) -> String {
        format!("{}:published", self.key(device))
    }

    pub(super) async fn last_success(&self, device: &DeviceId) -> Result<Option<DateTime<Utc>>> {
        let mut get = redis::cmd("GET");
        get.arg(self.success_key(device));
        let value: Option<String> = self
            .call(&Call::Command(get), "reading the last success")
            .await?;
        // A value another system wrote in another format is ignored, not fatal.
        Ok(value.and_then(|v| parse_instant(&v)))
    }

    pub(super) async fn ping(&self) -> Result<()> {
        let _: String = self
            .call(&Call::Command(redis::cmd("PING")), "pinging Redis")
            .await?;
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
