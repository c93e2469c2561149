//! Every failing recompute is throttled (issue 21, item 4): a background refresh
//! (stale-while-revalidate) or an early refresh that fails keeps the value it was to replace
//! for `fail_safe_throttle` (30 s when unset, fail-safe or not) before the function is called
//! again, as a failed blocking recompute under fail-safe does. On an injected clock; memory and
//! SQLite, sync and async, alone and combined with fail-safe.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};
use steadycache::{cached, Cache, StatsSnapshot};
use steadycache_api::testing::clock;

/// Wait (real time, bounded) until `refreshes` refreshes were started and every one has
/// ended (in an error, the upstream being down).
fn settle(stats: &dyn Fn() -> StatsSnapshot, refreshes: u64) {
    let waited = Instant::now();
    while waited.elapsed() < Duration::from_secs(10) {
        let s = stats();
        if s.refreshes >= refreshes && s.refreshes <= s.errors {
            return;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    panic!("refresh {refreshes} did not end: {:?}", stats());
}

/// Stale reads of a value whose refresh fails: 10 reads over 10 s call the upstream once; after
/// the 30 s throttle it is tried again; when it is back, its value is served.
pub fn stale_reads_back_off(
    call: &dyn Fn() -> Result<u64, String>,
    up: &Upstream,
    stats: &dyn Fn() -> StatsSnapshot,
) {
    let (down, runs) = (&up.down, &up.runs);
    up.value.store(42, SeqCst);
    down.store(false, SeqCst);
    assert_eq!(call(), Ok(42));
    down.store(true, SeqCst);
    clock::advance(Duration::from_secs(2)); // past the 1 s ttl: stale
    let before = runs.load(SeqCst);
    assert_eq!(call(), Ok(42), "the stale value");
    settle(stats, 1);
    for i in 1..10 {
        clock::advance(Duration::from_secs(1));
        assert_eq!(call(), Ok(42), "read {i}: the stale value");
        std::thread::sleep(Duration::from_millis(2));
    }
    // Any refresh those reads started has run by now.
    std::thread::sleep(Duration::from_millis(50));
    settle(stats, 1);
    let ran = runs.load(SeqCst) - before;
    assert_eq!(
        ran, 1,
        "10 stale reads called the failing upstream {ran} times"
    );
    // After the throttle, one more try (still failing, still the old value).
    clock::advance(Duration::from_secs(25));
    assert_eq!(call(), Ok(42));
    settle(stats, 2);
    assert_eq!(runs.load(SeqCst) - before, 2, "{:?}", stats());
    // Back: the next try after the throttle stores the new value.
    up.value.store(43, SeqCst);
    down.store(false, SeqCst);
    clock::advance(Duration::from_secs(31));
    let waited = Instant::now();
    while call() != Ok(43) {
        assert!(waited.elapsed() < Duration::from_secs(10), "{:?}", stats());
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A switchable upstream: its value, whether it is down, how often it was called.
pub struct Upstream {
    value: AtomicU64,
    down: AtomicBool,
    runs: AtomicUsize,
}

impl Upstream {
    const fn new() -> Self {
        Upstream {
            value: AtomicU64::new(42),
            down: AtomicBool::new(false),
            runs: AtomicUsize::new(0),
        }
    }

    fn call(&self) -> Result<u64, String> {
        self.runs.fetch_add(1, SeqCst);
        if self.down.load(SeqCst) {
            Err("upstream down".into())
        } else {
            Ok(self.value.load(SeqCst))
        }
    }
}

macro_rules! stale_scenario {
    ($test:ident, $cache:expr) => {
        mod $test {
            use super::*;
            static UP: Upstream = Upstream::new();

            fn upstream() -> Result<u64, String> {
                UP.call()
            }

            #[cached(cache = $cache, ttl = "1s", stale_while_revalidate = "1h", fail_safe_throttle = "30s")]
            fn swr(_k: u32) -> Result<u64, String> {
                upstream()
            }

            // No throttle named: the default (30 s) backs the refresh off all the same.
            #[cached(cache = $cache, ttl = "1s", stale_while_revalidate = "1h")]
            async fn swr_async(_k: u32) -> Result<u64, String> {
                upstream()
            }

            // Beside fail-safe: the same one rule.
            #[cached(cache = $cache, ttl = "1s", stale_while_revalidate = "1h", fail_safe = "2h")]
            fn swr_fail_safe(_k: u32) -> Result<u64, String> {
                upstream()
            }

            #[test]
            fn sync_function() {
                let _one = clock::exclusive();
                stale_reads_back_off(&|| swr(1), &UP, &|| swr_cache().stats());
                stale_reads_back_off(&|| swr_fail_safe(1), &UP, &|| {
                    swr_fail_safe_cache().stats()
                });
            }

            #[test]
            fn async_function() {
                let _one = clock::exclusive();
                let rt = tokio::runtime::Runtime::new().unwrap();
                stale_reads_back_off(&|| rt.block_on(swr_async(2)), &UP, &|| {
                    swr_async_cache().stats()
                });
            }
        }
    };
}

stale_scenario!(memory, Cache::memory());

#[cfg(feature = "sqlite")]
fn sqlite_cache() -> Cache {
    let dir = steadycache_api::testing::temp_dir("refresh-backoff");
    Cache::from_url(&format!("sqlite://{}", dir.join("c.db").display())).unwrap()
}
#[cfg(feature = "sqlite")]
stale_scenario!(sqlite, sqlite_cache());

static EARLY_DOWN: AtomicBool = AtomicBool::new(false);
static EARLY_RUNS: AtomicUsize = AtomicUsize::new(0);

fn early_upstream() -> Result<u64, String> {
    EARLY_RUNS.fetch_add(1, SeqCst);
    if EARLY_DOWN.load(SeqCst) {
        return Err("upstream down".into());
    }
    std::thread::sleep(Duration::from_millis(100)); // a window of about 1.6 s
    Ok(7)
}

#[cached(ttl = "10s", early_refresh = 1.0, fail_safe_throttle = "30s")]
fn early(_k: u32) -> Result<u64, String> {
    early_upstream()
}

#[cached(ttl = "10s", early_refresh = 1.0, fail_safe_throttle = "30s")]
async fn early_async(_k: u32) -> Result<u64, String> {
    early_upstream()
}

/// Inside the early-refresh window, with the upstream down: 1,000 reads over 500 ms of the
/// window start at most two failing refreshes (before: one per few reads, 15-17 in 3 s).
fn early_refresh_backs_off(call: &dyn Fn() -> Result<u64, String>) {
    EARLY_DOWN.store(false, SeqCst);
    assert_eq!(call(), Ok(7));
    let before = EARLY_RUNS.load(SeqCst);
    EARLY_DOWN.store(true, SeqCst);
    clock::advance(Duration::from_millis(9_300));
    for i in 0..1_000 {
        assert_eq!(call(), Ok(7), "read {i}: the value, still fresh");
        if i % 10 == 0 {
            clock::advance(Duration::from_millis(5));
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    // The refreshes the reads started run on the refresh pool: wait for the first (a loaded
    // machine may start it late), then until no other starts for a while.
    let give_up = Instant::now() + Duration::from_secs(20);
    let mut ran = EARLY_RUNS.load(SeqCst) - before;
    while ran == 0 && Instant::now() < give_up {
        std::thread::sleep(Duration::from_millis(10));
        ran = EARLY_RUNS.load(SeqCst) - before;
    }
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = EARLY_RUNS.load(SeqCst) - before;
        if now == ran {
            break;
        }
        ran = now;
    }
    assert!(
        (1..=2).contains(&ran),
        "the failing upstream ran {ran} times"
    );
}

#[test]
fn a_failing_early_refresh_backs_off() {
    let _one = clock::exclusive();
    early_refresh_backs_off(&|| early(1));
    let rt = tokio::runtime::Runtime::new().unwrap();
    early_refresh_backs_off(&|| rt.block_on(early_async(1)));
}
