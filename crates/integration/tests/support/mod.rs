//! What the multi-process tests share: re-invoking the test binary as a child process in a
//! role, waiting for it with a hang guard, temp dirs and a count file the children append to.
#![allow(dead_code)] // each test file uses a part

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The environment variable naming a child's role.
pub const ROLE: &str = "STEADYCACHE_XP_ROLE";
/// The environment variable naming the count file.
pub const COUNT: &str = "STEADYCACHE_XP_COUNT";

/// Run this test binary again as a child: only its ignored `child_main` test, in `role`.
pub fn spawn(role: &str, envs: &[(&str, &str)]) -> Child {
    let exe = std::env::current_exe().expect("test binary path");
    let mut cmd = Command::new(exe);
    cmd.args([
        "--ignored",
        "--exact",
        "child_main",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(ROLE, role)
    .stdout(Stdio::null());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.spawn().expect("spawn a child test process")
}

/// Wait for a child; one that does not finish within `limit` is killed and fails the test (a
/// guard against hangs, not a timing assertion).
pub fn wait(mut child: Child, limit: Duration) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(st) = child.try_wait().expect("wait for child") {
            return st;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("child process did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Run a child's async body on a 2-worker runtime of its own (as a real service would have).
pub fn block_on<F: std::future::Future>(body: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(body)
}

/// Start `n` children in `role` at once and wait for all of them (each within `limit`); any
/// that fails fails the test with `failed`.
pub fn spawn_and_wait(n: usize, role: &str, envs: &[(&str, &str)], limit: Duration, failed: &str) {
    let children: Vec<Child> = (0..n).map(|_| spawn(role, envs)).collect();
    for c in children {
        assert!(wait(c, limit).success(), "{failed}");
    }
}

/// A fresh directory under the system temp dir.
pub fn temp_dir(tag: &str) -> PathBuf {
    steadycache_api::testing::temp_dir(&format!("xp-{tag}"))
}

/// Append `line` to the count file named by [`COUNT`], if any, in one `write(2)`: with
/// `O_APPEND` whole writes of several processes never mix (`writeln!` may split a line in two).
pub fn count(line: &str) {
    if let Ok(path) = std::env::var(COUNT) {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
        {
            let _ = f.write_all(format!("{line}\n").as_bytes());
        }
    }
}

/// The lines of the count file at `path` (none if it does not exist).
pub fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The environment variable naming the URL of the cache the children of a race share.
pub const XP_URL: &str = "STEADYCACHE_XP_URL";
/// The environment variable naming how many tasks a `"race"` child runs (default 20).
pub const TASKS: &str = "STEADYCACHE_XP_TASKS";
/// The environment variable naming how long the memoized body sleeps, in ms (default 300).
pub const SLEEP_MS: &str = "STEADYCACHE_XP_SLEEP_MS";

/// The cache named by [`XP_URL`] (memory when unset); a child that cannot open it exits 4.
pub fn xp_cache() -> steadycache::Cache {
    let url = std::env::var(XP_URL).unwrap_or_else(|_| "mem://".into());
    match steadycache::Cache::from_url(&url) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cannot open {url}: {e}");
            std::process::exit(4)
        }
    }
}

/// How long the memoized body of a child sleeps ([`SLEEP_MS`]).
pub fn body_sleep() -> Duration {
    let ms = std::env::var(SLEEP_MS)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    Duration::from_millis(ms)
}

/// The cold-key function of the process tests, on the cache named by [`XP_URL`]: writes
/// `shared <key>` to the count file, sleeps [`body_sleep`], returns `key * 7`. Its lock expires
/// 2 s after a holder dies.
#[steadycache::cached(cache = xp_cache(), ttl = "10m", lock = "distributed", lock_ttl = "2s")]
pub async fn shared(key: u32) -> u64 {
    count(&format!("shared {key}"));
    tokio::time::sleep(body_sleep()).await;
    u64::from(key) * 7
}

/// The lease of [`long_job`]'s lock, in ms; its body works three times as long. Three
/// seconds: a renewal (every third of it) may take the rest of the lease, and on a loaded
/// CI machine an S3 renewal (a read, a conditional put and its read-back, each scheduled among
/// a dozen busy processes on two cores) has taken more than the 1 s this was.
pub const LONG_LOCK_TTL_MS: u64 = 3_000;

/// A job three times longer than its lock's ttl, on the cache named by [`XP_URL`]: writes
/// `long <key>` to the count file, works 9 s, returns `key * 11`. Without a renewed lease its
/// lock would expire twice while it runs.
#[steadycache::cached(
    cache = xp_cache(),
    ttl = "10m",
    lock = "distributed",
    lock_ttl = "3s"
)]
pub async fn long_job(key: u32) -> u64 {
    count(&format!("long {key}"));
    tokio::time::sleep(Duration::from_millis(3 * LONG_LOCK_TTL_MS)).await;
    u64::from(key) * 11
}

