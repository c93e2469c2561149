//! Events (issue 25 item 3): a listener on a cache hears its functions' misses, hits (when it
//! asks), stale values, fail-safe, failed refreshes, values too large, and evictions with their
//! cause; the counts agree with the stats; a listener may call back into the cache from an event
//! without deadlocking. (The breaker's events are in `crates/integration/tests/wire_faults.rs`.)

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use steadycache::{cached, Cache, CacheEvent, CacheListener, EventKind, EvictionCause};
use steadycache_api::testing::{clock, eventually};

const MIN: Duration = Duration::from_secs(60);

/// Records every event of the function whose namespace ends with `function`.
struct Recorder {
    function: &'static str,
    hits: bool,
    seen: Mutex<Vec<EventKind>>,
}

impl Recorder {
    fn new(function: &'static str, hits: bool) -> Arc<Recorder> {
        Arc::new(Recorder {
            function,
            hits,
            seen: Mutex::new(Vec::new()),
        })
    }
    fn count(&self, kind: EventKind) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|k| **k == kind)
            .count()
    }
    fn evicted(&self, cause: EvictionCause) -> u64 {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|k| match k {
                EventKind::Evicted { cause: c, entries } if *c == cause => *entries,
                _ => 0,
            })
            .sum()
    }
}

impl CacheListener for Recorder {
    fn wants_hits(&self) -> bool {
        self.hits
    }
    fn on_event(&self, e: &CacheEvent<'_>) {
        if e.namespace.ends_with(self.function) {
            self.seen.lock().unwrap().push(e.kind);
        }
    }
}

fn new_memory(max_bytes: u64) -> Cache {
    Cache::from_url_unshared(&format!("mem://?max_bytes={max_bytes}")).unwrap()
}

fn mem_a() -> &'static Cache {
    static C: OnceLock<Cache> = OnceLock::new();
    C.get_or_init(|| new_memory(1 << 20))
}

#[cached(cache = mem_a(), ttl = "10m", entry_size_limit = 1_000)]
fn plain(len: usize) -> Vec<u8> {
    vec![0; len]
}

#[test]
fn misses_hits_and_values_too_large_agree_with_the_stats() {
    // The clock stays still: another test of this binary moves it past the ttl.
    let _one = clock::exclusive();
    let rec = Recorder::new("plain", false);
    mem_a().set_listener(rec.clone());
    for len in [1, 2, 1, 2, 1, 5_000, 5_000] {
        plain(len);
    }
    let s = plain_cache().stats();
    assert_eq!((s.misses, s.hits, s.too_large), (4, 3, 2));
    assert_eq!(rec.count(EventKind::Miss), 4);
    assert_eq!(rec.count(EventKind::TooLarge), 2);
    assert_eq!(rec.count(EventKind::Hit), 0, "hits not asked for");
    // A listener that asks for hits hears each.
    let rec = Recorder::new("plain", true);
    mem_a().set_listener(rec.clone());
    for _ in 0..5 {
        plain(1);
    }
    assert_eq!(rec.count(EventKind::Hit), 5);
    mem_a().clear_listener();
    plain(1);
    assert_eq!(rec.count(EventKind::Hit), 5, "cleared: told nothing");
}

fn mem_b() -> &'static Cache {
    static C: OnceLock<Cache> = OnceLock::new();
    C.get_or_init(|| new_memory(1 << 20))
}

#[cached(cache = mem_b(), ttl = "10m", tti = "1h")]
fn timed(k: u32) -> u32 {
    k
}

#[cached(cache = mem_b(), tti = "5m")]
fn idle(k: u32) -> u32 {
    k
}

