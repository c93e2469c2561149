//! Redis server-assisted client-side caching (issue 25, item 2): with `tracking=on`, the L1 over
//! Redis is invalidated by the server itself (`CLIENT TRACKING ... BCAST`), so a key written or
//! removed by any client — `redis-cli`, a program that does not use this library, a `FLUSHALL`
//! — drops the L1 copies; a killed tracking connection is taken up again and flushes what it
//! may have missed; on a cluster every master is tracked.
//!
//! Each test counts how often its function ran. The bus is off in most of them, so that only
//! the tracking can have dropped a copy (with the bus on, a raw `DEL` is not announced either:
//! only the tracking tells).

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::OnceLock;
use std::time::Duration;
use steadycache::{cached, Cache, Error, Policy};
use steadycache_api::testing::eventually;
use steadycache_api::testing::proxy::FaultProxy;
use steadycache_redis::testing::{RedisCluster, RedisServer};

/// The reader's options: an L1, tracking on, the given bus setting.
fn reader_url(base: &str, bus: &str) -> String {
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}local=1MiB&tracking=on&bus={bus}&bus_grace_ms=400")
}

/// Wait until the reader's copies are vouched for (its tracking, and bus if on, are heard).
fn until_live(cache: &Cache) {
    assert!(
        eventually(|| cache.health().bus_live),
        "tracking never came up"
    );
}

static QUIET: OnceLock<Cache> = OnceLock::new();
static HEARD: OnceLock<Cache> = OnceLock::new();
static RUNS: AtomicU64 = AtomicU64::new(0);

fn quiet() -> Cache {
    QUIET.get().cloned().unwrap_or_else(Cache::memory)
}

fn heard() -> Cache {
    HEARD.get().cloned().unwrap_or_else(Cache::memory)
}

/// On a reader whose bus is off: only the tracking can drop a copy.
#[cached(cache = quiet(), ttl = "10m", key_prefix = "track", version = "1", key = "q:{k}")]
fn quiet_value(k: u32) -> u64 {
    let _ = k;
    RUNS.fetch_add(1, SeqCst) + 1
}

/// On a reader with the bus on beside the tracking (both must vouch for a copy).
#[cached(cache = heard(), ttl = "10m", key_prefix = "track", version = "1", key = "h:{k}")]
fn heard_value(k: u32) -> u64 {
    let _ = k;
    RUNS.fetch_add(1, SeqCst) + 1
}

/// A raw `DEL`, a raw `SET` of garbage and a `FLUSHALL` by another client each drop the copy,
/// with the bus off, then with the bus on beside the tracking.
#[test]
fn writes_by_any_client_drop_the_l1_copies() {
    let server = RedisServer::start();
    // The quiet reader's keys live under a key prefix (tracked with `BCAST PREFIX app1:`).
    let prefixed = format!("{}?key_prefix=app1:", server.url());
    let q = Cache::from_url_unshared(&reader_url(&prefixed, "off")).unwrap();
    assert!(QUIET.set(q).is_ok());
    let h = Cache::from_url_unshared(&reader_url(&server.url(), "on")).unwrap();
    assert!(HEARD.set(h).is_ok());
    let quiet_key = format!("app1:{}", quiet_value_cache().key(1).unwrap());
    let heard_key = heard_value_cache().key(1).unwrap();
    foreign_writes_drop(&server, &quiet(), || quiet_value(1), &quiet_key, "bus=off");
    foreign_writes_drop(&server, &heard(), || heard_value(1), &heard_key, "bus=on");
}

fn foreign_writes_drop(
    server: &RedisServer,
    cache: &Cache,
    value: impl Fn() -> u64,
    key: &str,
    what: &str,
) {
    until_live(cache);
    let first = value();
    let runs = RUNS.load(SeqCst);
    for _ in 0..50 {
        assert_eq!(value(), first);
    }
    assert_eq!(RUNS.load(SeqCst), runs, "{what}: hits, nothing ran");

    let deleted = server.command(&format!("DEL {key}"));
    assert!(deleted.starts_with(":1"), "DEL replied {deleted:?}");
    assert!(
        eventually(|| value() != first),
        "{what}: the L1 kept serving a key redis-cli deleted"
    );
    let second = value();

    let set = server.command(&format!("SET {key} not-an-entry"));
    assert!(set.starts_with("+OK"), "SET replied {set:?}");
    assert!(
        eventually(|| value() != second),
        "{what}: the L1 kept serving a key another client overwrote"
    );
    let third = value();

    let flushed = server.command("FLUSHALL");
    assert!(flushed.starts_with("+OK"), "FLUSHALL replied {flushed:?}");
    assert!(
        eventually(|| value() != third),
        "{what}: the L1 kept serving after FLUSHALL"
    );
}

static WRITTEN: OnceLock<Cache> = OnceLock::new();

fn written() -> Cache {
    WRITTEN.get().cloned().unwrap_or_else(Cache::memory)
}

