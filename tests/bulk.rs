//! Bulk operations are not calls (issue 21, item 7): a clear or a removal by prefix or pattern
//! runs under `bulk_timeout`, not the per-call `backend_timeout`, and never counts towards the
//! store breaker. With the fault layer, no servers (a partial clear of a real Redis is in
//! `crates/backend-redis/tests/redis_backend.rs`).

use std::time::Duration;
use steadycache::{Cache, Error, MemoryBackend, Policy};
use steadycache_api::testing::fault::{Faulty, Op};

fn faulty_cache(backend_timeout_ms: u64) -> (Cache, steadycache_api::testing::fault::Faults) {
    let store = Faulty::new(MemoryBackend::default());
    let faults = store.faults();
    let cache = Cache::builder()
        .backend(store)
        .backend_timeout(Duration::from_millis(backend_timeout_ms))
        .build();
    (cache, faults)
}

#[tokio::test]
async fn a_clear_slower_than_a_call_finishes() {
    let (cache, faults) = faulty_cache(50);
    let policy = Policy::expire_after(Duration::from_secs(60));
    cache.set("ns:1", &1u32, &policy).await.unwrap();
    // The scan takes longer than any one call may.
    faults.delay(Op::DeletePrefix, Duration::from_millis(200));
    assert_eq!(cache.clear().await.unwrap(), 1);
    cache.set("ns:2", &2u32, &policy).await.unwrap();
    assert_eq!(cache.invalidate_prefix("ns:").await.unwrap(), 1);
    // The bound itself, on a store that hangs.
    let store = Faulty::new(MemoryBackend::default());
    store
        .faults()
        .delay(Op::DeletePrefix, Duration::from_secs(60));
    let hung = Cache::builder()
        .backend(store)
        .bulk_timeout(Duration::from_millis(50))
        .build();
    match hung.clear().await {
        Err(e @ Error::Partial { removed: 0, .. }) => {
            assert!(e.to_string().contains("bulk_timeout"), "{e}");
            assert!(e.is_transient());
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn failing_clears_never_open_the_breaker() {
    let (cache, faults) = faulty_cache(1_000);
    faults.fail_always(Op::DeletePrefix);
    for _ in 0..10 {
        assert!(cache.clear().await.is_err());
        assert!(cache.invalidate_prefix("ns:").await.is_err());
    }
    let health = cache.health();
    assert!(!health.circuit_open, "{health:?}");
    assert_eq!(health.circuit_opened, 0, "{health:?}");
    // Calls still reach the store.
    let before = faults.calls(Op::Get);
    let _ = cache.get::<u32>("ns:1").await;
    assert_eq!(faults.calls(Op::Get), before + 1);
}
