//! A memoized-function hit on MongoDB against a raw driver `find_one` of the same kind of
//! document on the same collection, in one run, on one nx-27017 server (the MongoDB-wire test
//! server) started on a free loopback port, 100-byte values.
//!
//! First, outside criterion, 2,000 sequential hits of each are timed one by one and their p50
//! and p99 printed; then criterion measures the mean of a sequential hit.
//!
//! Run: `cargo bench --bench mongo_hit --features mongo` (needs nx-27017: `scripts/test.sh`
//! installs it in `.tools/nx-venv`).
mod support;

use criterion::{criterion_group, criterion_main, Criterion};
use mongodb::bson::{doc, spec::BinarySubtype, Binary, Document};
use mongodb::Collection;
use std::hint::black_box;
use std::sync::OnceLock;
use steadycache::{cached, Cache, MongoBackend};
use steadycache_mongo::testing::MongoServer;

const KEYS: u64 = 100;

fn server() -> &'static MongoServer {
    static S: OnceLock<MongoServer> = OnceLock::new();
    S.get_or_init(MongoServer::start)
}

fn backend() -> &'static MongoBackend {
    static B: OnceLock<MongoBackend> = OnceLock::new();
    B.get_or_init(|| {
        MongoBackend::from_url(&format!("{}&collection=bench", server().url())).expect("backend")
    })
}

fn value(x: u64) -> Vec<u8> {
    vec![(x % 251) as u8; 100]
}

fn mongo_cache() -> Cache {
    Cache::builder().backend(backend().clone()).build()
}

#[cached(cache = mongo_cache(), ttl = "1h")]
async fn st_hit(x: u64) -> Vec<u8> {
    value(x)
}

async fn raw_find(coll: &Collection<Document>, x: u64) -> Vec<u8> {
    let d = coll
        .find_one(doc! { "_id": format!("raw:{x}") })
        .await
        .expect("find_one")
        .expect("raw hit");
    d.get_binary_generic("v").expect("binary").clone()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let coll = rt.block_on(async {
        let coll = backend().collection().await.expect("collection");
        for x in 0..KEYS {
            st_hit(x).await;
            coll.insert_one(doc! {
                "_id": format!("raw:{x}"),
                "v": Binary { subtype: BinarySubtype::Generic, bytes: value(x) },
            })
            .await
            .expect("insert");
        }
        coll
    });
    let coll = &coll;
    rt.block_on(async {
        let (st50, st99) = support::percentiles(2000, KEYS, st_hit).await;
        let (raw50, raw99) = support::percentiles(2000, KEYS, |x| raw_find(coll, x)).await;
        println!("mongodb hit p50 / p99 (µs), 2,000 sequential hits each:");
        println!("  steadycache #[cached]      {st50:7.1} / {st99:7.1}");
        println!("  raw driver find_one        {raw50:7.1} / {raw99:7.1}");
        println!("  p50 ratio steadycache / raw = {:.3}", st50 / raw50);
    });
    let mut g = c.benchmark_group("mongo_hit_seq");
    let mut next = support::key_cycle(KEYS);
    g.bench_function("steadycache", |b| {
        b.to_async(&rt).iter(|| st_hit(black_box(next())))
    });
    g.bench_function("raw_find_one", |b| {
        b.to_async(&rt).iter(|| raw_find(coll, black_box(next())))
    });
    g.finish();
    assert!(
        st_hit_cache().stats().hits > 0,
        "the benchmark measured hits"
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
