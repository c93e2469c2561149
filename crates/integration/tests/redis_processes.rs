//! Several OS processes sharing one Redis (issue 4). The test binary re-invokes itself as the
//! children (`child_main`, ignored in normal runs); each test starts its own `redis-server` on a
//! free loopback port and counts, in a file, how many times the memoized body ran across all
//! processes.

mod support;

use std::time::Duration;
use steadycache::cached;
use steadycache_redis::testing::RedisServer;
use support::{
    killed_holder_then_one_more, lines, racers_then_a_reuser, spawn, spawn_and_wait, temp_dir,
    wait, xp_cache, COUNT, ROLE, XP_URL,
};

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
    match role.as_str() {
        "swr-warm" => support::block_on(async { assert_eq!(swr(1).await, 13) }),
        // A few calls while the entry is stale, then time for this process's refresh (if it got
        // the lock) to finish before exiting.
        "swr-hit" => support::block_on(async {
            for _ in 0..5 {
                assert_eq!(swr(1).await, 13);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            tokio::time::sleep(Duration::from_millis(600)).await;
        }),
        _ => support::race_child(&role),
    }
}

#[test]
fn eight_processes_times_fifty_tasks_run_the_body_once_and_later_processes_hit() {
    let server = RedisServer::start();
    racers_then_a_reuser(8, 50, &server.url(), &[]);
}

#[test]
fn a_lock_holder_killed_mid_computation_does_not_block_the_others() {
    let server = RedisServer::start();
    killed_holder_then_one_more(&server.url(), &[]);
}

#[test]
fn stale_while_revalidate_refreshes_once_across_processes() {
    let server = RedisServer::start();
    let dir = temp_dir("swr");
    let count = dir.join("count.txt");
    let (url, count_s) = (server.url(), count.to_string_lossy().to_string());
    let envs = [(XP_URL, url.as_str()), (COUNT, count_s.as_str())];
    assert!(wait(spawn("swr-warm", &envs), Duration::from_secs(30)).success());
    assert_eq!(lines(&count), vec!["swr 1"]);
    std::thread::sleep(Duration::from_millis(1200)); // past the ttl: stale now
    spawn_and_wait(
        6,
        "swr-hit",
        &envs,
        Duration::from_secs(30),
        "a child did not get the (stale or fresh) value",
    );
    assert_eq!(
        lines(&count),
        vec!["swr 1", "swr 1"],
        "one background refresh across six processes"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_lease_outlives_its_ttl_across_processes() {
    let server = RedisServer::start();
    support::a_lease_outlives_its_ttl(&server.url(), &[]);
}

#[test]
fn a_lease_outlives_its_ttl_across_processes_on_a_cluster() {
    let cluster = steadycache_redis::testing::RedisCluster::start();
    support::a_lease_outlives_its_ttl(&cluster.url(), &[]);
}
