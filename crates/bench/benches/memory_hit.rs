//! Cost of a memoized-function HIT on an in-process cache: steadycache's `#[cached]` on the
//! default memory cache against the `cached` crate (4.x) and, as the floor, raw `quick_cache`
//! and `moka` lookups.
//!
//! Every function is warmed with keys `0..KEYS` before anything is measured, and each benchmark
//! walks those keys in turn, so every measured call is a hit.
//!
//! Groups:
//! * `hit_sync`: one thread, sync calls; also an L1 in front of Redis kept coherent by the
//!   pub/sub bus (`steadycache_l1_over_redis`), a tagged function (`steadycache_tagged`) and a
//!   function on a cache with a listener that ignores hits (`steadycache_listened`), and a
//!   value without serde (`steadycache_opaque`: an `Arc` of a plain struct) beside the same
//!   `Arc` with serde (`steadycache_arc_serde`: what its hit costs today), and a key argument
//!   without serde, hashed by its `Hash` (`steadycache_hash_arg`).
//! * `hit_async`: one task on a current-thread tokio runtime (`Bencher::to_async`).
//! * `hit_2threads`: two threads hitting the same function at once; throughput in hits/s.
//!
//! `cached` 4.x attribute names (from `cached_proc_macro` 3.0): `max_size` (the old `size` is a
//! compile error), `ttl_secs` (the old `time` is a compile error); `#[concurrent_cached]` exists and,
//! with neither `redis` nor `disk`, uses the sharded in-memory `ShardedLruTtlCache` for
//! `max_size` + `ttl_secs`, with a plain (non-`Result`) return type.
//!
//! Raw `quick_cache` here is the workspace's build of it, with `sharded-lock` as the tier uses
//! it (its default `parking_lot` build read a `u64` in about 7.9 ns on this machine, 9.6 ns with
//! the sharded lock, and served two threads about 4× fewer hits per second).
//!
//! Run: `cargo bench --bench memory_hit`.
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

/// Hot keys: every function is warmed with `0..KEYS`.
const KEYS: u64 = 1000;

/// Bound given to the size-bounded stores (well above `KEYS`: nothing is evicted).
const MAX_SIZE: usize = 10_000;

/// Function bodies run (misses), over all memoized functions; checked after the run.
static BODY_RUNS: AtomicU64 = AtomicU64::new(0);

#[inline]
fn body(x: u64) -> u64 {
    BODY_RUNS.fetch_add(1, Ordering::Relaxed);
    x * 2
}

// ---- steadycache ----------------------------------------------------------------------------

#[steadycache::cached(ttl = "10m")]
fn sc_sync(x: u64) -> u64 {
    body(x)
}

#[steadycache::cached(ttl = "10m")]
async fn sc_async(x: u64) -> u64 {
    body(x)
}

/// An L1 in front of Redis, kept coherent by the Redis pub/sub bus (issue 14): its hit checks
/// the bus's watch too.
fn l1_over_redis() -> steadycache::Cache {
    static SERVER: std::sync::OnceLock<steadycache_redis::testing::RedisServer> =
        std::sync::OnceLock::new();
    static CACHE: std::sync::OnceLock<steadycache::Cache> = std::sync::OnceLock::new();
    CACHE
        .get_or_init(|| {
            let server = SERVER.get_or_init(steadycache_redis::testing::RedisServer::start);
            let cache = steadycache::Cache::from_url(&format!("{}?local=64MiB", server.url()))
                .expect("redis cache");
            let start = Instant::now();
            while !cache.health().bus_live && start.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(10));
            }
            assert!(cache.health().bus_live, "the bus is heard");
            cache
        })
        .clone()
}

#[steadycache::cached(cache = l1_over_redis(), ttl = "10m")]
fn sc_l1_redis(x: u64) -> u64 {
    body(x)
}

/// A tagged function on the memory cache: its hit checks the tag epoch too.
#[steadycache::cached(ttl = "10m", tags = ["n:{x}"])]
fn sc_tagged(x: u64) -> u64 {
    body(x)
}

