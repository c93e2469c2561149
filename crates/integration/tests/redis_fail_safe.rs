//! Fail-safe on a real Redis (issue 13, option 1): the entry is kept in Redis past its ttl
//! (its Redis ttl is the fail-safe window), served when the recompute fails, and throttled. The
//! engine's clock is injected; Redis keeps its own (real) time, which only keeps the entry
//! longer. Its own test binary: the injected clock is process-wide.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::time::Duration;
use steadycache::{Cache, Policy, RedisBackend};
use steadycache_api::testing::clock;
use steadycache_redis::testing::RedisServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_down_for_ten_seconds_is_called_once_per_throttle() {
    // The only test of this binary: nothing else reads the clocks it moves.
    let _clock = clock::exclusive();
    let server = RedisServer::start();
    let cache = Cache::builder()
        .backend(RedisBackend::from_url(&server.url()).unwrap())
        .build();
    let policy = Policy::expire_after(Duration::from_secs(1))
        .with_fail_safe(Duration::from_secs(3600))
        .with_fail_safe_throttle(Duration::from_secs(1));
    let (down, runs) = (AtomicBool::new(false), AtomicUsize::new(0));
    let call = || async {
        cache
            .get_or_compute("price:7", &policy, || async {
                runs.fetch_add(1, SeqCst);
                if down.load(SeqCst) {
                    Err("upstream down".to_string())
                } else {
                    Ok(42u64)
                }
            })
            .await
    };
    assert_eq!(call().await, Ok(42));
    // Redis keeps it for the fail-safe window, not the ttl.
    let pttl = server.command("PTTL price:7");
    let pttl: i64 = pttl.trim().trim_start_matches(':').parse().unwrap_or(0);
    assert!(
        pttl > 3_000_000,
        "the Redis ttl covers fail-safe: {pttl} ms"
    );
    down.store(true, SeqCst);
    clock::advance(Duration::from_secs(2));
    let before = runs.load(SeqCst);
    for i in 0..1_000 {
        assert_eq!(call().await, Ok(42), "call {i}: the old value");
        clock::advance(Duration::from_millis(10));
    }
    let ran = runs.load(SeqCst) - before;
    eprintln!("Redis, upstream down for 10 s, 1,000 calls, 1 s throttle: {ran} runs");
    assert!(
        (9..=12).contains(&ran),
        "the failing function ran {ran} times"
    );
    assert_eq!(cache.stats().fail_safe, ran as u64);
}
