//! The Redis examples, run for real (issue 4): their sources are included here, so the tests
//! exercise exactly the example code against a `redis-server` of their own.

#[allow(dead_code)]
#[path = "../examples/redis_rate_limited_api.rs"]
mod rate_limited;

#[allow(dead_code)]
#[path = "../examples/redis_pagination.rs"]
mod pagination;

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use steadycache::RedisBackend;
use steadycache_redis::testing::RedisServer;

/// A child process of the rate-limit test: the example's own load for 5 seconds.
#[test]
#[ignore = "run by rate_limited_api_is_called_about_once_per_second_in_total as a child"]
fn rate_limited_child() {
    if std::env::var(rate_limited::URL_VAR).is_err() {
        return;
    }
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let calls = rt.block_on(rate_limited::hammer(5));
    assert!(calls > 50, "the child kept calling: {calls}");
}

#[test]
fn rate_limited_api_is_called_about_once_per_second_in_total() {
    let server = RedisServer::start();
    let url = server.url();
    std::env::set_var(rate_limited::URL_VAR, &url);
    let exe = std::env::current_exe().expect("test binary path");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let processes = 4;
    let upstream = rt.block_on(rate_limited::run(processes, || {
        Command::new(&exe)
            .args([
                "--ignored",
                "--exact",
                "rate_limited_child",
                "--test-threads=1",
            ])
            .env(rate_limited::URL_VAR, &url)
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn a child")
    }));
    // 4 processes x 5 s with ttl = 1 s: about 5 upstream calls in total (not 4 x 5 = 20).
    assert!(
        (4..=6).contains(&upstream),
        "upstream called {upstream} times by {processes} processes in 5 s; expected 5 ± 1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagination_stores_a_redis_list_and_reads_pages_with_lrange() {
    let server = RedisServer::start();
    let (cache, lists) = pagination::list_cache(RedisBackend::from_url(&server.url()).unwrap());
    let runs = AtomicUsize::new(0);

    let first = pagination::search_page(&cache, &lists, "rust", 0, &runs)
        .await
        .unwrap();
    assert_eq!(first.len(), pagination::PER_PAGE);
    assert_eq!(first[0].title, "rust result #0");
    assert_eq!(runs.load(SeqCst), 1);

    // Stored as a real Redis list, one element per hit, expiring with the entry.
    assert_eq!(server.command("TYPE {search:rust}:items").trim(), "+list");
    assert_eq!(server.command("LLEN {search:rust}:items").trim(), ":35");
    let pttl: i64 = server
        .command("PTTL {search:rust}:items")
        .trim()
        .trim_start_matches(':')
        .parse()
        .unwrap();
    assert!(pttl > 0, "the list expires with the entry: {pttl}");

    // Later pages come from LRANGE: the query does not run again.
    for (page, len, first_rank) in [(1, 10, 10), (3, 5, 30), (4, 0, 0)] {
        let hits = pagination::search_page(&cache, &lists, "rust", page, &runs)
            .await
            .unwrap();
        assert_eq!(hits.len(), len, "page {page}");
        if let Some(h) = hits.first() {
            assert_eq!(h.rank, first_rank);
        }
    }
    assert_eq!(runs.load(SeqCst), 1);

    // The whole value loads back through the manager (a hit of get_or_compute).
    let all: Vec<pagination::Hit> = cache
        .get_or_compute(
            "search:rust",
            &steadycache::Policy::expire_after(std::time::Duration::from_secs(300)),
            || async { Ok::<_, ()>(Vec::new()) },
        )
        .await
        .unwrap();
    assert_eq!(all.len(), 35);
    assert_eq!(all[34].title, "rust result #34");
    assert_eq!(cache.stats().hits, 1);

    // Without its metadata entry the list is not read: a page is a miss, computed again.
    server.command("DEL search:rust");
    let again = pagination::search_page(&cache, &lists, "rust", 1, &runs)
        .await
        .unwrap();
    assert_eq!(again[0].rank, 10);
    assert_eq!(runs.load(SeqCst), 2);
}

/// The keys the server holds (one `KEYS *`: test servers are small and private), without the
/// invalidation marks (`<key>#inv`, `steadycache#inv:…`: an invalidation's time, kept an hour
/// so that a computation under way does not keep its value).
fn keys(server: &RedisServer) -> String {
    server
        .command("KEYS *")
        .lines()
        .filter(|l| !l.ends_with("#inv") && !l.starts_with("steadycache#inv:"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidating_or_clearing_a_list_manager_leaves_no_orphan() {
    let server = RedisServer::start();
    let (cache, lists) = pagination::list_cache(RedisBackend::from_url(&server.url()).unwrap());
    let runs = AtomicUsize::new(0);
    for q in ["rust", "go"] {
        pagination::search_page(&cache, &lists, q, 0, &runs)
            .await
            .unwrap();
    }
    assert!(keys(&server).contains("{search:rust}:items"));

    // One entry: its metadata and its list.
    assert!(cache.invalidate("search:rust").await.unwrap());
    let left = keys(&server);
    assert!(!left.contains("search:rust"), "left behind: {left}");
    assert!(left.contains("{search:go}:items"), "the other entry stays");

    // A prefix (what clearing a function does), then everything.
    pagination::search_page(&cache, &lists, "rust", 0, &runs)
        .await
        .unwrap();
    cache.invalidate_prefix("search:r").await.unwrap();
    let left = keys(&server);
    assert!(!left.contains("rust"), "left behind: {left}");
    assert!(left.contains("go"));
    cache.clear().await.unwrap();
    let left = keys(&server);
    assert!(!left.contains("search"), "left behind: {left}");
}
