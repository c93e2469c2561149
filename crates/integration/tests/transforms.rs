//! The ready manager hooks (issue 25, item 4): compression and encryption of every stored
//! entry, alone and together with a signed codec, on the memory and file backends (no server).
//! A refused entry (a bomb, another key, tampered bytes) is a counted miss, never a wrong value.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use steadycache::transform::{Compression, Encryption, Transformed, Transforms};
use steadycache::{
    Backend, Cache, CacheManager, Codec, DefaultManager, FileBackend, FileConfig, MemoryBackend,
    Policy,
};
use steadycache_api::testing::temp_dir;

const KEY_A: [u8; 32] = *b"key A: thirty-two bytes, secret!";
const KEY_B: [u8; 32] = *b"key B: thirty-two bytes, secret!";
const SIGNING: &[u8] = b"a signing key of 16+ bytes";

fn policy() -> Policy {
    Policy::expire_after(Duration::from_secs(600))
}

fn memory() -> Arc<dyn Backend> {
    Arc::new(MemoryBackend::default())
}

fn files(tag: &str) -> Arc<dyn Backend> {
    Arc::new(FileBackend::open(FileConfig::new(temp_dir(tag))).unwrap())
}

fn plain(backend: &Arc<dyn Backend>) -> DefaultManager {
    DefaultManager::new(backend.clone(), Codec::bincode())
}

fn cache(manager: impl CacheManager) -> Cache {
    Cache::builder().manager(manager).build()
}

fn keys(ring: &[(u32, [u8; 32])]) -> Encryption {
    Encryption::new(ring.iter().copied()).unwrap()
}

/// The bytes the store holds under a by-hand key.
fn raw(backend: &Arc<dyn Backend>, key: &str) -> Vec<u8> {
    let (b, key) = (backend.clone(), key.to_owned());
    steadycache::plumbing::block_on(async move { b.get(&key).await })
        .unwrap()
        .unwrap()
        .unwrap()
}

fn put_raw(backend: &Arc<dyn Backend>, key: &str, bytes: Vec<u8>) {
    let (b, key) = (backend.clone(), key.to_owned());
    steadycache::plumbing::block_on(async move { b.set(&key, bytes, None).await })
        .unwrap()
        .unwrap();
}

fn report(rows: usize) -> Vec<String> {
    (0..rows)
        .map(|i| format!("row {i}: all systems nominal"))
        .collect()
}

#[test]
fn compressed_entries_round_trip_and_small_ones_are_stored_raw() {
    for backend in [memory(), files("lz4")] {
        let c = cache(Transformed::new(Compression::default(), plain(&backend)));
        c.set_sync("big", &report(500), &policy()).unwrap();
        c.set_sync("small", &7u32, &policy()).unwrap();
        assert_eq!(c.get_sync::<Vec<String>>("big").unwrap(), Some(report(500)));
        assert_eq!(c.get_sync::<u32>("small").unwrap(), Some(7));
        let big = raw(&backend, "big");
        assert_eq!(big[0], 0xC1, "lz4 tag");
        assert!(big.len() * 4 < Codec::bincode().encode(&report(500)).unwrap().len());
        assert_eq!(&raw(&backend, "small")[..2], b"SC", "a plain envelope");
    }
}

#[test]
fn entries_written_before_compression_still_read() {
    let backend = memory();
    cache(plain(&backend))
        .set_sync("old", &report(500), &policy())
        .unwrap();
    let c = cache(Transformed::new(Compression::default(), plain(&backend)));
    assert_eq!(c.get_sync::<Vec<String>>("old").unwrap(), Some(report(500)));
    assert_eq!(c.stats().corrupt, 0);
}

#[test]
fn a_decompression_bomb_is_a_counted_miss() {
    let backend = memory();
    // 4 MiB of zeros: a few kilobytes once compressed.
    let writer = cache(Transformed::new(Compression::default(), plain(&backend)));
    writer
        .set_sync("bomb", &vec![0u8; 4 << 20], &policy())
        .unwrap();
    assert!(raw(&backend, "bomb").len() < 32 << 10);
    let bounded = Compression::default().with_max_decompressed(1 << 20);
    let reader = cache(Transformed::new(bounded, plain(&backend)));
    assert_eq!(reader.get_sync::<Vec<u8>>("bomb").unwrap(), None);
    assert_eq!(reader.stats().corrupt, 1);
    // A header that lies about its size (4 GiB from 9 bytes) is refused by the default bound.
    put_raw(
        &backend,
        "liar",
        vec![0xC1, 0xff, 0xff, 0xff, 0xff, 0x1f, 0, 1, 0],
    );
    let c = cache(Transformed::new(Compression::default(), plain(&backend)));
    assert_eq!(c.get_sync::<Vec<u8>>("liar").unwrap(), None);
    assert_eq!(c.stats().corrupt, 1);
}

