//! `#[invalidates]` (issue 14, part 2): a mutating function drops the memoized calls it names
//! and the tags it renders, after it returns `Ok` only, sync and async, even when its body
//! consumes its arguments.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::LazyLock;
use steadycache::{cached, invalidates, Cache};

static CACHE: LazyLock<Cache> = LazyLock::new(Cache::memory);
static PROFILE_RUNS: AtomicUsize = AtomicUsize::new(0);
static NAME_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(cache = &*CACHE, ttl = "10m")]
fn profile(id: u64) -> String {
    PROFILE_RUNS.fetch_add(1, SeqCst);
    format!("profile {id}")
}

#[cached(cache = &*CACHE, ttl = "10m", key = "name:{name}")]
fn by_name(name: String) -> usize {
    NAME_RUNS.fetch_add(1, SeqCst);
    name.len()
}

#[invalidates(profile(id), by_name(name), cache = &*CACHE)]
fn update(id: u64, name: String, fail: bool) -> Result<usize, String> {
    if fail {
        return Err(format!("could not update {name}"));
    }
    let owned: String = name; // the body consumes its argument
    Ok(owned.len())
}

#[test]
fn the_named_calls_are_dropped_after_ok_only() {
    profile(1);
    profile(2);
    by_name("ann".into());
    assert_eq!((PROFILE_RUNS.load(SeqCst), NAME_RUNS.load(SeqCst)), (2, 1));
    assert!(update(1, "ann".into(), true).is_err());
    profile(1);
    by_name("ann".into());
    assert_eq!(
        (PROFILE_RUNS.load(SeqCst), NAME_RUNS.load(SeqCst)),
        (2, 1),
        "an Err invalidates nothing"
    );
    assert_eq!(update(1, "ann".into(), false), Ok(3));
    profile(1);
    profile(2);
    by_name("ann".into());
    assert_eq!(
        (PROFILE_RUNS.load(SeqCst), NAME_RUNS.load(SeqCst)),
        (3, 2),
        "profile 1 and ann, not profile 2"
    );
}

static TAGGED: LazyLock<Cache> = LazyLock::new(Cache::memory);
static ORDERS_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(cache = &*TAGGED, ttl = "10m", tags = ["customer:{customer}"])]
async fn orders(customer: u64, page: u32) -> Vec<u64> {
    ORDERS_RUNS.fetch_add(1, SeqCst);
    vec![customer, u64::from(page)]
}

#[invalidates(tags = ["customer:{customer}"], cache = &*TAGGED)]
async fn place_order(customer: u64, item: String) -> u64 {
    drop(item);
    customer
}

#[tokio::test]
async fn an_async_function_invalidates_its_tags() {
    for page in 0..3 {
        orders(5, page).await;
        orders(6, page).await;
    }
    assert_eq!(ORDERS_RUNS.load(SeqCst), 6);
    assert_eq!(place_order(5, "book".into()).await, 5);
    for page in 0..3 {
        orders(5, page).await;
        orders(6, page).await;
    }
    assert_eq!(
        ORDERS_RUNS.load(SeqCst),
        9,
        "every page of customer 5, none of 6"
    );
}
