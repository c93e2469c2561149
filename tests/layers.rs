//! Store layers (issue 22, item 1): the retry layer, the worked example of "how to add a store
//! layer", on the fault layer (no servers), with the breaker and the backend timeout around it;
//! a layer of one's own seen by sync callers of a local store; a layer over a manager whose
//! `load` is its own. Counts are asserted; times only as generous "does not wait" bounds.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};
use steadycache::layer::{Layer, Layered, Op, Retry};
use steadycache::{Cache, CacheManager, MemoryBackend, Policy, Result, StoreBreaker};
use steadycache_api::testing::fault::{self, Faults, Faulty};

fn policy() -> Policy {
    Policy::expire_after(Duration::from_secs(3600))
}

/// A cache over a fault layer, with `retry` (if any) and a breaker that opens at the first
/// failed call and stays open for a minute.
fn cache(retry: Option<Retry>) -> (Cache, Faults) {
    let store = Faulty::new(MemoryBackend::default());
    let faults = store.faults();
    let mut b = Cache::builder()
        .backend(store)
        .store_breaker(StoreBreaker::new(1, Duration::from_secs(60)));
    if let Some(r) = retry {
        b = b.layer(r);
    }
    (b.build(), faults)
}

async fn call(cache: &Cache, runs: &AtomicU64) -> u64 {
    let r = cache
        .get_or_compute("k", &policy(), || async {
            Ok::<u64, std::convert::Infallible>(runs.fetch_add(1, SeqCst) + 1)
        })
        .await;
    match r {
        Ok(v) => v,
        Err(e) => panic!("the call failed: {e}"),
    }
}

#[tokio::test]
async fn a_retry_turns_passing_store_errors_into_hits_and_keeps_the_breaker_closed() {
    // Without the layer: two failed reads are a fail-open miss (the function runs again), and
    // the breaker opens, so the next call does not even read the store (it runs once more).
    // With it: the reads are tried again, the call is a hit, the breaker stays closed.
    for (retry, runs_after) in [(None, 3), (Some(Retry::new(3)), 1)] {
        let (cache, faults) = cache(retry.map(|r| r.with_backoff(Duration::from_millis(1))));
        let runs = AtomicU64::new(0);
        assert_eq!(call(&cache, &runs).await, 1);
        let reads = faults.calls(fault::Op::Get);
        faults.fail(fault::Op::Get, 2);
        call(&cache, &runs).await;
        call(&cache, &runs).await;
        assert_eq!(runs.load(SeqCst), runs_after, "retry {retry:?}");
        let errors = cache.stats().backend_errors;
        if retry.is_some() {
            assert_eq!(errors, 0);
            assert_eq!(
                faults.calls(fault::Op::Get) - reads,
                4,
                "2 failed, 2 answered"
            );
        } else {
            assert!(errors >= 1, "{errors}");
        }
    }
}

#[tokio::test]
async fn a_retry_never_repeats_what_may_have_landed() {
    let store = Arc::new(Faulty::new(MemoryBackend::default()));
    let faults = store.faults();
    let manager: Arc<dyn CacheManager> = Arc::new(steadycache::DefaultManager::new(
        store,
        steadycache::Codec::default(),
    ));
    let layered = Layered::new(
        Retry::new(5).with_backoff(Duration::from_millis(1)),
        manager,
    );
    let b = layered.backend();
    let ttl = Some(Duration::from_secs(60));
    faults.fail(fault::Op::Incr, 1);
    assert!(
        b.incr("n", 1, ttl).await.is_err(),
        "a counter is not retried"
    );
    assert_eq!(faults.calls(fault::Op::Incr), 1);
    faults.fail(fault::Op::SetIfAbsent, 1);
    assert!(b.set_if_absent("s", vec![1], ttl).await.is_err());
    assert_eq!(faults.calls(fault::Op::SetIfAbsent), 1);
    faults.fail(fault::Op::AcquireLock, 1);
    let lock = b.acquire_lock("l", "me", Duration::from_secs(1)).await;
    assert!(lock.is_err(), "a lock's acquisition is not retried");
    assert_eq!(faults.calls(fault::Op::AcquireLock), 1);
    faults.fail(fault::Op::Get, 3);
    assert_eq!(b.get("absent").await.ok(), Some(None), "a read is retried");
    faults.fail(fault::Op::Get, 5);
    assert!(b.get("absent").await.is_err(), "up to 5 tries in all");
    faults.fail(fault::Op::Set, 1);
    assert!(b.set("v", vec![7], ttl).await.is_ok(), "a write is retried");
    assert_eq!(b.get("v").await.ok(), Some(Some(vec![7])));
}

