//! A disk cache that cannot be used makes the cache fail open: the function runs, callers get
//! their values, errors are counted — never a panic (issue 3).

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use steadycache::{cached, Cache, FileBackend, FileConfig, SqliteBackend, SqliteConfig};

/// A cache whose root directory is replaced by a regular file after it was opened: every read
/// and write then fails with "not a directory", as on a disk that went away.
fn broken_file_cache() -> Cache {
    let root = std::env::temp_dir().join(format!("steadycache-broken-{}", std::process::id()));
    let b = FileBackend::open(FileConfig::new(&root)).expect("open on a fresh dir");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::write(&root, b"not a directory").expect("replace the root by a file");
    Cache::builder().backend(b).build()
}

static FILE_RUNS: AtomicUsize = AtomicUsize::new(0);
#[cached(cache = broken_file_cache(), ttl = "10m")]
fn on_broken_disk(x: u32) -> u32 {
    FILE_RUNS.fetch_add(1, SeqCst);
    x + 1
}

#[test]
fn an_unusable_file_root_fails_open() {
    for _ in 0..3 {
        assert_eq!(on_broken_disk(1), 2);
    }
    assert_eq!(FILE_RUNS.load(SeqCst), 3, "every call ran the function");
    assert!(on_broken_disk_cache().stats().backend_errors >= 3);
}

#[test]
fn a_file_that_is_not_a_database_is_a_clear_error() {
    let path = std::env::temp_dir().join(format!("steadycache-notdb-{}.db", std::process::id()));
    std::fs::write(&path, vec![0x42u8; 8192]).expect("garbage file");
    let r = SqliteBackend::open(SqliteConfig::new(&path));
    let _ = std::fs::remove_file(&path);
    // Opening reads the header (it switches the journal to WAL), so garbage fails right here.
    match r {
        Ok(b) => panic!("opened a garbage file as a database: {b:?}"),
        Err(e) => assert!(
            !e.is_transient(),
            "a garbage file is a permanent error: {e}"
        ),
    }
}
