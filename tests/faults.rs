//! The engine under injected faults (issue 12, items 1 and 7), with the public fault layer
//! (`testing::fault`) and the fleet simulator (`testing::sim`): no servers. Counts are asserted;
//! times only as generous "does not wait" bounds.

use std::sync::Arc;
use std::time::Duration;
use steadycache::{Backend, Cache, Lock, MemoryBackend, Policy};
use steadycache_api::testing::fault::{Faulty, Op};
use steadycache_api::testing::sim::Fleet;

fn distributed(lock_ttl_ms: u64) -> Policy {
    Policy::expire_after(Duration::from_secs(600))
        .with_lock(Lock::Distributed)
        .with_lock_ttl(Duration::from_millis(lock_ttl_ms))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_is_renewed_while_its_holder_computes() {
    // 5 processes x 3 callers; the work takes 5 lock ttls. Without renewal the lock expired 4
    // times during the work and 5 runs were counted.
    let fleet = Fleet::new(5);
    let s = fleet
        .stampede("long", 3, &distributed(200), Duration::from_millis(1000))
        .await;
    assert_eq!(s.runs, 1, "{s:?}");
    assert_eq!(s.served, 15, "{s:?}");
    assert_eq!(s.lock_lost, 0, "{s:?}");
    let renewals: u64 = (0..5)
        .filter_map(|i| fleet.faults(i))
        .map(|f| f.calls(Op::ExtendLock))
        .sum();
    assert!(
        renewals >= 3,
        "the holder renewed its lease ({renewals} renewals)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bounded_lock_wait_computes_without_the_lock() {
    // lock_wait shorter than the holder's work: each process's leader stops waiting and runs.
    let fleet = Fleet::new(3);
    let policy = distributed(200).with_lock_wait(Duration::from_millis(100));
    let s = fleet
        .stampede("impatient", 2, &policy, Duration::from_millis(800))
        .await;
    assert_eq!(s.runs, 3, "one run per process: {s:?}");
    assert_eq!(s.served, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_lost_while_computing_is_logged_and_counted() {
    let fleet = Fleet::new(1);
    let Some(cache) = fleet.cache(0).cloned() else {
        panic!("a fleet of one")
    };
    let Some(faults) = fleet.faults(0).cloned() else {
        panic!("a faulty layer")
    };
    let store = fleet.store().clone();
    let call = tokio::spawn(async move {
        cache
            .get_or_compute("lost", &distributed(150), || async {
                tokio::time::sleep(Duration::from_millis(800)).await;
                Ok::<u32, std::convert::Infallible>(7)
            })
            .await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    // While the holder cannot renew, someone removes every key, the lock included, and another
    // process takes the lock: the holder's next renewal finds it taken.
    faults.fail_always(Op::ExtendLock);
    // A renewal that was already past the fault layer lands first (the store is in memory).
    tokio::time::sleep(Duration::from_millis(50)).await;
    let page = store.list_keys("", None, 100).await.unwrap();
    let Some(lock) = page.keys.iter().find(|k| k.key.ends_with("#lock")) else {
        panic!("the holder's lock is in the store: {page:?}")
    };
    assert!(store.delete_prefix("").await.unwrap() >= 1);
    assert!(store
        .acquire_lock(&lock.key, "intruder", Duration::from_secs(60))
        .await
        .unwrap());
    faults.heal();
    assert_eq!(
        call.await.unwrap().unwrap(),
        7,
        "the holder still returns its value"
    );
    let stats = fleet.cache(0).map(|c| c.stats()).unwrap_or_default();
    assert_eq!(stats.lock_lost, 1, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_that_ran_out_unclaimed_is_taken_again() {
    // The holder's renewals fail for longer than its lease (a blip), then work again. Nobody
    // took the lock meanwhile, so the holder takes it again and keeps it: a process that asks
    // afterwards waits for its value instead of computing a second time.
    let fleet = Fleet::new(2);
    let policy = distributed(150);
    let (Some(holder), Some(later), Some(faults)) = (
        fleet.cache(0).cloned(),
        fleet.cache(1).cloned(),
        fleet.faults(0).cloned(),
    ) else {
        panic!("a fleet of two")
    };
    faults.fail_always(Op::ExtendLock);
    let runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (p, r) = (policy.clone(), runs.clone());
    let h = holder.clone();
    let first = tokio::spawn(async move {
        h.get_or_compute("blip", &p, || async move {
            r.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(2000)).await;
            Ok::<u32, std::convert::Infallible>(1)
        })
        .await
    });
    // The lease (150 ms) runs out while renewals fail; then the store answers again, and the
    // heartbeat's next try (every 12 ms while failing) finds the lock expired and unclaimed.
    tokio::time::sleep(Duration::from_millis(400)).await;
    faults.heal();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r = runs.clone();
    let got = later
        .get_or_compute("blip", &policy, || async move {
            r.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok::<u32, std::convert::Infallible>(2)
        })
        .await
        .unwrap();
    assert_eq!(got, 1, "the later caller waited for the holder's value");
    assert_eq!(first.await.unwrap().unwrap(), 1);
    assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 1);
    let s = holder.stats();
    assert_eq!(s.lock_lost, 0, "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_whose_renewals_fail_loses_the_lock_to_one_waiter() {
    // The holder cannot reach the store to renew (its process is partitioned): its lease runs
    // out, and exactly one process takes over. Two runs, not one per process.
    let fleet = Fleet::new(4);
    let policy = distributed(150);
    let holder = fleet.cache(0).cloned().unwrap_or_else(Cache::memory);
    if let Some(f) = fleet.faults(0) {
        f.fail_always(Op::ExtendLock);
    }
    let p = policy.clone();
    let first = tokio::spawn(async move {
        holder
            .get_or_compute("partitioned", &p, || async {
                tokio::time::sleep(Duration::from_millis(1500)).await;
                Ok::<u32, std::convert::Infallible>(1)
            })
            .await
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut others = Vec::new();
    for i in 1..4 {
        let c = fleet.cache(i).cloned().unwrap_or_else(Cache::memory);
        let p = policy.clone();
        others.push(tokio::spawn(async move {
            c.get_or_compute("partitioned", &p, || async {
                tokio::time::sleep(Duration::from_millis(300)).await;
                Ok::<u32, std::convert::Infallible>(2)
            })
            .await
        }));
    }
    let mut got = Vec::new();
    for o in others {
        got.push(o.await.unwrap().unwrap());
    }
    assert_eq!(
        got,
        vec![2, 2, 2],
        "one waiter took over, the others got its value"
    );
    assert_eq!(first.await.unwrap().unwrap(), 1);
    // Counted by the caches of the calls by hand: every waiter waited, one took over.
    let (mut waits, mut takeovers) = (0, 0);
    for i in 1..4 {
        if let Some(c) = fleet.cache(i) {
            waits += c.stats().lock_waits;
            takeovers += c.stats().lock_takeovers;
        }
    }
    assert_eq!((waits, takeovers), (3, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_store_fails_open_within_backend_timeout() {
    let layer = Faulty::new(MemoryBackend::default());
    let faults = layer.faults();
    faults.delay(Op::Get, Duration::from_secs(3600));
    faults.delay(Op::Set, Duration::from_secs(3600));
    let cache = Cache::builder()
        .backend(layer)
        .backend_timeout(Duration::from_millis(100))
        .build();
    let policy = Policy::expire_after(Duration::from_secs(60));
    for _ in 0..3 {
        let v = tokio::time::timeout(
            Duration::from_secs(20),
            cache.get_or_compute("hang", &policy, || async {
                Ok::<u32, std::convert::Infallible>(5)
            }),
        )
        .await
        .expect("a hanging store must not hang the caller");
        assert_eq!(v.unwrap(), 5);
    }
    assert!(cache.stats().backend_errors >= 3, "{:?}", cache.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_racy_set_if_absent_is_detected_by_the_fault_layer() {
    // The layer's non-atomic set_if_absent lets two writers both win, as a store without an
    // atomic conditional write would.
    let layer = Arc::new(Faulty::new(MemoryBackend::default()));
    layer
        .faults()
        .racy_set_if_absent(Some(Duration::from_millis(100)));
    let (a, b) = (layer.clone(), layer.clone());
    let (x, y) = tokio::join!(
        a.set_if_absent("k", b"a".to_vec(), None),
        b.set_if_absent("k", b"b".to_vec(), None)
    );
    assert!(
        x.unwrap() && y.unwrap(),
        "both won: the race the layer simulates"
    );
    layer.faults().racy_set_if_absent(None);
    assert!(!layer.set_if_absent("k", b"c".to_vec(), None).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_clock_running_ahead_shortens_what_it_reads() {
    // Process 1's clock runs 10 minutes ahead: an entry that process 0 wrote with a 5 minute
    // ttl has expired for it, so it computes again; process 0 still hits.
    let fleet = Fleet::new(2);
    let policy = Policy::expire_after(Duration::from_secs(300));
    let (Some(c0), Some(c1), Some(f1)) = (fleet.cache(0), fleet.cache(1), fleet.faults(1)) else {
        panic!("a fleet of two")
    };
    f1.clock_offset(600_000);
    let compute = |v: u32| move || async move { Ok::<u32, std::convert::Infallible>(v) };
    assert_eq!(
        c0.get_or_compute("clock", &policy, compute(1))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        c1.get_or_compute("clock", &policy, compute(2))
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        c0.get_or_compute("clock", &policy, compute(3))
            .await
            .unwrap(),
        2
    );
    assert_eq!((c0.stats().hits, c1.stats().misses), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_writes_are_misses_not_wrong_values() {
    let layer = Faulty::new(MemoryBackend::default());
    layer.faults().lose_writes(true);
    let cache = Cache::builder().backend(layer).build();
    let policy = Policy::expire_after(Duration::from_secs(60));
    for i in 0..3u32 {
        let v = cache
            .get_or_compute("lost-write", &policy, || async move {
                Ok::<u32, std::convert::Infallible>(i)
            })
            .await;
        assert_eq!(v.unwrap(), i, "every call computes: nothing was kept");
    }
    assert_eq!(cache.stats().misses, 3);
}

#[test]
fn a_sync_caller_is_not_held_by_a_hanging_store() {
    let layer = Faulty::new(MemoryBackend::default());
    let faults = layer.faults();
    faults.delay(Op::Get, Duration::from_secs(30));
    faults.delay(Op::Set, Duration::from_secs(30));
    let cache = Cache::builder()
        .backend(layer)
        .backend_timeout(Duration::from_millis(100))
        .build();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let policy = Policy::expire_after(Duration::from_secs(60));
        let v = cache.get_or_compute_sync("sync-hang", &policy, || {
            Ok::<u32, std::convert::Infallible>(8)
        });
        let _ = tx.send((v.ok(), cache.stats().backend_errors));
    });
    // A guard against a hang, not a timing assertion: the store hangs for 30 s per call.
    let (v, errors) = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("a sync caller was held by a hanging store");
    assert_eq!(v, Some(8));
    assert!(
        errors >= 2,
        "the reads and the write each failed open ({errors})"
    );
}
