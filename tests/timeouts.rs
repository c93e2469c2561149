//! Factory timeouts (issue 13, option 2): `soft_timeout` serves the old value when the function
//! is slow and lets it finish in the background; `hard_timeout` stops waiting even without an
//! old value (the caller gets `FactoryTimeout` as its error); the abandoned computation stores
//! its value (background completion) unless `background_completion = false`. Memory, files and
//! SQLite, sync and async (Redis in `crates/integration`). Counts, and generous bounds where the
//! point is "does not wait".

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};
use steadycache::{cached, Cache, FactoryTimeout};
use steadycache_api::testing::{clock, eventually};

/// The error of the timed functions: a message, which a [`FactoryTimeout`] converts into (there
/// is no `From<FactoryTimeout> for String`: a function's error type says how it takes one).
#[derive(Clone, Debug, PartialEq)]
pub struct Failure(pub String);

impl From<FactoryTimeout> for Failure {
    fn from(e: FactoryTimeout) -> Self {
        Failure(e.to_string())
    }
}

/// The scenario: `call(k)` returns what a caller got, `stored(k)` what the cache holds for `k`
/// (without calling); the function sleeps `sleep` ms and counts its starts in `runs` and its
/// ends in `ends`. Soft timeout 50 ms, hard 300 ms, ttl 1 s, fail-safe 1 h.
pub fn slow_upstreams(
    call: &dyn Fn(u32) -> Result<u64, Failure>,
    stored: &dyn Fn(u32) -> Option<u64>,
    sleep: &AtomicU64,
    runs: &AtomicUsize,
    ends: &AtomicUsize,
    stats: &dyn Fn() -> steadycache::StatsSnapshot,
) {
    sleep.store(0, SeqCst);
    assert_eq!(call(1), Ok(0));
    // Expired, kept by fail-safe; the upstream now takes a second.
    clock::advance(Duration::from_secs(2));
    sleep.store(1_000, SeqCst);
    let started = Instant::now();
    assert_eq!(call(1), Ok(0), "the old value at the soft timeout");
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "did not wait for the function"
    );
    assert_eq!(runs.load(SeqCst), 2);
    // It completes in the background and stores its value; nothing runs again.
    assert!(
        eventually(|| ends.load(SeqCst) == 2),
        "background completion"
    );
    // Its store follows its end: wait for that event, not for a guess of its time.
    assert!(eventually(|| stored(1) == Some(1)), "background store");
    assert_eq!(call(1), Ok(1), "the completed value is served");
    assert_eq!(runs.load(SeqCst), 2);
    // No old value: the hard timeout gives the caller a timeout error, then the value lands.
    let started = Instant::now();
    let err = call(2).expect_err("nothing to serve within the hard timeout");
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "did not wait for the function"
    );
    assert!(err.0.contains("hard_timeout"), "{err:?}");
    assert!(eventually(|| ends.load(SeqCst) == 3));
    assert!(eventually(|| stored(2) == Some(2)), "background store");
    assert_eq!(call(2), Ok(2), "stored by the abandoned computation");
    assert_eq!(runs.load(SeqCst), 3, "which never ran again");
    let s = stats();
    assert_eq!(s.timeouts, 2, "{s:?}");
}

macro_rules! scenario {
    ($test:ident, $cache:expr) => {
        mod $test {
            use super::*;
            static SLEEP: AtomicU64 = AtomicU64::new(0);
            static RUNS: AtomicUsize = AtomicUsize::new(0);
            static ENDS: AtomicUsize = AtomicUsize::new(0);

            fn upstream() -> Result<u64, Failure> {
                let n = RUNS.fetch_add(1, SeqCst) as u64;
                std::thread::sleep(Duration::from_millis(SLEEP.load(SeqCst)));
                ENDS.fetch_add(1, SeqCst);
                Ok(n)
            }

            #[cached(cache = $cache, ttl = "1s", fail_safe = "1h", soft_timeout = "50ms", hard_timeout = "300ms")]
            fn sync_fn(_k: u32) -> Result<u64, Failure> {
                upstream()
            }

            #[cached(cache = $cache, ttl = "1s", fail_safe = "1h", soft_timeout = "50ms", hard_timeout = "300ms")]
            async fn async_fn(_k: u32) -> Result<u64, Failure> {
                let n = RUNS.fetch_add(1, SeqCst) as u64;
                tokio::time::sleep(Duration::from_millis(SLEEP.load(SeqCst))).await;
                ENDS.fetch_add(1, SeqCst);
                Ok(n)
            }

            #[test]
            fn sync_function() {
                let _one = clock::exclusive();
                RUNS.store(0, SeqCst);
                ENDS.store(0, SeqCst);
                slow_upstreams(
                    &sync_fn,
                    &|k| sync_fn_cache().get_cached_sync(k),
                    &SLEEP,
                    &RUNS,
                    &ENDS,
                    &|| sync_fn_cache().stats(),
                );
            }

            #[test]
            fn async_function() {
                let _one = clock::exclusive();
                RUNS.store(0, SeqCst);
                ENDS.store(0, SeqCst);
                let rt = tokio::runtime::Runtime::new().unwrap();
                slow_upstreams(
                    &|k| rt.block_on(async_fn(k)),
                    &|k| async_fn_cache().get_cached_sync(k),
                    &SLEEP,
                    &RUNS,
                    &ENDS,
                    &|| async_fn_cache().stats(),
                );
            }
        }
    };
}

