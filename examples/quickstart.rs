//! steadycache in one minute, with no server: a slow function memoized on disk (run the example
//! twice: the second run is served from the cache the first one wrote), 100 concurrent callers of
//! a cold key causing one execution, what callers of a failing call get, and a stale value
//! served while it refreshes in the background.
//!
//! Run: `cargo run --example quickstart` (the cache lives in `$STEADYCACHE_DIR`, else
//! `~/.cache/steadycache`).
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};
use steadycache::{cached, Cache, FileBackend, FileConfig};

/// The persistent cache: files under the user's cache dir. If it cannot be opened (read-only
/// home, no cache dir), the example keeps working in memory.
fn disk() -> Cache {
    match FileConfig::from_env().and_then(FileBackend::open) {
        Ok(b) => Cache::builder().backend(b).build(),
        Err(e) => {
            eprintln!("no disk cache ({e}); using memory");
            Cache::memory()
        }
    }
}

static LOOKUPS: AtomicUsize = AtomicUsize::new(0);

/// Stands for a slow web API call. Cached on disk for an hour.
#[cached(cache = disk(), ttl = "1h")]
fn exchange_rate(from: &str, to: &str) -> Result<f64, String> {
    LOOKUPS.fetch_add(1, SeqCst);
    std::thread::sleep(Duration::from_millis(500));
    match (from, to) {
        ("EUR", "USD") => Ok(1.08),
        ("EUR", "GBP") => Ok(0.86),
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
    if exchange_rate_cache().stats().hits == 1 {
        println!("first call:  {v:?} in {first:?} (from the disk cache an earlier run wrote)");
    } else {
        println!("first call:  {v:?} in {first:?} (computed; run the example again to see it served from disk)");
    }
    let (v, second) = timed(|| exchange_rate("EUR", "USD"));
    println!("second call: {v:?} in {second:?} (from the cache)");
    println!(
        "cache directory: {}",
        FileConfig::from_env()
            .map(|c| c.root.display().to_string())
            .unwrap_or_else(|e| e.to_string())
    );

    // 2. 100 concurrent callers of a cold key: one execution, and all 100 get its value.
    // (Invalidated first, so that the key is cold on every run of the example.)
    if let Err(e) = exchange_rate_cache().invalidate_sync("EUR", "GBP") {
        eprintln!("cannot invalidate: {e}");
    }
    let before = LOOKUPS.load(SeqCst);
    let (results, t) = timed(|| {
        let threads: Vec<_> = (0..100)
            .map(|_| std::thread::spawn(|| exchange_rate("EUR", "GBP")))
            .collect();
        threads
            .into_iter()
            .filter_map(|t| t.join().ok())
            .collect::<Vec<_>>()
    });
    let got = results.iter().filter(|r| **r == Ok(0.86)).count();
    println!(
        "100 concurrent callers of a cold key: the function ran {} time(s); {got} callers got Ok(0.86), all within {t:?}",
        LOOKUPS.load(SeqCst) - before
    );

    // 2b. A failing call is not stored; the callers that waited on it share its error (the
    // error type is `Clone`), so 10 concurrent callers still cause one execution. The next call
    // tries again.
    let before = LOOKUPS.load(SeqCst);
    let threads: Vec<_> = (0..10)
        .map(|_| std::thread::spawn(|| exchange_rate("EUR", "XYZ")))
        .collect();
    let errors = threads
        .into_iter()
        .filter_map(|t| t.join().ok())
        .filter(|r| r.is_err())
        .count();
    println!(
        "10 concurrent callers of a failing call: it ran {} time(s) and {errors} callers got its error (errors are not cached: the next call retries)",
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
