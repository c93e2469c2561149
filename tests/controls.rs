//! Per-call control from a function's handle (issue 13, option 7): `refresh`, `bypass`,
//! `call_with(CallOptions::max_age(d))`, `prime` and `get_cached`, sync and async, on memory
//! and files; `max_age` on an injected clock.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::Duration;
use steadycache::{cached, Cache, CallOptions};
use steadycache_api::testing::clock;

fn file_cache() -> Cache {
    let dir = steadycache_api::testing::temp_dir("controls");
    Cache::from_url(&format!("file://{}", dir.display())).unwrap()
}

macro_rules! scenario {
    ($m:ident, $cache:expr) => {
        mod $m {
            use super::*;
            static RUNS: AtomicU64 = AtomicU64::new(0);
            static ARUNS: AtomicU64 = AtomicU64::new(0);

            /// Each computation returns a new number: which one a call got says where from. The
            /// distributed lock (on files) must not hand back a value older than `max_age`.
            #[cached(cache = $cache, ttl = "1h", lock = "distributed")]
            fn next(k: u32) -> u64 {
                u64::from(k) * 1000 + RUNS.fetch_add(1, SeqCst)
            }

            #[cached(cache = $cache, ttl = "1h")]
            async fn next_async(k: u32) -> u64 {
                u64::from(k) * 1000 + ARUNS.fetch_add(1, SeqCst)
            }

            #[test]
            fn sync_controls() {
                let _one = clock::exclusive();
                let h = next_cache();
                assert_eq!(h.get_cached_sync(1), None, "nothing cached yet");
                let first = next(1);
                assert_eq!(h.get_cached_sync(1), Some(first));
                assert_eq!(next(1), first, "a hit");
                let refreshed = h.refresh(1);
                assert_ne!(refreshed, first, "computed again");
                assert_eq!(next(1), refreshed, "and stored");
                let bypassed = h.bypass(1);
                assert_ne!(bypassed, refreshed, "computed without the cache");
                assert_eq!(next(1), refreshed, "and not stored");
                // max_age: an entry 5 s old is fine for 10 s, too old for 2 s.
                clock::advance(Duration::from_secs(5));
                assert_eq!(
                    h.call_with(CallOptions::max_age(Duration::from_secs(10)), 1),
                    refreshed
                );
                let young = h.call_with(CallOptions::max_age(Duration::from_secs(2)), 1);
                assert_ne!(young, refreshed);
                assert_eq!(next(1), young, "the recomputed value is stored");
                // prime: a value stored as if computed; the function does not run.
                let runs = RUNS.load(SeqCst);
                assert!(h.prime_sync(2, 77).unwrap());
                assert_eq!(next(2), 77);
                assert_eq!(RUNS.load(SeqCst), runs);
            }

            #[test]
            fn async_controls() {
                let _one = clock::exclusive();
                let rt = tokio::runtime::Runtime::new().unwrap();
                rt.block_on(async {
                    let h = next_async_cache();
                    assert_eq!(h.get_cached(1).await, None);
                    let first = next_async(1).await;
                    assert_eq!(h.get_cached(1).await, Some(first));
                    let refreshed = h.refresh(1).await;
                    assert_ne!(refreshed, first);
                    assert_eq!(next_async(1).await, refreshed);
                    assert_ne!(h.bypass(1).await, refreshed);
                    assert_eq!(next_async(1).await, refreshed);
                    clock::advance(Duration::from_secs(5));
                    let old = CallOptions::max_age(Duration::from_secs(2));
                    let young = h.call_with(old, 1).await;
                    assert_ne!(young, refreshed);
                    assert!(h.prime(3, 5).await.unwrap());
                    assert_eq!(next_async(3).await, 5);
                    assert_eq!(h.get_cached_sync(3), Some(5), "the sync read sees it too");
                });
            }
        }
    };
}

static ORIGIN_RUNS: AtomicU64 = AtomicU64::new(0);

#[cached(ttl = "1s", stale_while_revalidate = "1h", fail_safe = "1h")]
fn traced(k: u32) -> Result<u64, String> {
    match ORIGIN_RUNS.fetch_add(1, SeqCst) {
        0 => Ok(u64::from(k)),
        _ => Err("down".into()),
    }
}

