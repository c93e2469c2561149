//! S3, in one run on one s3s-fs server (the S3 test server) started on a free loopback port:
//!
//! * a memoized-function hit against a raw SDK `get_object` of the very same objects (the
//!   entries the function stored, found by listing its prefix), 1 KB values, on the same client;
//! * a 5 MB value round trip (`set` then `get` through the backend) against a raw
//!   `put_object` + `get_object` of the same bytes.
//!
//! First, outside criterion, 1,000 sequential hits of each are timed one by one and their p50
//! and p99 printed; then criterion measures the means.
//!
//! Run: `cargo bench --bench s3_hit --features s3` (needs the S3 test server, s3s-fs made atomic:
//! `scripts/test.sh` builds it into `.tools/s3s`).
mod support;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use std::sync::OnceLock;
use std::time::Duration;
use steadycache::{cached, Backend, Cache, S3Backend};
use steadycache_s3::testing::S3Server;

const KEYS: u64 = 100;
const BUCKET: &str = "bench";

fn server() -> &'static S3Server {
    static S: OnceLock<S3Server> = OnceLock::new();
    S.get_or_init(S3Server::start)
}

fn backend() -> &'static S3Backend {
    static B: OnceLock<S3Backend> = OnceLock::new();
    B.get_or_init(|| S3Backend::open(server().config(BUCKET, "hit/")).expect("backend"))
}

fn value(x: u64) -> Vec<u8> {
    vec![(x % 251) as u8; 1000]
}

fn s3_cache() -> Cache {
    Cache::builder().backend(backend().clone()).build()
}

#[cached(cache = s3_cache(), ttl = "1h")]
async fn st_hit(x: u64) -> Vec<u8> {
    value(x)
}

async fn raw_get(client: &Client, key: &str) -> Vec<u8> {
    let o = client
        .get_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .expect("get_object");
    o.body.collect().await.expect("body").to_vec()
}

async fn st_round_trip(b: &S3Backend, v: &[u8]) -> usize {
    b.set("big", v.to_vec(), Some(Duration::from_secs(3600)))
        .await
        .expect("set");
    b.get("big").await.expect("get").expect("present").len()
}

async fn raw_round_trip(client: &Client, v: &[u8]) -> usize {
    client
        .put_object()
        .bucket(BUCKET)
        .key("raw/big")
        .body(ByteStream::from(v.to_vec()))
        .send()
        .await
        .expect("put_object");
    raw_get(client, "raw/big").await.len()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (client, keys) = rt.block_on(async {
        for x in 0..KEYS {
            st_hit(x).await;
        }
        let client = backend().client().await.expect("client").clone();
        let listed = client
            .list_objects_v2()
            .bucket(BUCKET)
            .prefix("hit/")
            .send()
            .await
            .expect("list");
        let keys: Vec<String> = listed
            .contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_owned))
            .collect();
        assert_eq!(keys.len() as u64, KEYS, "one object per cached value");
        (client, keys)
    });
    let (client, keys) = (&client, &keys);
    let raw = |x: u64| raw_get(client, &keys[x as usize]);
    let big: Vec<u8> = (0..5usize << 20).map(|i| (i % 251) as u8).collect();
    let big = &big;
    rt.block_on(async {
        let (st50, st99) = support::percentiles(1000, KEYS, st_hit).await;
        let (raw50, raw99) = support::percentiles(1000, KEYS, raw).await;
        println!("s3 hit p50 / p99 (µs), 1,000 sequential hits each, 1 KB values:");
        println!("  steadycache #[cached]      {st50:7.1} / {st99:7.1}");
        println!("  raw SDK get_object         {raw50:7.1} / {raw99:7.1}");
        println!("  p50 ratio steadycache / raw = {:.3}", st50 / raw50);
        let (st50, _) = support::percentiles(20, 1, |_| st_round_trip(backend(), big)).await;
        let (raw50, _) = support::percentiles(20, 1, |_| raw_round_trip(client, big)).await;
        println!("s3 5 MB round trip p50 (ms), 20 each:");
        println!("  steadycache set + get      {:7.2}", st50 / 1000.0);
        println!("  raw put_object + get       {:7.2}", raw50 / 1000.0);
        println!("  p50 ratio steadycache / raw = {:.3}", st50 / raw50);
    });
    let mut g = c.benchmark_group("s3_hit_seq");
    let mut next = support::key_cycle(KEYS);
    g.bench_function("steadycache", |b| {
        b.to_async(&rt).iter(|| st_hit(black_box(next())))
    });
    g.bench_function("raw_get_object", |b| {
        b.to_async(&rt).iter(|| raw(black_box(next())))
    });
    g.finish();
    let mut g = c.benchmark_group("s3_round_trip_5mb");
    g.sample_size(10);
    g.bench_function("steadycache", |b| {
        b.to_async(&rt).iter(|| st_round_trip(backend(), big))
    });
    g.bench_function("raw_sdk", |b| {
        b.to_async(&rt).iter(|| raw_round_trip(client, big))
    });
    g.finish();
    assert!(
        st_hit_cache().stats().hits > 0,
        "the benchmark measured hits"
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
