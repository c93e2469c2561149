//! The Redis backend against real servers: the whole conformance suite on a standalone
//! `redis-server` and on a 3-master cluster, then what is particular to Redis.

use std::sync::{Arc, OnceLock};
use std::time::Duration;
use steadycache_api::{Backend, Error};
use steadycache_redis::testing::{RedisCluster, RedisServer};
use steadycache_redis::{RedisBackend, RedisConfig};

/// One server for the whole test binary (each case works under its own key prefix).
fn server() -> &'static RedisServer {
    static S: OnceLock<RedisServer> = OnceLock::new();
    S.get_or_init(RedisServer::start)
}

fn cluster() -> &'static RedisCluster {
    static C: OnceLock<RedisCluster> = OnceLock::new();
    C.get_or_init(RedisCluster::start)
}

mod standalone {
    use super::*;

    steadycache_api::conformance_tests!(async {
        Arc::new(RedisBackend::from_url(&server().url()).unwrap()) as Arc<dyn Backend>
    });
}

mod cluster {
    use super::*;

    steadycache_api::conformance_tests!(async {
        Arc::new(RedisBackend::from_url(&cluster().url()).unwrap()) as Arc<dyn Backend>
    });
}

mod prefixed {
    use super::*;

    steadycache_api::conformance_tests!(async {
        let cfg = RedisConfig::from_url(&server().url())
            .unwrap()
            .with_key_prefix("app-[1]*:");
        Arc::new(RedisBackend::open(cfg).unwrap()) as Arc<dyn Backend>
    });
}

#[tokio::test]
async fn cluster_prefix_delete_visits_every_master() {
    let b = RedisBackend::from_url(&cluster().url()).unwrap();
    for i in 0..300 {
        let v = steadycache_api::testing::ENTRY_LIKE.to_vec();
        b.set(&format!("spread:{i}"), v, None).await.unwrap();
    }
    // The keys really are spread: every master holds some.
    for node in cluster().nodes() {
        let reply = node.command("DBSIZE");
        let n: u64 = reply.trim_start_matches(':').trim().parse().unwrap();
        assert!(n > 0, "node {} holds none of the keys", node.port());
    }
    assert_eq!(b.delete_prefix("spread:").await.unwrap(), 300);
    for i in 0..300 {
        assert_eq!(b.get(&format!("spread:{i}")).await.unwrap(), None);
    }
}

/// Issue 21, item 7: a Redis without a key prefix may hold anything besides the cache; a clear
/// (and an invalidation by prefix or pattern) removes only what the library wrote. A server of
/// its own: a clear of the whole database would reach other tests' keys.
#[tokio::test]
async fn clearing_a_shared_database_leaves_foreign_keys() {
    use steadycache_api::{Cache, Policy};
    let own = RedisServer::start();
    let foreign = [
        "SET user:1 hello",
        "SET ns:v1:raw not-an-entry",
        "SET session#lock mine",
        "SET user:2#lock mine-too",
        "SET user:3:x#calls many",
        "SET SCORE 10",
        "RPUSH queue a b c",
        "HSET profile:1 name ada",
        "SADD ns:v1:set x",
    ];
    for c in foreign {
        own.command(c);
    }
    let before = own.command("DBSIZE");
    let cache = Cache::builder()
        .backend(RedisBackend::from_url(&own.url()).unwrap())
        .build();
    let policy = Policy::expire_after(Duration::from_secs(60));
    for i in 0..5 {
        cache.set(&format!("ns:v1:{i}"), &i, &policy).await.unwrap();
    }
    cache.set("plain", &"by hand", &policy).await.unwrap();
    cache.invalidate_tag("t").await.unwrap();
    let b = cache.backend();
    let token = "0123456789abcdef0123456789abcdef"; // the engine's tokens: 32 hex digits
    assert!(b
        .acquire_lock("ns:v1:0#lock", token, Duration::from_secs(60))
        .await
        .unwrap());
    assert_eq!(b.incr("ns:v1:0#calls", 1, None).await.unwrap(), 1);

    // The five entries, with the lock and the counter of one of them.
    assert_eq!(cache.invalidate_prefix("ns:").await.unwrap(), 7);
    assert_eq!(cache.invalidate_matching("*").await.unwrap(), 1);
    cache.set("ns:v1:9", &9, &policy).await.unwrap();
    assert!(cache.clear().await.unwrap() >= 1);
    // Only foreign keys are left, and the clear's mark (its time, kept an hour so that a
    // computation under way does not keep its value).
    assert!(own.command("EXISTS steadycache#inv:all").starts_with(":1"));
    own.command("DEL steadycache#inv:all");
    assert_eq!(own.command("DBSIZE"), before, "only foreign keys are left");
    for c in [
        "GET user:1",
        "GET ns:v1:raw",
        "GET session#lock",
        "GET user:2#lock",
        "GET user:3:x#calls",
    ] {
        assert!(!own.command(c).starts_with("$-1"), "{c}");
    }
    assert!(own.command("LLEN queue").starts_with(":3"));
    assert!(own.command("EXISTS profile:1").starts_with(":1"));
}