#[test]
fn expiry_idleness_and_invalidation_are_the_causes_they_are() {
    let _one = clock::exclusive();
    let timed_rec = Recorder::new("timed", false);
    let idle_rec = Recorder::new("idle", false);
    // One listener per cache: fan out to both.
    struct Both(Arc<Recorder>, Arc<Recorder>);
    impl CacheListener for Both {
        fn on_event(&self, e: &CacheEvent<'_>) {
            self.0.on_event(e);
            self.1.on_event(e);
        }
    }
    mem_b().set_listener(Arc::new(Both(timed_rec.clone(), idle_rec.clone())));
    for k in 0..3 {
        timed(k);
        idle(k);
    }
    clock::advance(6 * MIN);
    assert_eq!(idle(0), 0); // idle for 6 minutes: gone, computed again
    assert_eq!(idle_rec.evicted(EvictionCause::Idle), 1);
    clock::advance(5 * MIN); // 11 minutes: past the ttl
    timed(0);
    timed(1);
    assert_eq!(timed_rec.evicted(EvictionCause::Expired), 2);
    assert!(timed_cache().invalidate_sync(2).unwrap());
    assert_eq!(timed_rec.evicted(EvictionCause::Invalidated), 1);
    timed_cache().clear_sync().unwrap();
    assert_eq!(
        timed_rec.evicted(EvictionCause::Invalidated),
        3,
        "the two recomputed"
    );
    assert_eq!(timed_rec.evicted(EvictionCause::Size), 0);
}

fn mem_small() -> &'static Cache {
    static C: OnceLock<Cache> = OnceLock::new();
    C.get_or_init(|| new_memory(64 << 10))
}

static REENTERED: AtomicUsize = AtomicUsize::new(0);

#[cached(cache = mem_small(), ttl = "10m")]
fn chunk(k: u32) -> Vec<u8> {
    vec![k as u8; 4 << 10]
}

#[cached(cache = mem_small(), ttl = "10m")]
fn note(k: u64) -> u64 {
    REENTERED.fetch_add(1, SeqCst);
    k
}

/// Calls a memoized function of the same cache (which stores, so takes the budget's lock) on
/// every eviction.
struct Reenter(Arc<Recorder>);
impl CacheListener for Reenter {
    fn on_event(&self, e: &CacheEvent<'_>) {
        self.0.on_event(e);
        if let EventKind::Evicted { entries, .. } = e.kind {
            note(entries + 1_000_000 * REENTERED.load(SeqCst) as u64);
        }
    }
}

#[test]
fn size_evictions_are_reported_outside_the_lock_a_listener_may_reenter() {
    let _one = clock::exclusive(); // (another test moves the clock past ttls)
    let rec = Recorder::new("chunk", false);
    mem_small().set_listener(Arc::new(Reenter(rec.clone())));
    for k in 0..100 {
        chunk(k);
    }
    let held = chunk_cache().local_len() as u64;
    assert!(
        held < 100,
        "a 64 KiB budget holds fewer than 100 values of 4 KiB"
    );
    let evicted = rec.evicted(EvictionCause::Size);
    assert_eq!(
        evicted,
        100 - held,
        "every value that left was reported once"
    );
    assert!(
        REENTERED.load(SeqCst) > 0,
        "the listener called back into the cache"
    );
}

static DOWN: AtomicBool = AtomicBool::new(false);
static FLAKY_RUNS: AtomicUsize = AtomicUsize::new(0);

fn mem_c() -> &'static Cache {
    static C: OnceLock<Cache> = OnceLock::new();
    C.get_or_init(|| new_memory(1 << 20))
}

#[cached(
    cache = mem_c(),
    ttl = "100ms",
    stale_while_revalidate = "1h",
    fail_safe = "1h",
    fail_safe_throttle = "50ms"
)]
fn flaky(k: u32) -> Result<u32, String> {
    FLAKY_RUNS.fetch_add(1, SeqCst);
    if DOWN.load(SeqCst) {
        return Err("down".into());
    }
    Ok(k)
}

#[test]
fn stale_values_failed_refreshes_and_fail_safe_are_heard() {
    let _one = clock::exclusive(); // (another test moves the clock past ttls)
    let rec = Recorder::new("flaky", false);
    mem_c().set_listener(rec.clone());
    assert_eq!(flaky(1), Ok(1));
    DOWN.store(true, SeqCst);
    std::thread::sleep(Duration::from_millis(150)); // stale
    assert_eq!(flaky(1), Ok(1), "stale, served while it refreshes");
    assert!(eventually(|| rec.count(EventKind::RefreshFailed) == 1));
    assert!(rec.count(EventKind::StaleServed) >= 1);
    let s = flaky_cache().stats();
    assert_eq!(rec.count(EventKind::StaleServed) as u64, s.stale);
    assert_eq!(rec.count(EventKind::FailSafe) as u64, s.fail_safe);
    DOWN.store(false, SeqCst);
}
