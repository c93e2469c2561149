//! Hit-count rules (issue 13, option 6), on the backend's counters: `min_calls = 3` stores a
//! value only at the third computation of the same arguments; `max_hits = 5` drops an entry
//! after it was served five times. Memory, files and SQLite, sync and async (Redis in
//! `crates/integration`).

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use steadycache::{cached, Cache};

/// `min_calls = 3`: the first two calls compute and store nothing; the third stores; the rest
/// are hits. Other arguments count on their own.
pub fn admission(
    call: &dyn Fn(u32) -> u64,
    runs: &AtomicUsize,
    stats: &dyn Fn() -> steadycache::StatsSnapshot,
) {
    for i in 1..=10 {
        assert_eq!(call(1), 1);
        assert_eq!(runs.load(SeqCst), i.min(3), "call {i}");
    }
    assert_eq!(call(2), 2);
    assert_eq!(runs.load(SeqCst), 4, "another key counts from one");
    let s = stats();
    assert_eq!((s.not_admitted, s.hits), (3, 7), "{s:?}");
}

/// `max_hits = 5`: computed, served five times, then computed again.
pub fn max_hits(call: &dyn Fn(u32) -> u64, runs: &AtomicUsize) {
    assert_eq!(call(1), 1);
    for _ in 0..5 {
        assert_eq!(call(1), 1);
    }
    assert_eq!(runs.load(SeqCst), 1, "five hits");
    assert_eq!(call(1), 1);
    assert_eq!(runs.load(SeqCst), 2, "the sixth call computes anew");
    for _ in 0..5 {
        assert_eq!(call(1), 1);
    }
    assert_eq!(runs.load(SeqCst), 2, "the new entry is served five times");
}

macro_rules! scenario {
    ($test:ident, $cache:expr) => {
        mod $test {
            use super::*;
            static ADMIT_SYNC: AtomicUsize = AtomicUsize::new(0);
            static ADMIT_ASYNC: AtomicUsize = AtomicUsize::new(0);
            static HITS_SYNC: AtomicUsize = AtomicUsize::new(0);
            static HITS_ASYNC: AtomicUsize = AtomicUsize::new(0);

            #[cached(cache = $cache, ttl = "1h", min_calls = 3)]
            fn admit_sync(k: u32) -> u64 {
                ADMIT_SYNC.fetch_add(1, SeqCst);
                u64::from(k)
            }

            #[cached(cache = $cache, ttl = "1h", min_calls = 3)]
            async fn admit_async(k: u32) -> u64 {
                ADMIT_ASYNC.fetch_add(1, SeqCst);
                u64::from(k)
            }

            #[cached(cache = $cache, ttl = "1h", max_hits = 5)]
            fn hits_sync(k: u32) -> u64 {
                HITS_SYNC.fetch_add(1, SeqCst);
                u64::from(k)
            }

            #[cached(cache = $cache, ttl = "1h", max_hits = 5)]
            async fn hits_async(k: u32) -> u64 {
                HITS_ASYNC.fetch_add(1, SeqCst);
                u64::from(k)
            }

            #[test]
            fn min_calls_sync() {
                admission(&admit_sync, &ADMIT_SYNC, &|| admit_sync_cache().stats());
            }

            #[test]
            fn min_calls_async() {
                let rt = tokio::runtime::Runtime::new().unwrap();
                admission(&|k| rt.block_on(admit_async(k)), &ADMIT_ASYNC, &|| {
                    admit_async_cache().stats()
                });
            }

            #[test]
            fn max_hits_sync() {
                max_hits(&hits_sync, &HITS_SYNC);
            }

            #[test]
            fn max_hits_async() {
                let rt = tokio::runtime::Runtime::new().unwrap();
                max_hits(&|k| rt.block_on(hits_async(k)), &HITS_ASYNC);
            }
        }
    };
}

fn file_cache() -> Cache {
    let dir = steadycache_api::testing::temp_dir("hit-counts");
    Cache::from_url(&format!("file://{}", dir.display())).unwrap()
}

scenario!(memory, Cache::memory());
scenario!(files, file_cache());

#[cfg(feature = "sqlite")]
fn sqlite_cache() -> Cache {
    let dir = steadycache_api::testing::temp_dir("hit-counts-sqlite");
    Cache::from_url(&format!("sqlite://{}", dir.join("c.db").display())).unwrap()
}
#[cfg(feature = "sqlite")]
scenario!(sqlite, sqlite_cache());
