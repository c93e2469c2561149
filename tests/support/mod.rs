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

/// A fresh directory under the system temp dir.
pub fn temp_dir(tag: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "steadycache-xp-{tag}-{}-{nanos:08x}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
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

/// The child side of [`racers_then_a_reuser`] and [`killed_holder_then_one_more`], for `role`:
/// * `"race"`: [`TASKS`] tasks of `call` on one cold key; each must get `expected`;
/// * `"one"`: one call, which must get `expected`;
/// * `"reuse"` (a later process): one call, and `stats` must show one hit and no miss (else
///   the child exits 3).
pub fn race_child<Fut>(
    role: &str,
    call: fn() -> Fut,
    expected: u64,
    stats: fn() -> steadycache::StatsSnapshot,
) where
    Fut: std::future::Future<Output = u64> + Send + 'static,
{
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
            "reuse" => {
                assert_eq!(call().await, expected);
                let s = stats();
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
/// (the children call [`race_child`]; `envs` are passed on) must run the body, which writes
/// `body_line` to the count file and sleeps 500 ms, exactly once; then a later process must hit.
pub fn racers_then_a_reuser(
    racers: usize,
    tasks: usize,
    url: &str,
    body_line: &str,
    envs: &[(&str, &str)],
) {
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
    let children: Vec<Child> = (0..racers).map(|_| spawn("race", &all)).collect();
    for c in children {
        assert!(
            wait(c, Duration::from_secs(90)).success(),
            "a child failed: some caller did not get the value"
        );
    }
    assert_eq!(
        lines(&count),
        vec![body_line],
        "the body ran once across {racers} x {tasks} callers"
    );
    assert!(
        wait(spawn("reuse", &all), Duration::from_secs(60)).success(),
        "a later process did not hit"
    );
    assert_eq!(lines(&count).len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The parent side of a dead lock holder: a child starts computing (its body sleeps a minute)
/// and is killed with SIGKILL while it holds the distributed lock; then 3 more children call
/// the same key. The dead holder's lock must expire (the function's `lock_ttl`, which should be
/// short) and exactly one of the 3 compute, so the count file ends with `body_line` twice.
pub fn killed_holder_then_one_more(url: &str, body_line: &str, envs: &[(&str, &str)]) {
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
    let others: Vec<Child> = (0..3).map(|_| spawn("one", &with("200"))).collect();
    // They finish soon after the lock's ttl; the limit only guards against a hang.
    for c in others {
        assert!(
            wait(c, Duration::from_secs(30)).success(),
            "a waiter did not get the value"
        );
    }
    assert_eq!(
        lines(&count),
        vec![body_line, body_line],
        "the dead holder's run, then exactly one more after its lock expired"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
