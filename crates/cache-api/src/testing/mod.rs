//! The backend conformance suite (feature `testing`).
//!
//! Each case is a plain `pub async fn case(backend: &dyn Backend, prefix: &str)`; every backend
//! crate runs all of them against its real store with [`conformance_tests!`](crate::conformance_tests),
//! which makes one named `#[tokio::test]` per case and skips, by the backend's
//! [`capabilities`](crate::Backend::capabilities), the cases it cannot support. Every case
//! works under its own `prefix`, so suites of several backends and runs can share one server.

pub mod clock;
pub mod fault;
pub mod heal;
mod invalidation;
mod outage;
pub use outage::{outage_fails_open, recovers_after_restart};
mod listing;
pub mod proxy;
pub mod server;
pub mod sim;
pub mod skew;
pub mod sticks;

pub use invalidation::{delete_matching, publish_subscribe};
pub use listing::list_keys;

use crate::backend::{Backend, BackendExt};
use crate::cache::Cache;
use crate::envelope::Entry;
use crate::policy::Policy;
use crate::time::unix_millis;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A prefix unique to this process, case and moment.
pub fn unique_prefix(case: &str) -> String {
    format!(
        "conformance-{}-{}-{:08x}:",
        case,
        std::process::id(),
        fastrand::u32(..)
    )
}

/// Values round-trip byte for byte, including empty and binary values.
pub async fn round_trip(b: &dyn Backend, p: &str) {
    let k = format!("{p}a");
    assert_eq!(b.get(&k).await.unwrap(), None);
    b.set(&k, b"hello".to_vec(), None).await.unwrap();
    assert_eq!(b.get(&k).await.unwrap().as_deref(), Some(&b"hello"[..]));
    let bin: Vec<u8> = (0..=255u8).collect();
    b.set(&k, bin.clone(), None).await.unwrap();
    assert_eq!(b.get(&k).await.unwrap(), Some(bin));
    let e = format!("{p}empty");
    b.set(&e, Vec::new(), None).await.unwrap();
    assert_eq!(b.get(&e).await.unwrap(), Some(Vec::new()));
}

/// A large value (1 MiB) round-trips.
pub async fn large_value(b: &dyn Backend, p: &str) {
    let k = format!("{p}big");
    let v: Vec<u8> = (0..(1 << 20)).map(|i| (i * 31 % 251) as u8).collect();
    b.set(&k, v.clone(), None).await.unwrap();
    assert_eq!(b.get(&k).await.unwrap(), Some(v));
}