#[test]
fn rotation_reads_old_keys_and_drops_removed_ones() {
    let backend = memory();
    let a = cache(Transformed::new(keys(&[(1, KEY_A)]), plain(&backend)));
    a.set_sync("k", &"under A", &policy()).unwrap();
    assert_eq!(raw(&backend, "k")[0], 0xE1);
    let rotated = cache(Transformed::new(
        keys(&[(2, KEY_B), (1, KEY_A)]),
        plain(&backend),
    ));
    assert_eq!(
        rotated.get_sync::<String>("k").unwrap().as_deref(),
        Some("under A")
    );
    rotated.set_sync("new", &"under B", &policy()).unwrap();
    assert_eq!(&raw(&backend, "new")[1..5], &2u32.to_le_bytes());
    let b_only = cache(Transformed::new(keys(&[(2, KEY_B)]), plain(&backend)));
    assert_eq!(b_only.get_sync::<String>("k").unwrap(), None);
    assert_eq!(b_only.stats().corrupt, 1);
    assert_eq!(
        b_only.get_sync::<String>("new").unwrap().as_deref(),
        Some("under B")
    );
}

#[test]
fn tampered_and_unencrypted_entries_are_misses() {
    let backend = memory();
    let c = cache(Transformed::new(keys(&[(1, KEY_A)]), plain(&backend)));
    c.set_sync("k", &12345u64, &policy()).unwrap();
    let mut bytes = raw(&backend, "k");
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    put_raw(&backend, "k", bytes);
    assert_eq!(c.get_sync::<u64>("k").unwrap(), None);
    cache(plain(&backend))
        .set_sync("plain", &1u64, &policy())
        .unwrap();
    assert_eq!(c.get_sync::<u64>("plain").unwrap(), None);
    assert_eq!(c.stats().corrupt, 2);
    let migrating = keys(&[(1, KEY_A)]).accept_unencrypted();
    cache(plain(&backend))
        .set_sync("plain", &1u64, &policy())
        .unwrap();
    let m = cache(Transformed::new(migrating, plain(&backend)));
    assert_eq!(m.get_sync::<u64>("plain").unwrap(), Some(1));
}

fn sealed(backend: &Arc<dyn Backend>, ring: &[(u32, [u8; 32])]) -> Arc<dyn CacheManager> {
    let codec = Codec::bincode().signed(SIGNING).unwrap();
    Transforms::new()
        .encrypt(keys(ring))
        .compress(Compression::default())
        .over(DefaultManager::new(backend.clone(), codec))
}

#[test]
fn compression_encryption_and_a_signed_codec_compose_on_files() {
    let backend = files("sealed");
    let manager = sealed(&backend, &[(1, KEY_A)]);
    assert!(manager.blocking().is_some(), "the file fast path is kept");
    let c = cache(manager);
    c.set_sync("big", &report(500), &policy()).unwrap();
    let stored = raw(&backend, "big");
    assert_eq!(stored[0], 0xE1, "encrypted last");
    assert!(stored.len() * 4 < Codec::bincode().encode(&report(500)).unwrap().len());
    assert_eq!(c.get_sync::<Vec<String>>("big").unwrap(), Some(report(500)));
    // The entry stays bound to its key (the envelope's key hash, the signed codec's MAC): the
    // same bytes under another key are refused.
    put_raw(&backend, "moved", stored);
    assert_eq!(c.get_sync::<Vec<String>>("moved").unwrap(), None);
    assert_eq!(c.stats().corrupt, 1);
}

#[test]
fn no_debug_output_shows_a_key() {
    let manager = sealed(&memory(), &[(1, KEY_A), (2, KEY_B)]);
    let shown = format!("{manager:?} {:?}", cache(manager.clone()));
    let key_text = String::from_utf8_lossy(&KEY_A[..]).into_owned();
    let key_bytes = format!("{:?}", &KEY_A[..6]);
    let key_bytes = key_bytes.trim_matches(|c| c == '[' || c == ']');
    assert!(!shown.contains("secret"), "{shown}");
    assert!(!shown.contains(&key_text[..10]), "{shown}");
    assert!(!shown.contains(key_bytes), "{shown}");
    assert!(shown.contains("key_ids: [1, 2]"), "{shown}");
}

static RUNS: AtomicU32 = AtomicU32::new(0);

fn sealed_files() -> Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE
        .get_or_init(|| cache(sealed(&files("memo"), &[(1, KEY_A)])))
        .clone()
}

#[steadycache::cached(cache = sealed_files(), ttl = "10m")]
fn nightly_report(rows: u32) -> Vec<String> {
    RUNS.fetch_add(1, Ordering::SeqCst);
    report(rows as usize)
}

#[test]
fn a_memoized_function_over_the_stack_runs_once() {
    assert_eq!(nightly_report(300), report(300));
    assert_eq!(nightly_report(300), report(300));
    assert_eq!(nightly_report(300), report(300));
    assert_eq!(RUNS.load(Ordering::SeqCst), 1);
    let stats = nightly_report_cache().stats();
    assert_eq!((stats.misses, stats.hits, stats.corrupt), (1, 2, 0));
    let key = nightly_report_cache().key(300).unwrap();
    let cache = nightly_report_cache().cache().clone();
    let stored = steadycache::plumbing::block_on(async move { cache.backend().get(&key).await });
    assert_eq!(
        stored.unwrap().unwrap().unwrap()[0],
        0xE1,
        "stored encrypted"
    );
}