#[cached(cache = written(), ttl = "10m", key_prefix = "track-set", version = "1", key = "v:{k}")]
fn written_value(k: u32) -> u64 {
    u64::from(k)
}

/// Another cache's `set` (no L1 of its own, its bus message unheard: the reader's bus is off)
/// reaches the reader through the tracking; then a killed tracking connection with a write in
/// the same transaction (so that it is never reported) is recovered: the reader flushes when
/// tracking is back, and serves the new value.
#[test]
fn a_killed_tracking_connection_recovers_and_flushes_what_it_missed() {
    let server = RedisServer::start();
    let reader = Cache::from_url_unshared(&reader_url(&server.url(), "off")).unwrap();
    assert!(WRITTEN.set(reader.clone()).is_ok());
    let writer = Cache::from_url_unshared(&server.url()).unwrap();
    until_live(&reader);
    let key = written_value_cache().key(7).unwrap();
    assert_eq!(written_value(7), 7);
    let policy = Policy::expire_after(Duration::from_secs(600));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(writer.set(&key, &70u64, &policy)).unwrap();
    assert!(
        eventually(|| written_value(7) == 70),
        "another cache's set did not reach the L1"
    );

    // Kill the tracking connection and overwrite the value in one transaction: the killed
    // connection is never told.
    let ids: Vec<String> = server
        .command("CLIENT LIST")
        .lines()
        .filter(|l| tracking_flags(l))
        .filter_map(|l| l.split(' ').find_map(|f| f.strip_prefix("id=")))
        .map(str::to_owned)
        .collect();
    assert_eq!(ids.len(), 1, "one tracking connection");
    let entry = rt.block_on(async {
        writer.set(&key, &700u64, &policy).await.unwrap();
        writer.manager().backend().get(&key).await.unwrap().unwrap()
    });
    rt.block_on(writer.set(&key, &70u64, &policy)).unwrap();
    assert!(eventually(|| written_value(7) == 70));
    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_connection().unwrap();
    let () = redis::pipe()
        .atomic()
        .cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(&ids[0])
        .ignore()
        .cmd("SET")
        .arg(&key)
        .arg(entry)
        .ignore()
        .query(&mut conn)
        .unwrap();
    // Read nothing until tracking is back (a read during the outage would go to Redis and
    // refresh the copy): then the copy must have been flushed.
    let tracking_ids = || -> Vec<String> {
        server
            .command("CLIENT LIST")
            .lines()
            .filter(|l| tracking_flags(l))
            .filter_map(|l| l.split(' ').find_map(|f| f.strip_prefix("id=")))
            .map(str::to_owned)
            .collect()
    };
    assert!(
        eventually(|| tracking_ids().iter().any(|id| *id != ids[0])),
        "tracking did not come back"
    );
    until_live(&reader);
    assert_eq!(
        written_value(7),
        700,
        "the L1 kept a copy through a tracking outage"
    );
}

/// Whether a `CLIENT LIST` line is a tracking connection's (`flags` with `t`).
fn tracking_flags(line: &str) -> bool {
    line.split(' ')
        .find_map(|f| f.strip_prefix("flags="))
        .is_some_and(|f| f.contains('t'))
}

static CLUSTERED: OnceLock<Cache> = OnceLock::new();
static CLUSTERED_RUNS: AtomicU64 = AtomicU64::new(0);

fn clustered() -> Cache {
    CLUSTERED.get().cloned().unwrap_or_else(Cache::memory)
}

#[cached(cache = clustered(), ttl = "10m", key_prefix = "track-cl", version = "1", key = "v:{k}")]
fn clustered_value(k: u32) -> u64 {
    let _ = k;
    CLUSTERED_RUNS.fetch_add(1, SeqCst)
}

/// On a cluster, each master is tracked: keys spread over all three, each deleted by another
/// cache, are all dropped from the reader's L1.
#[test]
fn every_master_of_a_cluster_is_tracked() {
    let cluster = RedisCluster::start();
    let reader = Cache::from_url_unshared(&reader_url(&cluster.url(), "off")).unwrap();
    assert!(CLUSTERED.set(reader.clone()).is_ok());
    until_live(&reader);
    let tracked = cluster
        .nodes()
        .iter()
        .filter(|n| n.command("CLIENT LIST").lines().any(tracking_flags))
        .count();
    assert_eq!(tracked, 3, "one tracking connection per master");
    let writer = Cache::from_url_unshared(&cluster.url()).unwrap();
    let keys: Vec<u32> = (0..30).collect();
    let first: Vec<u64> = keys.iter().map(|k| clustered_value(*k)).collect();
    let runs = CLUSTERED_RUNS.load(SeqCst);
    assert_eq!(
        keys.iter().map(|k| clustered_value(*k)).collect::<Vec<_>>(),
        first
    );
    assert_eq!(CLUSTERED_RUNS.load(SeqCst), runs);
    let rt = tokio::runtime::Runtime::new().unwrap();
    for k in &keys {
        let key = clustered_value_cache().key(*k).unwrap();
        rt.block_on(writer.invalidate(&key)).unwrap();
    }
    for (k, v) in keys.iter().zip(&first) {
        assert!(
            eventually(|| clustered_value(*k) != *v),
            "key {k}: the L1 kept a copy deleted on its master"
        );
    }
}