/// A value set with a ttl disappears after it.
pub async fn ttl_expiry(b: &dyn Backend, p: &str) {
    let k = format!("{p}ttl");
    b.set(&k, b"v".to_vec(), Some(Duration::from_millis(300)))
        .await
        .unwrap();
    assert!(b.get(&k).await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(b.get(&k).await.unwrap(), None);
}

/// `set_if_absent` writes once; it writes again after the value expires.
pub async fn set_if_absent(b: &dyn Backend, p: &str) {
    let k = format!("{p}nx");
    assert!(b.set_if_absent(&k, b"1".to_vec(), None).await.unwrap());
    assert!(!b.set_if_absent(&k, b"2".to_vec(), None).await.unwrap());
    assert_eq!(b.get(&k).await.unwrap().as_deref(), Some(&b"1"[..]));
    let t = format!("{p}nx-ttl");
    assert!(b
        .set_if_absent(&t, b"1".to_vec(), Some(Duration::from_millis(200)))
        .await
        .unwrap());
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(b.set_if_absent(&t, b"2".to_vec(), None).await.unwrap());
}

/// Only one of many concurrent `set_if_absent` calls wins.
pub async fn set_if_absent_race(b: &dyn Backend, p: &str) {
    let k = format!("{p}race");
    let wins = AtomicUsize::new(0);
    let tries = (0..16).map(|i| {
        let (k, wins) = (&k, &wins);
        async move {
            if b.set_if_absent(k, vec![i as u8], None).await.unwrap() {
                wins.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    join_all(tries).await;
    assert_eq!(wins.load(Ordering::SeqCst), 1);
}

/// Deleting says whether something was there.
pub async fn delete(b: &dyn Backend, p: &str) {
    let k = format!("{p}del");
    b.set(&k, b"v".to_vec(), None).await.unwrap();
    assert!(b.delete(&k).await.unwrap());
    assert_eq!(b.get(&k).await.unwrap(), None);
    assert!(!b.delete(&k).await.unwrap());
}

/// A value shaped like a stored entry (the envelope's magic and version): what bulk removals
/// of a store that shares its keyspace (a Redis without a key prefix) recognise as the
/// library's (see [`Backend::delete_prefix`]).
pub const ENTRY_LIKE: &[u8] = b"SC\x03 an entry-shaped value";

/// `delete_prefix` removes exactly the keys under the prefix.
pub async fn delete_prefix(b: &dyn Backend, p: &str) {
    let v = ENTRY_LIKE.to_vec();
    for i in 0..25 {
        b.set(&format!("{p}ns1:{i}"), v.clone(), None)
            .await
            .unwrap();
    }
    b.set(&format!("{p}ns10:x"), v.clone(), None).await.unwrap();
    b.set(&format!("{p}ns2:x"), v, None).await.unwrap();
    assert_eq!(b.delete_prefix(&format!("{p}ns1:")).await.unwrap(), 25);
    assert_eq!(b.get(&format!("{p}ns1:3")).await.unwrap(), None);
    assert!(b.get(&format!("{p}ns10:x")).await.unwrap().is_some());
    assert!(b.get(&format!("{p}ns2:x")).await.unwrap().is_some());
}

/// Counters add, start at zero and keep the ttl of their creation.
pub async fn incr(b: &dyn Backend, p: &str) {
    let k = format!("{p}ctr");
    assert_eq!(b.incr(&k, 1, None).await.unwrap(), 1);
    assert_eq!(b.incr(&k, 5, None).await.unwrap(), 6);
    assert_eq!(b.incr(&k, -2, None).await.unwrap(), 4);
    let t = format!("{p}ctr-ttl");
    assert_eq!(
        b.incr(&t, 1, Some(Duration::from_millis(300)))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        b.incr(&t, 1, Some(Duration::from_millis(300)))
            .await
            .unwrap(),
        2
    );
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(
        b.incr(&t, 1, Some(Duration::from_millis(300)))
            .await
            .unwrap(),
        1
    );
}

/// Concurrent increments are not lost.
pub async fn incr_concurrent(b: &dyn Backend, p: &str) {
    let k = format!("{p}ctr-c");
    join_all((0..50).map(|_| b.incr(&k, 1, None))).await;
    assert_eq!(b.incr(&k, 0, None).await.unwrap(), 50);
}

/// A lock has one holder; only its token releases it.
pub async fn lock_exclusive(b: &dyn Backend, p: &str) {
    let k = format!("{p}lock");
    let ttl = Duration::from_secs(30);
    assert!(b.acquire_lock(&k, "t1", ttl).await.unwrap());
    assert!(!b.acquire_lock(&k, "t2", ttl).await.unwrap());
    assert!(!b.release_lock(&k, "t2").await.unwrap());
    assert!(!b.acquire_lock(&k, "t2", ttl).await.unwrap());
    assert!(b.release_lock(&k, "t1").await.unwrap());
    assert!(b.acquire_lock(&k, "t2", ttl).await.unwrap());
    assert!(b.release_lock(&k, "t2").await.unwrap());
}

/// A lock whose holder never releases it frees itself after its ttl.
pub async fn lock_expiry(b: &dyn Backend, p: &str) {
    let k = format!("{p}lock-ttl");
    assert!(b
        .acquire_lock(&k, "dead", Duration::from_millis(300))
        .await
        .unwrap());
    assert!(!b
        .acquire_lock(&k, "alive", Duration::from_secs(5))
        .await
        .unwrap());
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert!(b
        .acquire_lock(&k, "alive", Duration::from_secs(5))
        .await
        .unwrap());
    // The expired holder cannot release the new holder's lock.
    assert!(!b.release_lock(&k, "dead").await.unwrap());
    assert!(b.release_lock(&k, "alive").await.unwrap());
}

/// Only the holder's token extends a lock; an extended lock outlives its first ttl, and a lock
/// that expired (or was released) cannot be extended back to life.
pub async fn lock_extend(b: &dyn Backend, p: &str) {
    let k = format!("{p}lock-extend");
    let short = Duration::from_millis(600);
    assert!(b.acquire_lock(&k, "t1", short).await.unwrap());
    assert!(
        !b.extend_lock(&k, "t2", short).await.unwrap(),
        "another token extended"
    );
    // Renew twice, each before the lease runs out: held well past the first ttl.
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(
            b.extend_lock(&k, "t1", short).await.unwrap(),
            "the holder could not extend"
        );
    }
    assert!(
        !b.acquire_lock(&k, "t2", short).await.unwrap(),
        "an extended lock was taken over after its first ttl"
    );
    assert!(b.release_lock(&k, "t1").await.unwrap());
    assert!(
        !b.extend_lock(&k, "t1", short).await.unwrap(),
        "a released lock was extended"
    );
    // A lease that ran out is not revived, and cannot touch the next holder's lock.
    let gone = format!("{p}lock-extend-gone");
    assert!(b
        .acquire_lock(&gone, "dead", Duration::from_millis(300))
        .await
        .unwrap());
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert!(
        !b.extend_lock(&gone, "dead", short).await.unwrap(),
        "an expired lock was extended"
    );
    assert!(b
        .acquire_lock(&gone, "next", Duration::from_secs(5))
        .await
        .unwrap());
    assert!(!b.extend_lock(&gone, "dead", short).await.unwrap());
    assert!(b.release_lock(&gone, "next").await.unwrap());
    // A plain value under the key is not a lock.
    let plain = format!("{p}lock-extend-plain");
    b.set(&plain, b"t1".to_vec(), None).await.unwrap();
    assert!(
        !b.extend_lock(&plain, "t1", short).await.unwrap(),
        "a value was taken for a lock"
    );
}

/// Of many concurrent lock attempts exactly one wins.
pub async fn lock_race(b: &dyn Backend, p: &str) {
    let k = format!("{p}lock-race");
    let wins = AtomicUsize::new(0);
    join_all((0..16).map(|i| {
        let (k, wins) = (&k, &wins);
        async move {
            let token = format!("t{i}");
            if b.acquire_lock(k, &token, Duration::from_secs(30))
                .await
                .unwrap()
            {
                wins.fetch_add(1, Ordering::SeqCst);
            }
        }
    }))
    .await;
    assert_eq!(wins.load(Ordering::SeqCst), 1);
}

/// Many concurrent writers to distinct and shared keys: every read sees one whole value.
pub async fn concurrent_writers(b: &dyn Backend, p: &str) {
    let shared = format!("{p}shared");
    join_all((0..32u8).map(|i| {
        let shared = &shared;
        async move {
            let own = format!("{p}own{i}");
            b.set(&own, vec![i; 1000], None).await.unwrap();
            b.set(shared, vec![i; 1000], None).await.unwrap();
            assert_eq!(b.get(&own).await.unwrap(), Some(vec![i; 1000]));
        }
    }))
    .await;
    let v = b.get(&shared).await.unwrap().unwrap();
    assert_eq!(v.len(), 1000);
    assert!(v.iter().all(|x| *x == v[0]), "torn value");
}

/// Envelopes round-trip through `BackendExt`, and an expired one reads as absent.
pub async fn envelope(b: &dyn Backend, p: &str) {
    let k = format!("{p}env");
    let now = unix_millis();
    let e = Entry {
        payload: vec![1, 2, 3],
        created_at: now,
        stale_at: now + 60_000,
        expires_at: now + 120_000,
        keep_until: now + 180_000,
        took_ms: 250,
        codec: 1,
        flags: 0,
        key_hash: Entry::key_hash_of(&k),
    };
    b.set_entry(&k, &e).await.unwrap();
    assert_eq!(b.get_entry(&k).await.unwrap(), Some(e.clone()));
    // One definition of expiry: an entry past its `expires_at` but kept (until `keep_until`,
    // for fail-safe) reads through `BackendExt` as through a manager (`Entry::unless_gone`);
    // one past `keep_until` is absent.
    for (expires_at, keep_until, kept) in
        [(now - 1, now + 180_000, true), (now - 2, now - 1, false)]
    {
        let old = Entry {
            expires_at,
            keep_until,
            stale_at: expires_at,
            created_at: now - 3,
            ..e.clone()
        };
        b.set(&k, old.encode().unwrap(), None).await.unwrap();
        let read = b.get_entry(&k).await.unwrap();
        assert_eq!(read.is_some(), kept, "{old:?}");
    }
    b.delete(&k).await.unwrap();
}

/// Garbage, truncated and foreign bytes under a key are a miss for the engine: the function runs,
/// its value replaces the bad bytes, and no wrong value is ever returned.
pub async fn corrupt_entries_are_misses(backend: Arc<dyn Backend>, p: &str) {
    let cache = Cache::builder().backend(backend.clone()).build();
    let policy = Policy::expire_after(Duration::from_secs(60));
    let good = crate::Codec::bincode().encode(&7u64).unwrap();
    let now = unix_millis();
    let key = |name: &str| format!("{p}corrupt-{name}");
    // A well-formed entry of 7, bound to the key of case `name`.
    let valid_for = |name: &str| Entry {
        payload: good.clone(),
        created_at: now,
        stale_at: u64::MAX,
        expires_at: now + 60_000,
        keep_until: now + 60_000,
        took_ms: 0,
        codec: crate::Codec::bincode().id(),
        flags: 0,
        key_hash: Entry::key_hash_of(&key(name)),
    };
    let valid = valid_for("truncated").encode().unwrap();
    let foreign = Entry {
        payload: serde_json::to_vec(&7u64).unwrap(),
        codec: crate::Codec::json().id(),
        ..valid_for("foreign-codec")
    }
    .encode()
    .unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "garbage",
            (0..200u32).map(|i| (i * 7 % 256) as u8).collect(),
        ),
        ("truncated", valid[..valid.len() - 3].to_vec()),
        ("empty", Vec::new()),
        ("foreign-codec", foreign),
        ("payload-of-wrong-type", {
            let mut e = valid_for("payload-of-wrong-type");
            e.payload = crate::Codec::bincode().encode(&"not a number").unwrap();
            e.encode().unwrap()
        }),
        // Another key's entry, copied here: never its value.
        ("another-key", valid_for("elsewhere").encode().unwrap()),
    ];
    for (name, bytes) in cases {
        let k = key(name);
        backend.set(&k, bytes, None).await.unwrap();
        let runs = AtomicUsize::new(0);
        let v: u64 = cache
            .get_or_compute(&k, &policy, || async {
                runs.fetch_add(1, Ordering::SeqCst);
                Ok::<_, ()>(99)
            })
            .await
            .unwrap();
        assert_eq!(v, 99, "{name}");
        assert_eq!(runs.load(Ordering::SeqCst), 1, "{name}: must recompute");
        // Healed: the next call is a hit.
        let again: u64 = cache
            .get_or_compute(&k, &policy, || async { Ok::<_, ()>(0) })
            .await
            .unwrap();
        assert_eq!(again, 99, "{name}: must be healed");
    }
    assert!(cache.stats().corrupt >= 6);
}

/// The store answers a ping.
pub async fn ping(b: &dyn Backend, _p: &str) {
    b.ping().await.unwrap();
}

async fn join_all<F: std::future::Future>(futs: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut set = Vec::new();
    for f in futs {
        set.push(Box::pin(f));
    }
    let mut out = Vec::with_capacity(set.len());
    // Poll all together: a tiny join_all without a futures dependency.
    let mut slots: Vec<Option<F::Output>> = set.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in set.iter_mut().enumerate() {
            if slots[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => slots[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.extend(slots.into_iter().flatten());
    out
}

/// One named `#[tokio::test]` per conformance case for the backend that `$make` (an async
/// expression evaluating to an `Arc<dyn Backend>`) builds. Cases the backend's capabilities rule
/// out are skipped with a message.
///
/// ```ignore
/// steadycache_api::conformance_tests!(async { std::sync::Arc::new(MemoryBackend::default()) as Arc<dyn Backend> });
/// ```
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!(@case $make, round_trip, |_c| true);
        $crate::conformance_tests!(@case $make, large_value, |_c| true);
        $crate::conformance_tests!(@case $make, ttl_expiry, |c: $crate::Capabilities| c.ttl);
        $crate::conformance_tests!(@case $make, set_if_absent, |c: $crate::Capabilities| c.set_if_absent && c.ttl);
        $crate::conformance_tests!(@case $make, set_if_absent_race, |c: $crate::Capabilities| c.set_if_absent);
        $crate::conformance_tests!(@case $make, delete, |_c| true);
        $crate::conformance_tests!(@case $make, delete_prefix, |c: $crate::Capabilities| c.delete_prefix);
        $crate::conformance_tests!(@case $make, delete_matching, |c: $crate::Capabilities| c.delete_matching);
        $crate::conformance_tests!(@case $make, publish_subscribe, |c: $crate::Capabilities| c.pubsub);
        $crate::conformance_tests!(@case $make, list_keys, |c: $crate::Capabilities| c.list_keys);
        $crate::conformance_tests!(@case $make, incr, |c: $crate::Capabilities| c.incr && c.ttl);
        $crate::conformance_tests!(@case $make, incr_concurrent, |c: $crate::Capabilities| c.incr);
        $crate::conformance_tests!(@case $make, lock_exclusive, |c: $crate::Capabilities| c.locks);
        $crate::conformance_tests!(@case $make, lock_expiry, |c: $crate::Capabilities| c.locks);
        $crate::conformance_tests!(@case $make, lock_race, |c: $crate::Capabilities| c.locks);
        $crate::conformance_tests!(@case $make, lock_extend, |c: $crate::Capabilities| c.locks);
        $crate::conformance_tests!(@case $make, concurrent_writers, |_c| true);
        $crate::conformance_tests!(@case $make, envelope, |c: $crate::Capabilities| c.ttl);
        $crate::conformance_tests!(@case $make, ping, |_c| true);
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn corrupt_entries_are_misses() {
            let b: ::std::sync::Arc<dyn $crate::Backend> = $make.await;
            $crate::testing::corrupt_entries_are_misses(b, &$crate::testing::unique_prefix("corrupt")).await;
        }
    };
    (@case $make:expr, $case:ident, $when:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $case() {
            let b: ::std::sync::Arc<dyn $crate::Backend> = $make.await;
            let caps = b.capabilities();
            #[allow(clippy::redundant_closure_call)]
            let run: bool = ($when)(caps);
            if !run {
                eprintln!("skipped: {} lacks the capability for `{}`", b.name(), stringify!($case));
                return;
            }
            $crate::testing::$case(&*b, &$crate::testing::unique_prefix(stringify!($case))).await;
        }
    };
}

/// Whether `cond` holds within 10 s of real time (checked every 10 ms): for a test's point
/// that is "it happens", not "it happens this fast".
pub fn eventually(cond: impl Fn() -> bool) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < std::time::Duration::from_secs(10) {
        if cond() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    cond()
}

/// A fresh, empty directory under the system temp dir, named after `tag`, the process and a
/// counter; it is kept after the test (backends and their background threads may still use it).
///
/// # Panics
/// When no directory can be created there: a test cannot run without one.
pub fn temp_dir(tag: &str) -> std::path::PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    loop {
        let dir = std::env::temp_dir().join(format!(
            "steadycache-{tag}-{}-{}-{:08x}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
            fastrand::u32(..)
        ));
        match std::fs::create_dir_all(dir.parent().unwrap_or(&dir))
            .and_then(|()| std::fs::create_dir(&dir))
        {
            Ok(()) => return dir,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => panic!("cannot create a temp dir {}: {e}", dir.display()),
        }
    }
}
