//! `entry_size_limit` (cachier's): a value whose encoding is over the limit is returned to its
//! caller and stored nowhere: not in the store, on each of the six stores, and not in process
//! either (an L1 in front of Redis, a memory cache). Counted as `too_large`.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::OnceLock;
use std::time::Duration;
use steadycache::{cached, Cache, Policy};
use steadycache_mongo::testing::MongoServer;
use steadycache_redis::testing::RedisServer;
use steadycache_s3::testing::S3Server;

const LIMIT: u64 = 1_000;

fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

fn policy() -> Policy {
    Policy::expire_after(Duration::from_secs(600)).with_entry_size_limit(LIMIT)
}

/// Two calls for a small value run its computation once; two for a value over the limit run
/// it twice, and the store has nothing under its key.
async fn small_kept_large_not(cache: &Cache, store: &str) {
    let runs = AtomicUsize::new(0);
    let get = |key: &'static str, len: usize| {
        let runs = &runs;
        async move {
            let compute = || async move {
                runs.fetch_add(1, SeqCst);
                Ok::<_, std::convert::Infallible>(vec![7u8; len])
            };
            ok(cache.get_or_compute(key, &policy(), compute).await)
        }
    };
    assert_eq!(get("small", 100).await.len(), 100);
    assert_eq!(get("small", 100).await.len(), 100);
    assert_eq!(runs.load(SeqCst), 1, "{store}: a small value is kept");
    assert_eq!(
        get("large", 5_000).await.len(),
        5_000,
        "{store}: still returned"
    );
    assert_eq!(get("large", 5_000).await.len(), 5_000);
    assert_eq!(
        runs.load(SeqCst),
        3,
        "{store}: a value over the limit is not kept"
    );
    assert!(
        ok(cache.get::<Vec<u8>>("large").await).is_none(),
        "{store}: the store holds nothing for it"
    );
    assert!(ok(cache.get::<Vec<u8>>("small").await).is_some());
    assert_eq!(cache.stats().too_large, 2, "{store}: each refusal counted");
}

#[tokio::test]
async fn on_memory() {
    small_kept_large_not(&Cache::memory(), "memory").await;
}

#[tokio::test]
async fn on_files_and_sqlite() {
    let dir = steadycache_api::testing::temp_dir("entry-limits");
    let files = ok(Cache::from_url_unshared(&format!(
        "file://{}",
        dir.join("files").display()
    )));
    small_kept_large_not(&files, "files").await;
    let db = dir.join("cache.db");
    let sqlite = ok(Cache::from_url_unshared(&format!(
        "sqlite://{}",
        db.display()
    )));
    small_kept_large_not(&sqlite, "sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis_with_and_without_an_l1() {
    let server = RedisServer::start();
    let plain = ok(Cache::from_url_unshared(&server.url()));
    small_kept_large_not(&plain, "redis").await;
    // Its own keys (a `clear` here would be an invalidation that sticks to the values computed
    // in the same millisecond).
    let url = format!("{}?local=64MiB&key_prefix=l1:", server.url());
    let with_l1 = ok(Cache::from_url_unshared(&url));
    small_kept_large_not(&with_l1, "redis with an L1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_mongodb() {
    let server = MongoServer::start();
    let cache = Cache::builder()
        .backend(ok(steadycache::MongoBackend::from_url(&server.url())))
        .build();
    small_kept_large_not(&cache, "mongodb").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_s3() {
    let server = S3Server::start();
    let cache = Cache::builder()
        .backend(ok(steadycache::S3Backend::open(
            server.config("limits", ""),
        )))
        .build();
    small_kept_large_not(&cache, "s3").await;
}

static BLOB_RUNS: AtomicUsize = AtomicUsize::new(0);

fn own_memory() -> &'static Cache {
    static C: OnceLock<Cache> = OnceLock::new();
    C.get_or_init(Cache::memory)
}

/// The macro's option, with fail-safe and stale-while-revalidate beside it, on a function
/// whose values live in process only.
#[cached(
    cache = own_memory(),
    ttl = "10m",
    fail_safe = "1h",
    stale_while_revalidate = "1m",
    entry_size_limit = 1_000
)]
fn blob(len: usize) -> Vec<u8> {
    BLOB_RUNS.fetch_add(1, SeqCst);
    vec![1u8; len]
}

#[test]
fn the_macro_option_keeps_large_values_out_of_the_in_process_tier() {
    for _ in 0..3 {
        assert_eq!(blob(10).len(), 10);
    }
    assert_eq!(BLOB_RUNS.load(SeqCst), 1);
    for _ in 0..3 {
        assert_eq!(blob(5_000).len(), 5_000);
    }
    assert_eq!(
        BLOB_RUNS.load(SeqCst),
        4,
        "computed on every call, never kept"
    );
    assert_eq!(blob_cache().stats().too_large, 3);
    assert!(blob_cache().get_cached_sync(5_000).is_none());
}
