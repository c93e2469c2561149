//! Bounds that hold (issue 21, item 8): `min_calls` counters of one-off arguments stay within
//! the memory store's bound; sync and async callers of one key on a `current_thread` runtime
//! never deadlock.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, LazyLock};
use std::time::Duration;
use steadycache::{cached, Backend, Cache, MemoryBackend, MemoryConfig, Policy};

const BOUND: u64 = 512 << 10;

static STORE: LazyLock<Arc<MemoryBackend>> = LazyLock::new(|| {
    Arc::new(MemoryBackend::new(
        MemoryConfig::default().with_max_bytes(BOUND),
    ))
});
static CACHE: LazyLock<Cache> = LazyLock::new(|| {
    let store: Arc<dyn Backend> = STORE.clone();
    Cache::builder().backend_arc(store).build()
});
static RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(cache = &*CACHE, ttl = "1h", min_calls = 2)]
fn one_off(id: u64) -> u64 {
    RUNS.fetch_add(1, SeqCst);
    id
}

/// 40,000 distinct arguments, each called once: 40,000 counters of about 150 bytes (6 MB)
/// against a 512 KiB store. Before, counters were pinned (never evicted under pressure) for the
/// function's ttl, and the store grew past its bound.
#[test]
fn counters_of_one_off_arguments_stay_within_the_bound() {
    for id in 0..40_000 {
        assert_eq!(one_off(id), id);
    }
    assert_eq!(RUNS.load(SeqCst), 40_000);
    let held = STORE.weight();
    assert!(
        held <= BOUND,
        "{held} bytes held against a bound of {BOUND}"
    );
}

/// An async leader and a sync waiter of one key on the one thread of a `current_thread`
/// runtime: the waiter must not block the thread its leader needs. Bounded by a guard thread
/// (20 s), not by timing.
#[test]
fn sync_and_async_callers_of_one_key_on_a_current_thread_runtime() {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let cache = Cache::builder()
            .backend(MemoryBackend::new(MemoryConfig::default()))
            .build();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let got = rt.block_on(async {
            let policy = Policy::ttl(Duration::from_secs(60));
            let leader = {
                let (cache, policy) = (cache.clone(), policy.clone());
                tokio::spawn(async move {
                    cache
                        .get_or_compute("one", &policy, || async {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            Ok::<u32, ()>(1)
                        })
                        .await
                })
            };
            tokio::task::yield_now().await; // the leader is computing
            let sync = cache.get_or_compute_sync("one", &policy, || Ok::<u32, ()>(2));
            (sync, leader.await.ok())
        });
        let _ = tx.send(got);
    });
    let (sync, leader) = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("a sync caller blocked the thread its async leader needed");
    assert_eq!(leader, Some(Ok(1)));
    assert!(matches!(sync, Ok(1) | Ok(2)), "{sync:?}");
}
