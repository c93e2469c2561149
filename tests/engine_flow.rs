//! The engine's flow under failure (issue "Engine v2", part 4): failing rounds never chain,
//! a cancelled holder frees its lock at once, background refreshes of sync functions are
//! bounded, a stale hit does not clone its arguments again, durations at their limits never
//! panic. Counts are asserted; times only as generous "does not wait" bounds.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};
use steadycache::{cached, Backend, Cache, Lock, MemoryBackend, Policy};

// ---------------------------------------------------------------- failing rounds

static IO_RUNS: AtomicUsize = AtomicUsize::new(0);

/// Fails with an error that is not `Clone`: waiters cannot be handed a copy.
#[cached(ttl = "10m")]
fn io_failing(x: u32) -> Result<u32, std::io::Error> {
    IO_RUNS.fetch_add(1, SeqCst);
    std::thread::sleep(Duration::from_millis(100));
    Err(std::io::Error::other(format!("upstream down for {x}")))
}

#[test]
fn waiters_of_a_non_clone_error_never_rerun_one_after_another() {
    let barrier = Arc::new(Barrier::new(8));
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let b = barrier.clone();
            std::thread::spawn(move || {
                b.wait();
                let t = Instant::now();
                let r = io_failing(1);
                (r.is_err(), t.elapsed())
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(
        results.iter().all(|(err, _)| *err),
        "every caller gets an error"
    );
    // One round: the leader, then its waiters at once, side by side: at most 1 + 7 runs.
    let runs = IO_RUNS.load(SeqCst);
    assert!((1..=8).contains(&runs), "{runs} runs");
    // Run one after another, the last caller would wait 8 × 100 ms.
    let worst = results.iter().map(|(_, t)| *t).max().unwrap();
    assert!(
        worst < Duration::from_millis(600),
        "a caller waited {worst:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn calls_by_hand_never_chain_either() {
    let cache = Cache::memory();
    let runs = Arc::new(AtomicUsize::new(0));
    let policy = Policy::expire_after(Duration::from_secs(60));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (cache, runs, policy) = (cache.clone(), runs.clone(), policy.clone());
            tokio::spawn(async move {
                let t = Instant::now();
                let r: Result<u32, String> = cache
                    .get_or_compute("failing", &policy, || async {
                        runs.fetch_add(1, SeqCst);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        Err("down".to_string())
                    })
                    .await;
                (r.is_err(), t.elapsed())
            })
        })
        .collect();
    let mut worst = Duration::ZERO;
    for t in tasks {
        let (err, took) = t.await.unwrap();
        assert!(err);
        worst = worst.max(took);
    }
    assert!(runs.load(SeqCst) <= 8);
    assert!(
        worst < Duration::from_millis(600),
        "a caller waited {worst:?}"
    );
}

/// Several caches over one backend (each stands for a process), `lock = distributed`.
fn fleet(n: usize) -> Vec<Cache> {
    let shared: Arc<dyn Backend> = Arc::new(MemoryBackend::default());
    (0..n)
        .map(|_| Cache::builder().backend(shared.clone()).build())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_holder_that_stored_nothing_releases_its_waiters_together() {
    let caches = fleet(5);
    let runs = Arc::new(AtomicUsize::new(0));
    let policy = Policy::expire_after(Duration::from_secs(60)).with_lock(Lock::Distributed);
    let start = Instant::now();
    let tasks: Vec<_> = caches
        .into_iter()
        .map(|cache| {
            let (runs, policy) = (runs.clone(), policy.clone());
            tokio::spawn(async move {
                let r: Result<u32, String> = cache
                    .get_or_compute("xp:failing", &policy, || async {
                        runs.fetch_add(1, SeqCst);
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        Err("down".to_string())
                    })
                    .await;
                (r.is_err(), start.elapsed())
            })
        })
        .collect();
    let mut worst = Duration::ZERO;
    for t in tasks {
        let (err, took) = t.await.unwrap();
        assert!(err);
        worst = worst.max(took);
    }
    assert!(runs.load(SeqCst) <= 5);
    // In turn (each waiter taking the lock after the last), the fifth would finish at 1 s.
    assert!(
        worst < Duration::from_millis(800),
        "the last caller took {worst:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancelled_holder_releases_its_lock_at_once() {
    let caches = fleet(2);
    let policy = Policy::expire_after(Duration::from_secs(60))
        .with_lock(Lock::Distributed)
        .with_lock_ttl(Duration::from_secs(20));
    let slow = caches[0].get_or_compute("xp:cancelled", &policy, || async {
        tokio::time::sleep(Duration::from_secs(10)).await;
        Ok::<u32, String>(1)
    });
    assert!(tokio::time::timeout(Duration::from_millis(100), slow)
        .await
        .is_err());
    let t = Instant::now();
    let v: Result<u32, String> = caches[1]
        .get_or_compute("xp:cancelled", &policy, || async { Ok(2) })
        .await;
    assert_eq!(v, Ok(2));
    // Without the release it would wait for lock_ttl (20 s).
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "waited {:?}",
        t.elapsed()
    );
}

// ---------------------------------------------------------------- background refreshes

static REFRESHING: AtomicUsize = AtomicUsize::new(0);
static MOST_AT_ONCE: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = "100ms", stale_while_revalidate = "1h")]
fn slow_refresh(k: u32) -> u32 {
    let now = REFRESHING.fetch_add(1, SeqCst) + 1;
    MOST_AT_ONCE.fetch_max(now, SeqCst);
    std::thread::sleep(Duration::from_millis(150));
    REFRESHING.fetch_sub(1, SeqCst);
    k
}

