//! The MongoDB backend against a real MongoDB-wire server (nx-27017): the whole conformance
//! suite, then what is particular to MongoDB.

use mongodb::bson::{doc, Bson, Document};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use steadycache_api::{Backend, Cache, Error, Policy};
use steadycache_mongo::testing::MongoServer;
use steadycache_mongo::{MongoBackend, MongoConfig, SKEW_MARGIN};

/// One server for the whole test binary (each case works under its own key prefix).
fn server() -> &'static MongoServer {
    static S: OnceLock<MongoServer> = OnceLock::new();
    S.get_or_init(MongoServer::start)
}

mod conformance {
    use super::*;

    steadycache_api::conformance_tests!(async {
        Arc::new(MongoBackend::from_url(&server().url()).unwrap()) as Arc<dyn Backend>
    });
}

#[tokio::test]
async fn documents_have_the_documented_shape_and_a_ttl_index() {
    let b = MongoBackend::from_url(&format!("{}&collection=shape", server().url())).unwrap();
    b.set("shape:k", b"bytes".to_vec(), Some(Duration::from_secs(60)))
        .await
        .unwrap();
    let coll = b.collection().await.unwrap();
    let d: Document = coll
        .find_one(doc! { "_id": "shape:k" })
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(d.get("v"), Some(Bson::Binary(bin)) if bin.bytes == b"bytes"));
    let exp = match d.get("exp") {
        Some(Bson::Int64(v)) => *v,
        other => panic!("exp is {other:?}"),
    };
    let dates = d.get_document("dates").unwrap();
    assert_eq!(
        dates.get_datetime("expires_at").unwrap().timestamp_millis(),
        exp
    );
    assert!(dates.get_datetime("created_at").is_ok());
    let names = coll.list_index_names().await.unwrap();
    assert!(
        names
            .iter()
            .any(|n| n.contains("steadycache_ttl") || n.contains("expires_at")),
        "TTL index missing: {names:?}"
    );
}

#[tokio::test]
async fn a_user_supplied_collection_works() {
    let client = mongodb::Client::with_uri_str(server().url()).await.unwrap();
    let coll = client
        .database("steadycache")
        .collection::<Document>("given");
    let b = MongoBackend::from_collection(coll);
    b.set("given:k", b"v".to_vec(), None).await.unwrap();
    assert_eq!(b.get("given:k").await.unwrap().as_deref(), Some(&b"v"[..]));
    b.ping().await.unwrap();
}

#[tokio::test]
async fn a_garbage_payload_is_a_logged_miss_through_the_engine() {
    let b = MongoBackend::from_url(&format!("{}&collection=garbage", server().url())).unwrap();
    let cache = Cache::builder().backend(b.clone()).build();
    let policy = Policy::expire_after(Duration::from_secs(60));
    let runs = AtomicUsize::new(0);
    let call = || async {
        cache
            .get_or_compute("garbage:k", &policy, || async {
                runs.fetch_add(1, SeqCst);
                Ok::<_, ()>(7u64)
            })
            .await
            .unwrap()
    };
    assert_eq!(call().await, 7);
    // Overwrite the payload by hand with bytes that are not an envelope.
    let coll = b.collection().await.unwrap();
    coll.update_one(
        doc! { "_id": "garbage:k" },
        doc! { "$set": { "v": mongodb::bson::Binary { subtype: mongodb::bson::spec::BinarySubtype::Generic, bytes: vec![1, 2, 3] } } },
    )
    .await
    .unwrap();
    assert_eq!(call().await, 7);
    assert_eq!(runs.load(SeqCst), 2, "the garbage was a miss");
    assert_eq!(cache.stats().corrupt, 1);
    assert_eq!(call().await, 7);
    assert_eq!(runs.load(SeqCst), 2, "healed");
}

