//! The MongoDB backend against a real MongoDB-wire server (nx-27017): the whole conformance
//! suite, then what is particular to MongoDB.

use mongodb::bson::{doc, Bson, Document};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use steadycache_api::{Backend, Cache, Error, Policy};
use steadycache_mongo::testing::MongoServer;
use steadycache_mongo::{MongoBackend, MongoConfig};

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
    let policy = Policy::ttl(Duration::from_secs(60));
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
