//! The memory backend passes the whole conformance suite, and so do wrappers around it.
use std::sync::Arc;
use steadycache::{Backend, MemoryBackend};

mod memory {
    use super::*;
    steadycache_api::conformance_tests!(async {
        Arc::new(MemoryBackend::default()) as Arc<dyn Backend>
    });
}

mod boxed {
    use super::*;
    // `Box<B>` and `Arc<B>` forward every method.
    steadycache_api::conformance_tests!(async {
        Arc::new(Box::new(MemoryBackend::default())) as Arc<dyn Backend>
    });
}

mod faulty {
    use super::*;
    // The fault layer with no fault set is the store it wraps.
    steadycache_api::conformance_tests!(async {
        Arc::new(steadycache_api::testing::fault::Faulty::new(
            MemoryBackend::default(),
        )) as Arc<dyn Backend>
    });
}

#[tokio::test]
async fn memory_is_bounded_by_bytes() {
    let b = MemoryBackend::new(steadycache::MemoryConfig::default().with_max_bytes(64 * 1024));
    for i in 0..1000 {
        b.set(&format!("k{i}"), vec![0u8; 1024], None)
            .await
            .unwrap();
    }
    assert!(
        b.weight() <= 64 * 1024,
        "weight {} over the bound",
        b.weight()
    );
    assert!(b.len() < 1000);
}
