//! One cache per URL (issue 21, item 1): forty memoized functions and an `#[invalidates]`
//! naming one Redis URL share one `Cache`: one subscription of the invalidation bus
//! (`PUBSUB NUMSUB`), a bounded number of client connections (`CLIENT LIST`), one byte budget
//! for their in-process copies. Before, each function opened a cache of its own: forty
//! connection pools, forty subscribers, forty budgets.

use std::sync::OnceLock;
use steadycache::{cached, invalidates, Cache};
use steadycache_redis::testing::RedisServer;

fn server() -> &'static RedisServer {
    static S: OnceLock<RedisServer> = OnceLock::new();
    S.get_or_init(RedisServer::start)
}

/// The URL every function names: an in-process tier of 64 KiB in front of Redis.
fn url() -> String {
    format!("{}?local=64KiB", server().url())
}

fn shared() -> Cache {
    Cache::from_url(&url()).expect("open")
}

macro_rules! forty {
    ($($f:ident)*) => {
        $(
            #[cached(cache = shared(), ttl = "10m")]
            fn $f(k: u32) -> Vec<u8> {
                vec![k as u8; 1024]
            }
        )*
        fn call_all(k: u32) -> usize {
            let mut n = 0;
            $( n += $f(k).len(); )*
            n
        }
    };
}

forty!(
    f00 f01 f02 f03 f04 f05 f06 f07 f08 f09 f10 f11 f12 f13 f14 f15 f16 f17 f18 f19
    f20 f21 f22 f23 f24 f25 f26 f27 f28 f29 f30 f31 f32 f33 f34 f35 f36 f37 f38 f39
);

#[invalidates(f00(k), cache = shared())]
fn change(k: u32) -> Result<(), String> {
    let _ = k;
    Ok(())
}

fn count_lines(reply: &str, needle: &str) -> usize {
    reply.lines().filter(|l| l.contains(needle)).count()
}

#[test]
fn forty_functions_on_one_url_share_one_cache() {
    for k in 0..100 {
        assert_eq!(call_all(k), 40 * 1024);
    }
    change(1).expect("change");
    let cache = shared();
    // One subscriber on the bus channel.
    std::thread::sleep(std::time::Duration::from_millis(200)); // subscriptions settle
    let numsub = server().command("PUBSUB NUMSUB steadycache:bus");
    let subscribers: u64 = numsub
        .lines()
        .rev()
        .find_map(|l| l.trim().trim_start_matches(':').parse().ok())
        .unwrap_or(u64::MAX);
    assert_eq!(subscribers, 1, "{numsub:?}");
    // A bounded number of connections: the shared multiplexed one and the subscriber's (and
    // the inline command asking).
    let clients = server().command("CLIENT LIST");
    let n = count_lines(&clients, "addr=");
    assert!(n <= 4, "{n} client connections:\n{clients}");
    // One budget: 4,000 values of 1 KiB were computed, the copies kept stay within 64 KiB.
    let held = cache.typed_tier_bytes();
    assert!(held <= 64 * 1024, "{held} bytes held in process");
    assert!(held > 0);
    assert!(cache.same_as(&Cache::from_url_failing_open(&url())));
    assert!(cache.same_as(&steadycache::__private::cache_from_url(&url())));
}
