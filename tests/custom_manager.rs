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
    let policy = Policy::ttl(Duration::from_secs(60));
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
