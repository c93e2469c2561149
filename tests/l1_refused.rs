//! An in-process copy is kept only once the store has the value (issue 21, item 2): a value the
//! store refused (a failed write, a breaker that skipped it) is not kept in L1, where it would
//! be served for its whole ttl while another process stores a newer value that nothing
//! announces to this one again. The fail-safe value (which the store had) is kept as before.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::LazyLock;
use std::time::Duration;
use steadycache::{cached, Cache, LocalTier, MemoryBackend};
use steadycache_api::testing::fault::{Faults, Faulty, Op};

static FAULTS: LazyLock<(Cache, Faults)> = LazyLock::new(|| {
    let layer = Faulty::new(MemoryBackend::default());
    let faults = layer.faults();
    let cache = Cache::builder()
        .backend(layer)
        .local_tier(LocalTier::new(1 << 20))
        .build();
    (cache, faults)
});
static RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(cache = &FAULTS.0, ttl = "10m")]
fn value(k: u32) -> usize {
    RUNS.fetch_add(1, SeqCst) + k as usize
}

#[test]
fn a_value_the_store_refused_is_not_kept_in_process() {
    let faults = &FAULTS.1;
    // The bus vouches for copies once heard.
    std::thread::sleep(Duration::from_millis(300));
    faults.fail_always(Op::Set);
    let first = value(1);
    let second = value(1);
    assert_ne!(first, second, "the refused value was served from L1");
    assert_eq!(RUNS.load(SeqCst), 2);
    // The store takes writes again: the next value is kept, in the store and in process.
    faults.heal();
    let third = value(1);
    assert_eq!(value(1), third);
    assert_eq!(RUNS.load(SeqCst), 3);
    assert!(FAULTS.0.typed_tier_bytes() > 0);
}
