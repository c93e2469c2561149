//! A memory hit allocates nothing: counted with a global counting allocator (own test binary).
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::Ordering::SeqCst;
use steadycache::cached;

struct Counting;
// Counted per thread: the test harness runs tests on parallel threads.
thread_local!(static ALLOCS_HERE: Cell<usize> = const { Cell::new(0) });
struct Here;
impl Here {
    fn load(&self, _: std::sync::atomic::Ordering) -> usize {
        ALLOCS_HERE.with(|c| c.get())
    }
    fn fetch_add(&self, n: usize, _: std::sync::atomic::Ordering) {
        let _ = ALLOCS_HERE.try_with(|c| c.set(c.get() + n));
    }
}
static ALLOCS: Here = Here;

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, SeqCst);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, SeqCst);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static A: Counting = Counting;

#[cached(ttl = "10m")]
fn double(x: u64) -> u64 {
    x * 2
}

#[cached(ttl = "10m")]
async fn double_async(x: u64) -> u64 {
    x * 2
}

/// A value without serde (kept typed in memory): an `Arc` of a plain struct.
struct Opaque(u64);

#[cached(ttl = "10m")]
fn opaque_double(x: u64) -> std::sync::Arc<Opaque> {
    std::sync::Arc::new(Opaque(x * 2))
}

#[test]
fn a_hit_of_a_value_without_serde_allocates_nothing() {
    for i in 0..100 {
        opaque_double(i);
    }
    let before = ALLOCS.load(SeqCst);
    let mut sum = 0;
    for i in 0..100 {
        sum += opaque_double(i).0;
    }
    let after = ALLOCS.load(SeqCst);
    assert_eq!(sum, 9900);
    assert_eq!(
        after - before,
        0,
        "{} allocations on 100 hits",
        after - before
    );
    assert_eq!(opaque_double_cache().stats().hits, 100);
}

#[test]
fn a_sync_hit_allocates_nothing() {
    for i in 0..100 {
        double(i); // warm, and let thread-locals and the memo initialize
    }
    let before = ALLOCS.load(SeqCst);
    let mut sum = 0;
    for _ in 0..10 {
        for i in 0..100 {
            sum += double(i);
        }
    }
    let after = ALLOCS.load(SeqCst);
    assert_eq!(sum, 10 * 9900);
    assert_eq!(
        after - before,
        0,
        "{} allocations on 1000 hits",
        after - before
    );
    assert_eq!(double_cache().stats().hits, 1000);
}

#[test]
fn an_async_hit_allocates_nothing() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        for i in 0..100 {
            double_async(i).await;
        }
        let before = ALLOCS.load(SeqCst);
        let mut sum = 0;
        for i in 0..100 {
            sum += double_async(i).await;
        }
        let after = ALLOCS.load(SeqCst);
        assert_eq!(sum, 9900);
        assert_eq!(
            after - before,
            0,
            "{} allocations on 100 async hits",
            after - before
        );
    });
}

static L1_OVER_FILES: std::sync::LazyLock<steadycache::Cache> = std::sync::LazyLock::new(|| {
    let dir = steadycache_api::testing::temp_dir("hit-allocations-l1");
    steadycache::Cache::from_url(&format!("file://{}?local=1MiB", dir.display())).unwrap()
});

#[cached(cache = &*L1_OVER_FILES, ttl = "10m")]
fn shared_double(x: u64) -> u64 {
    x * 2
}

#[cached(ttl = "10m", tags = ["n:{x}", "all"])]
fn tagged_double(x: u64) -> String {
    format!("{}", x * 2)
}

/// An L1 hit in front of a shared store (checked against the bus's watch) and a tagged hit
/// (checked against the tag epoch, after a tag invalidation) allocate nothing either.
#[test]
fn l1_and_tagged_hits_allocate_nothing() {
    assert!(steadycache_api::testing::eventually(|| L1_OVER_FILES
        .health()
        .bus_live));
    steadycache::default_cache()
        .invalidate_tag_sync("n:1")
        .unwrap();
    for i in 0..100 {
        shared_double(i);
        tagged_double(i);
    }
    let before = ALLOCS.load(SeqCst);
    let mut sum = 0;
    for i in 0..100 {
        sum += shared_double(i);
    }
    let after = ALLOCS.load(SeqCst);
    assert_eq!(sum, 9900);
    assert_eq!(
        after - before,
        0,
        "{} allocations on 100 L1 hits",
        after - before
    );
    assert!(shared_double_cache().stats().hits >= 100);
    let before = ALLOCS.load(SeqCst);
    let mut n = 0;
    for i in 0..100 {
        n += tagged_double(i).len(); // the clone of a String: one allocation per hit, no more
    }
    let after = ALLOCS.load(SeqCst);
    assert!(n > 0);
    assert_eq!(
        after - before,
        100,
        "only the values' clones allocate on tagged hits"
    );
}

/// An async call's future carries its lookup, not the phases past it: those (coalescing,
/// leases, the computation, storing) are boxed when a call reaches them, and no layer of the
/// store call keeps the future it wraps twice (an `async fn`'s arguments stay beside what it
/// awaits). Every call creates and moves this future: it was 7 KB before, 2.2 KB after.
#[test]
fn an_async_calls_future_stays_small() {
    let size = std::mem::size_of_val(&double_async(1));
    assert!(
        size <= 3 * 1024,
        "an async #[cached] call's future is {size} bytes"
    );
}
