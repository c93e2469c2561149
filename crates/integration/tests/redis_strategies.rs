//! Issue 13's strategies on a real Redis: early refresh (XFetch), factory timeouts with
//! background completion, and the hit-count rules on Redis' own counters. The engine's clock
//! is injected where time matters (each such test holds `clock::exclusive()`); Redis keeps its
//! real time, which only keeps entries longer.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use steadycache::{cached, Cache};
use steadycache_api::testing::{clock, eventually};
use steadycache_redis::testing::RedisServer;

fn server() -> &'static RedisServer {
    static S: OnceLock<RedisServer> = OnceLock::new();
    S.get_or_init(RedisServer::start)
}

fn redis() -> Cache {
    Cache::from_url(&server().url()).unwrap()
}

static EARLY_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(cache = redis(), ttl = "10s", early_refresh = 1.0)]
fn early(_k: u32) -> u64 {
    std::thread::sleep(Duration::from_millis(100));
    EARLY_RUNS.fetch_add(1, SeqCst) as u64
}

#[test]
fn early_refresh_refreshes_once_before_expiry_on_redis() {
    let _one = clock::exclusive();
    assert_eq!(early(1), 0);
    clock::advance(Duration::from_secs(5));
    for _ in 0..200 {
        assert_eq!(early(1), 0);
    }
    assert_eq!(EARLY_RUNS.load(SeqCst), 1, "no refresh outside the window");
    // 300 ms before the deadline (the window opens 100 ms × 16 before it; each Redis read
    // takes real time too): each read refreshes with probability about e^-3.
    clock::advance(Duration::from_millis(4_700));
    let mut reads = 0;
    while EARLY_RUNS.load(SeqCst) < 2 && reads < 1_000 {
        assert!(early(1) <= 1);
        reads += 1;
    }
    assert!(eventually(|| EARLY_RUNS.load(SeqCst) == 2), "{reads} reads");
    std::thread::sleep(Duration::from_millis(100));
    clock::advance(Duration::from_secs(1));
    assert_eq!(early(1), 1, "refreshed before the old value expired");
    assert_eq!(EARLY_RUNS.load(SeqCst), 2);
    assert_eq!(
        early_cache().stats().early_refreshes,
        1,
        "{:?}",
        early_cache().stats()
    );
}

/// The error of `slow`: a message, which a [`steadycache::FactoryTimeout`] converts into.
#[derive(Clone, Debug, PartialEq)]
pub struct Failure(pub String);

impl From<steadycache::FactoryTimeout> for Failure {
    fn from(e: steadycache::FactoryTimeout) -> Self {
        Failure(e.to_string())
    }
}

static SLOW_RUNS: AtomicUsize = AtomicUsize::new(0);
static SLOW_ENDS: AtomicUsize = AtomicUsize::new(0);
static SLOW_MS: AtomicU64 = AtomicU64::new(0);

#[cached(cache = redis(), ttl = "1s", fail_safe = "1h", soft_timeout = "50ms", hard_timeout = "300ms")]
fn slow(_k: u32) -> Result<u64, Failure> {
    let n = SLOW_RUNS.fetch_add(1, SeqCst) as u64;
    std::thread::sleep(Duration::from_millis(SLOW_MS.load(SeqCst)));
    SLOW_ENDS.fetch_add(1, SeqCst);
    Ok(n)
}

#[test]
fn factory_timeouts_complete_in_the_background_on_redis() {
    let _one = clock::exclusive();
    assert_eq!(slow(1), Ok(0));
    clock::advance(Duration::from_secs(2));
    SLOW_MS.store(1_000, SeqCst);
    let started = Instant::now();
    assert_eq!(slow(1), Ok(0), "the old value at the soft timeout");
    assert!(started.elapsed() < Duration::from_millis(900));
    assert!(eventually(|| SLOW_ENDS.load(SeqCst) == 2));
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(slow(1), Ok(1), "stored by the background completion");
    let err = slow(2).expect_err("the hard timeout, nothing to serve");
    assert!(err.0.contains("hard_timeout"), "{err:?}");
    assert!(eventually(|| SLOW_ENDS.load(SeqCst) == 3));
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(slow(2), Ok(2));
    assert_eq!(SLOW_RUNS.load(SeqCst), 3);
    assert_eq!(slow_cache().stats().timeouts, 2);
}

static ADMIT_RUNS: AtomicUsize = AtomicUsize::new(0);
static HIT_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(cache = redis(), ttl = "1h", min_calls = 3)]
async fn admitted(k: u32) -> u64 {
    ADMIT_RUNS.fetch_add(1, SeqCst);
    u64::from(k)
}

#[cached(cache = redis(), ttl = "1h", max_hits = 5)]
async fn limited(k: u32) -> u64 {
    HIT_RUNS.fetch_add(1, SeqCst);
    u64::from(k)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hit_counts_use_redis_counters() {
    for i in 1..=6 {
        assert_eq!(admitted(4).await, 4);
        assert_eq!(ADMIT_RUNS.load(SeqCst), i.min(3), "call {i}");
    }
    assert_eq!(admitted_cache().stats().not_admitted, 2);
    let calls = server().command("KEYS *#calls");
    assert!(calls.contains("#calls"), "the counter is in Redis: {calls}");
    for _ in 0..6 {
        assert_eq!(limited(5).await, 5);
    }
    assert_eq!(HIT_RUNS.load(SeqCst), 1, "served five times");
    assert_eq!(limited(5).await, 5);
    assert_eq!(HIT_RUNS.load(SeqCst), 2, "then computed anew");
}
