//! A lease holder cut off from its store while it computes (issue 24, item 2), on each store
//! with distributed leases: Redis, MongoDB (nx-27017) and S3 (s3s-fs), each a real server on
//! loopback, the holder's link through the test fault proxy (`steadycache_api::testing::proxy`).
//!
//! The holder takes a key's lease and computes for 2 s; 200 ms in, its link goes black (nothing
//! forwarded, nothing closed), so it cannot renew. Two other "processes" (caches of their own,
//! linked directly) wait out its lease; exactly one takes over and stores 200. The link heals;
//! the holder finishes with 100: its caller gets 100, it counts the lost lease, and the store
//! keeps 200 (a holder never writes over a value computed after it lost its lease).

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;
use steadycache::{Cache, MongoBackend, Policy, S3Backend};
use steadycache_api::testing::proxy::FaultProxy;
use steadycache_mongo::testing::MongoServer;
use steadycache_redis::testing::RedisServer;
use steadycache_s3::testing::S3Server;

/// Each store operation's deadline.
const TIMEOUT: Duration = Duration::from_millis(300);

/// The lease of the test's key: 600 ms, renewed while its holder computes.
fn lease() -> Policy {
    Policy::expire_after(Duration::from_secs(3600))
        .with_lock(steadycache::Lock::Distributed)
        .with_lock_ttl(Duration::from_millis(600))
}

fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    }
}

/// The scenario of the module docs: `holder` reaches its store through `proxy`, `direct()`
/// makes caches linked directly. `store` names the store in the figures printed.
async fn holder_cut_off(
    store: &str,
    holder: Cache,
    direct: impl Fn() -> Cache,
    proxy: &FaultProxy,
) {
    let key = "wire:lease";
    let h = {
        let holder = holder.clone();
        tokio::spawn(async move {
            holder
                .get_or_compute(key, &lease(), || async {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    Ok::<u64, Infallible>(100)
                })
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    proxy.black_hole();
    let takeovers = Arc::new(AtomicU64::new(0));
    let wait = |w: Cache| {
        let takeovers = takeovers.clone();
        tokio::spawn(async move {
            w.get_or_compute(key, &lease(), || async move {
                takeovers.fetch_add(1, SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
                Ok::<u64, Infallible>(200)
            })
            .await
        })
    };
    let (a, b) = (wait(direct()), wait(direct()));
    let (a, b) = (a.await, b.await);
    assert!(
        matches!(a, Ok(Ok(200))) && matches!(b, Ok(Ok(200))),
        "{store}: {a:?} {b:?}"
    );
    assert_eq!(
        takeovers.load(SeqCst),
        1,
        "{store}: exactly one took the lease over"
    );
    proxy.heal();
    let held = h.await;
    assert!(
        matches!(held, Ok(Ok(100))),
        "{store}: the holder's caller gets its value: {held:?}"
    );
    // What the store keeps: the value computed after the holder lost its lease.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stored = direct().get::<u64>(key).await;
    assert!(
        matches!(stored, Ok(Some(200))),
        "{store}: the store keeps 200: {stored:?}"
    );
    let lost = holder.stats();
    assert_eq!(
        lost.lock_lost, 1,
        "{store}: the holder counts its lost lease: {lost:?}"
    );
    println!(
        "{store}, lease cut: {} takeover(s), holder's stats {lost:?}, store keeps {stored:?}",
        takeovers.load(SeqCst)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis_a_lease_holder_cut_off_never_overwrites_the_value_computed_after_it() {
    let server = RedisServer::start();
    let proxy = ok(FaultProxy::start(server.port()));
    let url = |port: u16| {
        format!(
            "redis://127.0.0.1:{port}/0?backend_timeout_ms={}",
            TIMEOUT.as_millis()
        )
    };
    let holder = ok(Cache::from_url_unshared(&url(proxy.port())));
    let direct = || ok(Cache::from_url_unshared(&url(server.port())));
    holder_cut_off("redis", holder, direct, &proxy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_mongodb_a_lease_holder_cut_off_never_overwrites_the_value_computed_after_it() {
    let server = MongoServer::start();
    let proxy = ok(FaultProxy::start(server.port()));
    let cache = |url: String| {
        Cache::builder()
            .backend(ok(MongoBackend::from_url(&url)))
            .backend_timeout(TIMEOUT)
            .build()
    };
    let holder = cache(server.url().replace(
        &format!(":{}/", server.port()),
        &format!(":{}/", proxy.port()),
    ));
    let direct = || cache(server.url());
    holder_cut_off("mongodb", holder, direct, &proxy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_s3_a_lease_holder_cut_off_never_overwrites_the_value_computed_after_it() {
    let server = S3Server::start();
    let proxy = ok(FaultProxy::start(server.port()));
    let cache = |endpoint: String| {
        let config = server.config("leases", "cut/").with_endpoint(endpoint);
        Cache::builder()
            .backend(ok(S3Backend::open(config)))
            .backend_timeout(TIMEOUT)
            .build()
    };
    let holder = cache(format!("http://127.0.0.1:{}", proxy.port()));
    let direct = || cache(server.endpoint());
    holder_cut_off("s3", holder, direct, &proxy).await;
}
