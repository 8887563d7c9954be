//! Device locks against the machine's real Redis and the in-process twin:
//! mutual exclusion, token-checked release and extension, TTL expiry of a
//! holder that died, the contract key `backup:device:{id}`, and failing closed
//! when Redis is down.

use std::time::Duration;

use cfgsnap::id::DeviceId;
use cfgsnap::lock::{self, Locker};
use deadpool_redis::redis;
use futures_util::StreamExt as _;
use rand::RngCore as _;

use cfgsnap_testkit::Stack;
use cfgsnap_testkit::service::REDIS_URL;

fn random_hex() -> String {
    let mut b = [0u8; 6];
    rand::thread_rng().fill_bytes(&mut b);
    hex::encode(b)
}

fn device() -> DeviceId {
    DeviceId::parse(&format!("lock-test-{}", random_hex())).expect("valid id")
}

/// A Redis locker with a per-test prefix; fails with instructions when Redis is down.
async fn redis_locker() -> Locker {
    let locker = Locker::connect(REDIS_URL, &format!("test-{}:backup:device:", random_hex()))
        .expect("valid url");
    locker.ping().await.expect(
        "Redis must run on 127.0.0.1:6379 (start it with `redis-server --daemonize yes --port 6379 --save ''`, or run scripts/test.sh)",
    );
    locker
}

fn local_locker() -> Locker {
    Locker::connect("local", "backup:device:").expect("local locker")
}

/// The locker of `stack`: Redis with a per-test prefix, or the in-process one.
async fn locker(stack: Stack) -> Locker {
    match stack {
        Stack::Served => redis_locker().await,
        Stack::Embedded => local_locker(),
    }
}

async fn holder_excludes_others_until_released(stack: Stack) {
    let locker = locker(stack).await;
    // Arrange
    let d = device();
    let ttl = Duration::from_secs(30);

    // Act
    let first = locker.try_acquire(&d, ttl).await.expect("backend up");
    let second = locker.try_acquire(&d, ttl).await.expect("backend up");

    // Assert
    let first = first.expect("the first caller gets the lock");
    assert!(second.is_none(), "a second caller must not get a held lock");
    assert!(
        first.extend(ttl).await.expect("backend up"),
        "the holder can extend"
    );
    first.release().await.expect("release");
    let third = locker.try_acquire(&d, ttl).await.expect("backend up");
    third
        .expect("free again after release")
        .release()
        .await
        .expect("release");
}

