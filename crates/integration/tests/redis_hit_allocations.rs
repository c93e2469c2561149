//! What a Redis hit allocates beyond a raw `GET` on the same kind of connection, counted by a
//! global allocator over 1,000 hits of each (allocations on every thread: the connection's
//! driver runs on the library's runtime). Each allocation is a `malloc`/`free` pair that 64
//! tasks pay on two cores (issue 22, item 6): the per-call metric labels (3), `Arc`'s forwarding
//! `load` boxing the inner future again, a second copy of the entry's payload, the prefixed key's `String`
//! and the command's growing buffers (2 reallocations) were removed: 18 → 12 a hit, where a
//! raw `GET` makes 7. This keeps them out.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;
use steadycache::{cached, Cache};
use steadycache_redis::testing::RedisServer;

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator; the counter is a relaxed atomic.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        // SAFETY: the caller's contract is passed on.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

fn server() -> &'static RedisServer {
    static S: OnceLock<RedisServer> = OnceLock::new();
    S.get_or_init(RedisServer::start)
}

fn cache() -> Cache {
    match Cache::from_url(&format!("{}?key_prefix=allocs:", server().url())) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    }
}

#[cached(cache = cache(), ttl = "1h")]
async fn value(x: u64) -> Vec<u8> {
    vec![(x % 251) as u8; 100]
}

/// Allocations per call of `f`, over `n` calls.
async fn per_call<F: std::future::Future>(n: u64, mut f: impl FnMut(u64) -> F) -> f64 {
    let before = ALLOCS.load(Relaxed);
    for i in 0..n {
        std::hint::black_box(f(i).await);
    }
    (ALLOCS.load(Relaxed) - before) as f64 / n as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_hit_allocates_little_more_than_a_raw_get() {
    for x in 0..10 {
        value(x).await;
    }
    let client = match redis::Client::open(server().url().as_str()) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    let mut raw = match redis::aio::ConnectionManager::new(client).await {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    let set: redis::RedisResult<()> = redis::cmd("SET")
        .arg("raw:1")
        .arg(vec![1u8; 100])
        .query_async(&mut raw)
        .await;
    assert!(set.is_ok(), "{set:?}");
    let hits_before = value_cache().stats().hits;
    let ours = per_call(1_000, |i| value(i % 10)).await;
    let theirs = per_call(1_000, |_| {
        let mut raw = raw.clone();
        async move {
            let v: redis::RedisResult<Vec<u8>> =
                redis::cmd("GET").arg("raw:1").query_async(&mut raw).await;
            v
        }
    })
    .await;
    let misses = value_cache().stats().misses;
    println!("allocations: steadycache {ours:.2} a hit, raw GET {theirs:.2}");
    assert!(
        value_cache().stats().hits >= hits_before + 1_000,
        "every call was a store hit ({misses} misses)"
    );
    // Today 5 more: the call's key, its copy for the store call, the manager's and the
    // backend's boxed futures (`async_trait`), the decoded value. One of slack for a
    // dependency's change.
    assert!(
        ours <= theirs + 6.0,
        "steadycache {ours:.2} vs raw {theirs:.2}"
    );
}
