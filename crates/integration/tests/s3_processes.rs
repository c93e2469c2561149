//! The cache on a real S3 server (s3s-fs) through the facade: across OS processes, and a sync
//! function (issue 6; the outage tests are in `crates/backend-s3/tests`). The test binary
//! re-invokes itself as the children (`child_main`), which find their credentials through the
//! standard AWS chain (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` in the environment).

mod support;

use steadycache::cached;
use steadycache_s3::testing::{S3Server, ACCESS_KEY_ID, SECRET_ACCESS_KEY};
use support::{killed_holder_then_one_more, racers_then_a_reuser, ROLE};

/// The AWS credential chain's environment variables for the test server.
const AWS_ENV: [(&str, &str); 3] = [
    ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID),
    ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY),
    // Nothing here is an EC2 instance: do not ask its metadata service.
    ("AWS_EC2_METADATA_DISABLED", "true"),
];

/// What a child process does, chosen by `STEADYCACHE_XP_ROLE`. Not a test of its own.
#[test]
#[ignore = "run by the s3 process tests as a child process"]
fn child_main() {
    if let Ok(role) = std::env::var(ROLE) {
        support::race_child(&role);
    }
}

#[test]
fn four_processes_times_twenty_tasks_run_the_body_once_and_later_processes_hit() {
    let server = S3Server::start();
    racers_then_a_reuser(4, 20, &server.url("cross-process", "race/"), &AWS_ENV);
}

#[test]
fn a_lock_holder_killed_mid_computation_does_not_block_the_others() {
    let server = S3Server::start();
    killed_holder_then_one_more(&server.url("cross-process", "dead/"), &AWS_ENV);
}

/// A cache on its own S3 server, credentials from the builder (for the sync test below).
fn sync_cache() -> steadycache::Cache {
    static SERVER: std::sync::OnceLock<S3Server> = std::sync::OnceLock::new();
    let server = SERVER.get_or_init(S3Server::start);
    match steadycache::S3Backend::open(server.config("sync-fn", "")) {
        Ok(b) => steadycache::Cache::builder().backend(b).build(),
        Err(e) => panic!("s3 backend: {e}"),
    }
}

static SYNC_RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A plain (sync) function memoized on S3.
#[cached(cache = sync_cache(), ttl = "10m")]
fn report(id: u32) -> Vec<u8> {
    SYNC_RUNS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    vec![id as u8; 100_000]
}

#[test]
fn a_sync_function_outside_any_runtime_is_memoized_on_s3() {
    use std::sync::atomic::Ordering::SeqCst;
    assert_eq!(report(3), vec![3u8; 100_000]);
    assert_eq!(report(3), vec![3u8; 100_000]);
    assert_eq!(SYNC_RUNS.load(SeqCst), 1, "the second call was a hit");
    let s = report_cache().stats();
    assert_eq!((s.hits, s.misses), (1, 1), "{s:?}");
    report_cache().invalidate_sync(3).unwrap();
    assert_eq!(report(3).len(), 100_000);
    assert_eq!(SYNC_RUNS.load(SeqCst), 2, "invalidated, so computed again");
}

#[test]
fn a_lease_outlives_its_ttl_across_processes() {
    let server = S3Server::start();
    support::a_lease_outlives_its_ttl(&server.url("cross-process", "lease/"), &AWS_ENV);
}