async fn a_dead_holder_frees_the_device_after_the_ttl(stack: Stack) {
    let locker = locker(stack).await;
    // Arrange: a holder that dies without releasing.
    let d = device();
    let ttl = Duration::from_millis(300);
    let dead = locker
        .try_acquire(&d, ttl)
        .await
        .expect("up")
        .expect("acquired");
    std::mem::forget(dead);

    // Act: poll until the lock lapses (bounded).
    let started = tokio::time::Instant::now();
    let taken = loop {
        if let Some(g) = locker
            .try_acquire(&d, Duration::from_secs(30))
            .await
            .expect("up")
        {
            break g;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the lock never lapsed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    // Assert
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "the lock lapsed before its TTL"
    );
    taken.release().await.expect("release");
}

async fn an_expired_holder_cannot_release_or_extend_its_successors_lock(stack: Stack) {
    let locker = locker(stack).await;
    // Arrange: A's lock lapses, B takes it.
    let d = device();
    let a = locker
        .try_acquire(&d, Duration::from_millis(100))
        .await
        .expect("up")
        .expect("A");
    let b = loop {
        if let Some(g) = locker
            .try_acquire(&d, Duration::from_secs(30))
            .await
            .expect("up")
        {
            break g;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };

    // Act
    let extended = a.extend(Duration::from_secs(30)).await.expect("up");
    a.release().await.expect("release is a no-op");

    // Assert
    assert!(!extended, "A must not extend B's lock");
    assert!(
        locker
            .try_acquire(&d, Duration::from_secs(1))
            .await
            .expect("up")
            .is_none(),
        "B's lock must survive A's release"
    );
    b.release().await.expect("release");
}

/// Takes the free lock of `d`, polling while a lapsing holder has it.
async fn take(locker: &Locker, d: &DeviceId) -> lock::LockGuard {
    let started = tokio::time::Instant::now();
    loop {
        if let Some(g) = locker
            .try_acquire(d, Duration::from_secs(30))
            .await
            .expect("up")
        {
            return g;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "never free");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn the_published_hash_goes_to_the_next_holder_once(stack: Stack) {
    let locker = locker(stack).await;
    let d = device();
    let keep = Duration::from_secs(60);
    let now = chrono::Utc::now();

    // A success hands its hash to the next holder.
    let a = take(&locker, &d).await;
    assert_eq!(a.published(), None, "a new device has none");
    a.release_after_success(now, keep, Some("h1"))
        .await
        .expect("up");
    let b = take(&locker, &d).await;
    assert_eq!(b.published(), Some("h1"));

    // Taking it removed it: a holder that fails leaves none behind.
    b.release().await.expect("up");
    let c = take(&locker, &d).await;
    assert_eq!(c.published(), None, "taken by the failed holder");
    c.release_after_success(now, keep, Some("h2"))
        .await
        .expect("up");

    // A holder whose lock lapsed writes nothing for its successor.
    let lapsing = locker
        .try_acquire(&d, Duration::from_millis(100))
        .await
        .expect("up")
        .expect("free");
    assert_eq!(lapsing.published(), Some("h2"));
    let successor = take(&locker, &d).await;
    lapsing
        .release_after_success(now, keep, Some("h3"))
        .await
        .expect("up");
    assert_eq!(successor.published(), None, "h2 went to the lapsed holder");
    successor.release().await.expect("up");
    let last = take(&locker, &d).await;
    assert_eq!(
        last.published(),
        None,
        "the lapsed holder's h3 was not kept"
    );
    last.release().await.expect("up");
}

async fn last_success_round_trips(stack: Stack) {
    let locker = locker(stack).await;
    let d = device();
    assert_eq!(locker.last_success(&d).await.expect("up"), None);
    let at = chrono::Utc::now();
    locker
        .try_acquire(&d, Duration::from_secs(30))
        .await
        .expect("up")
        .expect("free")
        .release_after_success(at, Duration::from_secs(60), None)
        .await
        .expect("up");
    let read = locker
        .last_success(&d)
        .await
        .expect("up")
        .expect("recorded");
    assert!(
        (read - at).num_milliseconds().abs() < 1000,
        "read back {read} for {at}"
    );
}

on_both_stacks!(
    holder_excludes_others_until_released,
    a_dead_holder_frees_the_device_after_the_ttl,
    an_expired_holder_cannot_release_or_extend_its_successors_lock,
    last_success_round_trips,
    the_published_hash_goes_to_the_next_holder_once,
);

#[tokio::test]
async fn the_redis_key_is_the_contract_key_with_a_random_token_and_ttl() {
    // Arrange
    let d = device();
    let locker = Locker::connect(REDIS_URL, "backup:device:").expect("url");
    let ttl = Duration::from_secs(90);

    // Act
    let guard = locker
        .try_acquire(&d, ttl)
        .await
        .expect("up")
        .expect("acquired");
    let client = redis::Client::open(REDIS_URL).expect("url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis up");
    let key = format!("backup:device:{d}");
    let value: Option<String> = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .expect("GET");
    let pttl: i64 = redis::cmd("PTTL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .expect("PTTL");

    // Assert
    let value = value.expect("the lock lives at backup:device:{id}");
    assert_eq!(value.len(), 32, "a 128-bit hex token");
    assert!(
        pttl > 80_000 && pttl <= 90_000,
        "PX must be the TTL, got {pttl} ms"
    );
    guard.release().await.expect("release");
    let gone: Option<String> = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .expect("GET");
    assert_eq!(gone, None, "release deletes the key");
}

#[tokio::test]
async fn a_redis_that_is_down_fails_closed_and_fast() {
    // Arrange: a port nobody listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let locker =
        Locker::connect(&format!("redis://127.0.0.1:{port}"), "backup:device:").expect("url");

    // Act
    let result = tokio::time::timeout(
        Duration::from_secs(10),
        locker.try_acquire(&device(), Duration::from_secs(30)),
    )
    .await
    .expect("must fail within the Redis timeouts, not hang");

    // Assert
    assert!(
        matches!(result, Err(lock::Error::Unavailable(_))),
        "got {result:?}"
    );
}

#[tokio::test]
async fn a_malformed_redis_url_is_rejected_without_echoing_it() {
    let err = Locker::connect("redis://:s3cret-marker@[bad", "p:").expect_err("malformed");
    assert!(!err.to_string().contains("s3cret-marker"));
    assert!(!format!("{err:?}").contains("s3cret-marker"));
}

/// What ends [`commands_sent_during`]'s watch.
const MONITOR_END: &str = "cfgsnap-lock-test-end";

/// The commands clients sent to the Redis at `url` while `act` ran, by
/// lowercase name, as `MONITOR` shows them. What a script runs inside Redis
/// (`[0 lua]`) is left out: it is no round trip.
async fn commands_sent_during(url: &str, act: impl Future<Output = ()>) -> Vec<String> {
    let client = redis::Client::open(url).expect("url");
    let monitor = client.get_async_monitor().await.expect("MONITOR");
    let mut lines = monitor.into_on_message::<String>();
    act.await;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis up");
    let _: String = redis::cmd("ECHO")
        .arg(MONITOR_END)
        .query_async(&mut conn)
        .await
        .expect("ECHO");
    let mut sent = Vec::new();
    loop {
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next())
            .await
            .expect("MONITOR shows the end marker within 10 s")
            .expect("the MONITOR connection stays open");
        if line.contains(MONITOR_END) {
            return sent;
        }
        // `1700000000.123456 [0 127.0.0.1:40000] "SET" "key" …`
        let Some((origin, command)) = line.split_once("] ") else {
            continue;
        };
        if !origin.ends_with(" lua") {
            sent.push(command.split('"').nth(1).unwrap_or_default().to_lowercase());
        }
    }
}

#[tokio::test]
async fn a_backup_s_lock_calls_are_three_round_trips_without_pings() {
    // Arrange: a Redis of the test's own, so the commands it sees are ours.
    let redis = crate::fault::servers::RedisServer::start().await;
    let locker = Locker::connect(&redis.url(), "backup:device:").expect("url");
    let devices: Vec<DeviceId> = (0..10).map(|_| device()).collect();

    // Act: what the scheduler and the pipeline ask of a successful backup.
    let backups = async {
        for d in &devices {
            locker.last_success(d).await.expect("up");
            let guard = locker
                .try_acquire(d, Duration::from_secs(30))
                .await
                .expect("up")
                .expect("free");
            guard
                .release_after_success(chrono::Utc::now(), Duration::from_secs(60), None)
                .await
                .expect("up");
        }
    };
    let sent = commands_sent_during(&redis.url(), backups).await;

    // Assert: no `UNWATCH` + `PING` before each call (deadpool-redis's own
    // recycling); the lock taken with its published hash in one script, the
    // success recorded in the script that releases it: a GET and two
    // EVALSHA per backup (the first EVALSHA of each script finds no script,
    // which is loaded and run again).
    let count = |name: &str| sent.iter().filter(|n| *n == name).count();
    assert_eq!(count("ping"), 0, "no ping per call: {sent:?}");
    assert_eq!(count("unwatch"), 0, "no unwatch per call: {sent:?}");
    assert_eq!(count("get"), 10, "{sent:?}");
    assert_eq!(count("set"), 0, "{sent:?}");
    assert_eq!(count("evalsha"), 2 * 10 + 2, "{sent:?}");
    assert_eq!(
        count("del"),
        0,
        "the release runs inside the script: {sent:?}"
    );
    for d in &devices {
        assert!(
            locker.last_success(d).await.expect("up").is_some(),
            "the success was recorded"
        );
        let again = locker
            .try_acquire(d, Duration::from_secs(30))
            .await
            .expect("up");
        assert!(again.is_some(), "the lock was released");
        again.expect("held").release().await.expect("up");
    }
}

#[tokio::test]
async fn connections_redis_dropped_are_replaced_without_failing_a_call() {
    // Arrange: a locker whose pooled connections Redis then closes.
    let redis = crate::fault::servers::RedisServer::start().await;
    let locker = Locker::connect(&redis.url(), "backup:device:").expect("url");
    // Calls at once, so the pool holds several connections.
    let warm: Vec<DeviceId> = (0..8).map(|_| device()).collect();
    let calls = futures_util::future::join_all(warm.iter().map(|d| locker.last_success(d))).await;
    assert!(calls.iter().all(Result::is_ok), "Redis up");
    let client = redis::Client::open(redis.url()).expect("url");
    let mut admin = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis up");
    let killed: i64 = redis::cmd("CLIENT")
        .arg(&["KILL", "TYPE", "normal", "SKIPME", "yes"][..])
        .query_async(&mut admin)
        .await
        .expect("CLIENT KILL");
    assert!(
        killed >= 2,
        "the locker held several connections, got {killed}"
    );

    // Act
    let d = device();
    let first = locker.try_acquire(&d, Duration::from_secs(30)).await;
    let second = locker.try_acquire(&d, Duration::from_secs(30)).await;

    // Assert: the call on a closed connection ran again on a new one, not
    // on another closed one from the pool.
    let guard = first
        .expect("a closed connection is replaced, not reported")
        .expect("the device is free");
    assert!(second.expect("up").is_none(), "the lock is really held");
    guard.release().await.expect("up");
}