/// A memory cache with a listener that does not ask for hits (`CacheListener::wants_hits`):
/// its hit should cost what `sc_sync`'s does.
fn listened_cache() -> &'static steadycache::Cache {
    struct Quiet;
    impl steadycache::CacheListener for Quiet {}
    static CACHE: std::sync::OnceLock<steadycache::Cache> = std::sync::OnceLock::new();
    CACHE.get_or_init(|| {
        let cache = steadycache::Cache::memory();
        cache.set_listener(std::sync::Arc::new(Quiet));
        cache
    })
}

#[steadycache::cached(cache = listened_cache(), ttl = "10m")]
fn sc_listened(x: u64) -> u64 {
    body(x)
}

/// A value without serde (issue 25, item 1): kept typed in memory, weighed by its size.
struct Opaque(u64);

/// A serde-free value on the default memory cache: an `Arc` of a type without serde, as an
/// `Arc<Client>` would be. Its hit clones the `Arc` (an atomic increment, and a decrement
/// when the caller drops it).
#[steadycache::cached(ttl = "10m")]
fn sc_opaque(x: u64) -> std::sync::Arc<Opaque> {
    std::sync::Arc::new(Opaque(body(x)))
}

/// The same value with serde (a hand-written impl: the workspace's serde has no `rc`): the
/// like-for-like baseline of `sc_opaque`, whose hit clones an `Arc` too.
#[derive(Clone)]
struct SerdeArc(std::sync::Arc<u64>);

impl serde::Serialize for SerdeArc {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(*self.0)
    }
}

impl<'de> serde::Deserialize<'de> for SerdeArc {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        u64::deserialize(d).map(|v| SerdeArc(std::sync::Arc::new(v)))
    }
}

#[steadycache::cached(ttl = "10m")]
fn sc_arc_serde(x: u64) -> SerdeArc {
    SerdeArc(std::sync::Arc::new(body(x)))
}

/// A key argument without serde: hashed by its `Hash` (`hash_local`).
#[derive(Hash)]
struct HashOnly(u64);

#[steadycache::cached(ttl = "10m")]
fn sc_hash_arg(x: HashOnly) -> u64 {
    body(x.0)
}

// ---- cached 4.x -----------------------------------------------------------------------------

/// `SizedCache` (LRU) behind the macro's global lock, no expiry.
#[cached::proc_macro::cached(max_size = 10000)]
fn cd_sized(x: u64) -> u64 {
    body(x)
}

/// `TimedSizedCache` (LRU + TTL) behind the macro's global lock.
#[cached::proc_macro::cached(max_size = 10000, ttl_secs = 600)]
fn cd_sized_ttl(x: u64) -> u64 {
    body(x)
}

/// Sharded in-memory `ShardedLruTtlCache`.
#[cached::proc_macro::concurrent_cached(max_size = 10000, ttl_secs = 600)]
fn cd_concurrent_ttl(x: u64) -> u64 {
    body(x)
}

/// Async `TimedSizedCache` (LRU + TTL) behind an async lock.
#[cached::proc_macro::cached(max_size = 10000, ttl_secs = 600)]
async fn cd_sized_ttl_async(x: u64) -> u64 {
    body(x)
}

/// Async sharded in-memory `ShardedLruTtlCache`.
#[cached::proc_macro::concurrent_cached(max_size = 10000, ttl_secs = 600)]
async fn cd_concurrent_ttl_async(x: u64) -> u64 {
    body(x)
}

/// Memoized functions warmed with `KEYS` keys each (for the miss check).
const MEMOIZED_FNS: u64 = 13;

// ---- helpers --------------------------------------------------------------------------------

/// Walks `0..KEYS` round and round.
struct Keys(u64);

impl Keys {
    fn starting_at(k: u64) -> Self {
        Keys(k % KEYS)
    }

    #[inline(always)]
    fn next(&mut self) -> u64 {
        let k = self.0;
        self.0 = if k + 1 == KEYS { 0 } else { k + 1 };
        k
    }
}

