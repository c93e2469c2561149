//! The engine through `#[cached]`, on the default memory cache and on a byte-level cache.
//! Every assertion is on counts and values, never on time.

use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Barrier};
use std::time::Duration;
use steadycache::{cached, with_options, with_options_async, CallOptions};

static SQUARE_RUNS: AtomicUsize = AtomicUsize::new(0);
#[cached(ttl = "10m")]
fn square(x: u64) -> u64 {
    SQUARE_RUNS.fetch_add(1, SeqCst);
    x * x
}

#[test]
fn sync_hit_runs_the_function_once_per_key() {
    for _ in 0..5 {
        assert_eq!(square(3), 9);
        assert_eq!(square(4), 16);
    }
    assert_eq!(SQUARE_RUNS.load(SeqCst), 2);
    let s = square_cache().stats();
    assert_eq!((s.misses, s.hits), (2, 8));
    // invalidate one call, then clear all
    assert!(square_cache().invalidate_sync(3).unwrap());
    assert_eq!(square(3), 9);
    assert_eq!(SQUARE_RUNS.load(SeqCst), 3);
    square_cache().clear_sync().unwrap();
    assert_eq!(square(4), 16);
    assert_eq!(SQUARE_RUNS.load(SeqCst), 4);
}

static SLOW_RUNS: AtomicUsize = AtomicUsize::new(0);
#[cached(ttl = "10m")]
async fn slow_async(city: String) -> Result<String, String> {
    SLOW_RUNS.fetch_add(1, SeqCst);
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ok(format!("forecast for {city}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hundred_concurrent_async_callers_run_once() {
    let tasks: Vec<_> = (0..100)
        .map(|_| tokio::spawn(slow_async("Oslo".to_string())))
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), Ok("forecast for Oslo".to_string()));
    }
    assert_eq!(SLOW_RUNS.load(SeqCst), 1);
    assert_eq!(
        slow_async("Oslo".into()).await.unwrap(),
        "forecast for Oslo"
    );
    assert_eq!(SLOW_RUNS.load(SeqCst), 1);
    assert!(slow_async_cache().stats().coalesced >= 1);
}

static THREAD_RUNS: AtomicUsize = AtomicUsize::new(0);
#[cached(ttl = "10m")]
fn slow_sync(x: u32) -> u32 {
    THREAD_RUNS.fetch_add(1, SeqCst);
    std::thread::sleep(Duration::from_millis(200));
    x + 1
}

