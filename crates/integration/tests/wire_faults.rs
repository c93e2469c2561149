//! Faults on the wire between a cache and its Redis (issue 24, item 2), through the test fault
//! proxy (`steadycache_api::testing::proxy`): a real `redis-server`, a real client, and a TCP
//! link that goes bad. Counts are asserted (how many times the function ran, what was served);
//! times only as generous "does not wait" bounds. Run with `--nocapture` for the figures.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};
use steadycache::{Cache, Policy};
use steadycache_api::testing::proxy::FaultProxy;
use steadycache_redis::testing::RedisServer;

/// Each call's backend deadline.
const TIMEOUT: Duration = Duration::from_millis(300);
/// What a loaded machine may add to a deadline before a test calls it a wait.
const ALLOWANCE: Duration = Duration::from_secs(5);

fn policy() -> Policy {
    Policy::expire_after(Duration::from_secs(3600))
}

/// A cache on Redis through `proxy`, whose breaker opens after `breaker` failed calls (0: no
/// breaker).
fn cache_through(proxy: &FaultProxy, breaker: u32) -> Cache {
    cache_with(
        proxy,
        &format!(
            "backend_timeout_ms={}&breaker_threshold={breaker}&breaker_cooldown_ms=300",
            TIMEOUT.as_millis()
        ),
    )
}

/// A cache on Redis through `proxy`, with the URL options `query`.
fn cache_with(proxy: &FaultProxy, query: &str) -> Cache {
    let url = format!("redis://127.0.0.1:{}/0?{query}", proxy.port());
    match Cache::from_url_unshared(&url) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    }
}

/// A new `redis-server`, and a fault proxy in front of it.
fn redis_behind_a_proxy() -> (RedisServer, FaultProxy) {
    let server = RedisServer::start();
    match FaultProxy::start(server.port()) {
        Ok(proxy) => (server, proxy),
        Err(e) => panic!("a proxy: {e}"),
    }
}

/// One call of a function that counts its runs and returns their number; how long it took.
async fn call(cache: &Cache, key: &str, runs: &Arc<AtomicU64>) -> (u64, Duration) {
    let began = Instant::now();
    let runs = runs.clone();
    let r = cache
        .get_or_compute(key, &policy(), || async move {
            Ok::<u64, Infallible>(runs.fetch_add(1, SeqCst) + 1)
        })
        .await;
    match r {
        Ok(v) => (v, began.elapsed()),
        Err(e) => match e {},
    }
}