fn file_cache() -> Cache {
    let dir = steadycache_api::testing::temp_dir("timeouts");
    Cache::from_url(&format!("file://{}", dir.display())).unwrap()
}

scenario!(memory, Cache::memory());
scenario!(files, file_cache());

#[cfg(feature = "sqlite")]
fn sqlite_cache() -> Cache {
    let dir = steadycache_api::testing::temp_dir("timeouts-sqlite");
    Cache::from_url(&format!("sqlite://{}", dir.join("c.db").display())).unwrap()
}
#[cfg(feature = "sqlite")]
scenario!(sqlite, sqlite_cache());

static DROPPED_RUNS: AtomicUsize = AtomicUsize::new(0);
static DROPPED_ENDS: AtomicUsize = AtomicUsize::new(0);

/// Without background completion an abandoned async computation is cancelled.
#[cached(hard_timeout = "50ms", background_completion = false)]
async fn dropped(_k: u32) -> Result<u64, FactoryTimeout> {
    DROPPED_RUNS.fetch_add(1, SeqCst);
    tokio::time::sleep(Duration::from_millis(300)).await;
    DROPPED_ENDS.fetch_add(1, SeqCst);
    Ok(7)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_background_completion_the_computation_is_dropped() {
    let err = dropped(1).await.expect_err("timed out");
    assert_eq!(err.after, Duration::from_millis(50));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(DROPPED_ENDS.load(SeqCst), 0, "cancelled, never finished");
    assert!(
        dropped(1).await.is_err(),
        "nothing was stored: it runs (and times out) again"
    );
    assert_eq!(DROPPED_RUNS.load(SeqCst), 2);
}

static SYNC_DROPPED_ENDS: AtomicUsize = AtomicUsize::new(0);

/// A sync computation cannot be stopped: it finishes, but its value is not stored.
#[cached(hard_timeout = "50ms", background_completion = false)]
fn sync_dropped(_k: u32) -> Result<u64, std::io::Error> {
    std::thread::sleep(Duration::from_millis(200));
    SYNC_DROPPED_ENDS.fetch_add(1, SeqCst);
    Ok(7)
}

#[test]
fn a_sync_computation_without_background_completion_stores_nothing() {
    let err = sync_dropped(1).expect_err("timed out");
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    assert!(eventually(|| SYNC_DROPPED_ENDS.load(SeqCst) == 1));
    std::thread::sleep(Duration::from_millis(50));
    assert!(sync_dropped(1).is_err(), "its value was not stored");
}

static WAITER_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = "1s", fail_safe = "1h", soft_timeout = "50ms")]
fn shared(_k: u32) -> u64 {
    let n = WAITER_RUNS.fetch_add(1, SeqCst) as u64;
    if n > 0 {
        std::thread::sleep(Duration::from_millis(1_000));
    }
    n
}

#[test]
fn waiters_get_the_old_value_at_the_soft_timeout_too() {
    let _one = clock::exclusive();
    assert_eq!(shared(1), 0);
    clock::advance(Duration::from_secs(2));
    let started = Instant::now();
    let threads: Vec<_> = (0..8).map(|_| std::thread::spawn(|| shared(1))).collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), 0);
    }
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "nobody waited for the function"
    );
    assert_eq!(
        WAITER_RUNS.load(SeqCst),
        2,
        "one computation for all of them"
    );
    // The computation ends after its second, then stores: wait for the stored value.
    assert!(
        eventually(|| shared_cache().get_cached_sync(1) == Some(1)),
        "background store"
    );
    assert_eq!(shared(1), 1, "the background completion's value");
    assert_eq!(WAITER_RUNS.load(SeqCst), 2);
}

#[cached(hard_timeout = "2s")]
fn quick(k: u32) -> Result<u32, Failure> {
    Ok(k)
}

#[test]
fn a_sync_function_with_timeouts_works_inside_a_current_thread_runtime() {
    // The computation must not be queued on the runtime this thread is blocked driving.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async { assert_eq!(quick(3), Ok(3)) });
}

fn locking_cache() -> Cache {
    static C: std::sync::OnceLock<Cache> = std::sync::OnceLock::new();
    C.get_or_init(|| {
        let dir = steadycache_api::testing::temp_dir("timeouts-lock");
        Cache::from_url(&format!("file://{}", dir.display())).unwrap()
    })
    .clone()
}

static LOCKED_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(cache = locking_cache(), ttl = "1s", fail_safe = "1h", soft_timeout = "50ms", lock = "distributed")]
fn locked(_k: u32) -> Result<u64, String> {
    Ok(LOCKED_RUNS.fetch_add(1, SeqCst) as u64)
}

#[test]
fn the_soft_timeout_bounds_the_wait_for_another_process_lock() {
    let _one = clock::exclusive();
    assert_eq!(locked(1), Ok(0));
    clock::advance(Duration::from_secs(2));
    // Another process holds the key's lock (and would for 30 s).
    let lock = format!("{}#lock", locked_cache().key(1).unwrap());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let backend = locking_cache();
    assert!(rt
        .block_on(
            backend
                .backend()
                .acquire_lock(&lock, "elsewhere", Duration::from_secs(30))
        )
        .unwrap());
    let started = Instant::now();
    assert_eq!(locked(1), Ok(0), "the old value at the soft timeout");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "did not wait for the lock"
    );
    assert_eq!(LOCKED_RUNS.load(SeqCst), 1);
    assert!(rt
        .block_on(backend.backend().release_lock(&lock, "elsewhere"))
        .unwrap());
}
