//! A custom `CacheManager` that overrides one hook pair: entries are gzip-compressed before they
//! are stored and decompressed after they are loaded. Everything else (keys, envelopes, codecs,
//! expiry, single-flight) is the default.
//!
//! It shows how to write a hook. Compression and encryption come ready in `steadycache::transform`
//! (features `compress`, `encrypt`: lz4 above a threshold with a bound on the decompressed size,
//! XChaCha20-Poly1305 with key rotation); use those rather than this one in a program.
//!
//! Run: `cargo run --example custom_manager`
use flate2::{read::GzDecoder, write::GzEncoder, Compression};
use std::io::{Read, Write};
use std::sync::Arc;
use steadycache::plumbing::async_trait;
use steadycache::{Backend, CacheManager, Codec, Error, MemoryBackend, Result};

/// Compresses every stored envelope with gzip.
#[derive(Debug)]
pub struct GzipManager {
    backend: Arc<dyn Backend>,
    codec: Codec,
}

impl GzipManager {
    /// Over `backend`, writing JSON (compresses well, readable once unzipped).
    pub fn new(backend: Arc<dyn Backend>) -> Self {
        GzipManager {
            backend,
            codec: Codec::json(),
        }
    }
}

#[async_trait]
impl CacheManager for GzipManager {
    fn backend(&self) -> &dyn Backend {
        &*self.backend
    }
    fn codec(&self) -> &Codec {
        &self.codec
    }
    fn before_save(&self, bytes: Vec<u8>) -> Result<Vec<u8>> {
        let mut enc = GzEncoder::new(Vec::new(), Compression::default());
        enc.write_all(&bytes)
            .and_then(|_| enc.finish())
            .map_err(|e| Error::Corrupt(format!("gzip: {e}")))
    }
    fn after_load(&self, bytes: Vec<u8>) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        GzDecoder::new(&bytes[..])
            .read_to_end(&mut out)
            .map_err(|e| Error::Corrupt(format!("not gzip: {e}")))?;
        Ok(out)
    }
}

/// A cache using [`GzipManager`] over an in-process byte store.
pub fn gzip_cache(backend: Arc<dyn Backend>) -> steadycache::Cache {
    steadycache::Cache::builder()
        .manager(GzipManager::new(backend))
        .build()
}

#[steadycache::cached(cache = gzip_cache(Arc::new(MemoryBackend::default())), ttl = "10m")]
pub fn report(rows: u32) -> Vec<String> {
    (0..rows)
        .map(|i| format!("row {i}: all systems nominal"))
        .collect()
}

pub fn main() {
    let first = report(1000);
    let second = report(1000);
    assert_eq!(first, second);
    let stats = report_cache().stats();
    println!("1000-row report: {} miss, {} hit", stats.misses, stats.hits);
    let key = report_cache().key(1000).expect("u32 serializes");
    let cache = report_cache().cache().clone();
    let stored = steadycache::plumbing::block_on(async move { cache.backend().get(&key).await })
        .ok()
        .and_then(|r| r.ok())
        .flatten()
        .map_or(0, |v| v.len());
    let json_len = serde_json::to_vec(&first).map(|v| v.len()).unwrap_or(0);
    println!("stored {stored} bytes gzip-compressed for {json_len} bytes of JSON");
}