/// `tracking=on` asks for a store that can track and an L1 to keep coherent: otherwise a
/// clear configuration error at open, not a cache that silently does not track.
#[test]
fn tracking_without_a_tracking_store_or_an_l1_is_a_configuration_error() {
    let server = RedisServer::start();
    let dir = steadycache_api::testing::temp_dir("tracking-file");
    let file = format!("file://{}?local=1MiB&tracking=on", dir.display());
    match Cache::from_url_unshared(&file) {
        Err(Error::Config(m)) => assert!(m.contains("cannot track"), "{m}"),
        other => panic!("a file store with tracking: {other:?}"),
    }
    match Cache::from_url_unshared(&format!("{}?tracking=on", server.url())) {
        Err(Error::Config(m)) => assert!(m.contains("local="), "{m}"),
        other => panic!("tracking without an L1: {other:?}"),
    }
    match Cache::from_url_unshared(&format!("{}?local=1MiB&tracking=maybe", server.url())) {
        Err(Error::Config(m)) => assert!(m.contains("tracking=on"), "{m}"),
        other => panic!("a bad tracking value: {other:?}"),
    }
}

static HOLED: OnceLock<Cache> = OnceLock::new();
static HOLED_RUNS: AtomicU64 = AtomicU64::new(0);

fn holed() -> Cache {
    HOLED.get().cloned().unwrap_or_else(Cache::memory)
}

#[cached(cache = holed(), ttl = "10m", key_prefix = "track-bh", version = "1", key = "v:{k}")]
fn holed_value(k: u32) -> u64 {
    let _ = k;
    HOLED_RUNS.fetch_add(1, SeqCst) + 1
}

/// A tracking connection that goes silent (a black hole on the wire, no reset) stops the L1
/// within the grace: a key deleted meanwhile is not served from the copy for long (the reads
/// then go to the store, which does not answer either, and fail open). Healed, the reader
/// tracks again and its copies are trusted again.
#[test]
fn a_silent_tracking_connection_stops_the_l1_within_the_grace() {
    let server = RedisServer::start();
    let Ok(proxy) = FaultProxy::start(server.port()) else {
        panic!("a proxy")
    };
    let through = format!(
        "redis://127.0.0.1:{}/0?backend_timeout_ms=300",
        proxy.port()
    );
    let reader = Cache::from_url_unshared(&reader_url(&through, "off")).unwrap();
    assert!(HOLED.set(reader.clone()).is_ok());
    until_live(&reader);
    let key = holed_value_cache().key(1).unwrap();
    let first = holed_value(1);
    assert_eq!(holed_value(1), first);

    proxy.black_hole();
    let deleted = server.command(&format!("DEL {key}"));
    assert!(deleted.starts_with(":1"), "DEL replied {deleted:?}");
    assert!(
        eventually(|| holed_value(1) != first),
        "the L1 kept serving its copy with its tracking silent"
    );
    assert!(!reader.health().bus_live, "{:?}", reader.health());

    proxy.heal();
    until_live(&reader);
    let now = holed_value(1);
    let runs = HOLED_RUNS.load(SeqCst);
    assert!(eventually(|| {
        holed_value(1);
        HOLED_RUNS.load(SeqCst) == runs
    }));
    assert_eq!(holed_value(1), holed_value(1), "hits again ({now} before)");
}

static SEALED: OnceLock<Cache> = OnceLock::new();

fn sealed() -> Cache {
    SEALED.get().cloned().unwrap_or_else(Cache::memory)
}

#[cached(cache = sealed(), ttl = "10m", key_prefix = "track-tls", version = "1", key = "v:{k}")]
fn sealed_value(k: u32) -> u64 {
    u64::from(k)
}

/// Over TLS (`rediss://` with a CA of its own), the tracking connection keeps the backend's
/// TLS settings: another cache's `set` reaches the reader, whose bus is off.
#[test]
fn tracking_works_over_tls() {
    let server = RedisServer::start_tls();
    let reader = Cache::from_url_unshared(&reader_url(&server.url(), "off")).unwrap();
    assert!(SEALED.set(reader.clone()).is_ok());
    until_live(&reader);
    assert_eq!(sealed_value(3), 3);
    assert_eq!(sealed_value(3), 3);
    let writer = Cache::from_url_unshared(&server.url()).unwrap();
    let key = sealed_value_cache().key(3).unwrap();
    let policy = Policy::expire_after(Duration::from_secs(600));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(writer.set(&key, &33u64, &policy)).unwrap();
    assert!(
        eventually(|| sealed_value(3) == 33),
        "a write over TLS did not reach the L1"
    );
}
