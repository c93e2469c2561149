//! `#[cached(cache = ...)]`: a URL string literal, or an expression of type `Cache` or `&Cache`.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, LazyLock};
use steadycache::{cached, Cache};

static LITERAL_RUNS: AtomicUsize = AtomicUsize::new(0);
#[cached(cache = "mem://?max_bytes=1000000")]
fn from_literal(x: u64) -> u64 {
    LITERAL_RUNS.fetch_add(1, SeqCst);
    x * 2
}

#[test]
fn a_url_literal_is_opened_as_a_url() {
    assert_eq!(from_literal(21), 42);
    assert_eq!(from_literal(21), 42);
    assert_eq!(LITERAL_RUNS.load(SeqCst), 1);
    let s = from_literal_cache().stats();
    assert_eq!((s.misses, s.hits), (1, 1));
    // Its own cache, not the process-wide default.
    let own = FromLiteralCache::memo().cache();
    assert!(own.has_typed_tier());
    assert!(!Arc::ptr_eq(
        own.manager(),
        steadycache::default_cache().manager()
    ));
}

static MADE: AtomicUsize = AtomicUsize::new(0);
fn make_cache() -> Cache {
    MADE.fetch_add(1, SeqCst);
    Cache::memory()
}

static EXPR_RUNS: AtomicUsize = AtomicUsize::new(0);
#[cached(cache = make_cache())]
fn from_expression(x: u64) -> u64 {
    EXPR_RUNS.fetch_add(1, SeqCst);
    x + 1
}

#[test]
fn an_expression_is_evaluated_once_as_the_cache() {
    assert_eq!(from_expression(1), 2);
    assert_eq!(from_expression(1), 2);
    assert_eq!(EXPR_RUNS.load(SeqCst), 1);
    // The expression ran once, at the first call.
    assert_eq!(MADE.load(SeqCst), 1);
}

static SHARED: LazyLock<Cache> = LazyLock::new(Cache::memory);

static REF_RUNS: AtomicUsize = AtomicUsize::new(0);
#[cached(cache = &*SHARED)]
async fn from_reference(x: u64) -> u64 {
    REF_RUNS.fetch_add(1, SeqCst);
    x + 2
}

#[tokio::test]
async fn a_reference_to_a_cache_works_too() {
    assert_eq!(from_reference(1).await, 3);
    assert_eq!(from_reference(1).await, 3);
    assert_eq!(REF_RUNS.load(SeqCst), 1);
    let own = FromReferenceCache::memo().cache();
    assert!(Arc::ptr_eq(own.manager(), SHARED.manager()));
}
