//! The typed in-process tier (issue "Engine v2", part 2): one budget per cache shared by all its
//! functions, values that fit the budget are kept, values that do not are counted, removals on
//! the cache reach every function's tier, and the tier can sit in front of any backend.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, LazyLock};
use steadycache::{
    cached, plumbing::async_trait, Backend, Cache, CacheManager, Codec, DefaultManager, Entry,
    FileBackend, FileConfig, LocalTier, Result,
};

const KB: usize = 1024;

static SHARED: LazyLock<Cache> =
    LazyLock::new(|| Cache::from_url("mem://?max_bytes=1048576").unwrap());

macro_rules! twenty_functions {
    ($(($name:ident, $handle:ident)),*) => {
        $(
            #[cached(cache = &*SHARED, ttl = "10m")]
            fn $name(i: u32) -> Vec<u8> {
                vec![i as u8; 100 * KB]
            }
        )*
        /// Entries held by the twenty functions' tiers together.
        fn held() -> usize {
            0 $(+ $handle().local_len())*
        }
        fn fill() {
            for i in 0..10 {
                $( $name(i); )*
            }
        }
    };
}

twenty_functions!(
    (f00, f00_cache),
    (f01, f01_cache),
    (f02, f02_cache),
    (f03, f03_cache),
    (f04, f04_cache),
    (f05, f05_cache),
    (f06, f06_cache),
    (f07, f07_cache),
    (f08, f08_cache),
    (f09, f09_cache),
    (f10, f10_cache),
    (f11, f11_cache),
    (f12, f12_cache),
    (f13, f13_cache),
    (f14, f14_cache),
    (f15, f15_cache),
    (f16, f16_cache),
    (f17, f17_cache),
    (f18, f18_cache),
    (f19, f19_cache)
);

#[test]
fn twenty_functions_stay_under_their_cache_budget() {
    fill();
    // 100 KB values (plus overhead) on a 1 MiB cache: at most 10 of them, for all 20 together.
    let entries = held();
    assert!(
        entries <= 10,
        "{entries} entries of 100 KB on a 1 MiB cache"
    );
    assert!(entries > 0);
    assert!(SHARED.typed_tier_bytes() <= 1 << 20);
}

static BIG_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(cache = "mem://?max_bytes=1048576", ttl = "10m")]
fn two_hundred_kb(i: u32) -> Vec<u8> {
    BIG_RUNS.fetch_add(1, SeqCst);
    vec![i as u8; 200 * KB]
}

#[test]
fn a_value_that_fits_the_budget_is_kept() {
    assert_eq!(two_hundred_kb(1).len(), 200 * KB);
    assert_eq!(two_hundred_kb(1).len(), 200 * KB);
    assert_eq!(BIG_RUNS.load(SeqCst), 1, "the second call is a hit");
    assert_eq!(two_hundred_kb_cache().stats().hits, 1);
}

static HUGE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(cache = "mem://?max_bytes=1048576", ttl = "10m")]
fn two_mb(i: u32) -> Vec<u8> {
    HUGE_RUNS.fetch_add(1, SeqCst);
    vec![i as u8; 2048 * KB]
}

#[test]
fn a_value_larger_than_the_budget_is_counted_not_silently_dropped() {
    two_mb(1);
    two_mb(1);
    assert_eq!(HUGE_RUNS.load(SeqCst), 2, "not kept");
    assert_eq!(two_mb_cache().stats().too_large, 2, "and counted");
}

static CLEARED: LazyLock<Cache> = LazyLock::new(Cache::memory);
static CLEAR_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(cache = &*CLEARED, key = "user:{id}", ttl = "10m")]
fn user(id: u32) -> String {
    CLEAR_RUNS.fetch_add(1, SeqCst);
    format!("user {id}")
}

#[tokio::test]
async fn removals_on_the_cache_reach_the_typed_tiers() {
    let call = |id| {
        user(id);
        CLEAR_RUNS.load(SeqCst)
    };
    assert_eq!(call(1), 1);
    assert_eq!(call(1), 1, "a typed hit");
    CLEARED.clear().await.unwrap();
    assert_eq!(call(1), 2, "Cache::clear reached the function's tier");
    CLEARED
        .invalidate(&user_cache().key(1).unwrap())
        .await
        .unwrap();
    assert_eq!(call(1), 3, "Cache::invalidate reached it");
    CLEARED
        .invalidate_prefix(user_cache().namespace())
        .await
        .unwrap();
    assert_eq!(call(1), 4, "Cache::invalidate_prefix reached it");
    assert_eq!(call(1), 4);
}