fn quick_cache_filled() -> quick_cache::sync::Cache<u64, u64> {
    let c = quick_cache::sync::Cache::new(MAX_SIZE);
    for k in 0..KEYS {
        c.insert(k, k * 2);
    }
    c
}

fn moka_filled() -> moka::sync::Cache<u64, u64> {
    let c = moka::sync::Cache::builder()
        .max_capacity(MAX_SIZE as u64)
        .time_to_live(Duration::from_secs(600))
        .build();
    for k in 0..KEYS {
        c.insert(k, k * 2);
    }
    c.run_pending_tasks();
    c
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn warm_all() {
    for k in 0..KEYS {
        sc_sync(k);
        sc_l1_redis(k);
        sc_tagged(k);
        sc_listened(k);
        sc_opaque(k);
        sc_arc_serde(k);
        sc_hash_arg(HashOnly(k));
        cd_sized(k);
        cd_sized_ttl(k);
        cd_concurrent_ttl(k);
    }
    runtime().block_on(async {
        for k in 0..KEYS {
            sc_async(k).await;
            cd_sized_ttl_async(k).await;
            cd_concurrent_ttl_async(k).await;
        }
    });
}

// ---- benchmarks -----------------------------------------------------------------------------

fn hit_sync(c: &mut Criterion) {
    warm_all();
    let qc = quick_cache_filled();
    let moka = moka_filled();

    let mut g = c.benchmark_group("hit_sync");
    g.throughput(Throughput::Elements(1));

    let mut keys = Keys::starting_at(0);
    g.bench_function("steadycache_ttl", |b| {
        b.iter(|| sc_sync(black_box(keys.next())))
    });
    g.bench_function("steadycache_l1_over_redis", |b| {
        b.iter(|| sc_l1_redis(black_box(keys.next())))
    });
    g.bench_function("steadycache_tagged", |b| {
        b.iter(|| sc_tagged(black_box(keys.next())))
    });
    g.bench_function("steadycache_listened", |b| {
        b.iter(|| sc_listened(black_box(keys.next())))
    });
    g.bench_function("steadycache_opaque", |b| {
        b.iter(|| sc_opaque(black_box(keys.next())).0)
    });
    g.bench_function("steadycache_arc_serde", |b| {
        b.iter(|| *sc_arc_serde(black_box(keys.next())).0)
    });
    g.bench_function("steadycache_hash_arg", |b| {
        b.iter(|| sc_hash_arg(HashOnly(black_box(keys.next()))))
    });
    g.bench_function("cached_sized", |b| {
        b.iter(|| cd_sized(black_box(keys.next())))
    });
    g.bench_function("cached_sized_ttl", |b| {
        b.iter(|| cd_sized_ttl(black_box(keys.next())))
    });
    g.bench_function("cached_concurrent_ttl", |b| {
        b.iter(|| cd_concurrent_ttl(black_box(keys.next())))
    });
    g.bench_function("raw_quick_cache", |b| {
        b.iter(|| qc.get(&black_box(keys.next())))
    });
    g.bench_function("raw_moka", |b| b.iter(|| moka.get(&black_box(keys.next()))));
    g.finish();
}

fn hit_async(c: &mut Criterion) {
    warm_all();
    let rt = runtime();
    let qc = quick_cache_filled();

    let mut g = c.benchmark_group("hit_async");
    g.throughput(Throughput::Elements(1));

    let mut keys = Keys::starting_at(0);
    g.bench_function("steadycache_ttl", |b| {
        b.to_async(&rt).iter(|| {
            let k = black_box(keys.next());
            async move { sc_async(k).await }
        })
    });
    g.bench_function("cached_sized_ttl", |b| {
        b.to_async(&rt).iter(|| {
            let k = black_box(keys.next());
            async move { cd_sized_ttl_async(k).await }
        })
    });
    g.bench_function("cached_concurrent_ttl", |b| {
        b.to_async(&rt).iter(|| {
            let k = black_box(keys.next());
            async move { cd_concurrent_ttl_async(k).await }
        })
    });
    // The floor: a raw lookup inside the same async harness.
    g.bench_function("raw_quick_cache", |b| {
        b.to_async(&rt).iter(|| {
            let k = black_box(keys.next());
            let qc = &qc;
            async move { qc.get(&k) }
        })
    });
    g.finish();
}

/// Two threads, released together by a barrier, each doing `iters` hits over the hot keys
/// (starting half the key space apart). Returns the wall time until both are done.
fn two_threads<F>(iters: u64, hit: F) -> Duration
where
    F: Fn(u64) -> u64 + Sync,
{
    const THREADS: u64 = 2;
    let barrier = Barrier::new(THREADS as usize + 1);
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (barrier, hit) = (&barrier, &hit);
            s.spawn(move || {
                let mut keys = Keys::starting_at(t * KEYS / THREADS);
                barrier.wait();
                for _ in 0..iters {
                    black_box(hit(black_box(keys.next())));
                }
            });
        }
        barrier.wait();
        let start = Instant::now();
        // Leaving the scope joins both threads.
        start
    })
    .elapsed()
}

