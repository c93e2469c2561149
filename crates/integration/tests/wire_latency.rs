//! A slow link between a cache and its Redis (issue 24, item 2): 200 ms ± 100 ms each way
//! through the test fault proxy (`steadycache_api::testing::proxy`), a real `redis-server` and
//! a real client. Readers of an L1 over that store must not wait for it: stale-while-revalidate
//! serves from the process and refreshes once per stale period, and a `soft_timeout` bounds
//! what a caller waits when an old value can be served. Counts are asserted (reads, runs of the
//! body); the slowest read is printed (`--nocapture`).

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use steadycache::Cache;
use steadycache_api::testing::proxy::FaultProxy;
use steadycache_redis::testing::RedisServer;

/// A cache with an L1 over a Redis behind `proxy`, its link slowed to 200 ms ± 100 ms.
fn slow_cache(proxy: &FaultProxy) -> Cache {
    let url = format!(
        // A link this slow needs the client's own deadlines raised too (500 ms by default).
        "redis://127.0.0.1:{}/0?local=16mb&backend_timeout_ms=5000&response_timeout_ms=3000&connect_timeout_ms=3000",
        proxy.port()
    );
    let cache = match Cache::from_url_unshared(&url) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    // Until the bus is heard, L1's copies are not trusted (every read goes to the store): the
    // tests measure the cache once it is up.
    let began = Instant::now();
    while !cache.health().bus_live && began.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(cache.health().bus_live, "the bus is heard");
    proxy.latency(Duration::from_millis(200), Duration::from_millis(100));
    cache
}

/// A read this slow waited for a store round trip (the link adds 200 ms ± 100 ms each way).
const STORE_BOUND: Duration = Duration::from_millis(200);

