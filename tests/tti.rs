//! Time-to-idle (`tti`, issue 25 item 6), on the injected clock: a value read keeps living, a
//! value not read for `tti` is gone; beside a ttl, fail-safe and stale-while-revalidate, and as
//! the L1 in front of a store (the idle copy is read from the store again, not recomputed).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::OnceLock;
use std::time::Duration;
use steadycache::{cached, Cache, LocalTier};
use steadycache_api::testing::clock;

const MIN: Duration = Duration::from_secs(60);

fn memory() -> &'static Cache {
    static C: OnceLock<Cache> = OnceLock::new();
    C.get_or_init(Cache::memory)
}

static IDLE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(cache = memory(), tti = "10m")]
fn idle(_k: u32) -> u64 {
    IDLE_RUNS.fetch_add(1, SeqCst) as u64
}

#[test]
fn reads_keep_a_value_and_ten_idle_minutes_drop_it() {
    let _one = clock::exclusive();
    assert_eq!(idle(1), 0);
    // Read every 9 minutes for an hour and a half: never idle for 10, never recomputed.
    for _ in 0..10 {
        clock::advance(9 * MIN);
        assert_eq!(idle(1), 0);
    }
    assert_eq!(IDLE_RUNS.load(SeqCst), 1);
    // Many reads within the touch window are plain hits.
    let hits = idle_cache().stats().hits;
    for _ in 0..100 {
        assert_eq!(idle(1), 0);
    }
    assert_eq!(idle_cache().stats().hits, hits + 100);
    // Not read for 10 minutes: gone, computed again.
    clock::advance(10 * MIN + Duration::from_millis(1));
    assert_eq!(idle(1), 1);
    assert_eq!(IDLE_RUNS.load(SeqCst), 2);
}

static LIVE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(cache = memory(), ttl = "1h", tti = "10m")]
fn live(_k: u32) -> u64 {
    LIVE_RUNS.fetch_add(1, SeqCst) as u64
}

#[test]
fn the_ttl_still_ends_a_value_read_all_the_time() {
    let _one = clock::exclusive();
    assert_eq!(live(1), 0);
    for _ in 0..11 {
        clock::advance(5 * MIN);
        assert_eq!(live(1), 0, "within the ttl, read every 5 minutes");
    }
    clock::advance(6 * MIN); // 61 minutes
    assert_eq!(live(1), 1, "the ttl ended it");
    assert_eq!(LIVE_RUNS.load(SeqCst), 2);
}

static SAFE_DOWN: AtomicBool = AtomicBool::new(false);
static SAFE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(
    cache = memory(),
    ttl = "1m",
    stale_while_revalidate = "1m",
    fail_safe = "1h",
    tti = "10m"
)]
fn safe(k: u32) -> Result<u64, String> {
    SAFE_RUNS.fetch_add(1, SeqCst);
    if SAFE_DOWN.load(SeqCst) {
        return Err("upstream down".into());
    }
    Ok(u64::from(k))
}

#[test]
fn fail_safe_serves_a_value_read_lately_but_not_an_idle_one() {
    let _one = clock::exclusive();
    assert_eq!(safe(1), Ok(1));
    SAFE_DOWN.store(true, SeqCst);
    // Past ttl and stale-while-revalidate, read within tti: fail-safe serves the old value.
    clock::advance(3 * MIN);
    assert_eq!(
        safe(1),
        Ok(1),
        "fail-safe, the value was read 3 minutes ago"
    );
    // Then 11 minutes unread: the copy is gone, fail-safe's included.
    clock::advance(11 * MIN);
    assert_eq!(safe(1), Err("upstream down".to_string()));
    SAFE_DOWN.store(false, SeqCst);
}

static L1_RUNS: AtomicUsize = AtomicUsize::new(0);

fn files_with_l1() -> &'static Cache {
    static C: OnceLock<Cache> = OnceLock::new();
    C.get_or_init(|| {
        let dir = steadycache_api::testing::temp_dir("tti-l1");
        let backend = steadycache::FileBackend::open(steadycache::FileConfig::new(dir))
            .unwrap_or_else(|e| panic!("file backend: {e}"));
        Cache::builder()
            .backend(backend)
            .local_tier(LocalTier::new(1 << 20))
            .build()
    })
}

#[cached(cache = files_with_l1(), tti = "10m")]
fn behind(k: u32) -> u64 {
    L1_RUNS.fetch_add(1, SeqCst) as u64 + u64::from(k)
}

#[test]
fn an_idle_l1_copy_is_read_from_the_store_again() {
    let _one = clock::exclusive();
    assert_eq!(behind(1), 1);
    assert_eq!(behind(1), 1); // (a file cache copies a value in process when it reads it)
    assert_eq!(behind_cache().local_len(), 1);
    clock::advance(11 * MIN);
    // (Nothing was stored with a ttl: the files keep the value.)
    assert_eq!(behind(1), 1, "read from the files, not recomputed");
    assert_eq!(L1_RUNS.load(SeqCst), 1);
    assert_eq!(behind_cache().local_len(), 1, "copied in process again");
}
