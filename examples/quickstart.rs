//! steadycache in one minute, with no server: a slow function memoized, 100 concurrent callers
//! causing one execution, and a stale value served while it refreshes in the background.
//!
//! Run: `cargo run --example quickstart`
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};
use steadycache::cached;

static LOOKUPS: AtomicUsize = AtomicUsize::new(0);

/// Stands for a slow web API call.
#[cached(ttl = "10m")]
fn exchange_rate(from: &str, to: &str) -> Result<f64, String> {
    LOOKUPS.fetch_add(1, SeqCst);
    std::thread::sleep(Duration::from_millis(500));
    match (from, to) {
        ("EUR", "USD") => Ok(1.08),
        _ => Err(format!("no rate for {from}/{to}")),
    }
}

static PRICE_VERSION: AtomicUsize = AtomicUsize::new(0);

/// Fresh for 1 s; then for a minute more a caller gets the stale value at once while one
/// background refresh runs.
#[cached(ttl = "1s", stale_while_revalidate = "1m")]
fn price(item: &str) -> String {
    let v = PRICE_VERSION.fetch_add(1, SeqCst);
    std::thread::sleep(Duration::from_millis(300));
    format!("{item}: price v{v}")
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let t = Instant::now();
    let v = f();
    (v, t.elapsed())
}

fn main() {
    // 1. first call slow, second instant
    let (v, first) = timed(|| exchange_rate("EUR", "USD"));
    println!("first call:  {v:?} in {first:?}");
    let (v, second) = timed(|| exchange_rate("EUR", "USD"));
    println!("second call: {v:?} in {second:?} (from the cache)");

    // 2. 100 concurrent callers on a cold key: one execution
    let before = LOOKUPS.load(SeqCst);
    let threads: Vec<_> = (0..100)
        .map(|_| std::thread::spawn(|| exchange_rate("EUR", "GBP")))
        .collect();
    let errors = threads
        .into_iter()
        .filter_map(|t| t.join().ok())
        .filter(|r| r.is_err())
        .count();
    println!(
        "100 concurrent callers of a cold key: the function ran {} time(s), {errors} callers got its error",
        LOOKUPS.load(SeqCst) - before
    );

    // 3. stale-while-revalidate
    println!("{}", price("coffee"));
    std::thread::sleep(Duration::from_millis(1100));
    let (stale, t) = timed(|| price("coffee"));
    println!(
        "after the ttl: {stale} in {t:?} (stale, served at once; refreshing in the background)"
    );
    let mut fresh = stale.clone();
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(50));
        fresh = price("coffee");
        if fresh != stale {
            break;
        }
    }
    println!("a moment later: {fresh} (refreshed once)");
    let s = exchange_rate_cache().stats();
    println!(
        "exchange_rate stats: {} hits, {} misses, {} coalesced",
        s.hits, s.misses, s.coalesced
    );
}
