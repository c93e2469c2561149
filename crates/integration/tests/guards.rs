//! `#[rate_limit]` and `#[call_breaker]` across processes (issue 13, option 9). The rate
//! limit: 4 OS processes × 200 calls under `limit = 10, period = "1s"`; the upstream (each
//! admitted call appends its time to a file) sees at most 10 calls in any second on Redis (an
//! exact sliding window; ±1 for the processes' clock reads), and at most 10 per fixed window on
//! files and SQLite. The breaker: opened by failures, shared by two independent caches over
//! one Redis, half-open after its delay.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::OnceLock;
use std::time::Duration;
use steadycache::{cached, call_breaker, rate_limit, RateLimited};
use steadycache_redis::testing::RedisServer;
use support::{lines, spawn_and_wait, temp_dir, xp_cache, COUNT, ROLE, XP_URL};

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The rate-limited upstream: each admitted call writes when its caller called (`before`) and
/// when it ran, which bracket the moment the limit admitted it.
#[rate_limit(limit = 10, period = "1s", cache = xp_cache())]
fn upstream(before: u64) -> Result<u64, RateLimited> {
    support::count(&format!("{before} {}", now_ms()));
    Ok(before)
}

/// The same limit, waiting for a slot instead of failing.
#[rate_limit(limit = 10, period = "1s", cache = xp_cache(), on_exceed = "wait", name = "waiting")]
async fn patient(before: u64) -> u64 {
    support::count(&format!("{before} {}", now_ms()));
    before
}

/// What a child process does, chosen by `STEADYCACHE_XP_ROLE`. Not a test of its own.
#[test]
#[ignore = "run by the guard tests as a child process"]
fn child_main() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    match role.as_str() {
        // 200 calls over about 3 s; refused ones are dropped.
        "limited" => {
            for _ in 0..200 {
                let _ = upstream(now_ms());
                std::thread::sleep(Duration::from_millis(15));
            }
        }
        // Six calls that all get through, waiting for their slots.
        "patient" => support::block_on(async {
            for _ in 0..6 {
                let before = now_ms();
                assert_eq!(patient(before).await, before);
            }
        }),
        other => panic!("unknown role {other}"),
    }
}

/// Admitted calls: when each caller called and when the upstream ran (ms), the moment of
/// admission lying between.
type Calls = Vec<(u64, u64)>;

/// The most calls certainly admitted within one span of `span_ms` (both of a call's times
/// inside it: scheduling delays between admission and the upstream's clock read cannot make
/// calls look closer than they were), and the most calls certainly admitted in one fixed
/// window.
fn busiest(calls: &Calls, span_ms: u64) -> (usize, usize) {
    let mut sliding = 0;
    for &(start, _) in calls {
        let n = calls
            .iter()
            .filter(|(b, e)| *b >= start && *e < start + span_ms)
            .count();
        sliding = sliding.max(n);
    }
    // Per fixed window: the calls whose two times fall in it (admitted in it, certainly).
    let mut per_window = std::collections::HashMap::new();
    for (_, e) in calls.iter().filter(|(b, e)| b / span_ms == e / span_ms) {
        *per_window.entry(e / span_ms).or_insert(0usize) += 1;
    }
    (sliding, per_window.values().copied().max().unwrap_or(0))
}

/// 4 processes × 200 calls at `url`; the admitted calls.
fn four_processes(url: &str, role: &str) -> Calls {
    let dir = temp_dir("rate");
    let count = dir.join("calls.txt");
    let count_s = count.to_string_lossy().to_string();
    let envs = [(XP_URL, url), (COUNT, count_s.as_str())];
    spawn_and_wait(4, role, &envs, Duration::from_secs(60), "a child failed");
    let calls = lines(&count)
        .iter()
        .filter_map(|l| {
            let (b, e) = l.split_once(' ')?;
            Some((b.parse().ok()?, e.parse().ok()?))
        })
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    calls
}

#[test]
fn four_processes_share_a_sliding_window_on_redis() {
    let server = RedisServer::start();
    let times = four_processes(&server.url(), "limited");
    let (sliding, fixed) = busiest(&times, 1_000);
    eprintln!(
        "rate limit on Redis, 4 processes × 200 calls, 10/s: {} admitted, at most {sliding} in \
         any second, {fixed} in any fixed second",
        times.len()
    );
    assert!(sliding <= 11, "{sliding} calls within one second");
    assert!(
        times.len() >= 20,
        "the limit admits its share: {}",
        times.len()
    );
}

