//! Hit latency of a memoized function returning a 1 KB value on the on-disk backends
//! (FileBackend, SqliteBackend) beside the memory backend, sync and async, in one run.
//!
//! Run: `cargo bench --bench disk_hit --features file,sqlite`.
//! Targets (issue 3): a sync hit ≤ 10 µs and an async hit ≤ 25 µs on both disk backends. For
//! scale: Python's cachier pickle core took 332 µs per hit on the same kind of machine.
mod support;

use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use std::path::PathBuf;
use std::sync::OnceLock;
use steadycache::{cached, Cache, FileBackend, FileConfig, SqliteBackend, SqliteConfig};

const KEYS: u64 = 100;

fn dir() -> &'static PathBuf {
    static D: OnceLock<PathBuf> = OnceLock::new();
    D.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("steadycache-bench-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&d);
        d
    })
}

fn file_cache() -> Cache {
    let b = FileBackend::open(FileConfig::new(dir().join("files"))).expect("file backend");
    Cache::builder().backend(b).build()
}

fn sqlite_cache() -> Cache {
    let b = SqliteBackend::open(SqliteConfig::new(dir().join("cache.db"))).expect("sqlite backend");
    Cache::builder().backend(b).build()
}

fn value(x: u64) -> Vec<u8> {
    vec![(x % 251) as u8; 1024]
}

#[cached(ttl = "1h")]
fn mem_sync(x: u64) -> Vec<u8> {
    value(x)
}
#[cached(cache = file_cache(), ttl = "1h")]
fn file_sync(x: u64) -> Vec<u8> {
    value(x)
}
#[cached(cache = sqlite_cache(), ttl = "1h")]
fn sqlite_sync(x: u64) -> Vec<u8> {
    value(x)
}
#[cached(ttl = "1h")]
async fn mem_async(x: u64) -> Vec<u8> {
    value(x)
}
#[cached(cache = file_cache(), ttl = "1h")]
async fn file_async(x: u64) -> Vec<u8> {
    value(x)
}
#[cached(cache = sqlite_cache(), ttl = "1h")]
async fn sqlite_async(x: u64) -> Vec<u8> {
    value(x)
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    for k in 0..KEYS {
        mem_sync(k);
        file_sync(k);
        sqlite_sync(k);
        rt.block_on(async {
            mem_async(k).await;
            file_async(k).await;
            sqlite_async(k).await;
        });
    }
    let mut g = c.benchmark_group("disk_hit_sync_1k");
    let mut next = support::key_cycle(KEYS);
    g.bench_function("memory", |b| {
        b.iter(|| black_box(mem_sync(black_box(next()))))
    });
    g.bench_function("file", |b| {
        b.iter(|| black_box(file_sync(black_box(next()))))
    });
    g.bench_function("sqlite", |b| {
        b.iter(|| black_box(sqlite_sync(black_box(next()))))
    });
    g.finish();
    let mut g = c.benchmark_group("disk_hit_async_1k");
    g.bench_function("memory", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(mem_async(black_box(7)).await) })
    });
    g.bench_function("file", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(file_async(black_box(7)).await) })
    });
    g.bench_function("sqlite", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(sqlite_async(black_box(7)).await) })
    });
    g.finish();
    let hits = file_sync_cache().stats().hits + sqlite_sync_cache().stats().hits;
    assert!(hits > 0, "the disk benches must measure hits");
    let _ = std::fs::remove_dir_all(dir());
}

criterion_group!(benches, bench);
criterion_main!(benches);
