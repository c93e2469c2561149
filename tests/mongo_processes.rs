//! The cache on a real MongoDB-wire server (nx-27017), across OS processes and through an
//! outage (issue 5). The test binary re-invokes itself as the children (`child_main`).
#![cfg(feature = "mongo")]

mod support;

use backend_mongo::testing::MongoServer;
use std::process::Child;
use std::time::Duration;
use steadycache::{cached, Cache, MongoBackend};
use support::{lines, spawn, temp_dir, wait, COUNT, ROLE};

fn xp_cache() -> Cache {
    let url = std::env::var("STEADYCACHE_XP_MONGO").unwrap_or_else(|_| "mem://".into());
    match Cache::from_url(&url) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cannot open {url}: {e}");
            std::process::exit(4)
        }
    }
}

/// The cold-key function: counts its runs in the count file.
#[cached(cache = xp_cache(), ttl = "10m", lock = "distributed", lock_ttl = "10s")]
async fn shared(key: u32) -> u64 {
    support::count(&format!("shared {key}"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    u64::from(key) * 7
}

/// What a child process does, chosen by `STEADYCACHE_XP_ROLE`. Not a test of its own.
#[test]
#[ignore = "run by the mongo process tests as a child process"]
fn child_main() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    support::block_on(async {
        match role.as_str() {
            // 20 tasks on the same cold key; every one must get the value.
            "race" => {
                let tasks: Vec<_> = (0..20).map(|_| tokio::spawn(shared(1))).collect();
                for t in tasks {
                    assert_eq!(t.await.ok(), Some(7), "a caller did not get the value");
                }
            }
            // A later process: the value another process computed is a hit here.
            "reuse" => {
                assert_eq!(shared(1).await, 7);
                let s = shared_cache().stats();
                if s.hits != 1 || s.misses != 0 {
                    eprintln!("expected one hit and no miss, got {s:?}");
                    std::process::exit(3);
                }
            }
            other => panic!("unknown role {other}"),
        }
    });
}

#[test]
fn four_processes_times_twenty_tasks_run_the_body_once_and_later_processes_hit() {
    let server = MongoServer::start();
    let dir = temp_dir("mongo");
    let count = dir.join("count.txt");
    let url = format!("{}&collection=xp", server.url());
    let count_s = count.to_string_lossy().to_string();
    let envs = [
        ("STEADYCACHE_XP_MONGO", url.as_str()),
        (COUNT, count_s.as_str()),
    ];
    let children: Vec<Child> = (0..4).map(|_| spawn("race", &envs)).collect();
    for c in children {
        assert!(
            wait(c, Duration::from_secs(90)).success(),
            "a child failed: some caller did not get the value"
        );
    }
    assert_eq!(
        lines(&count),
        vec!["shared 1"],
        "the body ran once across 4 x 20 callers"
    );
    assert!(
        wait(spawn("reuse", &envs), Duration::from_secs(60)).success(),
        "a later process did not hit"
    );
    assert_eq!(lines(&count).len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_fails_open_and_caching_resumes_after_a_restart() {
    let mut server = MongoServer::start();
    let url = format!(
        "{}&collection=outage&server_selection_timeout_ms=500",
        server.url()
    );
    let cache = Cache::builder()
        .backend(MongoBackend::from_url(&url).unwrap())
        .build();
    steadycache::testing::outage_fails_open(&cache, |up| {
        if up {
            server.restart()
        } else {
            server.kill()
        }
    })
    .await;
}
