//! Duration literals at the edges of what `#[cached]` accepts (issue 21, item 5): a literal too
//! long for the engine's millisecond clock is kept as "as long as can be", never wrapped round
//! to a short one. Before, `ttl = "18446744073709552s"` (2^64 ms + 384 ms) became a 384 ms ttl
//! and `hard_timeout = "18446744073709551s 617ms"` (2^64 ms + 1 ms) a 1 ms timeout.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;
use steadycache::cached;
use steadycache_api::testing::clock;

static LONG_TTL_RUNS: AtomicUsize = AtomicUsize::new(0);

/// A ttl of 2^64 ms + 384 ms: past what the engine counts (`u64` milliseconds).
#[cached(ttl = "18446744073709552s")]
fn long_ttl(k: u32) -> u32 {
    LONG_TTL_RUNS.fetch_add(1, SeqCst);
    k
}

#[test]
fn a_ttl_too_long_to_count_in_milliseconds_never_expires() {
    let _one = clock::exclusive();
    assert_eq!(long_ttl(7), 7);
    // A year later: a ttl wrapped round to 384 ms would have expired long ago.
    clock::advance(Duration::from_secs(365 * 24 * 3600));
    assert_eq!(long_ttl(7), 7);
    assert_eq!(
        LONG_TTL_RUNS.load(SeqCst),
        1,
        "the second call is a hit: the body ran once for two calls"
    );
}

static LONG_TIMEOUT_RUNS: AtomicUsize = AtomicUsize::new(0);

/// A hard timeout of 2^64 ms + 1 ms: past what the engine counts.
#[cached(hard_timeout = "18446744073709551s 617ms")]
fn long_timeout(k: u32) -> Result<u32, steadycache::FactoryTimeout> {
    LONG_TIMEOUT_RUNS.fetch_add(1, SeqCst);
    std::thread::sleep(Duration::from_millis(20));
    Ok(k)
}

#[test]
fn a_hard_timeout_too_long_to_count_in_milliseconds_never_runs_out() {
    assert_eq!(long_timeout(3), Ok(3), "a 20 ms body is not timed out");
    assert_eq!(long_timeout(3), Ok(3));
    assert_eq!(LONG_TIMEOUT_RUNS.load(SeqCst), 1);
    assert_eq!(long_timeout_cache().stats().timeouts, 0);
}
