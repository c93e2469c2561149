//! A memoized-function hit on Redis against the peers a user would pick instead, in one run,
//! on one `redis-server` started on a free loopback port, 100-byte values:
//!
//! * steadycache: a `#[cached(ttl = "1h")]` async fn on `Cache::from_url("redis://…")`;
//! * raw redis-rs: `GET` on a `ConnectionManager` (the same kind of connection steadycache uses);
//! * the `cached` crate's `AsyncRedisCache` (`async_cache_get`).
//!
//! First, outside criterion, 5,000 sequential hits of each are timed one by one and their p50 and
//! p99 printed (the latency figure); then criterion measures the mean of a sequential hit
//! (`redis_hit_seq`) and the throughput of 64 concurrent tasks hitting (`redis_hit_64_tasks`).
//!
//! Run: `cargo bench --bench redis_hit --features redis` (needs `redis-server` on the PATH).
mod support;

use cached::{AsyncRedisCache, ConcurrentCachedAsync};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use redis::aio::ConnectionManager;
use std::hint::black_box;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use steadycache::{cached, Cache};
use steadycache_redis::testing::RedisServer;

const KEYS: u64 = 100;
const TASKS: u64 = 64;

fn server() -> &'static RedisServer {
    static S: OnceLock<RedisServer> = OnceLock::new();
    S.get_or_init(RedisServer::start)
}

fn value(x: u64) -> Vec<u8> {
    vec![(x % 251) as u8; 100]
}

fn redis_cache() -> Cache {
    Cache::from_url(&server().url()).expect("redis cache")
}

#[cached(cache = redis_cache(), ttl = "1h")]
async fn st_hit(x: u64) -> Vec<u8> {
    value(x)
}

/// An L1 over Redis kept coherent by the pub/sub bus (the default).
fn l1_bus_cache() -> Cache {
    Cache::from_url(&format!("{}?local=16MiB", server().url())).expect("redis cache")
}

/// An L1 over Redis kept coherent by the server's tracking (`tracking=on`) and the bus.
fn l1_tracking_cache() -> Cache {
    let url = format!("{}?local=16MiB&tracking=on", server().url());
    Cache::from_url(&url).expect("redis cache")
}

#[cached(cache = l1_bus_cache(), ttl = "1h", key_prefix = "l1bus")]
async fn l1_bus_hit(x: u64) -> Vec<u8> {
    value(x)
}

#[cached(cache = l1_tracking_cache(), ttl = "1h", key_prefix = "l1track")]
async fn l1_tracking_hit(x: u64) -> Vec<u8> {
    value(x)
}

struct Peers {
    raw: ConnectionManager,
    /// A raw connection whose driver task lives on a runtime of its own (2 workers, as
    /// steadycache's `steadycache-io`), the way a library's connection must when it outlives
    /// its caller's runtime: what that hop costs a raw GET.
    raw_own_rt: ConnectionManager,
    cached: AsyncRedisCache<u64, Vec<u8>>,
}

async fn raw_get(conn: &ConnectionManager, x: u64) -> Vec<u8> {
    let mut c = conn.clone();
    let v: Option<Vec<u8>> = redis::cmd("GET")
        .arg(format!("raw:{x}"))
        .query_async(&mut c)
        .await
        .expect("raw GET");
    v.expect("raw hit")
}

async fn setup() -> Peers {
    let client = redis::Client::open(server().url()).expect("client");
    let mut raw = ConnectionManager::new(client).await.expect("connection");
    let cached = AsyncRedisCache::<u64, Vec<u8>>::builder("bench")
        .ttl(Duration::from_secs(3600))
        .connection_string(&server().url())
        .build()
        .await
        .expect("cached's AsyncRedisCache");
    for x in 0..KEYS {
        st_hit(x).await;
        let _: () = redis::cmd("SET")
            .arg(format!("raw:{x}"))
            .arg(value(x))
            .query_async(&mut raw)
            .await
            .expect("SET");
        cached
            .async_cache_set(x, value(x))
            .await
            .expect("cached set");
    }
    let raw_own_rt = own_runtime_connection();
    Peers {
        raw,
        raw_own_rt,
        cached,
    }
}

/// A `ConnectionManager` made on (so driven by) a runtime that outlives the bench's own.
fn own_runtime_connection() -> ConnectionManager {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    let rt = RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("peer-io")
            .enable_all()
            .build()
            .expect("peer runtime")
    });
    let client = redis::Client::open(server().url()).expect("client");
    let (tx, rx) = std::sync::mpsc::channel();
    rt.spawn(async move {
        let _ = tx.send(ConnectionManager::new(client).await.expect("connection"));
    });
    rx.recv().expect("connection made on the peer runtime")
}