fn hit_2threads(c: &mut Criterion) {
    warm_all();
    let qc = quick_cache_filled();
    let moka = moka_filled();

    let mut g = c.benchmark_group("hit_2threads");
    // One iteration = one hit on each of the two threads.
    g.throughput(Throughput::Elements(2));

    g.bench_function("steadycache_ttl", |b| {
        b.iter_custom(|iters| two_threads(iters, sc_sync))
    });
    g.bench_function("cached_sized", |b| {
        b.iter_custom(|iters| two_threads(iters, cd_sized))
    });
    g.bench_function("cached_sized_ttl", |b| {
        b.iter_custom(|iters| two_threads(iters, cd_sized_ttl))
    });
    g.bench_function("cached_concurrent_ttl", |b| {
        b.iter_custom(|iters| two_threads(iters, cd_concurrent_ttl))
    });
    g.bench_function("raw_quick_cache", |b| {
        b.iter_custom(|iters| two_threads(iters, |k| qc.get(&k).unwrap_or(0)))
    });
    g.bench_function("raw_moka", |b| {
        b.iter_custom(|iters| two_threads(iters, |k| moka.get(&k).unwrap_or(0)))
    });
    g.finish();
}

/// The key of a hit, alone: the args hash of one `u64` (what `#[cached]` computes before its
/// lookup) by the fast encoder of `key::direct`, and by bincode's own serde encoder (the
/// general path, same bytes and hash), in one run.
fn key_hash(c: &mut Criterion) {
    use steadycache::__private::{hash_args, hash_args_bincode};
    let mut g = c.benchmark_group("key_hash");
    g.throughput(Throughput::Elements(1));
    let mut keys = Keys::starting_at(0);
    g.bench_function("u64_direct", |b| {
        b.iter(|| hash_args(&(black_box(keys.next()),)))
    });
    g.bench_function("u64_bincode", |b| {
        b.iter(|| hash_args_bincode(&(black_box(keys.next()),)))
    });
    let text = "EUR/USD";
    g.bench_function("str_u32_direct", |b| {
        b.iter(|| hash_args(&(black_box(text), black_box(keys.next()) as u32)))
    });
    g.bench_function("str_u32_bincode", |b| {
        b.iter(|| hash_args_bincode(&(black_box(text), black_box(keys.next()) as u32)))
    });
    g.finish();
}

/// Every measured call must have been a hit: the bodies ran only while warming.
fn check_all_hits(_: &mut Criterion) {
    let runs = BODY_RUNS.load(Ordering::Relaxed);
    let expected = MEMOIZED_FNS * KEYS;
    if runs != expected {
        eprintln!("WARNING: {runs} function bodies ran, expected {expected}: some calls missed");
    }
    let sc = sc_sync_cache().stats();
    eprintln!(
        "steadycache sc_sync: {} hits, {} misses; sc_async: {} misses; bodies run: {runs} (expected {expected})",
        sc.hits,
        sc.misses,
        sc_async_cache().stats().misses
    );
}

criterion_group!(
    benches,
    hit_sync,
    hit_async,
    hit_2threads,
    key_hash,
    check_all_hits
);
criterion_main!(benches);