#[tokio::test]
async fn a_server_that_is_down_fails_fast_and_comes_back() {
    let mut own = MongoServer::start();
    let url = format!("{}&server_selection_timeout_ms=500", own.url());
    let b = MongoBackend::from_url(&url).unwrap();
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
    let cfg = MongoConfig::from_url(
        "mongodb://app:hunter2@127.0.0.1:27017/cachedb?collection=fx&authSource=admin&server_selection_timeout_ms=750",
    )
    .unwrap();
    assert_eq!(cfg.database, "cachedb");
    assert_eq!(cfg.collection, "fx");
    assert_eq!(cfg.server_selection_timeout, Duration::from_millis(750));
    assert!(cfg.uri.contains("authSource=admin") && !cfg.uri.contains("collection="));
    assert!(!format!("{cfg:?}").contains("hunter2"));
    let b = MongoBackend::open(cfg).unwrap();
    assert!(!format!("{b:?}").contains("hunter2"));
    let plain = MongoConfig::from_url("mongodb://127.0.0.1:27017").unwrap();
    assert_eq!(
        (plain.database.as_str(), plain.collection.as_str()),
        ("steadycache", "entries")
    );
    for bad in [
        "redis://x",
        "mongodb://",
        "mongodb+srv://cluster.example/db",
        "mongodb://h:1/db?collection=",
        "mongodb://h:1/db?connect_timeout_ms=0",
    ] {
        assert!(
            matches!(MongoConfig::from_url(bad), Err(Error::Config(_))),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn clearing_keeps_documents_that_are_not_cache_entries() {
    let b =
        MongoBackend::from_url(&format!("{}&collection=shared_with_app", server().url())).unwrap();
    let coll = b.collection().await.unwrap();
    coll.insert_one(doc! { "_id": "app-owned", "name": "not a cache entry" })
        .await
        .unwrap();
    b.set("c:1", b"v".to_vec(), None).await.unwrap();
    b.set("c:2", b"v".to_vec(), Some(Duration::from_millis(1)))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(b.delete_prefix("").await.unwrap(), 1, "one live entry");
    assert!(
        coll.find_one(doc! { "_id": "c:2" })
            .await
            .unwrap()
            .is_none(),
        "expired entry swept"
    );
    assert!(
        coll.find_one(doc! { "_id": "app-owned" })
            .await
            .unwrap()
            .is_some(),
        "the application's own document is kept"
    );
}

/// Extending a lock moves the date the TTL index reads too (else the server's TTL monitor would
/// remove a renewed lock at its first expiry), and keeps it a date.
#[tokio::test]
async fn extending_a_lock_moves_its_ttl_date() {
    let b = MongoBackend::from_url(&format!("{}&collection=extend", server().url())).unwrap();
    assert!(b
        .acquire_lock("extend:l", "t", Duration::from_secs(5))
        .await
        .unwrap());
    assert!(b
        .extend_lock("extend:l", "t", Duration::from_secs(600))
        .await
        .unwrap());
    let d: Document = b
        .collection()
        .await
        .unwrap()
        .find_one(doc! { "_id": "extend:l" })
        .await
        .unwrap()
        .unwrap();
    let exp = match d.get("exp") {
        Some(Bson::Int64(v)) => *v,
        other => panic!("exp is {other:?}"),
    };
    let dates = d.get_document("dates").unwrap();
    assert_eq!(
        dates.get_datetime("expires_at").unwrap().timestamp_millis(),
        exp
    );
    let now = i64::try_from(steadycache_api::plumbing::unix_millis()).unwrap();
    assert!(exp > now + 590_000, "{exp} vs {now}");
}

/// An expired entry is a miss at once, but a read deletes it only once it is expired by more
/// than [`SKEW_MARGIN`]: within the margin, it may be live for a writer whose clock differs.
#[tokio::test]
async fn an_expired_entry_is_a_miss_and_is_deleted_on_read_only_past_the_skew_margin() {
    let b = MongoBackend::from_url(&format!("{}&collection=margin", server().url())).unwrap();
    let coll = b.collection().await.unwrap();
    b.set("margin:k", b"v".to_vec(), Some(Duration::from_millis(200)))
        .await
        .unwrap();
    // Only the backend's reads may delete it here, not the server's TTL cleanup (nx-27017
    // purges what its TTL index finds expired on every find; MongoDB's monitor runs once a
    // minute): the date the index reads goes, `exp` (which alone decides for the backend) stays.
    coll.update_one(
        doc! { "_id": "margin:k" },
        doc! { "$set": { "dates": { "created_at": mongodb::bson::DateTime::now() } } },
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let exists = || async {
        coll.find_one(doc! { "_id": "margin:k" })
            .await
            .unwrap()
            .is_some()
    };
    assert_eq!(b.get("margin:k").await.unwrap(), None, "expired: a miss");
    assert!(
        exists().await,
        "expired by less than the margin: the read kept it"
    );
    tokio::time::sleep(SKEW_MARGIN).await;
    assert_eq!(b.get("margin:k").await.unwrap(), None);
    assert!(
        !exists().await,
        "expired by more than the margin: the read removed it"
    );
}

/// Two clients of one collection whose clocks differ by a minute (`holder_skew_ms`,
/// `other_skew_ms`): neither takes over a lock or an entry the other holds for 30 s, and
/// neither deletes the other's live entry on read.
async fn skewed_clients_leave_each_others_live_entries_alone(
    holder_skew_ms: i64,
    other_skew_ms: i64,
) {
    let coll = format!("skew{}", fastrand_suffix());
    let open = |skew| {
        MongoBackend::open(
            MongoConfig::from_url(&format!("{}&collection={coll}", server().url()))
                .unwrap()
                .with_clock_skew(skew),
        )
        .unwrap()
    };
    let (holder, other) = (open(holder_skew_ms), open(other_skew_ms));
    steadycache_api::testing::skew::skewed_clients_leave_each_others_live_entries_alone(
        &holder, &other,
    )
    .await;
}

fn fastrand_suffix() -> String {
    steadycache_api::testing::unique_prefix("")
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect()
}

#[tokio::test]
async fn a_client_whose_clock_runs_ahead_takes_over_nothing_and_deletes_nothing_live() {
    skewed_clients_leave_each_others_live_entries_alone(0, 60_000).await;
}

#[tokio::test]
async fn a_holder_whose_clock_runs_behind_keeps_its_lock_and_entries() {
    skewed_clients_leave_each_others_live_entries_alone(-60_000, 0).await;
}