/// Issue 21, item 7: a clear is bounded by `bulk_timeout`; one stopped part way says how many
/// keys it removed, and running it again goes on. Bounds from 1 ms up, doubling, until one
/// clear finishes: every key is gone, and the removals reported add up to (about) all of them.
#[tokio::test]
async fn a_partial_clear_reports_its_progress_and_resumes() {
    use steadycache_api::Cache;
    let cfg = RedisConfig::from_url(&server().url())
        .unwrap()
        .with_key_prefix("bulk-partial:");
    let b = RedisBackend::open(cfg).unwrap();
    const N: u64 = 30_000;
    let mut pipe = redis::pipe();
    for i in 0..N {
        pipe.cmd("SET")
            .arg(format!("bulk-partial:ns:v1:{i}"))
            .arg(steadycache_api::testing::ENTRY_LIKE);
    }
    let client = redis::Client::open(server().url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let () = pipe.query_async(&mut conn).await.unwrap();
    let (mut total, mut partial_reports) = (0, Vec::new());
    let mut bound = Duration::from_millis(1);
    loop {
        let cache = Cache::builder()
            .backend(b.clone())
            .bulk_timeout(bound)
            .build();
        match cache.clear().await {
            Ok(n) => {
                total += n;
                break;
            }
            Err(Error::Partial { removed, .. }) => {
                total += removed;
                partial_reports.push(removed);
            }
            Err(e) => panic!("{e}"),
        }
        bound *= 2;
        assert!(bound < Duration::from_secs(600), "never finished");
    }
    eprintln!("{N} keys: partial clears reported {partial_reports:?}, {total} in all");
    assert!(
        !partial_reports.is_empty(),
        "a 1 ms bound stopped the first clear"
    );
    // A batch whose UNLINK was in flight when a bound stopped it is removed but not counted;
    // each clear marks its time first (`steadycache#inv:all`), which a stopped one may count.
    let attempts = partial_reports.len() as u64 + 1;
    assert!(
        (N / 2..=N + attempts).contains(&total),
        "{total} of {N}: {partial_reports:?}"
    );
    let mut left: Vec<String> = redis::cmd("KEYS")
        .arg("bulk-partial:*")
        .query_async(&mut conn)
        .await
        .unwrap();
    left.retain(|k| k != "bulk-partial:steadycache#inv:all"); // the last clear's mark
    assert!(
        left.is_empty(),
        "{} keys left: {:?}",
        left.len(),
        left.first()
    );
}

#[tokio::test]
async fn key_prefix_isolates_and_stays_inside() {
    let url = server().url();
    let a = RedisBackend::open(
        RedisConfig::from_url(&url)
            .unwrap()
            .with_key_prefix("iso-a:"),
    )
    .unwrap();
    let b = RedisBackend::open(
        RedisConfig::from_url(&url)
            .unwrap()
            .with_key_prefix("iso-b:"),
    )
    .unwrap();
    a.set("k", b"a".to_vec(), None).await.unwrap();
    b.set("k", b"b".to_vec(), None).await.unwrap();
    assert_eq!(a.get("k").await.unwrap().as_deref(), Some(&b"a"[..]));
    assert_eq!(a.delete_prefix("").await.unwrap(), 1, "only its own keys");
    assert_eq!(b.get("k").await.unwrap().as_deref(), Some(&b"b"[..]));
    assert!(server().command("EXISTS iso-b:k").starts_with(":1"));
}

#[tokio::test]
async fn ttl_is_native_and_visible() {
    let b = RedisBackend::from_url(&server().url()).unwrap();
    b.set("pttl:k", b"v".to_vec(), Some(Duration::from_secs(60)))
        .await
        .unwrap();
    let pttl: i64 = server()
        .command("PTTL pttl:k")
        .trim_start_matches(':')
        .trim()
        .parse()
        .unwrap();
    assert!(pttl > 50_000 && pttl <= 60_000, "{pttl}");
}

#[tokio::test]
async fn a_counter_of_another_type_is_a_permanent_error() {
    let b = RedisBackend::from_url(&server().url()).unwrap();
    b.set("ctr:text", b"not a number".to_vec(), None)
        .await
        .unwrap();
    let e = b.incr("ctr:text", 1, None).await.unwrap_err();
    assert!(matches!(e, Error::Backend { .. }), "{e}");
}

#[tokio::test]
async fn a_server_that_is_down_is_a_transient_error_and_comes_back() {
    let mut own = RedisServer::start();
    let b = RedisBackend::from_url(&own.url()).unwrap();
    steadycache_api::testing::recovers_after_restart(&b, false, |up| {
        if up {
            own.restart()
        } else {
            own.kill()
        }
    })
    .await;
}

#[test]
fn urls_and_secrets() {
    let cfg = RedisConfig::from_url(
        "redis://:hunter2@127.0.0.1:7000/3?key_prefix=x:&connect_timeout_ms=1500&response_timeout_ms=250&retries=5&protocol=resp3",
    )
    .unwrap();
    assert_eq!(cfg.key_prefix, "x:");
    assert_eq!(cfg.connect_timeout, Duration::from_millis(1500));
    assert_eq!(cfg.response_timeout, Duration::from_millis(250));
    assert_eq!(cfg.reconnect_retries, 5);
    assert!(cfg.url.contains("protocol=resp3") && !cfg.url.contains("key_prefix"));
    let shown = format!("{cfg:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    let b = RedisBackend::open(cfg).unwrap();
    assert!(!format!("{b:?}").contains("hunter2"));

    let c = RedisConfig::from_url(
        "redis://127.0.0.1:7000?cluster=true&nodes=127.0.0.1:7001,127.0.0.1:7002",
    )
    .unwrap();
    assert!(c.cluster);
    assert_eq!(c.nodes.len(), 2);

    for bad in [
        "http://127.0.0.1",
        "redis://",
        "redis://h:1?cluster=maybe",
        "redis://h:1?response_timeout_ms=abc",
        "redis://h:1?response_timeout_ms=0",
    ] {
        assert!(
            matches!(RedisConfig::from_url(bad), Err(Error::Config(_))),
            "{bad}"
        );
    }
    let e = RedisConfig::from_url("redis://:topsecret@[bad").unwrap_err();
    assert!(!e.to_string().contains("topsecret"), "{e}");
}

#[cfg(feature = "tls")]
mod tls {
    use super::*;

    fn tls_server() -> &'static RedisServer {
        static S: OnceLock<RedisServer> = OnceLock::new();
        S.get_or_init(RedisServer::start_tls)
    }

    steadycache_api::conformance_tests!(async {
        Arc::new(RedisBackend::from_url(&tls_server().url()).unwrap()) as Arc<dyn Backend>
    });

    #[tokio::test]
    async fn a_server_certificate_from_an_unknown_ca_is_refused() {
        // Without the CA file the system roots are used: they do not know the test CA.
        let url = tls_server().url();
        let (plain_url, _) = url.split_once('?').unwrap();
        let b = RedisBackend::from_url(plain_url).unwrap();
        let e = b.get("k").await.unwrap_err();
        assert!(e.to_string().contains("UnknownIssuer"), "{e}");
        assert!(b.ping().await.is_err());
    }
}

#[cfg(not(feature = "tls"))]
#[test]
fn rediss_without_the_tls_feature_is_a_clear_error() {
    let e = RedisBackend::from_url("rediss://127.0.0.1:6380/0").unwrap_err();
    assert!(e.to_string().contains("`tls` feature"), "{e}");
}
