//! A control names one call (issue 21, item 3): `f_cache().refresh(x)`, `.bypass(x)` and
//! `.call_with(opts, x)` apply to `f(x)` alone, never to the memoized calls `f`'s body makes;
//! `with_options` keeps reaching them (a scope). Sync and async, free functions and methods,
//! on memory and SQLite.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::Duration;
use steadycache::{cached, with_options, with_options_async, Cache, CallOptions};

macro_rules! scenario {
    ($m:ident, $cache:expr) => {
        mod $m {
            use super::*;
            static F: AtomicU64 = AtomicU64::new(0);
            static G: AtomicU64 = AtomicU64::new(0);
            static AF: AtomicU64 = AtomicU64::new(0);
            static AG: AtomicU64 = AtomicU64::new(0);

            #[cached(cache = $cache, ttl = "1h")]
            fn g(k: u32) -> u64 {
                G.fetch_add(1, SeqCst);
                u64::from(k)
            }

            #[cached(cache = $cache, ttl = "1h")]
            fn f(k: u32) -> u64 {
                F.fetch_add(1, SeqCst);
                g(k) + g(k + 1)
            }

            #[cached(cache = $cache, ttl = "1h")]
            async fn ag(k: u32) -> u64 {
                AG.fetch_add(1, SeqCst);
                tokio::task::yield_now().await;
                u64::from(k)
            }

            #[cached(cache = $cache, ttl = "1h")]
            async fn af(k: u32) -> u64 {
                AF.fetch_add(1, SeqCst);
                tokio::task::yield_now().await; // the nested calls run in later polls
                ag(k).await + ag(k + 1).await
            }

            fn runs(c: &AtomicU64) -> u64 {
                c.load(SeqCst)
            }

            #[test]
            fn sync_controls_name_one_call() {
                assert_eq!(f(1), 3);
                assert_eq!((runs(&F), runs(&G)), (1, 2));
                assert_eq!(f_cache().refresh(1), 3);
                assert_eq!((runs(&F), runs(&G)), (2, 2), "refresh re-ran f alone");
                assert_eq!(f_cache().bypass(1), 3);
                assert_eq!((runs(&F), runs(&G)), (3, 2), "bypass ran f alone uncached");
                let old = CallOptions::max_age(Duration::ZERO);
                std::thread::sleep(Duration::from_millis(2));
                assert_eq!(f_cache().call_with(old, 1), 3);
                assert_eq!((runs(&F), runs(&G)), (4, 2), "max_age judged f alone");
                // A scope reaches the nested calls.
                assert_eq!(with_options(CallOptions::refresh(), || f(1)), 3);
                assert_eq!((runs(&F), runs(&G)), (5, 4), "with_options reaches g");
                // And a control inside a scope: f refreshed, g under the scope's bypass.
                let got = with_options(CallOptions::bypass(), || f_cache().refresh(1));
                assert_eq!(got, 3);
                assert_eq!((runs(&F), runs(&G)), (6, 6));
                assert_eq!(f(1), 3);
                assert_eq!((runs(&F), runs(&G)), (6, 6), "then plain hits again");
            }

            #[test]
            fn async_controls_name_one_call() {
                let rt = tokio::runtime::Runtime::new().unwrap();
                rt.block_on(async {
                    assert_eq!(af(1).await, 3);
                    assert_eq!((runs(&AF), runs(&AG)), (1, 2));
                    assert_eq!(af_cache().refresh(1).await, 3);
                    assert_eq!((runs(&AF), runs(&AG)), (2, 2), "refresh re-ran af alone");
                    assert_eq!(af_cache().bypass(1).await, 3);
                    assert_eq!((runs(&AF), runs(&AG)), (3, 2), "bypass ran af alone");
                    let old = CallOptions::max_age(Duration::ZERO);
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    assert_eq!(af_cache().call_with(old, 1).await, 3);
                    assert_eq!((runs(&AF), runs(&AG)), (4, 2), "max_age judged af alone");
                    let scoped = with_options_async(CallOptions::refresh(), af(1)).await;
                    assert_eq!(scoped, 3);
                    assert_eq!(
                        (runs(&AF), runs(&AG)),
                        (5, 4),
                        "with_options_async reaches ag"
                    );
                });
            }
        }
    };
}

scenario!(memory, Cache::memory());

#[cfg(feature = "sqlite")]
fn sqlite_cache() -> Cache {
    let dir = steadycache_api::testing::temp_dir("nested-controls");
    Cache::from_url(&format!("sqlite://{}", dir.join("c.db").display())).unwrap()
}
#[cfg(feature = "sqlite")]
scenario!(sqlite, sqlite_cache());

static M: AtomicU64 = AtomicU64::new(0);
static MG: AtomicU64 = AtomicU64::new(0);

#[cached(ttl = "1h")]
fn helper(k: u32) -> u64 {
    MG.fetch_add(1, SeqCst);
    u64::from(k)
}

struct Repo;

impl Repo {
    #[cached(ttl = "1h", key_self = false)]
    fn load(&self, k: u32) -> u64 {
        M.fetch_add(1, SeqCst);
        helper(k) * 2
    }
}

#[test]
fn a_methods_controls_name_one_call() {
    assert_eq!(Repo.load(4), 8);
    assert_eq!(Repo.load_refresh(4), 8);
    assert_eq!(Repo.load_bypass(4), 8);
    assert_eq!(
        (M.load(SeqCst), MG.load(SeqCst)),
        (3, 1),
        "the helper ran once"
    );
}

static AM: AtomicU64 = AtomicU64::new(0);
static AMG: AtomicU64 = AtomicU64::new(0);

#[cached(ttl = "1h")]
async fn async_helper(k: u32) -> u64 {
    AMG.fetch_add(1, SeqCst);
    tokio::task::yield_now().await;
    u64::from(k)
}

struct AsyncRepo;

impl AsyncRepo {
    #[cached(ttl = "1h", key_self = false)]
    async fn load(&self, k: u32) -> u64 {
        AM.fetch_add(1, SeqCst);
        tokio::task::yield_now().await; // the nested call runs in a later poll
        async_helper(k).await * 2
    }
}

#[test]
fn an_async_methods_controls_name_one_call() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let runs = || (AM.load(SeqCst), AMG.load(SeqCst));
        assert_eq!(AsyncRepo.load(4).await, 8);
        assert_eq!(AsyncRepo.load_refresh(4).await, 8);
        assert_eq!(runs(), (2, 1), "refresh re-ran load alone");
        assert_eq!(AsyncRepo.load_bypass(4).await, 8);
        assert_eq!(runs(), (3, 1), "bypass ran load alone");
        let old = CallOptions::max_age(Duration::ZERO);
        tokio::time::sleep(Duration::from_millis(2)).await;
        assert_eq!(AsyncRepo.load_call_with(old, 4).await, 8);
        assert_eq!(runs(), (4, 1), "max_age judged load alone");
        let (v, origin) = AsyncRepo.load_call_with_origin(4).await;
        assert_eq!((v, origin), (8, steadycache::Origin::Hit));
        assert_eq!(runs(), (4, 1));
    });
}
