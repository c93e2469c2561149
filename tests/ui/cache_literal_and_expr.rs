//! `cache = ...` takes a URL string literal (opened at run time) or an expression of type
//! `Cache` or `&Cache`.
use std::sync::LazyLock;
use steadycache::{cached, Cache};

static SHARED: LazyLock<Cache> = LazyLock::new(Cache::memory);

fn make_cache() -> Cache {
    Cache::memory()
}

#[cached(cache = "mem://?max_bytes=1000")]
fn from_mem_url(x: u32) -> u32 {
    x + 1
}

#[cached(cache = "file:///tmp/steadycache-ui-never-opened", ttl = "10m")]
fn from_file_url(x: u32) -> u32 {
    x + 2
}

// Compiles: the URL is opened at the first call, which never happens here.
#[cached(cache = "redis://127.0.0.1:6379/0", ttl = "1s")]
fn from_redis_url(x: u32) -> u32 {
    x + 3
}

#[cached(cache = make_cache())]
fn from_fn(x: u32) -> u32 {
    x + 4
}

#[cached(cache = SHARED.clone())]
fn from_clone(x: u32) -> u32 {
    x + 5
}

#[cached(cache = &*SHARED)]
fn from_ref(x: u32) -> u32 {
    x + 6
}

struct Service;

impl Service {
    #[cached(cache = "mem://", key_self = false)]
    fn method_url(&self, x: u32) -> u32 {
        x + 7
    }
}

macro_rules! memoized_with {
    ($cache:expr) => {
        #[cached(cache = $cache)]
        fn from_macro(x: u32) -> u32 {
            x + 8
        }
    };
}
memoized_with!("mem://");

fn main() {
    assert_eq!(from_mem_url(1), 2);
    assert_eq!(from_fn(1), 5);
    assert_eq!(from_clone(1), 6);
    assert_eq!(from_ref(1), 7);
    assert_eq!(Service.method_url(1), 8);
    assert_eq!(from_macro(1), 9);
    // Never called: opening them is a run-time matter.
    let _ = (
        from_file_url as fn(u32) -> u32,
        from_redis_url as fn(u32) -> u32,
    );
}
