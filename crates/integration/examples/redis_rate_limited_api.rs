//! A rate-limited API shared by several processes through Redis (steadycache's own scenario).
//!
//! `fx_rate` stands for an upstream that allows about one call per second. It is memoized with
//! `ttl = "1s"` and `lock = "distributed"` on Redis, so however many processes call it, and
//! however often, the upstream sees about one call per second in total: when the entry expires,
//! one process takes the Redis lock and calls upstream, the others wait for its value.
//!
//! The example starts 4 child processes (itself, with `child`), each calling `fx_rate` every
//! 20 ms for 5 seconds, then prints how many times the upstream was called (a Redis counter).
//!
//! Run: `cargo run --example redis_rate_limited_api --features redis -- [redis://127.0.0.1:6379/0]`
//! (without a URL it starts a temporary `redis-server` on a free port).
use std::process::{Child, Command};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use steadycache::{cached, Cache};

/// The environment variable that hands the Redis URL to the child processes.
pub const URL_VAR: &str = "STEADYCACHE_EXAMPLE_REDIS";
/// The Redis counter of upstream calls.
pub const UPSTREAM_CALLS: &str = "example:upstream-calls";

/// The cache every process shares: Redis at `$STEADYCACHE_EXAMPLE_REDIS`.
pub fn shared_cache() -> Cache {
    static C: OnceLock<Cache> = OnceLock::new();
    C.get_or_init(|| {
        let url = std::env::var(URL_VAR).unwrap_or_else(|_| "redis://127.0.0.1:6379/0".into());
        Cache::from_url(&url).unwrap_or_else(|e| {
            eprintln!("cannot open {url}: {e}; caching in memory");
            Cache::memory()
        })
    })
    .clone()
}

/// Stands for the rate-limited upstream: counts the call in Redis and takes 100 ms.
async fn upstream(pair: &str) -> Result<f64, String> {
    shared_cache()
        .backend()
        .incr(UPSTREAM_CALLS, 1, None)
        .await
        .map_err(|e| e.to_string())?;
    tokio::time::sleep(Duration::from_millis(100)).await;
    Ok(if pair == "EUR/USD" { 1.08 } else { 1.0 })
}

/// The memoized call: fresh for a second, computed once per second across all processes.
#[cached(cache = shared_cache(), ttl = "1s", lock = "distributed", lock_ttl = "5s")]
pub async fn fx_rate(pair: String) -> Result<f64, String> {
    upstream(&pair).await
}

/// One process's load: call `fx_rate` every 20 ms for `secs` seconds; returns how many calls it
/// made (every one must get the rate).
pub async fn hammer(secs: u64) -> u64 {
    let end = Instant::now() + Duration::from_secs(secs);
    let mut calls = 0;
    while Instant::now() < end {
        match fx_rate("EUR/USD".into()).await {
            Ok(rate) => assert_eq!(rate, 1.08),
            Err(e) => panic!("a call failed: {e}"),
        }
        calls += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    calls
}

/// Reset the counter, run `processes` children made by `spawn`, wait for them and return the
/// number of upstream calls they made together.
pub async fn run(processes: usize, spawn: impl Fn() -> Child) -> u64 {
    let cache = shared_cache();
    let _ = cache.backend().delete(UPSTREAM_CALLS).await;
    let _ = fx_rate_cache().clear().await;
    let children: Vec<Child> = (0..processes).map(|_| spawn()).collect();
    for mut c in children {
        let ok = tokio::task::spawn_blocking(move || c.wait().map(|s| s.success()))
            .await
            .ok()
            .and_then(Result::ok);
        assert_eq!(ok, Some(true), "a child process failed");
    }
    match cache.backend().get(UPSTREAM_CALLS).await {
        Ok(Some(n)) => String::from_utf8_lossy(&n).parse().unwrap_or(0),
        _ => 0,
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("child") {
        let calls = hammer(5).await;
        println!("child {}: {calls} calls", std::process::id());
        return;
    }
    // A URL from the command line, else a temporary redis-server of our own.
    let _server;
    let url = match args.get(1) {
        Some(url) => url.clone(),
        None => {
            let s = steadycache_redis::testing::RedisServer::start();
            let url = s.url();
            _server = s;
            url
        }
    };
    std::env::set_var(URL_VAR, &url);
    let exe = std::env::current_exe().expect("the example's own path");
    let processes = 4;
    println!("{processes} processes call fx_rate every 20 ms for 5 s, sharing {url} ...");
    let upstream_calls = run(processes, || {
        Command::new(&exe)
            .arg("child")
            .env(URL_VAR, &url)
            .spawn()
            .expect("spawn a child")
    })
    .await;
    println!(
        "the upstream was called {upstream_calls} times in 5 s: about once per second in \
         total, not once per process"
    );
}
