//! Invalidation across OS processes on every shared backend (issue 14): a tag invalidated by
//! process A makes its entries misses in process B (whose L1 holds copies of them), untagged
//! entries and other tags stay hits; a glob pattern invalidated by A reaches B the same way.
//! The test binary re-invokes itself as the children (`child_main`).

mod support;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use steadycache::Cache;
use steadycache_api::testing::eventually;
use support::{spawn, temp_dir, wait, ROLE, XP_URL};

/// The AWS credential chain's environment variables for the S3 test server.
const AWS_ENV: [(&str, &str); 3] = [
    ("AWS_ACCESS_KEY_ID", steadycache_s3::testing::ACCESS_KEY_ID),
    (
        "AWS_SECRET_ACCESS_KEY",
        steadycache_s3::testing::SECRET_ACCESS_KEY,
    ),
    ("AWS_EC2_METADATA_DISABLED", "true"),
];

/// One backend's functions and cache: the cache is opened from [`XP_URL`] in a child, from
/// `URL` in the parent (each test sets it before the first call).
macro_rules! backend_case {
    ($m:ident) => {
        mod $m {
            use super::*;
            pub static URL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
            /// A cache built by the parent itself (S3: credentials in the config).
            pub static PARENT: std::sync::OnceLock<Cache> = std::sync::OnceLock::new();
            pub static TAGGED_RUNS: AtomicUsize = AtomicUsize::new(0);
            pub static PLAIN_RUNS: AtomicUsize = AtomicUsize::new(0);

            pub fn cache() -> Cache {
                if let Some(c) = PARENT.get() {
                    return c.clone();
                }
                static C: std::sync::LazyLock<Cache> = std::sync::LazyLock::new(|| {
                    let url = std::env::var(XP_URL)
                        .ok()
                        .or_else(|| URL.get().cloned())
                        .unwrap_or_else(|| "mem://".into());
                    Cache::from_url(&url).unwrap_or_else(|e| {
                        eprintln!("cannot open the cache: {e}");
                        std::process::exit(4)
                    })
                });
                C.clone()
            }

            #[steadycache::cached(cache = cache(), ttl = "10m", tags = ["user:{id}", "users"], key_prefix = "xp.tagged", version = "1")]
            pub fn tagged(id: u64) -> u64 {
                TAGGED_RUNS.fetch_add(1, SeqCst);
                id * 10
            }

            #[steadycache::cached(cache = cache(), ttl = "10m", key_prefix = "xp.plain", version = "1", key = "item:{id}")]
            pub fn plain(id: u64) -> u64 {
                PLAIN_RUNS.fetch_add(1, SeqCst);
                id * 100
            }

            pub fn child(step: &str) {
                match step {
                    "fill" => {
                        tagged(1);
                        tagged(2);
                        plain(1);
                        plain(2);
                    }
                    "tag" => cache().invalidate_tag_sync("user:1").unwrap(),
                    "match" => {
                        assert_eq!(cache().invalidate_matching_sync("xp.plain:*:item:1").unwrap(), 1);
                    }
                    other => panic!("unknown step {other}"),
                }
            }

            pub fn case() -> Case {
                Case {
                    cache,
                    tagged,
                    plain,
                    tagged_runs: &TAGGED_RUNS,
                    plain_runs: &PLAIN_RUNS,
                    name: stringify!($m),
                }
            }
        }
    };
}

backend_case!(file);
backend_case!(sqlite);
backend_case!(redis);
backend_case!(mongo);
backend_case!(s3);

/// What a child process does, chosen by `STEADYCACHE_XP_ROLE` (`<backend>:<step>`).
#[test]
#[ignore = "run by the invalidation process tests as a child process"]
fn child_main() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let (backend, step) = role.split_once(':').unwrap_or(("", ""));
    match backend {
        "file" => file::child(step),
        "sqlite" => sqlite::child(step),
        "redis" => redis::child(step),
        "mongo" => mongo::child(step),
        "s3" => s3::child(step),
        other => panic!("unknown backend {other}"),
    }
}

struct Case {
    cache: fn() -> Cache,
    tagged: fn(u64) -> u64,
    plain: fn(u64) -> u64,
    tagged_runs: &'static AtomicUsize,
    plain_runs: &'static AtomicUsize,
    name: &'static str,
}

/// The cache options of every process here: an L1, and a bus polled every 20 ms where it is
/// polled.
fn with_l1(url: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}local=4MiB&bus_poll_ms=20")
}

