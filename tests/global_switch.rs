//! `set_enabled(false)` turns every cache in the process off (own test binary: it is global).
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use steadycache::cached;

static RUNS: AtomicUsize = AtomicUsize::new(0);
#[cached(ttl = "10m")]
fn f(x: u32) -> u32 {
    RUNS.fetch_add(1, SeqCst);
    x
}

#[test]
fn global_disable_really_disables() {
    assert_eq!(f(1), 1);
    assert_eq!(f(1), 1);
    assert_eq!(RUNS.load(SeqCst), 1);
    steadycache::set_enabled(false);
    assert_eq!(f(1), 1);
    assert_eq!(f(2), 2);
    assert_eq!(f(2), 2);
    assert_eq!(RUNS.load(SeqCst), 4, "disabled: every call runs");
    steadycache::set_enabled(true);
    assert_eq!(f(1), 1);
    assert_eq!(f(2), 2);
    assert_eq!(RUNS.load(SeqCst), 5, "f(2) was not stored while disabled");
}