#[tokio::test]
async fn retries_stop_at_the_backend_timeout() {
    // A store that always fails, and a retry that would go on for minutes: the call still
    // fails open within the backend timeout (the function runs, its value is served).
    let store = Faulty::new(MemoryBackend::default());
    let faults = store.faults();
    faults.fail_always(fault::Op::Get);
    let cache = Cache::builder()
        .backend(store)
        .backend_timeout(Duration::from_millis(200))
        .layer(Retry::new(u32::MAX).with_backoff(Duration::from_millis(20)))
        .build();
    let runs = AtomicU64::new(0);
    let began = Instant::now();
    assert_eq!(call(&cache, &runs).await, 1);
    assert!(began.elapsed() < Duration::from_secs(10), "does not wait");
    assert!(faults.calls(fault::Op::Get) >= 2, "it did retry");
    assert!(cache.stats().backend_errors >= 1);
}

/// A layer of one's own: counts what it sees, by operation, and whether on the caller's thread.
#[derive(Debug, Default)]
struct Seen {
    loads: AtomicU64,
    blocking_loads: AtomicU64,
}

impl Layer for Seen {
    const BLOCKING: bool = true;

    fn around<'a, T, F>(
        &'a self,
        op: Op,
        _key: &'a str,
        mut next: impl FnMut() -> F + Send + 'a,
    ) -> impl Future<Output = Result<T>> + Send + 'a
    where
        T: Send + 'a,
        F: Future<Output = Result<T>> + Send + 'a,
    {
        if op == Op::Load {
            self.loads.fetch_add(1, SeqCst);
        }
        next()
    }

    fn around_blocking<T>(
        &self,
        op: Op,
        _key: &str,
        mut next: impl FnMut() -> Result<T>,
    ) -> Result<T> {
        if op == Op::Load {
            self.blocking_loads.fetch_add(1, SeqCst);
        }
        next()
    }
}

/// Shares one `Seen` with the test.
#[derive(Debug, Clone, Default)]
struct Shared(Arc<Seen>);

impl Layer for Shared {
    const BLOCKING: bool = true;

    fn around<'a, T, F>(
        &'a self,
        op: Op,
        key: &'a str,
        next: impl FnMut() -> F + Send + 'a,
    ) -> impl Future<Output = Result<T>> + Send + 'a
    where
        T: Send + 'a,
        F: Future<Output = Result<T>> + Send + 'a,
    {
        self.0.around(op, key, next)
    }

    fn around_blocking<T>(&self, op: Op, key: &str, next: impl FnMut() -> Result<T>) -> Result<T> {
        self.0.around_blocking(op, key, next)
    }
}

#[cfg(feature = "file")]
#[test]
fn a_layer_sees_sync_callers_of_a_local_store_on_their_thread() {
    let dir = steadycache_api::testing::temp_dir("layers");
    let backend = steadycache::FileBackend::open(steadycache::FileConfig::new(&dir));
    let Ok(backend) = backend else {
        panic!("a file store in {}", dir.display())
    };
    let seen = Shared::default();
    let cache = Cache::builder()
        .backend(backend)
        .layer(seen.clone())
        .build();
    let runs = AtomicU64::new(0);
    for _ in 0..3 {
        let v = cache.get_or_compute_sync("k", &policy(), || {
            Ok::<u64, std::convert::Infallible>(runs.fetch_add(1, SeqCst) + 1)
        });
        assert_eq!(v.ok(), Some(1));
    }
    assert_eq!(runs.load(SeqCst), 1);
    assert!(seen.0.blocking_loads.load(SeqCst) >= 3, "{seen:?}");
    assert_eq!(
        seen.0.loads.load(SeqCst),
        0,
        "never handed to a runtime: {seen:?}"
    );
}

/// A manager whose `load` is its own: it reads every entry as absent.
#[derive(Debug)]
struct Forgetful(steadycache::DefaultManager);

#[steadycache::plumbing::async_trait]
impl CacheManager for Forgetful {
    fn backend(&self) -> &dyn steadycache::Backend {
        self.0.backend()
    }
    fn codec(&self) -> &steadycache::Codec {
        self.0.codec()
    }
    async fn load(&self, _key: &str) -> Result<Option<steadycache::Entry>> {
        Ok(None)
    }
}

#[tokio::test]
async fn a_layer_wraps_a_managers_own_load_without_going_around_it() {
    let manager = Forgetful(steadycache::DefaultManager::new(
        Arc::new(MemoryBackend::default()),
        steadycache::Codec::default(),
    ));
    let seen = Shared::default();
    let cache = Cache::builder()
        .manager(manager)
        .layer(seen.clone())
        .build();
    let runs = AtomicU64::new(0);
    call(&cache, &runs).await;
    call(&cache, &runs).await;
    assert_eq!(
        runs.load(SeqCst),
        2,
        "the manager's load (always a miss) was used"
    );
    assert!(
        seen.0.loads.load(SeqCst) >= 2,
        "and seen by the layer: {seen:?}"
    );
}