#[test]
fn background_refreshes_of_sync_functions_are_bounded() {
    for k in 0..40 {
        slow_refresh(k);
    }
    MOST_AT_ONCE.store(0, SeqCst);
    std::thread::sleep(Duration::from_millis(200)); // all stale
    for k in 0..40 {
        assert_eq!(slow_refresh(k), k, "stale, served at once");
    }
    for _ in 0..100 {
        if slow_refresh_cache().stats().refreshes >= 40 && REFRESHING.load(SeqCst) == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(slow_refresh_cache().stats().refreshes, 40);
    let most = MOST_AT_ONCE.load(SeqCst);
    assert!(
        most <= 8,
        "{most} refreshes ran at once (one thread per stale key?)"
    );
}

static ARG_CLONES: AtomicUsize = AtomicUsize::new(0);

/// An argument that counts its clones.
#[derive(serde::Serialize)]
struct Counted(u32);
impl Clone for Counted {
    fn clone(&self) -> Self {
        ARG_CLONES.fetch_add(1, SeqCst);
        Counted(self.0)
    }
}

#[cached(ttl = "100ms", stale_while_revalidate = "1h")]
fn counted(c: Counted) -> u32 {
    std::thread::sleep(Duration::from_millis(300));
    c.0
}

#[test]
fn a_stale_hit_whose_refresh_runs_does_not_clone_the_arguments_again() {
    assert_eq!(counted(Counted(1)), 1);
    std::thread::sleep(Duration::from_millis(150)); // stale
    let before = ARG_CLONES.load(SeqCst);
    for _ in 0..10 {
        assert_eq!(counted(Counted(1)), 1); // the first starts the refresh (300 ms)
    }
    let clones = ARG_CLONES.load(SeqCst) - before;
    assert_eq!(clones, 1, "one copy for the one refresh");
}

// ---------------------------------------------------------------- limits

#[tokio::test]
async fn durations_at_their_limits_never_panic() {
    let cache = fleet(1).remove(0);
    let policy = Policy::expire_after(Duration::MAX)
        .with_lock(Lock::Distributed)
        .with_lock_ttl(Duration::MAX)
        .with_stale_after(Duration::MAX)
        .with_jitter(42.0); // out of range: clamped
    for _ in 0..2 {
        let v: Result<u32, ()> = cache
            .get_or_compute("limits", &policy, || async { Ok(7) })
            .await;
        assert_eq!(v, Ok(7));
    }
    assert_eq!(cache.stats().hits, 1);
    let v = cache.get_or_compute_sync("limits-sync", &policy, || Ok::<u32, ()>(8));
    assert_eq!(v, Ok(8));
}
