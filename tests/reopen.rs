//! A `cache = "url"` that cannot be opened (issue 12, item 8): it fails open on memory, says
//! so in its health, is opened again in the background, and `strict = true` returns the open
//! error instead. And the store breaker in front of a failing backend (item 7).

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};
use steadycache::{cached, Cache, Policy};
use steadycache_api::testing::fault::{Faulty, Op};
use steadycache_api::{Error, MemoryBackend, StoreBreaker};

/// Poll `cond` every 20 ms for up to `limit` (a guard against hangs, not a timing assertion).
fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

#[test]
fn a_url_that_cannot_be_opened_fails_open_and_is_opened_again_in_the_background() {
    let dir = steadycache_api::testing::temp_dir("reopen");
    // The cache's root is under a regular file: it cannot be created until the file is gone.
    let blocker = dir.join("mount");
    std::fs::write(&blocker, b"not a directory").unwrap();
    let url = format!("file://{}", blocker.join("cache").display());
    let cache = Cache::from_url_failing_open(&url);
    let h = cache.health();
    assert!(!h.backend_open && h.reopening, "{h:?}");
    assert!(h.open_error.is_some(), "{h:?}");
    assert!(matches!(cache.ready(), Err(Error::Unavailable { .. })));
    // Meanwhile calls are served (from memory, in this process).
    let policy = Policy::expire_after(Duration::from_secs(600));
    let v: u32 = cache
        .get_or_compute_sync("k", &policy, || Ok::<u32, Error>(1))
        .unwrap();
    assert_eq!(v, 1);
    // The mount appears: the cache opens it by itself, no restart.
    std::fs::remove_file(&blocker).unwrap();
    assert!(
        eventually(Duration::from_secs(30), || cache.health().backend_open),
        "the backend was not opened again: {:?}",
        cache.health()
    );
    assert!(cache.ready().is_ok());
    let v: u32 = cache
        .get_or_compute_sync("k", &policy, || Ok::<u32, Error>(2))
        .unwrap();
    assert_eq!(
        v, 2,
        "the memory fallback's values are dropped once the backend is open"
    );
    // Stored on disk: another cache over the same directory reads it.
    let other = Cache::from_url(&url).unwrap();
    let runs = AtomicUsize::new(0);
    let v: u32 = other
        .get_or_compute_sync("k", &policy, || {
            runs.fetch_add(1, SeqCst);
            Ok::<u32, Error>(3)
        })
        .unwrap();
    assert_eq!((v, runs.load(SeqCst)), (2, 0));
    let _ = std::fs::remove_dir_all(&dir);
}

static LATE_URL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
static LATE: std::sync::LazyLock<Cache> = std::sync::LazyLock::new(|| {
    Cache::from_url_failing_open(LATE_URL.get().map_or("mem://", String::as_str))
});
static LATE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(cache = &*LATE, ttl = "10m", tags = ["t"])]
fn late(x: u32) -> u32 {
    LATE_RUNS.fetch_add(1, SeqCst);
    x
}

/// A cache with an L1 whose store opens late gets its invalidation bus once the store is open:
/// another cache's tag invalidation then reaches its copies (issue 14).
#[test]
fn an_l1_over_a_store_opened_late_hears_the_bus_once_it_is_open() {
    let dir = steadycache_api::testing::temp_dir("reopen-bus");
    let blocker = dir.join("mount");
    std::fs::write(&blocker, b"not a directory").unwrap();
    let root = blocker.join("cache");
    let url = format!("file://{}?local=1MiB&bus_poll_ms=20", root.display());
    LATE_URL.set(url.clone()).unwrap();
    assert!(
        !LATE.health().bus_live,
        "nothing vouches for copies of a store not open yet"
    );
    std::fs::remove_file(&blocker).unwrap();
    assert!(eventually(Duration::from_secs(30), || {
        let h = LATE.health();
        h.backend_open && h.bus_live
    }));
    late(1);
    late(1);
    assert_eq!(LATE_RUNS.load(SeqCst), 1);
    let other = Cache::from_url(&url).unwrap();
    other.invalidate_tag_sync("t").unwrap();
    assert!(
        eventually(Duration::from_secs(10), || {
            late(1);
            LATE_RUNS.load(SeqCst) == 2
        }),
        "the late cache's copy went with its tag"
    );
}

