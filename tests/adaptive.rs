//! Adaptive ttls and conditional caching (issue 13, options 4 and 5), on an injected clock:
//! `ttl_fn` chooses each value's ttl, a `ttl` expression is evaluated at each store (not once
//! per process), and `cache_if` keeps what it approves only. On memory and files, sync and
//! async.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::time::Duration;
use steadycache::{cached, Cache};
use steadycache_api::testing::clock;

/// Prices above 100 change rarely: an hour; the others a second.
fn ttl_for(price: &u64) -> Duration {
    if *price > 100 {
        Duration::from_secs(3600)
    } else {
        Duration::from_secs(1)
    }
}

/// A report is kept only once it is complete.
fn is_complete(report: &(u32, bool)) -> bool {
    report.1
}

static TTL_SECS: AtomicU64 = AtomicU64::new(1);

/// The ttl a `ttl` expression reads when a value is stored.
fn configured_ttl() -> Duration {
    Duration::from_secs(TTL_SECS.load(SeqCst))
}

fn file_cache() -> Cache {
    let dir = steadycache_api::testing::temp_dir("adaptive");
    Cache::from_url(&format!("file://{}", dir.display())).unwrap()
}

macro_rules! scenario {
    ($m:ident, $cache:expr) => {
        mod $m {
            use super::*;
            static PRICE_RUNS: AtomicUsize = AtomicUsize::new(0);
            static EXPR_RUNS: AtomicUsize = AtomicUsize::new(0);
            static REPORT_RUNS: AtomicUsize = AtomicUsize::new(0);

            #[cached(cache = $cache, ttl = "10m", ttl_fn = ttl_for)]
            fn price(sku: u64) -> Result<u64, String> {
                PRICE_RUNS.fetch_add(1, SeqCst);
                Ok(sku)
            }

            #[cached(cache = $cache, ttl = configured_ttl())]
            async fn rate(pair: u32) -> u32 {
                EXPR_RUNS.fetch_add(1, SeqCst);
                pair
            }

            #[cached(cache = $cache, ttl = "1h", cache_if = is_complete)]
            fn report(id: u32) -> (u32, bool) {
                let n = REPORT_RUNS.fetch_add(1, SeqCst);
                (id, n >= 2) // complete from the third computation on
            }

            #[test]
            fn ttl_fn_chooses_each_values_ttl() {
                let _one = clock::exclusive();
                assert_eq!(price(5), Ok(5));
                assert_eq!(price(500), Ok(500));
                clock::advance(Duration::from_secs(2));
                assert_eq!(price(5), Ok(5));
                assert_eq!(price(500), Ok(500));
                // 5 lived a second and was computed again; 500 lives an hour.
                assert_eq!(PRICE_RUNS.load(SeqCst), 3);
                assert_eq!(price_cache().stats().hits, 1);
            }

            #[test]
            fn a_ttl_expression_is_evaluated_at_each_store() {
                let _one = clock::exclusive();
                let rt = tokio::runtime::Runtime::new().unwrap();
                TTL_SECS.store(1, SeqCst);
                assert_eq!(rt.block_on(rate(1)), 1); // stored for 1 s
                TTL_SECS.store(3600, SeqCst);
                clock::advance(Duration::from_secs(2));
                assert_eq!(rt.block_on(rate(1)), 1); // expired; stored for an hour now
                clock::advance(Duration::from_secs(2));
                assert_eq!(rt.block_on(rate(1)), 1); // a hit
                assert_eq!(EXPR_RUNS.load(SeqCst), 2);
            }

            #[test]
            fn cache_if_keeps_only_what_it_approves() {
                let _one = clock::exclusive();
                for _ in 0..5 {
                    assert_eq!(report(1).0, 1);
                }
                // Two incomplete reports were computed and returned but not kept; the third was
                // complete, kept, and served to the last two calls.
                assert_eq!(REPORT_RUNS.load(SeqCst), 3);
                assert!(report(1).1);
                assert_eq!(report_cache().stats().hits, 3);
            }
        }
    };
}

scenario!(memory, Cache::memory());
scenario!(files, file_cache());
