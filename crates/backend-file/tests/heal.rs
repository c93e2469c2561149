//! A damaged entry on disk, seen through the engine: each is a logged miss, the function runs
//! again, the caller gets the right value, and the rewritten entry is a hit afterwards (issue 3,
//! "corruption tests").

use backend_file::{FileBackend, FileConfig, SqliteBackend, SqliteConfig};
use cache_api::{Backend, BlockingBackend, Cache, Codec, Policy};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

const KEY: &str = "heal:k";

fn fresh_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "steadycache-heal-{tag}-{}-{:08x}",
        std::process::id(),
        fastrand::u32(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn cache(backend: Arc<dyn Backend>, codec: Codec) -> Cache {
    Cache::builder().backend_arc(backend).codec(codec).build()
}

/// One memoized call of `cache` for [`KEY`]: returns `"v<run>"` where run counts the executions.
async fn call(cache: &Cache, runs: &AtomicUsize) -> String {
    let policy = Policy::ttl(Duration::from_secs(600));
    cache
        .get_or_compute(KEY, &policy, || async {
            let n = runs.fetch_add(1, SeqCst) + 1;
            Ok::<_, std::io::Error>(format!("v{n}"))
        })
        .await
        .unwrap()
}

/// Fill the entry, damage it, and check: a miss counted as corrupt, one recomputation with the
/// right value, and then a hit on the healed entry.
async fn heal_case(backend: Arc<dyn Backend>, damage: impl FnOnce()) {
    let c = cache(backend, Codec::bincode());
    let runs = AtomicUsize::new(0);
    assert_eq!(call(&c, &runs).await, "v1");
    assert_eq!(call(&c, &runs).await, "v1", "a hit before the damage");
    damage();
    assert_eq!(call(&c, &runs).await, "v2", "the damaged entry is a miss");
    assert_eq!(runs.load(SeqCst), 2);
    assert_eq!(c.stats().corrupt, 1, "the damage is counted");
    assert_eq!(call(&c, &runs).await, "v2", "healed: a hit again");
    assert_eq!(runs.load(SeqCst), 2);
}

/// An entry written through a JSON cache is foreign to a bincode cache on the same store: a
/// miss, recomputed, healed.
async fn foreign_codec_case(backend: Arc<dyn Backend>) {
    let json = cache(Arc::clone(&backend), Codec::json());
    let bincode = cache(backend, Codec::bincode());
    let runs = AtomicUsize::new(0);
    assert_eq!(call(&json, &runs).await, "v1");
    assert_eq!(
        call(&bincode, &runs).await,
        "v2",
        "never the other codec's bytes"
    );
    assert_eq!(bincode.stats().corrupt, 1);
    assert_eq!(call(&bincode, &runs).await, "v2", "healed");
    assert_eq!(runs.load(SeqCst), 2);
}

fn file_backend(dir: &Path) -> FileBackend {
    FileBackend::open(FileConfig::new(dir).with_purge_on_open(false)).unwrap()
}

#[tokio::test]
async fn file_truncated_entry_heals() {
    let b = file_backend(&fresh_dir("trunc"));
    let path = b.entry_path(KEY);
    heal_case(Arc::new(b), || {
        let len = std::fs::metadata(&path).unwrap().len();
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(len / 2).unwrap();
    })
    .await;
}

#[tokio::test]
async fn file_random_bytes_heal() {
    let b = file_backend(&fresh_dir("random"));
    let path = b.entry_path(KEY);
    heal_case(Arc::new(b), || {
        let mut rng = fastrand::Rng::with_seed(11);
        let junk: Vec<u8> = (0..300).map(|_| rng.u8(..)).collect();
        std::fs::write(&path, junk).unwrap();
    })
    .await;
}

#[tokio::test]
async fn file_well_formed_file_with_a_garbage_payload_heals() {
    // The file format is intact (valid checksum), the envelope inside is not.
    let b = file_backend(&fresh_dir("payload"));
    let raw = b.clone();
    heal_case(Arc::new(b), || {
        raw.set_blocking(KEY, b"not an envelope".to_vec(), None)
            .unwrap();
    })
    .await;
}

#[tokio::test]
async fn file_entry_of_another_codec_heals() {
    foreign_codec_case(Arc::new(file_backend(&fresh_dir("codec")))).await;
}

fn sqlite_backend(path: &Path) -> SqliteBackend {
    SqliteBackend::open(SqliteConfig::new(path).with_purge_on_open(false)).unwrap()
}

fn sql(path: &Path, statement: &str) {
    let conn = rusqlite::Connection::open(path).unwrap();
    let changed = conn.execute(statement, [KEY]).unwrap();
    assert_eq!(changed, 1, "{statement}");
}

#[tokio::test]
async fn sqlite_garbage_blob_row_heals() {
    let path = fresh_dir("blob").join("cache.db");
    let b = sqlite_backend(&path);
    heal_case(Arc::new(b), || {
        sql(
            &path,
            "UPDATE steadycache_entries SET value = randomblob(200) WHERE key = ?1",
        )
    })
    .await;
}

#[tokio::test]
async fn sqlite_truncated_blob_heals() {
    let path = fresh_dir("sqltrunc").join("cache.db");
    let b = sqlite_backend(&path);
    heal_case(Arc::new(b), || {
        sql(
            &path,
            "UPDATE steadycache_entries SET value = substr(value, 1, length(value) - 3) \
             WHERE key = ?1",
        )
    })
    .await;
}

#[tokio::test]
async fn sqlite_entry_of_another_codec_heals() {
    let path = fresh_dir("sqlcodec").join("cache.db");
    foreign_codec_case(Arc::new(sqlite_backend(&path))).await;
}