#[test]
fn concurrent_sync_callers_on_a_cold_key_run_once() {
    let barrier = Arc::new(Barrier::new(16));
    let handles: Vec<_> = (0..16)
        .map(|_| {
            let b = barrier.clone();
            std::thread::spawn(move || {
                b.wait();
                slow_sync(7)
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), 8);
    }
    assert_eq!(THREAD_RUNS.load(SeqCst), 1);
}

#[derive(Debug, Clone, PartialEq)]
struct ApiError(String);

static FAIL_RUNS: AtomicUsize = AtomicUsize::new(0);
#[cached(ttl = "10m")]
async fn failing(x: u32) -> Result<u32, ApiError> {
    FAIL_RUNS.fetch_add(1, SeqCst);
    tokio::time::sleep(Duration::from_millis(200)).await;
    Err(ApiError(format!("upstream down for {x}")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn waiters_of_a_failing_leader_get_its_error_and_nothing_is_cached() {
    let tasks: Vec<_> = (0..20).map(|_| tokio::spawn(failing(1))).collect();
    for t in tasks {
        assert_eq!(
            t.await.unwrap(),
            Err(ApiError("upstream down for 1".into()))
        );
    }
    // One leader ran; its (Clone) error was shared with the 19 waiters.
    assert_eq!(FAIL_RUNS.load(SeqCst), 1);
    // Errors are not cached by default: the next call runs again.
    assert!(failing(1).await.is_err());
    assert_eq!(FAIL_RUNS.load(SeqCst), 2);
}

static PANIC_RUNS: AtomicUsize = AtomicUsize::new(0);
#[cached(ttl = "10m")]
fn panics_first(x: u32) -> u32 {
    let n = PANIC_RUNS.fetch_add(1, SeqCst);
    std::thread::sleep(Duration::from_millis(150));
    if n == 0 {
        panic!("the first call panics");
    }
    x * 10
}

#[test]
fn a_panicking_leader_releases_its_waiters() {
    let barrier = Arc::new(Barrier::new(4));
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let b = barrier.clone();
            std::thread::spawn(move || {
                b.wait();
                panics_first(5)
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join()).collect();
    let ok: Vec<u32> = results
        .iter()
        .filter_map(|r| r.as_ref().ok().copied())
        .collect();
    assert_eq!(
        results.iter().filter(|r| r.is_err()).count(),
        1,
        "only the leader panics"
    );
    assert_eq!(ok, vec![50, 50, 50]);
    // Nobody hung, the cache is not poisoned. A panic cannot be shared, so the round's three
    // waiters computed at once, side by side (never one after another): 1 + 3 runs.
    assert_eq!(PANIC_RUNS.load(SeqCst), 4);
    assert_eq!(panics_first(5), 50);
    assert_eq!(PANIC_RUNS.load(SeqCst), 4, "then a hit");
}

static SWR_RUNS: AtomicUsize = AtomicUsize::new(0);
#[cached(ttl = "200ms", stale_while_revalidate = "1h")]
fn swr(x: u32) -> u32 {
    let n = SWR_RUNS.fetch_add(1, SeqCst) as u32;
    std::thread::sleep(Duration::from_millis(300));
    x + n
}

#[test]
fn stale_while_revalidate_serves_stale_and_refreshes_once() {
    assert_eq!(swr(100), 100);
    std::thread::sleep(Duration::from_millis(400)); // now stale
                                                    // Many callers on the stale key: all get the stale value at once; ONE background refresh.
    let handles: Vec<_> = (0..10).map(|_| std::thread::spawn(|| swr(100))).collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), 100);
    }
    // Wait for the refresh to land (bounded, by count).
    for _ in 0..100 {
        if swr_cache().stats().refreshes >= 1 && swr(100) == 101 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(swr(100), 101);
    assert_eq!(SWR_RUNS.load(SeqCst), 2, "exactly one background refresh");
    assert!(swr_cache().stats().stale >= 10);
}

static SWR_OWNED_RUNS: AtomicUsize = AtomicUsize::new(0);
/// Owned, non-`Copy` arguments of an async function with a background refresh (the README's
/// headline form): they are cloned for the refresh job and for the computation.
#[cached(ttl = "200ms", stale_while_revalidate = "1h")]
async fn swr_owned(city: String, tags: Vec<String>) -> Result<String, String> {
    let n = SWR_OWNED_RUNS.fetch_add(1, SeqCst);
    Ok(format!("{city}:{}:{n}", tags.len()))
}

#[tokio::test]
async fn stale_while_revalidate_takes_owned_arguments() {
    let call = || swr_owned("Oslo".to_string(), vec!["a".to_string()]);
    assert_eq!(call().await.as_deref(), Ok("Oslo:1:0"));
    tokio::time::sleep(Duration::from_millis(300)).await; // now stale
    assert_eq!(
        call().await.as_deref(),
        Ok("Oslo:1:0"),
        "stale, served at once"
    );
    for _ in 0..100 {
        if call().await.as_deref() == Ok("Oslo:1:1") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        call().await.as_deref(),
        Ok("Oslo:1:1"),
        "refreshed in the background"
    );
    assert_eq!(SWR_OWNED_RUNS.load(SeqCst), 2);
}

static NONE_RUNS: AtomicUsize = AtomicUsize::new(0);
#[cached(ttl = "10m")]
fn lookup_user(id: u32) -> Option<String> {
    NONE_RUNS.fetch_add(1, SeqCst);
    (id == 1).then(|| "ada".to_string())
}

static NONE_CACHED_RUNS: AtomicUsize = AtomicUsize::new(0);
#[cached(ttl = "10m", negative_ttl = "10m")]
fn lookup_user_negative_ttl(id: u32) -> Option<String> {
    NONE_CACHED_RUNS.fetch_add(1, SeqCst);
    (id == 1).then(|| "ada".to_string())
}

#[test]
fn none_is_cached_only_when_asked() {
    for _ in 0..3 {
        assert_eq!(lookup_user(2), None);
        assert_eq!(lookup_user(1).as_deref(), Some("ada"));
    }
    assert_eq!(
        NONE_RUNS.load(SeqCst),
        4,
        "None recomputed each time, Some once"
    );
    for _ in 0..3 {
        assert_eq!(lookup_user_negative_ttl(2), None);
    }
    assert_eq!(NONE_CACHED_RUNS.load(SeqCst), 1);
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Denied(String);
static ERR_RUNS: AtomicUsize = AtomicUsize::new(0);
#[cached(ttl = "10m", negative_ttl = "10m")]
fn may_fail(x: u32) -> Result<u32, Denied> {
    ERR_RUNS.fetch_add(1, SeqCst);
    if x == 0 {
        Err(Denied("zero".into()))
    } else {
        Ok(x)
    }
}

#[test]
fn errors_are_cached_when_asked() {
    for _ in 0..3 {
        assert_eq!(may_fail(0), Err(Denied("zero".into())));
    }
    assert_eq!(ERR_RUNS.load(SeqCst), 1);
}

static BYPASS_RUNS: AtomicUsize = AtomicUsize::new(0);
#[cached(ttl = "10m")]
fn bypassable(x: u32) -> u32 {
    BYPASS_RUNS.fetch_add(1, SeqCst) as u32 + x
}

#[test]
fn bypass_refresh_and_per_function_disable() {
    assert_eq!(bypassable(0), 0);
    assert_eq!(bypassable(0), 0);
    assert_eq!(BYPASS_RUNS.load(SeqCst), 1);
    // bypass: runs, reads and writes nothing
    assert_eq!(with_options(CallOptions::bypass(), || bypassable(0)), 1);
    assert_eq!(bypassable(0), 0);
    // force refresh: runs and stores
    assert_eq!(with_options(CallOptions::refresh(), || bypassable(0)), 2);
    assert_eq!(bypassable(0), 2);
    assert_eq!(BYPASS_RUNS.load(SeqCst), 3);
    // per-function disable
    bypassable_cache().set_enabled(false);
    assert_eq!(bypassable(0), 3);
    assert_eq!(bypassable(0), 4);
    bypassable_cache().set_enabled(true);
    assert_eq!(bypassable(0), 2, "the stored value is still there");
}

static ASYNC_BYPASS_RUNS: AtomicUsize = AtomicUsize::new(0);
#[cached]
async fn async_bypassable() -> usize {
    ASYNC_BYPASS_RUNS.fetch_add(1, SeqCst)
}

#[tokio::test]
async fn async_scoped_bypass_follows_the_task() {
    assert_eq!(async_bypassable().await, 0);
    let v = with_options_async(CallOptions::bypass(), async {
        tokio::task::yield_now().await;
        async_bypassable().await
    })
    .await;
    assert_eq!(v, 1);
    assert_eq!(async_bypassable().await, 0);
}

static TPL_RUNS: AtomicUsize = AtomicUsize::new(0);
struct Client;
#[cached(key = "user:{id}", ttl = "10m")]
fn user_name(_client: &Client, id: u64) -> String {
    TPL_RUNS.fetch_add(1, SeqCst);
    format!("user-{id}")
}

static SKIP_RUNS: AtomicUsize = AtomicUsize::new(0);
#[cached(skip(_client), ttl = "10m")]
fn user_email(_client: &Client, id: u64) -> String {
    SKIP_RUNS.fetch_add(1, SeqCst);
    format!("{id}@example.com")
}

#[test]
fn template_keys_and_skipped_arguments() {
    let c = Client;
    assert_eq!(user_name(&c, 1), "user-1");
    assert_eq!(user_name(&c, 1), "user-1");
    assert_eq!(user_name(&c, 2), "user-2");
    assert_eq!(TPL_RUNS.load(SeqCst), 2);
    assert_eq!(
        user_name_cache().key(&Client, 1).unwrap(),
        format!(
            "{}:{}:user:1",
            user_name_cache().namespace(),
            user_name_cache().version()
        )
    );
    assert!(user_name_cache().namespace().ends_with("memo.user_name"));
    assert_eq!(user_email(&c, 1), "1@example.com");
    assert_eq!(user_email(&Client, 1), "1@example.com");
    assert_eq!(SKIP_RUNS.load(SeqCst), 1);
}

struct Repo {
    base: u64,
}
static METHOD_RUNS: AtomicUsize = AtomicUsize::new(0);
impl Repo {
    /// Shared across instances, as written.
    #[cached(ttl = "10m", key_self = false)]
    fn total(&self, n: u64) -> u64 {
        METHOD_RUNS.fetch_add(1, SeqCst);
        self.base + n
    }

    #[cached(ttl = "10m", key_self = true)]
    async fn total_keyed(&self, n: u64) -> u64 {
        self.base * 100 + n
    }
}

impl Serialize for Repo {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.base.serialize(s)
    }
}

#[tokio::test]
async fn methods_skip_self_unless_asked() {
    let a = Repo { base: 1 };
    let b = Repo { base: 2 };
    assert_eq!(a.total(5), 6);
    assert_eq!(b.total(5), 6, "key_self = false shares across instances");
    assert_eq!(METHOD_RUNS.load(SeqCst), 1);
    assert_eq!(a.total_keyed(5).await, 105);
    assert_eq!(b.total_keyed(5).await, 205, "key_self puts self in the key");
    assert!(Repo::total_invalidate_sync(7).is_ok());
}

// ---- a byte-level cache (not plain memory): the sync path goes through the library runtime.

fn json_cache() -> steadycache::Cache {
    steadycache::Cache::builder()
        .backend(steadycache::MemoryBackend::default())
        .codec(steadycache::Codec::json())
        .build()
}

static REMOTE_RUNS: AtomicUsize = AtomicUsize::new(0);
#[cached(cache = json_cache(), ttl = "10m")]
fn remote_square(x: u64) -> u64 {
    REMOTE_RUNS.fetch_add(1, SeqCst);
    x * x
}

#[test]
fn sync_fn_on_a_byte_cache_works_outside_tokio() {
    assert_eq!(remote_square(5), 25);
    assert_eq!(remote_square(5), 25);
    assert_eq!(REMOTE_RUNS.load(SeqCst), 1);
    assert!(!remote_square_cache().cache().has_typed_tier());
}

static INSIDE_RUNS: AtomicUsize = AtomicUsize::new(0);
#[cached(cache = json_cache(), ttl = "10m")]
fn remote_cube(x: u64) -> u64 {
    INSIDE_RUNS.fetch_add(1, SeqCst);
    x * x * x
}

#[tokio::test(flavor = "current_thread")]
async fn sync_fn_on_a_byte_cache_works_inside_a_tokio_runtime() {
    assert_eq!(remote_cube(2), 8);
    assert_eq!(remote_cube(2), 8);
    assert_eq!(INSIDE_RUNS.load(SeqCst), 1);
    // and the stored value is JSON, readable by anyone
    let key = remote_cube_cache().key(2).unwrap();
    let raw = remote_cube_cache()
        .cache()
        .backend()
        .get(&key)
        .await
        .unwrap()
        .unwrap();
    let entry = steadycache::Entry::decode(&raw).unwrap();
    assert_eq!(entry.payload, b"8");
}

static VERSION_RUNS: AtomicUsize = AtomicUsize::new(0);
#[cached(version = "7", key_prefix = "pinned")]
fn pinned(x: u8) -> u8 {
    VERSION_RUNS.fetch_add(1, SeqCst);
    x
}

#[test]
fn version_and_prefix_are_in_the_key() {
    assert_eq!(pinned(1), 1);
    assert_eq!(pinned_cache().version(), "7");
    assert_eq!(pinned_cache().namespace(), "pinned");
    // Without `version`, the version is a hash of the function's tokens.
    assert_eq!(square_cache().version().len(), 8);
}

// ---- by hand

#[tokio::test]
async fn get_or_compute_by_hand_and_fail_open_on_corrupt_entries() {
    let cache = steadycache::Cache::from_url("mem://?max_bytes=1000000").unwrap();
    let policy = steadycache::Policy::expire_after(Duration::from_secs(60));
    let runs = AtomicUsize::new(0);
    for _ in 0..3 {
        let v: Vec<u32> = cache
            .get_or_compute("by-hand:1", &policy, || async {
                runs.fetch_add(1, SeqCst);
                Ok::<_, std::io::Error>(vec![1, 2, 3])
            })
            .await
            .unwrap();
        assert_eq!(v, vec![1, 2, 3]);
    }
    assert_eq!(runs.load(SeqCst), 1);
    // A foreign value under the key is a logged miss, then healed.
    cache
        .backend()
        .set("by-hand:1", b"garbage".to_vec(), None)
        .await
        .unwrap();
    let v: Vec<u32> = cache
        .get_or_compute("by-hand:1", &policy, || async { Ok::<_, ()>(vec![9]) })
        .await
        .unwrap();
    assert_eq!(v, vec![9]);
    assert_eq!(cache.stats().corrupt, 1);
    assert!(steadycache::Cache::from_url("nope://x").is_err());
    assert!(steadycache::Cache::from_url("mem://?max_bytes=abc").is_err());
}

static FAILSAFE_RUNS: AtomicUsize = AtomicUsize::new(0);
#[cached(stale_after = "150ms", ttl = "1h")]
fn failsafe(x: u32) -> Result<u32, String> {
    let n = FAILSAFE_RUNS.fetch_add(1, SeqCst);
    if n == 0 {
        Ok(x)
    } else {
        Err("upstream down".into())
    }
}

#[test]
fn a_failed_blocking_refresh_serves_the_stale_value() {
    assert_eq!(failsafe(1), Ok(1));
    std::thread::sleep(Duration::from_millis(300)); // stale now
    assert_eq!(failsafe(1), Ok(1), "refresh failed: stale value served");
    assert_eq!(FAILSAFE_RUNS.load(SeqCst), 2, "the refresh did run");
    let s = failsafe_cache().stats();
    assert_eq!((s.refreshes, s.errors, s.stale), (1, 1, 1));
}

#[tokio::test]
async fn signed_entries_from_another_key_are_rejected() {
    let shared: std::sync::Arc<dyn steadycache::Backend> =
        std::sync::Arc::new(steadycache::MemoryBackend::default());
    let mine = steadycache::Cache::builder()
        .backend(shared.clone())
        .codec(
            steadycache::Codec::bincode()
                .signed(b"my key, sixteen bytes+")
                .unwrap(),
        )
        .build();
    let theirs = steadycache::Cache::builder()
        .backend(shared)
        .codec(
            steadycache::Codec::bincode()
                .signed(b"someone else's key")
                .unwrap(),
        )
        .build();
    let policy = steadycache::Policy::expire_after(Duration::from_secs(60));
    theirs.set("k", &666u64, &policy).await.unwrap();
    let v: u64 = mine
        .get_or_compute("k", &policy, || async { Ok::<_, ()>(1) })
        .await
        .unwrap();
    assert_eq!(v, 1, "a value signed with another key is never served");
    assert_eq!(mine.stats().corrupt, 1);
    assert_eq!(mine.get::<u64>("k").await.unwrap(), Some(1));
}