fn run_child(c: &Case, step: &str, url: &str, envs: &[(&str, &str)]) {
    let role = format!("{}:{step}", c.name);
    let mut all: Vec<(&str, &str)> = vec![(XP_URL, url)];
    all.extend_from_slice(envs);
    let child = spawn(&role, &all);
    assert!(
        wait(child, std::time::Duration::from_secs(60)).success(),
        "child {role} failed"
    );
}

/// A fills; B (this process) reads everything into its L1 without computing; A invalidates a
/// tag, then a pattern; B recomputes exactly what was invalidated.
fn tags_and_patterns_across_processes(c: Case, url: &str, envs: &[(&str, &str)]) {
    let url = with_l1(url);
    run_child(&c, "fill", &url, envs);
    assert!(
        eventually(|| (c.cache)().health().bus_live),
        "the bus is heard"
    );
    for _ in 0..3 {
        assert_eq!(((c.tagged)(1), (c.tagged)(2)), (10, 20));
        assert_eq!(((c.plain)(1), (c.plain)(2)), (100, 200));
    }
    assert_eq!(c.tagged_runs.load(SeqCst), 0, "B read A's values");
    assert_eq!(c.plain_runs.load(SeqCst), 0);

    run_child(&c, "tag", &url, envs);
    assert!(
        eventually(|| {
            (c.tagged)(1);
            c.tagged_runs.load(SeqCst) == 1
        }),
        "{}: user:1 is a miss in B after A invalidated the tag",
        c.name
    );
    (c.tagged)(2);
    (c.plain)(1);
    assert_eq!(c.tagged_runs.load(SeqCst), 1, "user:2 stays a hit");
    assert_eq!(c.plain_runs.load(SeqCst), 0, "untagged values stay hits");

    run_child(&c, "match", &url, envs);
    assert!(
        eventually(|| {
            (c.plain)(1);
            c.plain_runs.load(SeqCst) == 1
        }),
        "{}: xp.plain:*:item:1 is a miss in B after A invalidated the pattern",
        c.name
    );
    (c.plain)(2);
    (c.tagged)(1);
    (c.tagged)(2);
    assert_eq!(c.plain_runs.load(SeqCst), 1, "the pattern matched one key");
    assert_eq!(c.tagged_runs.load(SeqCst), 1);
}

fn set_url(c: &Case, slot: &std::sync::OnceLock<String>, url: &str) {
    let _ = c;
    let _ = slot.set(with_l1(url));
}

#[test]
fn files_invalidate_across_processes() {
    let url = format!("file://{}", temp_dir("inv-file").display());
    set_url(&file::case(), &file::URL, &url);
    tags_and_patterns_across_processes(file::case(), &url, &[]);
}

#[test]
fn sqlite_invalidates_across_processes() {
    let url = format!("sqlite://{}/c.db", temp_dir("inv-sqlite").display());
    set_url(&sqlite::case(), &sqlite::URL, &url);
    tags_and_patterns_across_processes(sqlite::case(), &url, &[]);
}

#[test]
fn redis_invalidates_across_processes() {
    let server = steadycache_redis::testing::RedisServer::start();
    let url = server.url();
    set_url(&redis::case(), &redis::URL, &url);
    tags_and_patterns_across_processes(redis::case(), &url, &[]);
}

#[test]
fn mongo_invalidates_across_processes() {
    let server = steadycache_mongo::testing::MongoServer::start();
    let url = format!("{}&collection=inv", server.url());
    set_url(&mongo::case(), &mongo::URL, &url);
    tags_and_patterns_across_processes(mongo::case(), &url, &[]);
}

#[test]
fn s3_invalidates_across_processes() {
    let server = steadycache_s3::testing::S3Server::start();
    let url = server.url("invalidation", "inv/");
    let backend = steadycache::S3Backend::open(server.config("invalidation", "inv/")).unwrap();
    let bus = steadycache::BusConfig {
        poll: std::time::Duration::from_millis(20),
        ..steadycache::BusConfig::default()
    };
    let parent = Cache::builder()
        .backend(backend)
        .local_tier(steadycache::LocalTier::new(4 << 20))
        .bus(bus)
        .build();
    let _ = s3::PARENT.set(parent);
    tags_and_patterns_across_processes(s3::case(), &url, &AWS_ENV);
}