#[test]
fn waiting_callers_all_get_through_within_the_limit_on_redis() {
    let server = RedisServer::start();
    let times = four_processes(&server.url(), "patient");
    let (sliding, _) = busiest(&times, 1_000);
    eprintln!(
        "rate limit on Redis, waiting: {} calls, at most {sliding} in any second",
        times.len()
    );
    assert_eq!(times.len(), 24, "every waiting call got through");
    assert!(sliding <= 11, "{sliding} calls within one second");
}

#[test]
fn four_processes_share_fixed_windows_on_files_and_sqlite() {
    let dir = temp_dir("rate-stores");
    let urls = [
        format!("file://{}", dir.join("files").display()),
        format!("sqlite://{}", dir.join("c.db").display()),
    ];
    for url in urls {
        let times = four_processes(&url, "limited");
        let (sliding, fixed) = busiest(&times, 1_000);
        eprintln!(
            "rate limit on {}, 4 processes × 200 calls, 10/s: {} admitted, at most {fixed} per \
             fixed second ({sliding} in a sliding one)",
            url.split(':').next().unwrap_or(""),
            times.len()
        );
        assert!(fixed <= 10, "{url}: {fixed} calls in one window");
        assert!(times.len() >= 20, "{url}: {}", times.len());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn breaker_server() -> &'static RedisServer {
    static S: OnceLock<RedisServer> = OnceLock::new();
    S.get_or_init(RedisServer::start)
}

/// Two caches over one Redis, as two processes would have.
fn cache_a() -> steadycache::Cache {
    steadycache::Cache::from_url(&breaker_server().url()).unwrap()
}
fn cache_b() -> steadycache::Cache {
    steadycache::Cache::from_url(&breaker_server().url()).unwrap()
}

/// The error of the guarded functions: a message, which the guards' refusals convert into.
#[derive(Clone, Debug, PartialEq)]
pub struct Failure(pub String);

impl Failure {
    fn contains(&self, part: &str) -> bool {
        self.0.contains(part)
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for Failure {
    fn from(s: &str) -> Self {
        Failure(s.to_owned())
    }
}

impl From<steadycache::CircuitOpen> for Failure {
    fn from(e: steadycache::CircuitOpen) -> Self {
        Failure(e.to_string())
    }
}

impl From<RateLimited> for Failure {
    fn from(e: RateLimited) -> Self {
        Failure(e.to_string())
    }
}

static DOWN: AtomicBool = AtomicBool::new(false);
static CALLS: AtomicUsize = AtomicUsize::new(0);

fn flaky() -> Result<u32, Failure> {
    CALLS.fetch_add(1, SeqCst);
    if DOWN.load(SeqCst) {
        Err("down".into())
    } else {
        Ok(1)
    }
}

#[call_breaker(error_rate = 0.5, min_calls = 4, period = "1m", half_open_after = "500ms", cache = cache_a(), name = "shared-breaker")]
fn via_a() -> Result<u32, Failure> {
    flaky()
}

#[call_breaker(error_rate = 0.5, min_calls = 4, period = "1m", half_open_after = "500ms", cache = cache_b(), name = "shared-breaker")]
async fn via_b() -> Result<u32, Failure> {
    flaky()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_breaker_opens_on_failures_for_every_cache_and_half_opens_after_its_delay() {
    assert_eq!(via_b().await, Ok(1));
    DOWN.store(true, SeqCst);
    for _ in 0..3 {
        assert_eq!(via_b().await, Err("down".into()));
    }
    assert_eq!(CALLS.load(SeqCst), 4);
    // 3 of 4 failed (≥ 0.5, ≥ 4 calls): open. The other cache sees it too.
    let refused = tokio::task::spawn_blocking(|| (0..10).map(|_| via_a()).collect::<Vec<_>>())
        .await
        .unwrap();
    assert!(
        refused.iter().all(|r| r
            .as_ref()
            .is_err_and(|e| e.contains("call breaker is open"))),
        "{refused:?}"
    );
    assert!(via_b().await.is_err());
    assert_eq!(
        CALLS.load(SeqCst),
        4,
        "an open breaker does not call the function"
    );
    // Half-open after 500 ms: one probe; it fails, the breaker opens again.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(via_b().await, Err("down".into()), "the probe ran");
    assert_eq!(CALLS.load(SeqCst), 5);
    assert!(via_b().await.unwrap_err().contains("call breaker is open"));
    // Back up: the next probe closes it, and calls flow again.
    DOWN.store(false, SeqCst);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(via_b().await, Ok(1), "the probe");
    for _ in 0..5 {
        assert_eq!(via_b().await, Ok(1));
    }
    assert_eq!(CALLS.load(SeqCst), 11);
}

static MISS_CALLS: AtomicUsize = AtomicUsize::new(0);

/// Under `#[cached]` a guard limits the computations, not the hits.
#[cached(ttl = "1h")]
#[rate_limit(limit = 2, period = "1h")]
fn cached_then_limited(k: u32) -> Result<u32, RateLimited> {
    MISS_CALLS.fetch_add(1, SeqCst);
    Ok(k)
}

#[test]
fn under_cached_a_rate_limit_counts_misses_only() {
    for _ in 0..50 {
        assert_eq!(cached_then_limited(1), Ok(1));
    }
    assert_eq!(cached_then_limited(2), Ok(2));
    let third = cached_then_limited(3).unwrap_err();
    assert!(third.retry_after > Duration::ZERO);
    assert_eq!(
        MISS_CALLS.load(SeqCst),
        2,
        "50 hits and 2 misses counted as 2"
    );
}

/// A rate limit written above a breaker: its refusals are not the function's failures.
#[rate_limit(limit = 1, period = "1h", name = "order-limit")]
#[call_breaker(
    error_rate = 0.5,
    min_calls = 2,
    period = "1h",
    half_open_after = "1h",
    name = "order-breaker"
)]
fn ordered() -> Result<u32, Failure> {
    Ok(1)
}

#[test]
fn rate_limit_refusals_do_not_open_the_breaker() {
    assert_eq!(ordered(), Ok(1));
    for _ in 0..5 {
        let e = ordered().unwrap_err();
        assert!(e.contains("rate limited"), "{e}");
    }
}

fn breaker_dir() -> &'static std::path::Path {
    static D: OnceLock<std::path::PathBuf> = OnceLock::new();
    D.get_or_init(|| temp_dir("breaker-stores"))
}
fn files_cache() -> steadycache::Cache {
    steadycache::Cache::from_url(&format!("file://{}", breaker_dir().join("files").display()))
        .unwrap()
}
fn sqlite_cache() -> steadycache::Cache {
    steadycache::Cache::from_url(&format!(
        "sqlite://{}",
        breaker_dir().join("b.db").display()
    ))
    .unwrap()
}

/// The breaker's cycle on a store: open after failures, refuse, probe after its delay.
fn breaker_cycle(source: steadycache::__private::CacheSource) {
    use steadycache::{plumbing::Permit, CallBreaker};
    let b = CallBreaker::new(
        "cycle",
        0.5,
        2,
        Duration::from_secs(60),
        Duration::from_millis(300),
    )
    .with_cache(source);
    for _ in 0..2 {
        let p = b.before_blocking().expect("closed");
        assert_eq!(p, Permit::Closed);
        b.after_blocking(p, false);
    }
    assert!(b.before_blocking().is_err(), "open after 2 of 2 failed");
    std::thread::sleep(Duration::from_millis(400));
    let probe = b.before_blocking().expect("half-open: one probe");
    assert_eq!(probe, Permit::Probe);
    assert!(b.before_blocking().is_err(), "one probe at a time");
    b.after_blocking(probe, true);
    assert_eq!(
        b.before_blocking(),
        Ok(Permit::Closed),
        "the probe closed it"
    );
}

#[test]
fn the_breaker_cycles_on_files_sqlite_and_memory() {
    use steadycache::__private::CacheSource;
    breaker_cycle(CacheSource::With(files_cache));
    breaker_cycle(CacheSource::With(sqlite_cache));
    breaker_cycle(CacheSource::With(steadycache::Cache::memory));
}
