//! An invalidation sticks (issue 21, item 2): a computation starts, then its key is invalidated
//! (separately: its prefix, a pattern, a clear), then the computation ends. The value it
//! computed from the old data must not be served afterwards, by this process or by another over
//! the same store. Before, the store write was unconditional: both served the old value for its
//! whole ttl. "Processes" are two independent caches over one store (files, SQLite, a shared
//! memory store); a plain memory cache is one process. The scenario is
//! `steadycache_api::testing::sticks`; on Redis: `crates/integration/tests/invalidation_sticks.rs`.

use std::sync::Arc;
use steadycache::{Backend, Cache, MemoryBackend};
use steadycache_api::testing::sticks::{race, KINDS};

fn over(store: impl Fn() -> Cache) {
    for (i, kind) in KINDS.into_iter().enumerate() {
        race(store(), store(), kind, &format!("ns{i}"));
    }
}

#[test]
fn on_a_shared_memory_store() {
    let store: Arc<dyn Backend> = Arc::new(MemoryBackend::default());
    over(|| Cache::builder().backend(store.clone()).build());
}

#[test]
fn on_a_plain_memory_cache() {
    for (i, kind) in KINDS.into_iter().enumerate() {
        let c = Cache::memory();
        race(c.clone(), c, kind, &format!("m{i}"));
    }
}

#[test]
fn on_files() {
    let dir = steadycache_api::testing::temp_dir("sticks-files");
    let url = format!("file://{}", dir.display());
    over(|| Cache::from_url_unshared(&url).unwrap());
}

#[cfg(feature = "sqlite")]
#[test]
fn on_sqlite() {
    let dir = steadycache_api::testing::temp_dir("sticks-sqlite");
    let url = format!("sqlite://{}", dir.join("c.db").display());
    over(|| Cache::from_url_unshared(&url).unwrap());
}
