//! The cache on a real Redis, in one process (issue 4): fail-open through an outage and back,
//! entries readable with `redis-cli`, sync functions on Redis inside and outside tokio.

use serde::{Deserialize, Serialize};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::OnceLock;
use std::time::Duration;
use steadycache::{cached, Cache, Codec, Policy, RedisBackend};
use steadycache_redis::testing::RedisServer;

fn redis_cli(server: &RedisServer, args: &[&str]) -> Vec<u8> {
    let out = Command::new("redis-cli")
        .args(["-p", &server.port().to_string()])
        .args(args)
        .output()
        .expect("run redis-cli");
    assert!(out.status.success(), "redis-cli {args:?} failed");
    let mut bytes = out.stdout;
    while bytes.last() == Some(&b'\n') {
        bytes.pop();
    }
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_fails_open_and_caching_resumes_after_a_restart() {
    let mut server = RedisServer::start();
    let cache = Cache::builder()
        .backend(RedisBackend::from_url(&server.url()).unwrap())
        .build();
    steadycache_api::testing::outage_fails_open(&cache, |up| {
        if up {
            server.restart()
        } else {
            server.kill()
        }
    })
    .await;
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Forecast {
    city: String,
    celsius: f64,
}

#[tokio::test]
async fn json_entries_are_readable_with_redis_cli_and_ttls_visible() {
    let server = RedisServer::start();
    let cache = Cache::builder()
        .backend(RedisBackend::from_url(&server.url()).unwrap())
        .codec(Codec::json())
        .build();
    let policy = Policy::expire_after(Duration::from_secs(60));
    let v: Forecast = cache
        .get_or_compute("weather:oslo", &policy, || async {
            Ok::<_, ()>(Forecast {
                city: "Oslo".into(),
                celsius: -3.5,
            })
        })
        .await
        .unwrap();
    assert_eq!(v.city, "Oslo");

    let raw = redis_cli(&server, &["GET", "weather:oslo"]);
    let doc: serde_json::Value =
        serde_json::from_slice(&raw).expect("redis-cli GET shows a JSON document");
    assert_eq!(doc["value"]["city"], "Oslo");
    assert_eq!(doc["value"]["celsius"], -3.5);
    assert!(doc["expires_at"].as_u64().is_some());

    let pttl: i64 = String::from_utf8(redis_cli(&server, &["PTTL", "weather:oslo"]))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(pttl > 50_000 && pttl <= 60_000, "PTTL {pttl}");
    let keys =
        String::from_utf8(redis_cli(&server, &["--scan", "--pattern", "weather:*"])).unwrap();
    assert_eq!(keys.trim(), "weather:oslo", "keys are readable");
}

fn sync_server() -> &'static RedisServer {
    static S: OnceLock<RedisServer> = OnceLock::new();
    S.get_or_init(RedisServer::start)
}

fn sync_cache() -> Cache {
    Cache::from_url(&format!("{}?key_prefix=sync-test:", sync_server().url())).unwrap()
}

static SYNC_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(cache = sync_cache(), ttl = "10m")]
fn sync_on_redis(x: u32) -> u32 {
    SYNC_RUNS.fetch_add(1, SeqCst);
    x * 2
}

#[test]
fn a_sync_function_on_redis_works_outside_and_inside_tokio() {
    assert_eq!(sync_on_redis(21), 42);
    assert_eq!(sync_on_redis(21), 42);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        assert_eq!(sync_on_redis(21), 42, "inside a runtime: no panic, a hit");
    });
    assert_eq!(SYNC_RUNS.load(SeqCst), 1);
    assert_eq!(sync_on_redis_cache().stats().hits, 2);
    let stored = redis_cli(sync_server(), &["--scan", "--pattern", "sync-test:*"]);
    assert!(
        !stored.is_empty(),
        "the entry is in Redis under the key prefix"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_killed_the_breaker_skips_it_and_caching_resumes_after_a_restart() {
    use steadycache_api::testing::fault::{Faulty, Op};
    let mut server = RedisServer::start();
    let layer = Faulty::new(RedisBackend::from_url(&server.url()).unwrap());
    let faults = layer.faults();
    // The default breaker: open after 3 consecutive failures, probe every second.
    let cache = Cache::builder().backend(layer).build();
    let policy = Policy::expire_after(Duration::from_secs(600));
    let runs = AtomicUsize::new(0);
    let call = |i: u32| {
        let (cache, policy, runs) = (&cache, &policy, &runs);
        async move {
            cache
                .get_or_compute(&format!("breaker:{i}"), policy, || async {
                    runs.fetch_add(1, SeqCst);
                    Ok::<u32, std::io::Error>(i)
                })
                .await
                .unwrap()
        }
    };
    assert_eq!(call(0).await, 0);
    assert_eq!(call(0).await, 0);
    assert_eq!(runs.load(SeqCst), 1);

    server.kill();
    let data_calls = || faults.calls(Op::Get) + faults.calls(Op::Set);
    let before = data_calls();
    let started = std::time::Instant::now();
    for i in 1..=20 {
        assert_eq!(call(i).await, i, "a call fails open");
    }
    let outage = started.elapsed();
    assert_eq!(runs.load(SeqCst), 21);
    let reached = data_calls() - before;
    eprintln!("20 calls with Redis down: {outage:?}, {reached} reached the backend");
    assert!(
        reached <= 3,
        "the breaker opened after 3 failures, but {reached} calls reached a dead Redis"
    );
    assert!(cache.health().circuit_open, "{:?}", cache.health());

    server.restart();
    for _ in 0..300 {
        let n = runs.load(SeqCst);
        assert_eq!(call(100).await, 100);
        if runs.load(SeqCst) == n {
            // Served from Redis again: the breaker closed by itself, no restart of the process.
            assert!(!cache.health().circuit_open);
            assert_eq!(cache.health().circuit_opened, 1);
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "caching did not resume after Redis came back: {:?}",
        cache.health()
    );
}