#[test]
fn a_configuration_error_is_not_retried() {
    let cache = Cache::from_url_failing_open("file:///tmp/x?no_such_option=1");
    let h = cache.health();
    assert!(!h.backend_open && !h.reopening, "{h:?}");
    assert!(matches!(cache.ready(), Err(Error::Config(_))));
}

static LENIENT_RUNS: AtomicUsize = AtomicUsize::new(0);
/// `/dev/null` is not a directory: this cache never opens.
#[cached(cache = "file:///dev/null/steadycache", ttl = "10m")]
fn lenient(x: u32) -> Result<u32, Error> {
    LENIENT_RUNS.fetch_add(1, SeqCst);
    Ok(x)
}

static STRICT_RUNS: AtomicUsize = AtomicUsize::new(0);
#[cached(cache = "file:///dev/null/steadycache", ttl = "10m", strict = true)]
fn strict(x: u32) -> Result<u32, Error> {
    STRICT_RUNS.fetch_add(1, SeqCst);
    Ok(x)
}

#[test]
fn strict_returns_the_open_error_where_the_default_fails_open() {
    assert_eq!(lenient(1).unwrap(), 1);
    assert_eq!(lenient(1).unwrap(), 1);
    assert_eq!(
        LENIENT_RUNS.load(SeqCst),
        1,
        "served from the memory fallback"
    );
    let h = lenient_cache().cache().health();
    assert!(!h.backend_open, "{h:?}");
    for _ in 0..2 {
        match strict(1) {
            Err(Error::Unavailable { message, .. }) => {
                assert!(message.contains("cannot open cache"), "{message}")
            }
            other => panic!("expected the open error, got {other:?}"),
        }
    }
    assert_eq!(
        STRICT_RUNS.load(SeqCst),
        0,
        "a strict function does not run uncached"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_breaker_stops_calling_a_failing_store_and_resumes_by_itself() {
    let layer = Faulty::new(MemoryBackend::default());
    let faults = layer.faults();
    let cache = Cache::builder()
        .backend(layer)
        .store_breaker(StoreBreaker::new(3, Duration::from_millis(50)))
        .build();
    let policy = Policy::expire_after(Duration::from_secs(600));
    faults.down();
    let runs = AtomicUsize::new(0);
    for _ in 0..20 {
        let v = cache
            .get_or_compute("b", &policy, || async {
                runs.fetch_add(1, SeqCst);
                Ok::<u32, Error>(9)
            })
            .await;
        assert_eq!(v.unwrap(), 9, "a call fails open");
    }
    assert_eq!(runs.load(SeqCst), 20);
    // Each call reads once and writes once while the store answers; the breaker opened after
    // 3 failures, so the 20 calls made at most 3 calls into the store (pings excluded).
    let data_calls = faults.calls(Op::Get) + faults.calls(Op::Set);
    assert!(
        data_calls <= 3,
        "{data_calls} calls reached a store known to be down"
    );
    let h = cache.health();
    assert!(h.circuit_open && h.circuit_opened == 1, "{h:?}");
    // The store comes back: a probe closes the breaker and caching resumes.
    faults.heal();
    let mut closed = false;
    for _ in 0..500 {
        if !cache.health().circuit_open {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        closed,
        "the breaker did not close after the store came back"
    );
    assert!(faults.calls(Op::Ping) >= 1);
    for _ in 0..2 {
        let v = cache
            .get_or_compute("b", &policy, || async {
                runs.fetch_add(1, SeqCst);
                Ok::<u32, Error>(10)
            })
            .await;
        assert_eq!(v.unwrap(), 10);
    }
    assert_eq!(runs.load(SeqCst), 21, "stored again, then a hit");
}