/// The latency figure: 5,000 sequential hits of each peer, timed one by one.
async fn print_percentiles(peers: &Peers) {
    let (st50, st99) = support::percentiles(5000, KEYS, st_hit).await;
    let (raw50, raw99) = support::percentiles(5000, KEYS, |x| raw_get(&peers.raw, x)).await;
    let (c50, c99) = support::percentiles(5000, KEYS, |x| async move {
        peers
            .cached
            .async_cache_get(&x)
            .await
            .ok()
            .flatten()
            .expect("cached hit")
    })
    .await;
    println!("redis hit p50 / p99 (µs), 5,000 sequential hits each:");
    println!("  steadycache #[cached]      {st50:7.1} / {st99:7.1}");
    println!("  raw redis-rs GET           {raw50:7.1} / {raw99:7.1}");
    println!("  cached AsyncRedisCache     {c50:7.1} / {c99:7.1}");
    println!(
        "  p50 ratio steadycache / raw GET = {:.3}, / cached = {:.3}",
        st50 / raw50,
        st50 / c50
    );
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let peers = rt.block_on(setup());
    let peers = &peers;

    rt.block_on(print_percentiles(peers));

    let mut g = c.benchmark_group("redis_hit_seq");
    let mut next = support::key_cycle(KEYS);
    g.bench_function("steadycache", |b| {
        b.to_async(&rt).iter(|| st_hit(black_box(next())))
    });
    g.bench_function("raw_get", |b| {
        b.to_async(&rt)
            .iter(|| raw_get(&peers.raw, black_box(next())))
    });
    g.bench_function("cached_async_redis", |b| {
        b.to_async(&rt).iter(|| {
            let x = black_box(next());
            async move { peers.cached.async_cache_get(&x).await }
        })
    });
    g.finish();

    bench_l1(c, &rt, &mut next);

    // 64 tasks hitting at once; criterion's time per element gives hits/s.
    let mut g = c.benchmark_group("redis_hit_64_tasks");
    g.throughput(Throughput::Elements(1));
    g.bench_function("steadycache", |b| {
        b.to_async(&rt).iter_custom(|iters| async move {
            let per = iters.div_ceil(TASKS);
            let start = Instant::now();
            let tasks: Vec<_> = (0..TASKS)
                .map(|t| {
                    tokio::spawn(async move {
                        for i in 0..per {
                            black_box(st_hit((t + i) % KEYS).await);
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.expect("task");
            }
            start.elapsed().mul_f64(iters as f64 / (per * TASKS) as f64)
        })
    });
    for (name, conn) in [
        ("raw_get", &peers.raw),
        ("raw_get_own_runtime", &peers.raw_own_rt),
    ] {
        g.bench_function(name, |b| {
            b.to_async(&rt)
                .iter_custom(|iters| raw_tasks(conn.clone(), iters))
        });
    }
    g.finish();
    assert!(
        st_hit_cache().stats().hits > 0,
        "the benchmark measured hits"
    );
}

/// `iters` raw GETs spread over `TASKS` tasks on `conn`; the time per element.
/// An L1 hit over Redis: kept coherent by the bus alone, and with the server's tracking too
/// (issue 25, item 2: the same hit check, one relaxed load of `live_until`).
fn bench_l1(c: &mut Criterion, rt: &tokio::runtime::Runtime, next: &mut impl FnMut() -> u64) {
    rt.block_on(async {
        for x in 0..KEYS {
            l1_bus_hit(x).await;
            l1_tracking_hit(x).await;
        }
    });
    let live = || l1_bus_cache().health().bus_live && l1_tracking_cache().health().bus_live;
    let give_up = Instant::now() + Duration::from_secs(10);
    while !live() && Instant::now() < give_up {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(live(), "the L1s' bus and tracking are heard");
    let mut g = c.benchmark_group("redis_l1_hit");
    g.bench_function("bus", |b| {
        b.to_async(rt).iter(|| l1_bus_hit(black_box(next())))
    });
    g.bench_function("tracking", |b| {
        b.to_async(rt).iter(|| l1_tracking_hit(black_box(next())))
    });
    g.finish();
}

async fn raw_tasks(conn: ConnectionManager, iters: u64) -> Duration {
    let per = iters.div_ceil(TASKS);
    let start = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let conn = conn.clone();
            tokio::spawn(async move {
                for i in 0..per {
                    black_box(raw_get(&conn, (t + i) % KEYS).await);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
    start.elapsed().mul_f64(iters as f64 / (per * TASKS) as f64)
}

criterion_group!(benches, bench);
criterion_main!(benches);