/// A manager that counts the loads and saves that reach it.
#[derive(Debug)]
struct Counting {
    inner: DefaultManager,
    loads: AtomicUsize,
    saves: AtomicUsize,
}

#[async_trait]
impl CacheManager for Counting {
    fn backend(&self) -> &dyn Backend {
        self.inner.backend()
    }
    fn codec(&self) -> &Codec {
        self.inner.codec()
    }
    async fn load(&self, key: &str) -> Result<Option<Entry>> {
        self.loads.fetch_add(1, SeqCst);
        self.inner.load(key).await
    }
    async fn save(&self, key: &str, entry: &Entry) -> Result<()> {
        self.saves.fetch_add(1, SeqCst);
        self.inner.save(key, entry).await
    }
}

fn counting_over_files(tier: Option<LocalTier>) -> (Cache, Arc<Counting>) {
    let dir = steadycache_api::testing::temp_dir("tiers");
    let files = FileBackend::open(FileConfig::new(dir)).unwrap();
    let m = Arc::new(Counting {
        inner: DefaultManager::new(Arc::new(files), Codec::bincode()),
        loads: AtomicUsize::new(0),
        saves: AtomicUsize::new(0),
    });
    let mut b = Cache::builder().manager(m.clone());
    if let Some(t) = tier {
        b = b.local_tier(t);
    }
    (b.build(), m)
}

static SEEN: LazyLock<(Cache, Arc<Counting>)> = LazyLock::new(|| counting_over_files(None));

#[cached(cache = &SEEN.0, ttl = "10m")]
fn seen(i: u32) -> u32 {
    i * 2
}

#[test]
fn an_overridden_load_and_save_see_every_sync_call() {
    assert_eq!(seen(1), 2);
    assert_eq!(seen(1), 2);
    let m = &SEEN.1;
    assert_eq!(m.saves.load(SeqCst), 1, "the store went through save");
    assert!(m.loads.load(SeqCst) >= 2, "both lookups went through load");
}

static FRONTED: LazyLock<(Cache, Arc<Counting>)> =
    LazyLock::new(|| counting_over_files(Some(LocalTier::new(1 << 20))));
static FRONT_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(cache = &FRONTED.0, ttl = "10m")]
fn fronted(i: u32) -> u32 {
    FRONT_RUNS.fetch_add(1, SeqCst);
    i + 1
}

#[test]
fn a_local_tier_in_front_of_a_backend_serves_typed_hits() {
    assert!(FRONTED.0.has_typed_tier());
    // Copies of a shared store are served once its invalidation bus is heard.
    assert!(steadycache_api::testing::eventually(|| FRONTED
        .0
        .health()
        .bus_live));
    assert_eq!(fronted(1), 2);
    let loads = FRONTED.1.loads.load(SeqCst);
    for _ in 0..5 {
        assert_eq!(fronted(1), 2);
    }
    assert_eq!(FRONT_RUNS.load(SeqCst), 1);
    assert_eq!(FRONTED.1.saves.load(SeqCst), 1, "stored in L2 too");
    assert_eq!(FRONTED.1.loads.load(SeqCst), loads, "hits never reach L2");
    // Invalidating removes both copies.
    fronted_cache().invalidate_sync(1).unwrap();
    assert_eq!(fronted(1), 2);
    assert_eq!(FRONT_RUNS.load(SeqCst), 2);
}

#[test]
fn url_options_turn_the_typed_tier_on() {
    let dir = steadycache_api::testing::temp_dir("tiers-url");
    let url = format!("file://{}", dir.display());
    assert!(!Cache::from_url(&url).unwrap().has_typed_tier());
    assert!(
        Cache::from_url(&format!("{url}?local=64MiB&local_max_entries=10"))
            .unwrap()
            .has_typed_tier()
    );
    assert!(Cache::from_url(&format!("{url}?local=lots")).is_err());
    assert!(Cache::from_url("mem://?max_bytes=4096&max_entries=2")
        .unwrap()
        .has_typed_tier());
}