/// The same from a sync caller (on a blocking thread, as a sync service would call it).
async fn call_sync(cache: &Cache, key: &str, runs: &Arc<AtomicU64>) -> (u64, Duration) {
    let (cache, key, runs) = (cache.clone(), key.to_owned(), runs.clone());
    let joined = tokio::task::spawn_blocking(move || {
        let began = Instant::now();
        let r = cache.get_or_compute_sync(&key, &policy(), || {
            Ok::<u64, Infallible>(runs.fetch_add(1, SeqCst) + 1)
        });
        match r {
            Ok(v) => (v, began.elapsed()),
            Err(e) => match e {},
        }
    })
    .await;
    match joined {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_a_black_hole_each_call_fails_open_in_time_and_the_breaker_heals() {
    let (_server, proxy) = redis_behind_a_proxy();
    let cache = cache_through(&proxy, 3);
    let runs = Arc::new(AtomicU64::new(0));
    assert_eq!(call(&cache, "wire:bh", &runs).await.0, 1);
    assert_eq!(call(&cache, "wire:bh", &runs).await.0, 1, "a hit");

    // The link stops answering and nothing closes: a half-open socket after a failover.
    proxy.black_hole();
    let mut slowest = Duration::ZERO;
    for i in 0..10 {
        let (v, took) = if i % 2 == 0 {
            call(&cache, "wire:bh", &runs).await
        } else {
            call_sync(&cache, "wire:bh", &runs).await
        };
        assert_eq!(
            v,
            runs.load(SeqCst),
            "the call ran the function and got its value"
        );
        slowest = slowest.max(took);
    }
    assert_eq!(runs.load(SeqCst), 11, "every call failed open");
    // A call waits at most for its load and its save, each bounded by the backend timeout.
    assert!(
        slowest < 2 * TIMEOUT + ALLOWANCE,
        "slowest call {slowest:?}"
    );
    let health = cache.health();
    assert!(health.circuit_open, "{health:?}");

    // Healed: the breaker's probe finds the store back, and caching resumes in this process.
    proxy.heal();
    let closed = steadycache_api::testing::eventually(|| !cache.health().circuit_open);
    assert!(closed, "the breaker closed: {:?}", cache.health());
    let (first, _) = call(&cache, "wire:bh", &runs).await;
    let before = runs.load(SeqCst);
    let (second, _) = call(&cache, "wire:bh", &runs).await;
    assert_eq!(second, first, "a hit again");
    assert_eq!(runs.load(SeqCst), before, "without running the function");
    println!(
        "black hole: {} runs for 12 calls, slowest call {slowest:?} (backend timeout {TIMEOUT:?}), breaker opened {} time(s)",
        runs.load(SeqCst),
        cache.health().circuit_opened
    );
}

/// What `redis-cli` prints for `args`.
fn command_output(server: &RedisServer, args: &[&str]) -> String {
    let out = std::process::Command::new("redis-cli")
        .args(["-p", &server.port().to_string()])
        .args(args)
        .output();
    out.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// How many times Redis has run `command` (from `INFO commandstats`).
fn command_calls(server: &RedisServer, command: &str) -> u64 {
    let out = std::process::Command::new("redis-cli")
        .args(["-p", &server.port().to_string(), "INFO", "commandstats"])
        .output();
    let Ok(out) = out else {
        panic!("redis-cli runs")
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let prefix = format!("cmdstat_{command}:calls=");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_waits_for_an_unanswering_store_once_not_once_per_operation() {
    // No breaker: each call meets the black hole. Before, a call read (timeout), read again
    // after taking the in-process lock (timeout) and saved (timeout): 3 backend timeouts. Now
    // the read that went unanswered is the call's only store operation on the entry.
    let (server, proxy) = redis_behind_a_proxy();
    let cache = cache_through(&proxy, 0);
    calls_in_a_black_hole(&server, &proxy, &cache, "wire:once").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stores_own_shorter_deadline_bounds_a_call_once_too() {
    // The store's own deadline (Redis `response_timeout_ms`) shorter than `backend_timeout`:
    // the cache bounds each operation by the shorter one itself and the backend skips its own
    // timer (one timer per operation). Before, the backend timed the read out, retried it and
    // timed it out again: two reads per call into the black hole, and twice the wait.
    let (server, proxy) = redis_behind_a_proxy();
    let query = format!(
        "backend_timeout_ms=4000&response_timeout_ms={}&breaker_threshold=0",
        TIMEOUT.as_millis()
    );
    let cache = cache_with(&proxy, &query);
    let shorter = cache.backend_timeout();
    assert_eq!(shorter, TIMEOUT, "the shorter deadline bounds each call");
    calls_in_a_black_hole(&server, &proxy, &cache, "wire:own").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_a_caches_calls_the_backend_keeps_its_own_deadline() {
    // The connection skips its own timer only under a cache's deadline. A user's own call on
    // the backend, and each request of a bulk removal (bounded by the long `bulk_timeout`), is
    // timed out by the backend itself: a black hole is an error, not a wait without end.
    let (_server, proxy) = redis_behind_a_proxy();
    let url = format!(
        "redis://127.0.0.1:{}/0?response_timeout_ms={}",
        proxy.port(),
        TIMEOUT.as_millis()
    );
    let backend = match steadycache_redis::RedisBackend::from_url(&url) {
        Ok(b) => b,
        Err(e) => panic!("{e}"),
    };
    let cache = cache_through(&proxy, 0);
    use steadycache_api::Backend;
    assert!(backend.ping().await.is_ok(), "reachable");
    assert!(cache.backend().ping().await.is_ok(), "reachable");
    proxy.black_hole();
    let guard = TIMEOUT * 2 + ALLOWANCE;
    match tokio::time::timeout(guard, backend.get("wire:direct")).await {
        Ok(Err(e)) => assert!(e.is_transient(), "{e}"),
        other => panic!("a direct read in a black hole: {other:?}"),
    }
    match tokio::time::timeout(guard, cache.clear_namespace("wire")).await {
        Ok(Err(e)) => assert!(e.is_transient(), "{e}"),
        other => panic!("a bulk removal in a black hole: {other:?}"),
    }
}

/// Calls of `key` on `cache` (through `proxy` to `server`) while the link is a black hole,
/// async and sync in turn: each fails open after one read and no write (counted on the
/// server once the link heals), none waiting much past [`TIMEOUT`].
async fn calls_in_a_black_hole(server: &RedisServer, proxy: &FaultProxy, cache: &Cache, key: &str) {
    let runs = Arc::new(AtomicU64::new(0));
    call(cache, key, &runs).await;
    let (gets, sets) = (command_calls(server, "get"), command_calls(server, "set"));
    proxy.black_hole();
    let mut slowest = Duration::ZERO;
    const CALLS: u64 = 4;
    for i in 0..CALLS {
        let (_, took) = if i % 2 == 0 {
            call(cache, key, &runs).await
        } else {
            call_sync(cache, key, &runs).await
        };
        slowest = slowest.max(took);
    }
    assert_eq!(runs.load(SeqCst), 1 + CALLS, "every call failed open");
    // Healed, what the calls sent reaches Redis (held, not lost): count it.
    proxy.heal();
    let delivered =
        steadycache_api::testing::eventually(|| command_calls(server, "get") >= gets + CALLS);
    assert!(delivered, "the held reads arrived");
    std::thread::sleep(Duration::from_millis(300));
    let (gets, sets) = (
        command_calls(server, "get") - gets,
        command_calls(server, "set") - sets,
    );
    assert_eq!(gets, CALLS, "one read per call");
    assert_eq!(sets, 0, "no write after a read that went unanswered");
    assert!(slowest < TIMEOUT + ALLOWANCE, "slowest call {slowest:?}");
    println!("{CALLS} calls of {key} into a black hole sent {gets} reads and {sets} writes; slowest call {slowest:?} (deadline {TIMEOUT:?})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_cut_in_the_middle_is_a_counted_miss_never_a_truncated_value() {
    // A stores a 5 MB value directly; B reads it through a link that resets each connection
    // after 1 MB from the server. B's read is a miss (the function runs and serves its own
    // value), counted as a backend error, and B does not overwrite A's value with its own.
    // Healed, B reads A's value whole.
    let (server, proxy) = redis_behind_a_proxy();
    let direct = format!("redis://127.0.0.1:{}/0", server.port());
    let a = match Cache::from_url_unshared(&direct) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    let b = cache_through(&proxy, 0);
    let big: Vec<u8> = (0..5_000_000u32).map(|i| (i % 251) as u8).collect();
    let stored = {
        let big = big.clone();
        a.get_or_compute(
            "wire:big",
            &policy(),
            || async move { Ok::<_, Infallible>(big) },
        )
        .await
    };
    assert_eq!(stored.as_ref().map(Vec::len), Ok(5_000_000));
    proxy.reset_after(1_000_000);
    let runs = AtomicU64::new(0);
    let read = |cache: Cache| {
        let runs = &runs;
        async move {
            let r = cache
                .get_or_compute("wire:big", &policy(), || async {
                    runs.fetch_add(1, SeqCst);
                    Ok::<_, Infallible>(vec![2u8; 10])
                })
                .await;
            match r {
                Ok(v) => v,
                Err(e) => match e {},
            }
        }
    };
    let cut = read(b.clone()).await;
    assert_eq!(
        cut,
        vec![2u8; 10],
        "a miss: B's own value, never a part of A's"
    );
    assert_eq!(runs.load(SeqCst), 1);
    assert!(b.stats().backend_errors >= 1, "counted: {:?}", b.stats());
    assert!(proxy.resets() >= 1, "the reply was cut");
    proxy.heal();
    // The client reconnects; the store still holds A's value, whole.
    let mut whole = Vec::new();
    for _ in 0..50 {
        whole = read(b.clone()).await;
        if whole.len() == big.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        whole == big,
        "A's value, whole ({} bytes read; runs {}, {:?}, stored {} bytes)",
        whole.len(),
        runs.load(SeqCst),
        b.stats(),
        command_output(&server, &["STRLEN", "wire:big"])
    );
    println!(
        "cut reply: {} run(s) of B's function, {} backend error(s), {} reset(s); then A's 5 MB value whole",
        runs.load(SeqCst),
        b.stats().backend_errors,
        proxy.resets()
    );
}

/// Two "processes" on one Redis, each with an L1: A directly, B through a proxy that carries all
/// of B's connections (its bus's subscription too). Set by their test before the first call.
static BH_A: std::sync::OnceLock<Cache> = std::sync::OnceLock::new();
static BH_B: std::sync::OnceLock<Cache> = std::sync::OnceLock::new();
/// What A's function computes; B's computes 1000 + its run count (so a value says who made it).
static BH_VALUE: AtomicU64 = AtomicU64::new(1);
static BH_B_RUNS: AtomicU64 = AtomicU64::new(0);

fn bh_a() -> Cache {
    BH_A.get().cloned().unwrap_or_else(|| panic!("set first"))
}
fn bh_b() -> Cache {
    BH_B.get().cloned().unwrap_or_else(|| panic!("set first"))
}

#[steadycache::cached(cache = bh_a(), key_prefix = "bh", version = "1", ttl = "1h")]
async fn bh_in_a(k: u32) -> u64 {
    let _ = k;
    BH_VALUE.load(SeqCst)
}

#[steadycache::cached(cache = bh_b(), key_prefix = "bh", version = "1", ttl = "1h")]
async fn bh_in_b(k: u32) -> u64 {
    let _ = k;
    1000 + BH_B_RUNS.fetch_add(1, SeqCst)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_l1_whose_bus_is_black_holed_stops_serving_its_copies_within_the_grace() {
    let (server, proxy) = redis_behind_a_proxy();
    let grace = Duration::from_millis(500);
    let options = format!(
        "local=16mb&backend_timeout_ms={}&bus_grace_ms={}",
        TIMEOUT.as_millis(),
        grace.as_millis()
    );
    let open = |port: u16| match Cache::from_url_unshared(&format!(
        "redis://127.0.0.1:{port}/0?{options}"
    )) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    assert!(BH_A.set(open(server.port())).is_ok());
    assert!(BH_B.set(open(proxy.port())).is_ok());
    // A computes 1; B reads it from the store and keeps a copy.
    assert_eq!(bh_in_a(1).await, 1);
    assert!(steadycache_api::testing::eventually(|| bh_b()
        .health()
        .bus_live));
    assert_eq!(bh_in_b(1).await, 1);
    assert_eq!(bh_in_b(1).await, 1, "from B's L1");

    // B's link goes silent. A invalidates and computes 2: B never hears of it.
    proxy.black_hole();
    BH_VALUE.store(2, SeqCst);
    if let Err(e) = bh_in_a_cache().invalidate(1).await {
        panic!("{e}")
    }
    // (A computation that begins within the invalidation's millisecond margin is undone after
    // its save: it may have raced the invalidation. Begin after it, so that A's value stays.)
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(bh_in_a(1).await, 2);
    // Within the grace B may still serve its copy; after it (and an allowance for a loaded
    // machine), never: its reads go to the store, which does not answer, and fail open.
    let silent = Instant::now();
    let mut last_copy = None;
    let mut reads = 0;
    while silent.elapsed() < grace + Duration::from_secs(3) {
        let v = bh_in_b(1).await;
        reads += 1;
        if v == 1 {
            last_copy = Some(silent.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let last_copy = last_copy.unwrap_or_default();
    assert!(
        last_copy < grace + Duration::from_secs(2),
        "B served its old copy {last_copy:?} after its bus went silent (grace {grace:?})"
    );
    assert!(!bh_b().health().bus_live, "{:?}", bh_b().health());

    // Healed: B hears its bus again, flushes, and serves the store's value; never 1 again.
    proxy.heal();
    let mut served = Vec::new();
    let back = Instant::now();
    while back.elapsed() < Duration::from_secs(20) {
        let v = bh_in_b(1).await;
        served.push(v);
        if v == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    served.truncate(12);
    assert_eq!(
        served.last(),
        Some(&2),
        "B serves A's value again: {served:?}"
    );
    assert!(
        !served.contains(&1),
        "never the copy older than the invalidation: {served:?}"
    );
    for _ in 0..20 {
        assert_eq!(bh_in_b(1).await, 2);
    }
    println!(
        "bus black hole: {reads} reads while silent, the old copy last served {last_copy:?} after the link went silent (grace {grace:?}); after healing, A's value after {} read(s), B's function ran {} time(s)",
        served.len(),
        BH_B_RUNS.load(SeqCst)
    );
}