/// The child side of [`racers_then_a_reuser`] and [`killed_holder_then_one_more`], calling
/// [`shared`]`(1)` in `role`:
/// * `"race"`: [`TASKS`] tasks on the one cold key; each must get 7;
/// * `"one"`: one call, which must get 7;
/// * `"reuse"` (a later process): one call, which must be a hit and no miss (else the child
///   exits 3).
pub fn race_child(role: &str) {
    let (call, expected) = (|| shared(1), 7);
    let tasks: usize = std::env::var(TASKS)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    block_on(async {
        match role {
            "race" => {
                let tasks: Vec<_> = (0..tasks).map(|_| tokio::spawn(call())).collect();
                for t in tasks {
                    assert_eq!(
                        t.await.ok(),
                        Some(expected),
                        "a caller did not get the value"
                    );
                }
            }
            "one" => assert_eq!(call().await, expected),
            // A few tasks on the one long job; none may have lost its lease.
            "long" => {
                let tasks: Vec<_> = (0..4).map(|_| tokio::spawn(long_job(1))).collect();
                for t in tasks {
                    assert_eq!(t.await.ok(), Some(11), "a caller did not get the value");
                }
                let s = long_job_cache().stats();
                if s.lock_lost != 0 {
                    eprintln!("a lease was lost: {s:?}");
                    std::process::exit(3);
                }
            }
            "reuse" => {
                assert_eq!(call().await, expected);
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

/// The parent side: `racers` processes × `tasks` tasks on one cold key of the cache at `url`
/// (the children call [`race_child`]; `envs` are passed on) must run [`shared`]'s body (500 ms)
/// exactly once; then a later process must hit.
pub fn racers_then_a_reuser(racers: usize, tasks: usize, url: &str, envs: &[(&str, &str)]) {
    let dir = temp_dir("race");
    let count = dir.join("count.txt");
    let (count_s, tasks_s) = (count.to_string_lossy().to_string(), tasks.to_string());
    let mut all: Vec<(&str, &str)> = vec![
        (XP_URL, url),
        (COUNT, &count_s),
        (TASKS, &tasks_s),
        (SLEEP_MS, "500"),
    ];
    all.extend_from_slice(envs);
    spawn_and_wait(
        racers,
        "race",
        &all,
        Duration::from_secs(90),
        "a child failed: some caller did not get the value",
    );
    assert_eq!(
        lines(&count),
        vec!["shared 1"],
        "the body ran once across {racers} x {tasks} callers"
    );
    assert!(
        wait(spawn("reuse", &all), Duration::from_secs(60)).success(),
        "a later process did not hit"
    );
    assert_eq!(lines(&count).len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The parent side of a lease: 5 processes call [`long_job`] (work = 3 × `lock_ttl`) on one
/// cold key of the cache at `url` at once; its holder renews the lease, so the body runs
/// exactly once, and every process gets the value.
pub fn a_lease_outlives_its_ttl(url: &str, envs: &[(&str, &str)]) {
    let dir = temp_dir("lease");
    let count = dir.join("count.txt");
    let count_s = count.to_string_lossy().to_string();
    let mut all: Vec<(&str, &str)> = vec![(XP_URL, url), (COUNT, &count_s)];
    all.extend_from_slice(envs);
    spawn_and_wait(
        5,
        "long",
        &all,
        Duration::from_secs(90),
        "a child failed: a caller did not get the value, or a lease was lost",
    );
    assert_eq!(
        lines(&count),
        vec!["long 1"],
        "a job 3 x lock_ttl long ran once across 5 processes"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The parent side of a dead lock holder: a child starts computing (its body sleeps a minute)
/// and is killed with SIGKILL while it holds the distributed lock; then 3 more children call
/// the same key of [`shared`]. The dead holder's lock must expire (after 2 s) and exactly one of
/// the 3 compute, so the body ran twice in all.
pub fn killed_holder_then_one_more(url: &str, envs: &[(&str, &str)]) {
    let dir = temp_dir("dead");
    let count = dir.join("count.txt");
    let count_s = count.to_string_lossy().to_string();
    let with = |sleep_ms: &'static str| {
        let mut all: Vec<(&str, &str)> =
            vec![(XP_URL, url), (COUNT, &count_s), (SLEEP_MS, sleep_ms)];
        all.extend_from_slice(envs);
        all
    };
    let mut holder = spawn("one", &with("60000"));
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
    // They finish soon after the lock's ttl; the limit only guards against a hang.
    spawn_and_wait(
        3,
        "one",
        &with("200"),
        Duration::from_secs(30),
        "a waiter did not get the value",
    );
    assert_eq!(
        lines(&count),
        vec!["shared 1", "shared 1"],
        "the dead holder's run, then exactly one more after its lock expired"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
