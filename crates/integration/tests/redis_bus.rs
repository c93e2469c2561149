//! The L1 + Redis invalidation bus across three OS processes (issue 14, part 3): A updates a
//! value, B and C (each with an L1 over the same Redis) see it; the latency from A's update to
//! B's and C's first read of the new value is reported (median over 100 trials). Then the bus is
//! broken twice, by killing the subscribers' connections (`CLIENT KILL TYPE pubsub`) and by
//! restarting Redis, and B and C still see every update: no copy is served unboundedly.
//!
//! Run with `--nocapture` to see the figures. Nothing here asserts on speed: the test asserts
//! that every update is seen, and that none is seen later than the bus's grace plus a
//! generous allowance for a loaded machine.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use steadycache::{cached, Cache, Policy};
use steadycache_redis::testing::RedisServer;
use support::{lines, spawn, temp_dir, wait, xp_cache, COUNT, ROLE, XP_URL};

const KEY: u32 = 1;
/// The readers' grace (`bus_grace_ms`).
const GRACE: Duration = Duration::from_millis(500);
/// What a loaded machine may add to the grace before a reader's next read.
const ALLOWANCE: Duration = Duration::from_secs(3);
const DONE: u64 = u64::MAX;

/// The value under test: 0 until A stores one.
#[cached(cache = xp_cache(), ttl = "10m", key_prefix = "bus", version = "1", key = "v:{k}")]
fn value(k: u32) -> u64 {
    let _ = k;
    0
}

