//! Fail-safe and its throttle (issue 13, option 1), on an injected clock: an upstream down for
//! 10 s of injected time, called 1,000 times, runs about 10 s / throttle times, and every caller
//! gets the old value. Memory, files and SQLite here (Redis in `crates/integration`); sync and
//! async.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::time::Duration;
use steadycache::{cached, Cache};
use steadycache_api::testing::clock;

/// The scenario, whatever the function: `call` returns the value a caller got (or its error),
/// `down` switches the upstream, `runs` counts its calls.
pub fn upstream_down_for_ten_seconds(
    call: &dyn Fn() -> Result<u64, String>,
    down: &AtomicBool,
    runs: &AtomicUsize,
    stats: &dyn Fn() -> steadycache::StatsSnapshot,
) {
    down.store(false, SeqCst);
    assert_eq!(call(), Ok(42));
    assert_eq!(runs.load(SeqCst), 1);
    down.store(true, SeqCst);
    clock::advance(Duration::from_secs(2)); // past the 1 s ttl
    let before = runs.load(SeqCst);
    for i in 0..1_000 {
        assert_eq!(call(), Ok(42), "call {i}: the old value, not the error");
        clock::advance(Duration::from_millis(10));
    }
    let ran = runs.load(SeqCst) - before;
    eprintln!("upstream down for 10 s, 1,000 calls, 1 s throttle: {ran} runs");
    // One run per 1 s throttle over 10 s (one more at an edge).
    assert!(
        (9..=12).contains(&ran),
        "the failing function ran {ran} times"
    );
    assert_eq!(stats().fail_safe, ran as u64, "{:?}", stats());
    // The upstream is back: after the throttle the function runs and its value is served.
    down.store(false, SeqCst);
    clock::advance(Duration::from_millis(1100));
    assert_eq!(call(), Ok(43));
    // Past the fail-safe window, a failure is the caller's again.
    down.store(true, SeqCst);
    clock::advance(Duration::from_secs(7200));
    assert!(call().is_err(), "nothing is kept past fail_safe");
}

macro_rules! scenario {
    ($test:ident, $cache:expr) => {
        mod $test {
            use super::*;
            static DOWN: AtomicBool = AtomicBool::new(false);
            static RUNS: AtomicUsize = AtomicUsize::new(0);

            fn upstream() -> Result<u64, String> {
                let n = RUNS.fetch_add(1, SeqCst);
                if DOWN.load(SeqCst) {
                    Err("upstream down".into())
                } else {
                    Ok(42 + u64::from(n > 0))
                }
            }

            #[cached(cache = $cache, ttl = "1s", fail_safe = "1h", fail_safe_throttle = "1s")]
            fn sync_fn(_k: u32) -> Result<u64, String> {
                upstream()
            }

            #[cached(cache = $cache, ttl = "1s", fail_safe = "1h", fail_safe_throttle = "1s")]
            async fn async_fn(_k: u32) -> Result<u64, String> {
                upstream()
            }

            #[test]
            fn sync_function() {
                let _one = clock::exclusive();
                RUNS.store(0, SeqCst);
                upstream_down_for_ten_seconds(&|| sync_fn(1), &DOWN, &RUNS, &|| {
                    sync_fn_cache().stats()
                });
            }

            #[test]
            fn async_function() {
                let _one = clock::exclusive();
                RUNS.store(0, SeqCst);
                let rt = tokio::runtime::Runtime::new().unwrap();
                upstream_down_for_ten_seconds(&|| rt.block_on(async_fn(2)), &DOWN, &RUNS, &|| {
                    async_fn_cache().stats()
                });
            }
        }
    };
}

fn file_cache() -> Cache {
    let dir = steadycache_api::testing::temp_dir("fail-safe");
    Cache::from_url(&format!("file://{}", dir.display())).unwrap()
}

scenario!(memory, Cache::memory());
scenario!(files, file_cache());

#[cfg(feature = "sqlite")]
fn sqlite_cache() -> Cache {
    let dir = steadycache_api::testing::temp_dir("fail-safe-sqlite");
    Cache::from_url(&format!("sqlite://{}", dir.join("c.db").display())).unwrap()
}
#[cfg(feature = "sqlite")]
scenario!(sqlite, sqlite_cache());

static WAITER_RUNS: AtomicUsize = AtomicUsize::new(0);
static WAITERS_DOWN: AtomicBool = AtomicBool::new(false);

/// Fails with a non-`Clone` error, slowly: its waiters cannot get a copy of the error.
#[cached(ttl = "1s", fail_safe = "1h")]
fn slow_io(_k: u32) -> Result<u64, std::io::Error> {
    WAITER_RUNS.fetch_add(1, SeqCst);
    if WAITERS_DOWN.load(SeqCst) {
        std::thread::sleep(Duration::from_millis(200));
        return Err(std::io::Error::other("down"));
    }
    Ok(5)
}

#[test]
fn the_waiters_of_a_failing_round_get_the_old_value_too() {
    let _one = clock::exclusive();
    assert_eq!(slow_io(1).unwrap(), 5);
    WAITERS_DOWN.store(true, SeqCst);
    clock::advance(Duration::from_secs(2));
    let threads: Vec<_> = (0..8)
        .map(|_| std::thread::spawn(|| slow_io(1).map_err(|e| e.to_string())))
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), Ok(5));
    }
    // One failing run for the round (the throttle, 30 s by default, holds the rest).
    assert_eq!(WAITER_RUNS.load(SeqCst), 2);
    let s = slow_io_cache().stats();
    assert!(s.fail_safe >= 1, "{s:?}");
}

static STALE_RUNS: AtomicUsize = AtomicUsize::new(0);

/// No fail-safe, but a stale window whose failing refresh is throttled.
#[cached(ttl = "1h", stale_after = "1s", fail_safe_throttle = "5s")]
fn stale_throttled(_k: u32) -> Result<u64, String> {
    if STALE_RUNS.fetch_add(1, SeqCst) == 0 {
        Ok(9)
    } else {
        Err("down".into())
    }
}

#[test]
fn a_throttle_holds_a_failing_blocking_refresh_of_a_stale_value() {
    let _one = clock::exclusive();
    assert_eq!(stale_throttled(1), Ok(9));
    clock::advance(Duration::from_secs(2));
    for _ in 0..100 {
        assert_eq!(stale_throttled(1), Ok(9));
        clock::advance(Duration::from_millis(100));
    }
    // 10 s of failing refreshes, one per 5 s throttle.
    let refreshes = STALE_RUNS.load(SeqCst) - 1;
    assert!((2..=3).contains(&refreshes), "{refreshes} refreshes");
}
