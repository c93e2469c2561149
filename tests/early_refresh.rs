//! Early refresh (issue 13, option 3), on an injected clock: far from its expiry a value is
//! served without ever refreshing; inside its XFetch window, many reads start exactly one
//! refresh (in the background, the callers keep getting the value), and the key never expires
//! under its readers. Memory, files and SQLite, sync and async (Redis in `crates/integration`).
//! The stampede simulation that reproduces the paper's figures is in
//! `steadycache-api`'s `engine::xfetch` tests.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};
use steadycache::{cached, Cache};
use steadycache_api::testing::clock;

/// The scenario, whatever the function: `call` returns what a caller got, `runs` counts the
/// function's runs (each takes about 100 ms of real time, so its window opens about
/// 100 ms × 16 = 1.6 s before the 10 s ttl ends).
pub fn one_refresh_before_expiry(
    call: &dyn Fn() -> u64,
    runs: &AtomicUsize,
    stats: &dyn Fn() -> steadycache::StatsSnapshot,
) {
    assert_eq!(call(), 0);
    assert_eq!(runs.load(SeqCst), 1);
    // Far from the deadline: hits only.
    clock::advance(Duration::from_secs(5));
    for _ in 0..500 {
        assert_eq!(call(), 0);
    }
    assert_eq!(runs.load(SeqCst), 1, "no refresh outside the window");
    // 300 ms before the deadline: each read refreshes with probability about e^-3 (the real
    // time the reads take only raises it); the first that does starts the one refresh, and
    // every caller still gets the value at once.
    clock::advance(Duration::from_millis(4_700));
    for _ in 0..1_000 {
        let v = call();
        assert!(v <= 1, "{v}");
    }
    let waited = Instant::now();
    while runs.load(SeqCst) < 2 && waited.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(5));
        let _ = call();
    }
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(runs.load(SeqCst), 2, "one early refresh");
    // Past the first value's ttl: the refreshed value is served, nothing recomputes.
    clock::advance(Duration::from_secs(1));
    assert_eq!(call(), 1);
    assert_eq!(
        runs.load(SeqCst),
        2,
        "the key never expired under its readers"
    );
    let s = stats();
    assert_eq!((s.misses, s.early_refreshes), (1, 1), "{s:?}");
}

macro_rules! scenario {
    ($test:ident, $cache:expr) => {
        mod $test {
            use super::*;
            static RUNS: AtomicUsize = AtomicUsize::new(0);

            fn upstream() -> u64 {
                std::thread::sleep(Duration::from_millis(100));
                RUNS.fetch_add(1, SeqCst) as u64
            }

            #[cached(cache = $cache, ttl = "10s", early_refresh = 1.0)]
            fn sync_fn(_k: u32) -> u64 {
                upstream()
            }

            #[cached(cache = $cache, ttl = "10s", early_refresh = 1.0)]
            async fn async_fn(_k: u32) -> u64 {
                upstream()
            }

            #[test]
            fn sync_function() {
                let _one = clock::exclusive();
                RUNS.store(0, SeqCst);
                one_refresh_before_expiry(&|| sync_fn(1), &RUNS, &|| sync_fn_cache().stats());
            }

            #[test]
            fn async_function() {
                let _one = clock::exclusive();
                RUNS.store(0, SeqCst);
                let rt = tokio::runtime::Runtime::new().unwrap();
                one_refresh_before_expiry(&|| rt.block_on(async_fn(2)), &RUNS, &|| {
                    async_fn_cache().stats()
                });
            }
        }
    };
}

fn file_cache() -> Cache {
    let dir = steadycache_api::testing::temp_dir("early-refresh");
    Cache::from_url(&format!("file://{}", dir.display())).unwrap()
}

scenario!(memory, Cache::memory());
scenario!(files, file_cache());

#[cfg(feature = "sqlite")]
fn sqlite_cache() -> Cache {
    let dir = steadycache_api::testing::temp_dir("early-refresh-sqlite");
    Cache::from_url(&format!("sqlite://{}", dir.join("c.db").display())).unwrap()
}
#[cfg(feature = "sqlite")]
scenario!(sqlite, sqlite_cache());

static INLINE_RUNS: AtomicUsize = AtomicUsize::new(0);

struct Repo;

impl Repo {
    /// A method: no background job, so the read that rolls a refresh does it inline; the
    /// others still get the fresh value.
    #[cached(ttl = "10s", early_refresh = 1.0, key_self = false)]
    fn load(&self, _k: u32) -> u64 {
        std::thread::sleep(Duration::from_millis(100));
        INLINE_RUNS.fetch_add(1, SeqCst) as u64
    }
}

#[test]
fn without_a_background_job_the_reader_that_rolls_refreshes_inline() {
    let _one = clock::exclusive();
    assert_eq!(Repo.load(1), 0);
    clock::advance(Duration::from_millis(9_700));
    let got: Vec<u64> = (0..1_000).map(|_| Repo.load(1)).collect();
    assert_eq!(
        INLINE_RUNS.load(SeqCst),
        2,
        "one inline early refresh {:?}",
        Repo::load_cache().stats()
    );
    assert!(
        got.iter().skip_while(|v| **v == 0).all(|v| *v == 1),
        "{got:?}"
    );
}
