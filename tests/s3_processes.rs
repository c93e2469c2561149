//! The cache on a real S3 server (s3s-fs), across OS processes (issue 6; the outage tests are in
//! `crates/backend-s3/tests`).
//! The test binary re-invokes itself as the children (`child_main`), which find their
//! credentials through the standard AWS chain (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`).
#![cfg(feature = "s3")]

mod support;

use backend_s3::testing::{S3Server, ACCESS_KEY_ID, SECRET_ACCESS_KEY};
use std::process::Child;
use std::time::Duration;
use steadycache::{cached, Cache};
use support::{lines, spawn, temp_dir, wait, COUNT, ROLE};

fn xp_cache() -> Cache {
    let url = std::env::var("STEADYCACHE_XP_S3").unwrap_or_else(|_| "mem://".into());
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
#[ignore = "run by the s3 process tests as a child process"]
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
    let server = S3Server::start();
    let dir = temp_dir("s3");
    let count = dir.join("count.txt");
    let url = server.url("cross-process", "race/");
    let count_s = count.to_string_lossy().to_string();
    let envs = [
        ("STEADYCACHE_XP_S3", url.as_str()),
        (COUNT, count_s.as_str()),
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID),
        ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY),
        // Nothing on this machine is an EC2 instance: do not ask its metadata service.
        ("AWS_EC2_METADATA_DISABLED", "true"),
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