/// `readers` tasks calling `f` (with 5 ms between calls) for `span`: the calls made, the
/// slowest, and how many took [`STORE_BOUND`] or more.
async fn read_for<F, Fut>(readers: usize, span: Duration, f: F) -> (u64, Duration, u64)
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = u64> + Send,
{
    let began = Instant::now();
    let tasks: Vec<_> = (0..readers)
        .map(|_| {
            let f = f.clone();
            tokio::spawn(async move {
                let (mut calls, mut slowest, mut slow) = (0u64, Duration::ZERO, 0u64);
                while began.elapsed() < span {
                    let t = Instant::now();
                    f().await;
                    calls += 1;
                    slowest = slowest.max(t.elapsed());
                    slow += u64::from(t.elapsed() >= STORE_BOUND);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                (calls, slowest, slow)
            })
        })
        .collect();
    let (mut calls, mut slowest, mut slow) = (0u64, Duration::ZERO, 0u64);
    for t in tasks {
        match t.await {
            Ok((c, s, n)) => {
                calls += c;
                slowest = slowest.max(s);
                slow += n;
            }
            Err(e) => panic!("{e}"),
        }
    }
    (calls, slowest, slow)
}

/// The cache of [`swr_value`]: set by its test before the first call.
static SWR_CACHE: OnceLock<Cache> = OnceLock::new();
static SWR_RUNS: AtomicU64 = AtomicU64::new(0);

fn swr_cache() -> Cache {
    match SWR_CACHE.get() {
        Some(c) => c.clone(),
        None => panic!("the test sets the cache first"),
    }
}

/// Stale after 500 ms, refreshed in the background; each computation returns its number.
#[steadycache::cached(cache = swr_cache(), ttl = "500ms", stale_while_revalidate = "1h")]
async fn swr_value(k: u32) -> u64 {
    let _ = k;
    SWR_RUNS.fetch_add(1, SeqCst) + 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_200ms_of_latency_swr_readers_are_served_in_process_and_refresh_once() {
    // Values stale after 500 ms and refreshed in the background. 4 readers read for 3 s: every
    // read after the first is served from the process (a hit or a stale value), without
    // waiting for the store, and each stale period refreshes at most once.
    let server = RedisServer::start();
    let Ok(proxy) = FaultProxy::start(server.port()) else {
        panic!("a proxy")
    };
    assert!(SWR_CACHE.set(slow_cache(&proxy)).is_ok());
    let stale_after = Duration::from_millis(500);
    assert_eq!(swr_value(1).await, 1);
    let began = Instant::now();
    let (calls, slowest, slow) = read_for(4, Duration::from_secs(3), || swr_value(1)).await;
    let stats = swr_value_cache().stats();
    let periods = began.elapsed().as_millis() / stale_after.as_millis() + 1;
    let refreshes = SWR_RUNS.load(SeqCst) - 1;
    assert!(
        stats.hits + stats.stale >= calls,
        "every read served from the process: {stats:?}, {calls} reads"
    );
    // 4 readers, one every ~5 ms each for 3 s: far more reads than a store round trip each
    // (200 ms or more) would allow.
    assert!(
        calls >= 100,
        "{calls} reads: the readers waited for the store"
    );
    assert!(
        slow <= calls / 20,
        "{slow} of {calls} reads waited for a store round trip"
    );
    assert!(refreshes >= 1, "the value was refreshed");
    assert!(
        u128::from(refreshes) <= periods,
        "{refreshes} refreshes in {periods} stale periods"
    );
    println!(
        "latency 200±100 ms, swr: {calls} reads by 4 readers in 3 s, {} hits + {} stale, {refreshes} refreshes in {periods} stale periods, slowest read {slowest:?}, {slow} reads of {STORE_BOUND:?} or more",
        stats.hits, stats.stale
    );
}

/// The cache of [`soft_value`]: set by its test before the first call.
static SOFT_CACHE: OnceLock<Cache> = OnceLock::new();
static SOFT_RUNS: AtomicU64 = AtomicU64::new(0);
/// What [`soft_value`] waits for: an upstream that answers in 1 s.
const UPSTREAM: Duration = Duration::from_secs(1);
/// What a caller holding an old value waits for it.
const SOFT: Duration = Duration::from_millis(50);

fn soft_cache() -> Cache {
    match SOFT_CACHE.get() {
        Some(c) => c.clone(),
        None => panic!("the test sets the cache first"),
    }
}

/// Expires after 300 ms, kept an hour for fail-safe; a slow upstream; callers with an old value
/// to serve wait at most `SOFT` for a new one.
#[steadycache::cached(cache = soft_cache(), ttl = "300ms", fail_safe = "1h", soft_timeout = "50ms")]
async fn soft_value(k: u32) -> u64 {
    let _ = k;
    tokio::time::sleep(UPSTREAM).await;
    SOFT_RUNS.fetch_add(1, SeqCst) + 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_200ms_of_latency_a_soft_timeout_bounds_the_wait_for_the_store_too() {
    // An expired value is kept (fail-safe) and a caller waits at most 50 ms for its refresh: on
    // a link where each store round trip takes 200 ms to 600 ms, that bound holds only if the
    // caller does not wait for the store either (its read, its lock, its write) before it falls
    // back to the old value.
    let server = RedisServer::start();
    let Ok(proxy) = FaultProxy::start(server.port()) else {
        panic!("a proxy")
    };
    assert!(SOFT_CACHE.set(slow_cache(&proxy)).is_ok());
    assert_eq!(soft_value(1).await, 1, "the first value is computed");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let span = Duration::from_secs(3);
    let (calls, slowest, slow) = read_for(4, span, || soft_value(1)).await;
    let runs = SOFT_RUNS.load(SeqCst);
    let stats = soft_value_cache().stats();
    println!(
        "latency 200±100 ms, soft_timeout {SOFT:?}: {calls} reads by 4 readers in 3 s, {runs} runs of a {UPSTREAM:?} upstream, slowest read {slowest:?}, {slow} reads of {STORE_BOUND:?} or more, {stats:?}"
    );
    // Each read waits at most ~50 ms, then 5 ms between reads: 4 readers make 200 or more in
    // 3 s. A reader that waited for a store round trip (200 ms or more) each time would make
    // 60 at most.
    assert!(
        calls >= 150,
        "{calls} reads: the readers waited for the store (slowest {slowest:?})"
    );
    assert!(
        slow <= calls / 20,
        "{slow} of {calls} reads waited for a store round trip (slowest {slowest:?})"
    );
    // One refresh at a time, each taking the upstream's second at least: 1 + 3 at most.
    assert!(runs <= 4, "{runs} runs: refreshes were not coalesced");
}

/// The cache of [`all_three`]: set by its test before the first call.
static ALL_CACHE: OnceLock<Cache> = OnceLock::new();
static ALL_RUNS: AtomicU64 = AtomicU64::new(0);

fn all_cache() -> Cache {
    match ALL_CACHE.get() {
        Some(c) => c.clone(),
        None => panic!("the test sets the cache first"),
    }
}

/// Stale-while-revalidate, fail-safe and a soft timeout set together, as a user sets them for
/// a slow upstream.
#[steadycache::cached(
    cache = all_cache(),
    ttl = "300ms",
    stale_while_revalidate = "1h",
    fail_safe = "1h",
    soft_timeout = "50ms"
)]
async fn all_three(k: u32) -> u64 {
    let _ = k;
    tokio::time::sleep(UPSTREAM).await;
    ALL_RUNS.fetch_add(1, SeqCst) + 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_200ms_of_latency_swr_with_fail_safe_and_a_soft_timeout_never_waits_for_the_store() {
    let server = RedisServer::start();
    let Ok(proxy) = FaultProxy::start(server.port()) else {
        panic!("a proxy")
    };
    assert!(ALL_CACHE.set(slow_cache(&proxy)).is_ok());
    assert_eq!(all_three(1).await, 1, "the first value is computed");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (calls, slowest, slow) = read_for(4, Duration::from_secs(3), || all_three(1)).await;
    let runs = ALL_RUNS.load(SeqCst);
    let stats = all_three_cache().stats();
    println!(
        "latency 200±100 ms, swr + fail-safe + soft_timeout: {calls} reads, {runs} runs, slowest {slowest:?}, {slow} reads of {STORE_BOUND:?} or more, {stats:?}"
    );
    assert!(
        stats.hits + stats.stale >= calls,
        "every read served from the process: {stats:?}, {calls} reads"
    );
    assert!(calls >= 150, "{calls} reads: the readers waited");
    assert!(
        slow <= calls / 20,
        "{slow} of {calls} reads waited for a store round trip (slowest {slowest:?})"
    );
    // One background refresh at a time, each taking the upstream's second at least.
    assert!(runs <= 4, "{runs} runs: refreshes were not coalesced");
}
