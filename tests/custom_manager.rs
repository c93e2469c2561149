//! The example's gzip manager: values round-trip compressed, and bytes that are not gzip are a
//! logged miss, never a wrong value.
#[allow(dead_code)]
#[path = "../examples/custom_manager.rs"]
mod example;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;
use steadycache::{Backend, MemoryBackend, Policy};

#[tokio::test]
async fn gzip_manager_compresses_and_rejects_foreign_bytes() {
    let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::default());
    let cache = example::gzip_cache(backend.clone());
    let policy = Policy::expire_after(Duration::from_secs(60));
    let big: Vec<String> = (0..500)
        .map(|i| format!("row {i} of a repetitive report"))
        .collect();
    let runs = AtomicUsize::new(0);
    for _ in 0..3 {
        let v: Vec<String> = cache
            .get_or_compute("report:500", &policy, || async {
                runs.fetch_add(1, SeqCst);
                Ok::<_, ()>(big.clone())
            })
            .await
            .unwrap();
        assert_eq!(v, big);
    }
    assert_eq!(runs.load(SeqCst), 1);
    let raw = backend.get("report:500").await.unwrap().unwrap();
    assert_eq!(&raw[..2], &[0x1f, 0x8b], "stored gzip");
    assert!(
        raw.len() * 4 < serde_json::to_vec(&big).unwrap().len(),
        "compressed"
    );

    // Foreign bytes: a miss, recomputed, healed.
    backend
        .set("report:500", b"plain".to_vec(), None)
        .await
        .unwrap();
    let v: Vec<String> = cache
        .get_or_compute("report:500", &policy, || async {
            runs.fetch_add(1, SeqCst);
            Ok::<_, ()>(big.clone())
        })
        .await
        .unwrap();
    assert_eq!(v, big);
    assert_eq!(runs.load(SeqCst), 2);
    assert_eq!(cache.stats().corrupt, 1);
}

#[test]
fn the_example_runs() {
    example::main();
    assert_eq!(example::report_cache().stats().misses, 1);
}

/// `CacheBuilder::backend` and `::manager` take a value or a shared one, one method each; an
/// `Arc<dyn …>` is taken as it is, not wrapped again.
#[tokio::test]
async fn the_builder_takes_a_backend_or_manager_by_value_or_shared() {
    use steadycache::{Cache, CacheManager, Codec, DefaultManager};
    let policy = Policy::expire_after(Duration::from_secs(60));
    let shared: Arc<dyn Backend> = Arc::new(MemoryBackend::default());
    let typed = Arc::new(MemoryBackend::default());
    let manager: Arc<dyn CacheManager> =
        Arc::new(DefaultManager::new(shared.clone(), Codec::bincode()));
    let caches = [
        Cache::builder().backend(MemoryBackend::default()).build(),
        Cache::builder().backend(typed.clone()).build(),
        Cache::builder().backend(shared.clone()).build(),
        Cache::builder()
            .manager(DefaultManager::new(shared.clone(), Codec::json()))
            .build(),
        Cache::builder().manager(manager.clone()).build(),
    ];
    for (i, cache) in caches.iter().enumerate() {
        let key = format!("shape:{i}");
        let v: u64 = cache
            .get_or_compute(&key, &policy, || async { Ok::<_, ()>(i as u64) })
            .await
            .unwrap();
        assert_eq!(v, i as u64);
        assert_eq!(cache.get::<u64>(&key).await.unwrap(), Some(i as u64));
    }
    assert!(
        shared.get("shape:2").await.unwrap().is_some(),
        "in the Arc given"
    );
    assert!(
        typed.get("shape:1").await.unwrap().is_some(),
        "in the Arc<T> given"
    );
    assert!(
        Arc::ptr_eq(caches[4].manager(), &manager),
        "an Arc<dyn CacheManager> is not wrapped again"
    );
}
