//! Configs beyond the server's `max_payload` (1 MiB by default): gzip'd
//! inline when that fits, else through the object store; 20 MiB and 64 MiB
//! exports round-trip into the store.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use cfgsnap::backup::normalize::sha256_hex;
use cfgsnap::bus::ContentEncoding;
use futures_util::StreamExt as _;
use rand::Rng as _;

use super::events::{event, ingest};
use super::{Stack, TestBus, TestStore, eventually};

/// A RouterOS-like export of about `bytes` bytes. Random comments keep it
/// from compressing below `max_payload` unless `compressible`.
fn big_config(bytes: usize, compressible: bool) -> String {
    let mut rng = rand::thread_rng();
    let mut text = String::with_capacity(bytes + 128);
    text.push_str("# software id = BIG\n/ip firewall filter\n");
    let mut i = 0u64;
    while text.len() < bytes {
        let tag: u64 = if compressible { i % 7 } else { rng.r#gen() };
        // Writing to a String cannot fail.
        let _ok = writeln!(
            text,
            "add action=accept chain=forward comment=\"rule {i} {tag:016x}\" dst-port={}",
            i % 65535
        )
        .is_ok();
        i += 1;
    }
    text
}

/// Publishes `text` for `t1/r1`, waits until it is stored and checks it
/// came back byte for byte; returns the encoding used.
async fn round_trip(stack: Stack, text: String, wait: Duration) -> ContentEncoding {
    let tb = TestBus::start(stack).await;
    let ts = TestStore::start(&[("t1", "r1")]).await;
    ingest(&tb, &tb.bus, &ts).await;
    let event = event(&ts, "r1", &text);
    let hash = event.sha256_hash.clone();
    drop(text);

    let published = tb.bus.publish_snapshot(&event).await.expect("published");
    drop(event);

    let deadline = Instant::now() + wait;
    let meta = loop {
        let newest = ts.store.newest_snapshot("t1", "r1").await.expect("reads");
        if let Some(meta) = newest {
            break meta;
        }
        assert!(Instant::now() < deadline, "not stored within {wait:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(meta.sha256_hash, hash);
    let content = ts
        .store
        .snapshot_content("t1", "r1", meta.id)
        .await
        .expect("content");
    assert!(
        sha256_hex(&content) == hash,
        "stored content differs from the published text"
    );
    if published.encoding == ContentEncoding::ObjectStore {
        let bucket = tb.settings.object_bucket.clone();
        eventually(Duration::from_secs(10), "the object's deletion", || async {
            objects_in(&bucket).await == 0
        })
        .await;
    }
    tb.stop().await;
    published.encoding
}

/// Objects (not deleted) in a bucket, seen by a plain client.
async fn objects_in(bucket: &str) -> usize {
    let client = async_nats::connect(super::NATS_URL)
        .await
        .expect("connects");
    let store = async_nats::jetstream::new(client)
        .get_object_store(bucket)
        .await
        .expect("bucket exists");
    let list = store.list().await.expect("lists");
    list.count().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_20_mib_config_round_trips_through_nats_via_the_object_store() {
    crate::helpers::within(super::TEST_LIMIT, async {
        let text = big_config(20 * 1024 * 1024, false);
        let encoding = round_trip(Stack::Served, text, Duration::from_secs(120)).await;
        assert_eq!(encoding, ContentEncoding::ObjectStore);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_64_mib_config_round_trips_through_nats() {
    crate::helpers::within(super::TEST_LIMIT, async {
        let text = big_config(64 * 1024 * 1024, false);
        let encoding = round_trip(Stack::Served, text, Duration::from_secs(240)).await;
        assert_eq!(encoding, ContentEncoding::ObjectStore);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compressible_config_over_max_payload_travels_gzip_inline() {
    crate::helpers::within(super::TEST_LIMIT, async {
        let text = big_config(4 * 1024 * 1024, true);
        let encoding = round_trip(Stack::Served, text, Duration::from_secs(60)).await;
        assert_eq!(encoding, ContentEncoding::Gzip);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_20_mib_config_round_trips_through_the_local_bus() {
    crate::helpers::within(super::TEST_LIMIT, async {
        let text = big_config(20 * 1024 * 1024, false);
        let encoding = round_trip(Stack::Embedded, text, Duration::from_secs(120)).await;
        assert_eq!(encoding, ContentEncoding::Plain);
    })
    .await;
}