#[test]
fn call_with_origin_says_where_each_value_came_from() {
    use steadycache::Origin;
    let _one = clock::exclusive();
    let h = traced_cache();
    assert_eq!(h.call_with_origin(4), (Ok(4), Origin::Computed));
    assert_eq!(h.call_with_origin(4), (Ok(4), Origin::Hit));
    assert_eq!(
        steadycache::with_options(CallOptions::bypass(), || h.call_with_origin(4)).1,
        Origin::Uncached
    );
    clock::advance(Duration::from_secs(2)); // stale: served at once, refreshed behind
    assert_eq!(h.call_with_origin(4), (Ok(4), Origin::Stale));
    clock::advance(Duration::from_secs(3650)); // past the stale window, kept by fail-safe
    assert_eq!(h.call_with_origin(4), (Ok(4), Origin::FailSafe));
    let (v, o) = steadycache::with_origin(|| 40 + 2);
    assert_eq!((v, o), (42, Origin::Uncached));
}

#[test]
fn the_handle_type_is_named_after_the_function() {
    let h: TracedCache = traced_cache();
    assert_eq!(format!("{h:?}"), "TracedCache(())");
}

fn shared_dir() -> &'static str {
    static DIR: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = steadycache_api::testing::temp_dir("l1-l2");
        format!("file://{}?local=1MiB", dir.display())
    })
}
fn process_a() -> Cache {
    Cache::from_url(shared_dir()).unwrap()
}
fn process_b() -> Cache {
    Cache::from_url(shared_dir()).unwrap()
}
static A_RUNS: AtomicU64 = AtomicU64::new(0);
static B_RUNS: AtomicU64 = AtomicU64::new(0);

/// One function as two processes see it: the same key (namespace and version), each cache
/// with its own in-process tier over one directory.
#[cached(cache = process_a(), key_prefix = "shared", version = "1", ttl = "1h", stale_after = "1s")]
fn in_a(k: u32) -> u64 {
    u64::from(k) + 100 * A_RUNS.fetch_add(1, SeqCst)
}
#[cached(cache = process_b(), key_prefix = "shared", version = "1", ttl = "1h", stale_after = "1s")]
fn in_b(k: u32) -> u64 {
    u64::from(k) + 1000 * (1 + B_RUNS.fetch_add(1, SeqCst))
}

#[test]
fn a_stale_local_copy_gives_way_to_a_newer_value_in_the_store() {
    let _one = clock::exclusive();
    assert_eq!(in_a(1), 1); // computed in A, kept in A's tier and on disk
    assert_eq!(in_b(1), 1); // read from disk by B
    clock::advance(Duration::from_secs(2));
    assert_eq!(in_b_cache().refresh(1), 1001); // B recomputes and stores
                                               // A's own copy is stale now, but the store has B's newer value: A serves it, computing
                                               // nothing.
    assert_eq!(in_a(1), 1001);
    assert_eq!(A_RUNS.load(SeqCst), 1);
}

scenario!(memory, Cache::memory());
scenario!(files, file_cache());

/// Every store operation of a `Cache` has its blocking `_sync` twin (the async one has the plain
/// name), usable outside any runtime.
#[test]
fn the_cache_has_a_blocking_twin_for_every_store_operation() {
    use std::time::Duration;
    use steadycache::{Cache, Policy};
    let cache = Cache::memory();
    let policy = Policy::expire_after(Duration::from_secs(60));
    for k in ["a:1", "a:2", "b:1"] {
        cache.set_sync(k, &7u32, &policy).unwrap();
    }
    assert_eq!(cache.get_sync::<u32>("a:1").unwrap(), Some(7));
    assert!(cache.invalidate_sync("a:1").unwrap());
    assert_eq!(cache.get_sync::<u32>("a:1").unwrap(), None);
    assert!(cache.invalidate_prefix_sync("a:").unwrap() >= 1);
    assert_eq!(cache.get_sync::<u32>("a:2").unwrap(), None);
    assert_eq!(cache.clear_namespace_sync("no.such.fn").unwrap(), 0);
    assert!(cache.clear_sync().unwrap() >= 1);
    assert_eq!(cache.get_sync::<u32>("b:1").unwrap(), None);
}
