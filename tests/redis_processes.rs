//! Several OS processes sharing one Redis (issue 4). The test binary re-invokes itself as the
//! children (`child_main`, ignored in normal runs); each test starts its own `redis-server` on a
//! free loopback port and counts, in a file, how many times the memoized body ran across all
//! processes.
#![cfg(feature = "redis")]

mod support;

use backend_redis::testing::RedisServer;
use std::process::Child;
use std::time::{Duration, Instant};
use steadycache::{cached, Cache};
use support::{lines, spawn, temp_dir, wait, COUNT, ROLE};

fn xp_cache() -> Cache {
    let url = std::env::var("STEADYCACHE_XP_REDIS").unwrap_or_else(|_| "mem://".into());
    match Cache::from_url(&url) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cannot open {url}: {e}");
            std::process::exit(4)
        }
    }
}

fn body_sleep() -> Duration {
    let ms = std::env::var("STEADYCACHE_XP_SLEEP_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    Duration::from_millis(ms)
}

/// The cold-key function of the single-flight and dead-holder tests.
#[cached(cache = xp_cache(), ttl = "10m", lock = "distributed", lock_ttl = "2s")]
async fn shared(key: u32) -> u64 {
    support::count(&format!("shared {key}"));
    tokio::time::sleep(body_sleep()).await;
    u64::from(key) * 7
}

/// Fresh for 1 s, then stale for a minute while one refresh runs, across processes.
#[cached(
    cache = xp_cache(),
    ttl = "1s",
    stale_while_revalidate = "1m",
    lock = "distributed",
    lock_ttl = "5s"
)]
async fn swr(key: u32) -> u64 {
    support::count(&format!("swr {key}"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    u64::from(key) * 13
}

/// What a child process does, chosen by `STEADYCACHE_XP_ROLE`. Not a test of its own.
#[test]
#[ignore = "run by the redis process tests as a child process"]
fn child_main() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    support::block_on(async {
        match role.as_str() {
            // 50 tasks on the same cold key; every one must get the value.
            "race" => {
                let tasks: Vec<_> = (0..50).map(|_| tokio::spawn(shared(1))).collect();
                for t in tasks {
                    assert_eq!(t.await.ok(), Some(7), "a caller did not get the value");
                }
            }
            "one" => assert_eq!(shared(5).await, 35),
            "swr-warm" => assert_eq!(swr(1).await, 13),
            // A few calls while the entry is stale, then time for this process's refresh (if
            // it got the lock) to finish before exiting.
            "swr-hit" => {
                for _ in 0..5 {
                    assert_eq!(swr(1).await, 13);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                tokio::time::sleep(Duration::from_millis(600)).await;
            }
            other => panic!("unknown role {other}"),
        }
    });
}

#[test]
fn eight_processes_times_fifty_tasks_run_the_body_once() {
    let server = RedisServer::start();
    let dir = temp_dir("race");
    let count = dir.join("count.txt");
    let (url, count_s) = (server.url(), count.to_string_lossy().to_string());
    let envs = [
        ("STEADYCACHE_XP_REDIS", url.as_str()),
        (COUNT, count_s.as_str()),
        ("STEADYCACHE_XP_SLEEP_MS", "500"),
    ];
    let children: Vec<Child> = (0..8).map(|_| spawn("race", &envs)).collect();
    for c in children {
        assert!(
            wait(c, Duration::from_secs(60)).success(),
            "a child failed: some caller did not get the value"
        );
    }
    assert_eq!(
        lines(&count),
        vec!["shared 1"],
        "the body ran once across 8 x 50 callers"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_lock_holder_killed_mid_computation_does_not_block_the_others() {
    let server = RedisServer::start();
    let dir = temp_dir("dead");
    let count = dir.join("count.txt");
    let (url, count_s) = (server.url(), count.to_string_lossy().to_string());
    let slow = [
        ("STEADYCACHE_XP_REDIS", url.as_str()),
        (COUNT, count_s.as_str()),
        ("STEADYCACHE_XP_SLEEP_MS", "60000"),
    ];
    let mut holder = spawn("one", &slow);
    // Wait until the holder runs the body, i.e. holds the lock.
    let start = Instant::now();
    while lines(&count).is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the first child never started computing"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    holder.kill().expect("SIGKILL the lock holder");
    let _ = holder.wait();
    let quick = [
        ("STEADYCACHE_XP_REDIS", url.as_str()),
        (COUNT, count_s.as_str()),
        ("STEADYCACHE_XP_SLEEP_MS", "200"),
    ];
    let others: Vec<Child> = (0..3).map(|_| spawn("one", &quick)).collect();
    // lock_ttl is 2 s: they finish soon after it; the limit only guards against a hang.
    for c in others {
        assert!(
            wait(c, Duration::from_secs(30)).success(),
            "a waiter did not get the value"
        );
    }
    assert_eq!(
        lines(&count),
        vec!["shared 5", "shared 5"],
        "the dead holder's run, then exactly one more after its lock expired"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn stale_while_revalidate_refreshes_once_across_processes() {
    let server = RedisServer::start();
    let dir = temp_dir("swr");
    let count = dir.join("count.txt");
    let (url, count_s) = (server.url(), count.to_string_lossy().to_string());
    let envs = [
        ("STEADYCACHE_XP_REDIS", url.as_str()),
        (COUNT, count_s.as_str()),
    ];
    assert!(wait(spawn("swr-warm", &envs), Duration::from_secs(30)).success());
    assert_eq!(lines(&count), vec!["swr 1"]);
    std::thread::sleep(Duration::from_millis(1200)); // past the ttl: stale now
    let children: Vec<Child> = (0..6).map(|_| spawn("swr-hit", &envs)).collect();
    for c in children {
        assert!(
            wait(c, Duration::from_secs(30)).success(),
            "a child did not get the (stale or fresh) value"
        );
    }
    assert_eq!(
        lines(&count),
        vec!["swr 1", "swr 1"],
        "one background refresh across six processes"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