fn micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// What a child process does, chosen by `STEADYCACHE_XP_ROLE`. Not a test of its own.
#[test]
#[ignore = "run by the redis bus test as a child process"]
fn child_main() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    assert_eq!(role, "reader");
    // A reader: read the value as fast as a busy service would, and log each change it sees.
    let start = Instant::now();
    let mut last = None;
    while start.elapsed() < Duration::from_secs(300) {
        let v = value(KEY);
        if last != Some(v) {
            support::count(&format!("{v} {}", micros()));
            last = Some(v);
            if v == DONE {
                return;
            }
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// When the reader whose log is `path` first saw `v` (µs since the epoch).
fn seen(path: &Path, v: u64) -> Option<u64> {
    lines(path).iter().find_map(|l| {
        let (value, at) = l.split_once(' ')?;
        (value.parse::<u64>().ok()? == v).then(|| at.parse().ok())?
    })
}

/// Update the value to `v` in A and wait for both readers to see it; their delays (µs).
fn update_and_wait(a: &Cache, logs: &[PathBuf], v: u64, what: &str) -> Vec<u64> {
    let key = value_cache().key(KEY).unwrap();
    let give_up = Instant::now() + Duration::from_secs(20);
    let policy = Policy::expire_after(Duration::from_secs(600));
    // After a restart, A's own connection may take a few tries to come back.
    let t0 = loop {
        let t0 = micros();
        match support::block_on(a.set(&key, &v, &policy)) {
            Ok(()) => break t0,
            Err(e) if Instant::now() < give_up => {
                eprintln!("{what}: update failed ({e}); again");
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => panic!("{what}: A cannot update: {e}"),
        }
    };
    let deadline = Instant::now() + GRACE + ALLOWANCE;
    logs.iter()
        .map(|log| loop {
            if let Some(at) = seen(log, v) {
                break at.saturating_sub(t0);
            }
            if Instant::now() >= deadline {
                // What the store holds tells a reader that cannot reach it from one that reads
                // an older value there.
                let stored = support::block_on(a.get::<u64>(&key));
                panic!(
                    "{what}: a reader still served an older value {:?} after the update to {v} (the store holds {stored:?}; the reader's last lines: {:?})",
                    GRACE + ALLOWANCE,
                    lines(log).iter().rev().take(3).collect::<Vec<_>>()
                );
            }
            std::thread::sleep(Duration::from_millis(1));
        })
        .collect()
}

/// After a restart (the store is empty), wait until the readers have computed and stored the
/// value again (0), and a while longer for a store still under way. A reader computes from a
/// miss, and A's next update must not race that computation: a value computed from a read
/// made before another process's `Cache::set` and saved after it replaces what the `set`
/// wrote (a `set` writes no invalidation mark, so `engine::sticks` cannot see it). That race
/// fits this test's rare failures under CI's load (both readers served 0 after A's update to
/// 111); it is a known limit of `set`, which this test is not about.
fn readers_store_again(a: &Cache) {
    let key = value_cache().key(KEY).unwrap();
    let stored = || support::block_on(a.get::<u64>(&key)).ok().flatten();
    let give_up = Instant::now() + Duration::from_secs(20);
    while stored() != Some(0) {
        assert!(
            Instant::now() < give_up,
            "after a restart no reader stored its value within 20 s (the store holds {:?})",
            stored()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(300));
}

/// One reader process per URL, each logging what it reads into a file of `dir`; returned once
/// each has read (its first value is 0: nothing stored yet) and its bus has had a moment to be
/// heard, as a running service's would have.
fn start_readers(dir: &Path, urls: &[&String]) -> (Vec<PathBuf>, Vec<std::process::Child>) {
    let logs: Vec<_> = (0..urls.len())
        .map(|i| dir.join(format!("reader-{i}.log")))
        .collect();
    let readers = logs
        .iter()
        .zip(urls)
        .map(|(log, url)| {
            let log = log.display().to_string();
            spawn("reader", &[(XP_URL, url.as_str()), (COUNT, log.as_str())])
        })
        .collect();
    for log in &logs {
        assert!(steadycache_api::testing::eventually(
            || seen(log, 0).is_some()
        ));
    }
    std::thread::sleep(GRACE * 2);
    (logs, readers)
}

/// Tell the readers to stop (A stores [`DONE`]) and check that each ended well.
fn stop_readers(a: &Cache, logs: &[PathBuf], readers: Vec<std::process::Child>) {
    update_and_wait(a, logs, DONE, "the end");
    for r in readers {
        assert!(
            wait(r, Duration::from_secs(30)).success(),
            "a reader failed"
        );
    }
}

fn report(what: &str, mut delays: Vec<u64>) {
    delays.sort_unstable();
    let at = |q: f64| delays[((delays.len() - 1) as f64 * q) as usize] as f64 / 1000.0;
    eprintln!(
        "redis bus, {what}: median {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms over {} reads",
        at(0.5),
        at(0.9),
        at(0.99),
        at(1.0),
        delays.len()
    );
}

#[test]
fn three_processes_see_updates_through_the_bus_and_its_outages() {
    let mut server = RedisServer::start();
    let dir = temp_dir("redis-bus");
    let reader_url = format!(
        "{}?local=16MiB&bus_grace_ms={}",
        server.url(),
        GRACE.as_millis()
    );
    // A (this process) has no L1: it writes; its writes are announced all the same.
    let a = Cache::from_url_unshared(&server.url()).unwrap();
    let (logs, readers) = start_readers(&dir, &[&reader_url, &reader_url]);

    let mut delays = Vec::new();
    for v in 1..=100 {
        delays.extend(update_and_wait(&a, &logs, v, "steady"));
        std::thread::sleep(Duration::from_millis(5 + v % 15));
    }
    report("steady state (100 trials x 2 readers)", delays);

    // Break the bus: kill the subscribers' connections. Updates keep reaching the readers.
    let killed = server.command("CLIENT KILL TYPE pubsub");
    assert!(killed.starts_with(':'), "CLIENT KILL replied {killed:?}");
    let mut delays = Vec::new();
    for v in 101..=110 {
        delays.extend(update_and_wait(&a, &logs, v, "after CLIENT KILL"));
        std::thread::sleep(Duration::from_millis(50));
    }
    report("after CLIENT KILL TYPE pubsub", delays);

    // Restart Redis (its data is gone): the readers reconnect, flush, and see new updates.
    server.kill();
    std::thread::sleep(GRACE);
    server.restart();
    readers_store_again(&a);
    let mut delays = Vec::new();
    for v in 111..=120 {
        delays.extend(update_and_wait(&a, &logs, v, "after a restart"));
        std::thread::sleep(Duration::from_millis(50));
    }
    report("after a Redis restart", delays);

    stop_readers(&a, &logs, readers);
}

/// The cache of [`computed`]: B, one of two caches with an L1 over one Redis (set by the test).
static B: std::sync::OnceLock<steadycache::Cache> = std::sync::OnceLock::new();
static B_RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn b_cache() -> steadycache::Cache {
    B.get().cloned().unwrap_or_else(steadycache::Cache::memory)
}

/// What B computes: 1000 and up, never A's value.
#[cached(cache = b_cache(), ttl = "10m", key_prefix = "restart", version = "1", key = "v:{k}")]
fn computed(k: u32) -> u64 {
    let _ = k;
    1000 + B_RUNS.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
}

/// Issue 25, item 2: the server's own tracking (`tracking=on`, the bus off) against the pub/sub
/// bus (tracking off), on one Redis, for the same updates: four reader processes, two of each
/// kind, all read the value; each of A's 100 updates is timed until each reader first reads
/// it. Run with `--nocapture` for the figures (median, p99, max per kind). Asserts only that
/// every update reaches every reader within the grace and an allowance.
#[test]
fn tracking_and_the_bus_deliver_the_same_updates() {
    let server = RedisServer::start();
    let dir = temp_dir("redis-tracking-vs-bus");
    let base = format!(
        "{}?local=16MiB&bus_grace_ms={}",
        server.url(),
        GRACE.as_millis()
    );
    let bus_url = base.clone();
    let tracking_url = format!("{base}&bus=off&tracking=on");
    let a = Cache::from_url_unshared(&server.url()).unwrap();
    let (logs, readers) = start_readers(&dir, &[&bus_url, &bus_url, &tracking_url, &tracking_url]);
    let (mut bus, mut tracking) = (Vec::new(), Vec::new());
    for v in 1..=100 {
        let delays = update_and_wait(&a, &logs, v, "tracking vs bus");
        bus.extend_from_slice(&delays[..2]);
        tracking.extend_from_slice(&delays[2..]);
        std::thread::sleep(Duration::from_millis(5 + v % 15));
    }
    report("the pub/sub bus (100 trials x 2 readers)", bus);
    report(
        "tracking=on, bus off (the same trials, 2 readers)",
        tracking,
    );
    stop_readers(&a, &logs, readers);
}

/// Issue 21, item 2, with a real restart: after Redis comes back, B's bus is heard again
/// within a fraction of a second while its breaker (opened by the outage) waits out its
/// cooldown. A stores a new value; B's calls in that window skip the store and compute. The
/// value B computed was never stored nor announced, so B must not keep it in L1 (where the bus
/// would vouch for it for the whole ttl): once its breaker closes, B serves A's value. Before
/// the fix, B served its own value to the end of the 20 s bound (and the 10 minute ttl).
#[test]
fn after_a_restart_an_l1_never_keeps_what_the_store_did_not_take() {
    let mut server = RedisServer::start();
    let url = format!(
        "{}?local=1MiB&bus_grace_ms=500&breaker_threshold=1&breaker_cooldown_ms=3000",
        server.url()
    );
    let a = steadycache::Cache::from_url_unshared(&url).unwrap();
    assert!(B
        .set(steadycache::Cache::from_url_unshared(&url).unwrap())
        .is_ok());
    let first = computed(1);
    assert_eq!(computed(1), first, "B keeps what the store took");
    let key = computed_cache().key(1).unwrap();

    // The outage opens B's breaker: B's calls compute, failing open.
    server.kill();
    assert!(computed(2) >= 1000);
    server.restart();

    // A stores the new value as soon as its connection is back.
    let policy = Policy::expire_after(Duration::from_secs(600));
    let give_up = Instant::now() + Duration::from_secs(20);
    while let Err(e) = support::block_on(a.set(&key, &7u64, &policy)) {
        assert!(
            Instant::now() < give_up,
            "A cannot store after the restart: {e}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // B reads through its bus's return and its breaker's cooldown: A's value, in the end.
    let runs_before = B_RUNS.load(std::sync::atomic::Ordering::SeqCst);
    let give_up = Instant::now() + Duration::from_secs(20);
    let mut served = Vec::new();
    loop {
        let v = computed(1);
        if served.last() != Some(&v) {
            served.push(v);
        }
        if v == 7 {
            break;
        }
        assert!(
            Instant::now() < give_up,
            "B kept serving values the store never took: {served:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!(
        "B served {served:?} and computed {} times before it read A's value",
        B_RUNS.load(std::sync::atomic::Ordering::SeqCst) - runs_before
    );
    assert_eq!(computed(1), 7);
}
