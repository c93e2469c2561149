//! Tags (issue 14, part 1): `#[cached(tags = [...])]` and `Cache::invalidate_tag(s)`, sync and
//! async, on a memory cache and on local stores shared by two independent caches (each with its
//! own L1, its own bus, as two processes would have). The cross-process runs on every shared
//! backend are in `crates/integration/tests/invalidation_processes.rs`.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::LazyLock;
use steadycache::{cached, Cache};
use steadycache_api::testing::{eventually, temp_dir};

static MEM: LazyLock<Cache> = LazyLock::new(Cache::memory);
static RUNS: AtomicUsize = AtomicUsize::new(0);
static RUNS_ASYNC: AtomicUsize = AtomicUsize::new(0);
static RUNS_PLAIN: AtomicUsize = AtomicUsize::new(0);

#[cached(cache = &*MEM, ttl = "10m", tags = ["user:{id}", "users"])]
fn profile(id: u64) -> String {
    RUNS.fetch_add(1, SeqCst);
    format!("profile {id}")
}

#[cached(cache = &*MEM, ttl = "10m", tags = ["user:{id}"])]
async fn orders(id: u64) -> Result<Vec<u64>, String> {
    RUNS_ASYNC.fetch_add(1, SeqCst);
    Ok(vec![id, id + 1])
}

#[cached(cache = &*MEM, ttl = "10m")]
fn untagged(id: u64) -> u64 {
    RUNS_PLAIN.fetch_add(1, SeqCst);
    id * 2
}

#[test]
fn invalidating_a_tag_turns_its_values_into_misses_and_no_other() {
    let before = RUNS.load(SeqCst);
    for id in [1, 2] {
        profile(id);
        profile(id);
        untagged(id);
    }
    assert_eq!(RUNS.load(SeqCst) - before, 2, "computed once each");
    MEM.invalidate_tag_sync("user:1").unwrap();
    assert_eq!(profile(1), "profile 1");
    assert_eq!(RUNS.load(SeqCst) - before, 3, "user:1 was invalidated");
    profile(1);
    profile(2);
    assert_eq!(
        RUNS.load(SeqCst) - before,
        3,
        "user:2 and the new user:1 are hits"
    );
    let plain = RUNS_PLAIN.load(SeqCst);
    untagged(1);
    assert_eq!(RUNS_PLAIN.load(SeqCst), plain, "untagged values stay");
    MEM.invalidate_tags_sync(["users"]).unwrap();
    profile(1);
    profile(2);
    assert_eq!(RUNS.load(SeqCst) - before, 5, "both carry `users`");
}

#[tokio::test]
async fn async_functions_and_async_invalidation() {
    let before = RUNS_ASYNC.load(SeqCst);
    assert_eq!(orders(7).await, Ok(vec![7, 8]));
    orders(7).await.unwrap();
    orders(8).await.unwrap();
    assert_eq!(RUNS_ASYNC.load(SeqCst) - before, 2);
    MEM.invalidate_tag("user:7").await.unwrap();
    orders(7).await.unwrap();
    orders(8).await.unwrap();
    assert_eq!(RUNS_ASYNC.load(SeqCst) - before, 3);
}

/// Two caches over one SQLite file, each with an L1 and a bus polled every 20 ms: what one
/// invalidates, the other stops serving.
fn sqlite_pair(tag: &str) -> (Cache, Cache) {
    let dir = temp_dir(tag);
    let url = format!("sqlite://{}/c.db?local=1MiB&bus_poll_ms=20", dir.display());
    (
        Cache::from_url_unshared(&url).unwrap(),
        Cache::from_url_unshared(&url).unwrap(),
    )
}

static PAIR: LazyLock<(Cache, Cache)> = LazyLock::new(|| sqlite_pair("tags-sqlite"));
static RUNS_A: AtomicUsize = AtomicUsize::new(0);
static RUNS_B: AtomicUsize = AtomicUsize::new(0);

#[cached(cache = &PAIR.0, ttl = "10m", tags = ["item:{id}"], key_prefix = "shared.item", version = "1")]
fn item_a(id: u64) -> u64 {
    RUNS_A.fetch_add(1, SeqCst);
    id
}

#[cached(cache = &PAIR.1, ttl = "10m", tags = ["item:{id}"], key_prefix = "shared.item", version = "1")]
fn item_b(id: u64) -> u64 {
    RUNS_B.fetch_add(1, SeqCst);
    id
}

#[test]
fn a_tag_invalidated_by_one_cache_reaches_the_copies_of_another() {
    item_a(1);
    item_a(2);
    assert_eq!(RUNS_A.load(SeqCst), 2);
    // B reads A's values from the store into its L1 (once its bus is heard).
    assert!(eventually(|| {
        item_b(1);
        item_b(2);
        item_b_cache().local_len() == 2
    }));
    assert_eq!(RUNS_B.load(SeqCst), 0, "B computed nothing: A's values");
    PAIR.0.invalidate_tag_sync("item:1").unwrap();
    // A computation that starts within `START_MARGIN_MS` (2 ms) of an invalidation of its tag
    // is judged to have raced it, and what it stores is dropped: B's recomputation must start
    // later than that for A to use it. The test clock makes that so, without a wait (a run in
    // which B recomputed within 2 ms saw A compute a third time).
    let _clock = steadycache_api::testing::clock::exclusive();
    steadycache_api::testing::clock::advance(std::time::Duration::from_millis(10));
    assert!(
        eventually(|| {
            item_b(1);
            RUNS_B.load(SeqCst) == 1
        }),
        "B's copy of item 1 was dropped and its stored value judged invalid"
    );
    item_b(2);
    assert_eq!(RUNS_B.load(SeqCst), 1, "item 2 is still a hit for B");
    item_a(1);
    assert_eq!(
        RUNS_A.load(SeqCst),
        2,
        "A sees B's recomputed value (stored after the invalidation)"
    );
}

#[test]
fn get_cached_and_prime_judge_a_tagged_function_by_its_tags() {
    let before = RUNS.load(SeqCst);
    profile(30);
    assert_eq!(
        profile_cache().get_cached_sync(30).as_deref(),
        Some("profile 30")
    );
    MEM.invalidate_tag_sync("user:30").unwrap();
    assert_eq!(
        profile_cache().get_cached_sync(30),
        None,
        "an invalidated value is not returned"
    );
    assert!(profile_cache().prime_sync(31, "primed".into()).unwrap());
    MEM.invalidate_tag_sync("user:31").unwrap();
    assert_eq!(
        profile(31),
        "profile 31",
        "a primed value goes with its tag too"
    );
    assert_eq!(RUNS.load(SeqCst) - before, 2);
}

static OFF: LazyLock<Cache> = LazyLock::new(|| {
    let dir = temp_dir("tags-bus-off");
    Cache::from_url(&format!("file://{}?local=1MiB&bus=off", dir.display())).unwrap()
});
static OFF_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(cache = &*OFF, ttl = "10m")]
fn off(id: u64) -> u64 {
    OFF_RUNS.fetch_add(1, SeqCst);
    id
}

#[test]
fn with_the_bus_off_copies_are_served_until_they_expire() {
    assert!(
        OFF.health().bus_live,
        "nothing to hear: copies are vouched for"
    );
    off(1);
    // Another process's removal (here: straight in the store, no bus) does not reach the copy.
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let removed = rt.block_on(OFF.backend().delete_prefix("")).unwrap();
    assert!(removed >= 1);
    off(1);
    assert_eq!(OFF_RUNS.load(SeqCst), 1, "served from L1");
}
