//! Bounds that hold (issue 21, item 8): `min_calls` counters of one-off arguments stay within
//! the memory store's bound; sync and async callers of one key on a `current_thread` runtime
//! never deadlock.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, LazyLock};
use std::time::Duration;
use steadycache::{cached, Backend, Cache, MemoryBackend, MemoryConfig, Policy};

const BOUND: u64 = 512 << 10;

static STORE: LazyLock<Arc<MemoryBackend>> = LazyLock::new(|| {
    Arc::new(MemoryBackend::new(
        MemoryConfig::default().with_max_bytes(BOUND),
    ))
});
static CACHE: LazyLock<Cache> = LazyLock::new(|| {
    let store: Arc<dyn Backend> = STORE.clone();
    Cache::builder().backend(store).build()
});
static RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(cache = &*CACHE, ttl = "1h", min_calls = 2)]
fn one_off(id: u64) -> u64 {
    RUNS.fetch_add(1, SeqCst);
    id
}

/// 40,000 distinct arguments, each called once: 40,000 counters of about 150 bytes (6 MB)
/// against a 512 KiB store. Before, counters were pinned (never evicted under pressure) for the
/// function's ttl, and the store grew past its bound.
#[test]
fn counters_of_one_off_arguments_stay_within_the_bound() {
    for id in 0..40_000 {
        assert_eq!(one_off(id), id);
    }
    assert_eq!(RUNS.load(SeqCst), 40_000);
    let held = STORE.weight();
    assert!(
        held <= BOUND,
        "{held} bytes held against a bound of {BOUND}"
    );
}

/// An async leader and a sync waiter of one key on the one thread of a `current_thread`
/// runtime: the waiter must not block the thread its leader needs. Bounded by a guard thread
/// (20 s), not by timing.
#[test]
fn sync_and_async_callers_of_one_key_on_a_current_thread_runtime() {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let cache = Cache::builder()
            .backend(MemoryBackend::new(MemoryConfig::default()))
            .build();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let got = rt.block_on(async {
            let policy = Policy::expire_after(Duration::from_secs(60));
            let leader = {
                let (cache, policy) = (cache.clone(), policy.clone());
                tokio::spawn(async move {
                    cache
                        .get_or_compute("one", &policy, || async {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            Ok::<u32, ()>(1)
                        })
                        .await
                })
            };
            tokio::task::yield_now().await; // the leader is computing
            let sync = cache.get_or_compute_sync("one", &policy, || Ok::<u32, ()>(2));
            (sync, leader.await.ok())
        });
        let _ = tx.send(got);
    });
    let (sync, leader) = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("a sync caller blocked the thread its async leader needed");
    assert_eq!(leader, Some(Ok(1)));
    assert!(matches!(sync, Ok(1) | Ok(2)), "{sync:?}");
}

/// The resident set of this process in bytes (Linux: `VmRSS` of `/proc/self/status`).
#[cfg(target_os = "linux")]
fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

const RSS_CHILD: &str = "STEADYCACHE_TEST_RSS_CHILD";
const MAX_BYTES: u64 = 64 << 20;

#[cached(cache = &*RSS_CACHE, ttl = "1h")]
fn kilobyte(i: u64) -> Vec<u8> {
    vec![i as u8; 1024]
}

static RSS_CACHE: LazyLock<Cache> = LazyLock::new(|| {
    Cache::builder()
        .memory(MemoryConfig::default().with_max_bytes(MAX_BYTES))
        .build()
});

/// A memory cache of `max_bytes = 64 MiB` holds 64 MiB of values, each once, whichever way
/// they come in: memoized functions (typed, in process) and values set by hand (bytes in its
/// memory store) share one bound. Measured as the growth of the resident set when the cache is
/// filled twice over with 1 KiB values both ways: within 25 % of 64 MiB. Before, the functions'
/// typed tiers and the memory store were bounded separately, 64 MiB each (about 140 MiB held).
///
/// The measure runs in a process of its own (this test binary, run again for this one test),
/// so that no other test's memory is counted.
#[cfg(target_os = "linux")]
#[test]
fn a_memory_cache_holds_max_bytes_of_values_once() {
    if std::env::var_os(RSS_CHILD).is_none() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "a_memory_cache_holds_max_bytes_of_values_once",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(RSS_CHILD, "1")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "the measuring process failed:\n{text}"
        );
        assert!(
            text.contains("resident growth"),
            "the measure did not run:\n{text}"
        );
        return;
    }
    let policy = Policy::expire_after(Duration::from_secs(3600));
    let count = 2 * MAX_BYTES / 1024;
    let cache = &*RSS_CACHE;
    let before = resident_bytes();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Both ways at once, interleaved, twice the bound over.
    for i in 0..count {
        assert_eq!(kilobyte(i).len(), 1024);
        rt.block_on(cache.set(&format!("by-hand:{i}"), &vec![i as u8; 1024], &policy))
            .unwrap();
    }
    let grown = resident_bytes().saturating_sub(before);
    let held = cache.typed_tier_bytes();
    println!(
        "resident growth {} KiB, held by the cache's measure {} KiB, bound {} KiB",
        grown >> 10,
        held >> 10,
        MAX_BYTES >> 10
    );
    assert!(
        grown <= MAX_BYTES + MAX_BYTES / 4,
        "{} MiB resident for a 64 MiB cache",
        grown >> 20
    );
    assert!(
        grown >= MAX_BYTES - MAX_BYTES / 4,
        "only {} MiB resident: the cache holds less than its bound",
        grown >> 20
    );
}

static SMALL: LazyLock<Cache> = LazyLock::new(|| {
    Cache::builder()
        .memory(MemoryConfig::default().with_max_bytes(256 << 10))
        .build()
});

#[cached(cache = &*SMALL, ttl = "1h")]
fn small_kilobyte(i: u64) -> Vec<u8> {
    vec![i as u8; 1024]
}

/// One bound for a memory cache's typed values and its store: values by hand push memoized
/// values out and the reverse, the sum stays within the bound, and a held lock survives both.
#[test]
fn a_memory_cache_shares_one_bound_and_keeps_its_locks() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let policy = Policy::expire_after(Duration::from_secs(3600));
    let lock_ttl = Duration::from_secs(60);
    rt.block_on(async {
        assert!(SMALL
            .backend()
            .acquire_lock("held#lock", "me", lock_ttl)
            .await
            .unwrap());
        for i in 0..1_000 {
            small_kilobyte(i);
        }
        let typed = SMALL.typed_tier_bytes();
        assert!(typed <= 256 << 10, "{typed} bytes held");
        for i in 0..1_000u64 {
            SMALL
                .set(&format!("hand:{i}"), &vec![1u8; 1024], &policy)
                .await
                .unwrap();
        }
        assert!(SMALL.typed_tier_bytes() <= 256 << 10);
        // The values by hand took the room of the memoized ones.
        let recent: Vec<u8> = SMALL.get("hand:999").await.unwrap().unwrap();
        assert_eq!(recent.len(), 1024);
        for i in 1_000..2_000 {
            small_kilobyte(i);
        }
        assert!(SMALL.typed_tier_bytes() <= 256 << 10);
        assert!(
            !SMALL
                .backend()
                .acquire_lock("held#lock", "intruder", lock_ttl)
                .await
                .unwrap(),
            "the held lock was evicted"
        );
    });
}
