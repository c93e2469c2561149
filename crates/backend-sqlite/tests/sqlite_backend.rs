//! The SQLite backend: the conformance suite on a file and in memory, sharing between two
//! backends on one file, prefix ranges, bad files and URLs.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use steadycache_api::{Backend, Entry, Error};
use steadycache_sqlite::{SqliteBackend, SqliteConfig};

/// A fresh directory that outlives the test (the backend and its purge thread may still use it).
fn fresh_dir() -> PathBuf {
    tempfile::tempdir().expect("temp dir").keep()
}

fn open_file(path: &std::path::Path) -> SqliteBackend {
    SqliteBackend::open(SqliteConfig::new(path)).expect("open sqlite database")
}

mod conformance {
    use super::*;

    steadycache_api::conformance_tests!(async {
        let dir = fresh_dir();
        Arc::new(open_file(&dir.join("cache.db"))) as Arc<dyn Backend>
    });
}

/// The same contract with async reads on tokio's blocking pool instead of inline.
mod conformance_blocking_pool {
    use super::*;

    steadycache_api::conformance_tests!(async {
        let cfg = SqliteConfig::new(fresh_dir().join("cache.db")).with_inline_reads(false);
        Arc::new(SqliteBackend::open(cfg).expect("open sqlite database")) as Arc<dyn Backend>
    });
}

mod memory {
    use super::*;

    steadycache_api::conformance_tests!(async {
        Arc::new(SqliteBackend::from_url("sqlite::memory:").expect("open in memory"))
            as Arc<dyn Backend>
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_backends_on_one_file_share_data_and_exclusivity() {
    let path = fresh_dir().join("shared.db");
    let a = Arc::new(open_file(&path));
    let b = Arc::new(open_file(&path));

    a.set("k", b"from a".to_vec(), None).await.unwrap();
    assert_eq!(b.get("k").await.unwrap().as_deref(), Some(&b"from a"[..]));
    b.set("k", b"from b".to_vec(), None).await.unwrap();
    assert_eq!(a.get("k").await.unwrap().as_deref(), Some(&b"from b"[..]));
    assert!(a.delete("k").await.unwrap());
    assert_eq!(b.get("k").await.unwrap(), None);
    assert!(!b.delete("k").await.unwrap());

    assert!(a.set_if_absent("nx", b"a".to_vec(), None).await.unwrap());
    assert!(!b.set_if_absent("nx", b"b".to_vec(), None).await.unwrap());
    assert_eq!(b.get("nx").await.unwrap().as_deref(), Some(&b"a"[..]));

    let ttl = Duration::from_secs(30);
    assert!(a.acquire_lock("lock", "ta", ttl).await.unwrap());
    assert!(!b.acquire_lock("lock", "tb", ttl).await.unwrap());
    assert!(!b.release_lock("lock", "tb").await.unwrap());
    assert!(a.release_lock("lock", "ta").await.unwrap());
    assert!(b.acquire_lock("lock", "tb", ttl).await.unwrap());
    assert!(!a.acquire_lock("lock", "ta", ttl).await.unwrap());
    assert!(b.release_lock("lock", "tb").await.unwrap());

    // Races between the two: one winner, no lost increments.
    let wins = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..32 {
        let backend = if i % 2 == 0 { a.clone() } else { b.clone() };
        let wins = wins.clone();
        tasks.push(tokio::spawn(async move {
            if backend
                .acquire_lock("race", &format!("t{i}"), ttl)
                .await
                .unwrap()
            {
                wins.fetch_add(1, Ordering::SeqCst);
            }
            if backend
                .set_if_absent("race-nx", vec![i as u8], None)
                .await
                .unwrap()
            {
                wins.fetch_add(1000, Ordering::SeqCst);
            }
            backend.incr("ctr", 1, None).await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(wins.load(Ordering::SeqCst), 1001);
    assert_eq!(a.incr("ctr", 0, None).await.unwrap(), 32);
    assert_eq!(b.get("ctr").await.unwrap().as_deref(), Some(&b"32"[..]));
}

#[test]
fn prefix_successor_edge_cases() {
    let succ = SqliteBackend::prefix_successor;
    assert_eq!(succ(b""), None);
    assert_eq!(succ(b"\xff"), None);
    assert_eq!(succ(b"\xff\xff\xff"), None);
    assert_eq!(succ(b"a"), Some(b"b".to_vec()));
    assert_eq!(succ(b"ns:"), Some(b"ns;".to_vec()));
    assert_eq!(succ(b"a\xff"), Some(b"b".to_vec()));
    assert_eq!(succ(b"ab\xff\xff"), Some(b"ac".to_vec()));
    assert_eq!(succ(b"a\x7f"), Some(b"a\x80".to_vec()));
    assert_eq!(succ(b"\x00"), Some(b"\x01".to_vec()));
    assert_eq!(succ(b"\xfe\xff"), Some(b"\xff".to_vec()));
    // The last char of U+10FFFF is 0xBF: the successor is not UTF-8, and must still work.
    assert_eq!(
        succ("x\u{10FFFF}".as_bytes()),
        Some(b"x\xf4\x8f\xbf\xc0".to_vec())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_prefix_ranges() {
    let b = open_file(&fresh_dir().join("prefix.db"));
    let keys = [
        "p:a\u{7f}",
        "p:a\u{7f}x",
        "p:a\u{80}",
        "p:\u{10FFFF}",
        "p:\u{10FFFF}z",
        "p:\u{10FFFF}\u{10FFFF}",
        "p;",
        "q",
    ];
    for k in keys {
        b.set(k, vec![1], None).await.unwrap();
    }
    // A prefix whose successor ends in 0x80 (not UTF-8 on its own).
    assert_eq!(b.delete_prefix("p:a\u{7f}").await.unwrap(), 2);
    assert!(b.get("p:a\u{80}").await.unwrap().is_some());
    // A prefix ending in the highest code point: successor bytes end in 0xC0.
    assert_eq!(b.delete_prefix("p:\u{10FFFF}").await.unwrap(), 3);
    assert!(b.get("p;").await.unwrap().is_some());
    // Nothing under a prefix: zero.
    assert_eq!(b.delete_prefix("nothing:").await.unwrap(), 0);
    // Expired rows are removed but not counted.
    b.set("p:ttl", vec![1], Some(Duration::from_millis(20)))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(b.delete_prefix("p:").await.unwrap(), 1); // p:a\u{80}
    assert_eq!(b.purge_expired().unwrap(), 0, "the expired row went too");
    // The empty prefix is everything.
    assert_eq!(b.delete_prefix("").await.unwrap(), 2); // p; and q
    assert_eq!(b.get("q").await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_and_envelope_columns() {
    let path = fresh_dir().join("purge.db");
    let b = SqliteBackend::open(SqliteConfig::new(&path).with_purge_on_open(false)).unwrap();
    for i in 0..3 {
        b.set(&format!("t{i}"), vec![1], Some(Duration::from_millis(20)))
            .await
            .unwrap();
    }
    let now = steadycache_api::plumbing::unix_millis();
    let mut entry = Entry::new(vec![9; 10], 1, 0);
    (entry.created_at, entry.stale_at) = (now - 5, now + 1_000);
    b.set("env", entry.encode().unwrap(), None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(b.purge_expired().unwrap(), 3);
    assert_eq!(b.purge_expired().unwrap(), 0);
    assert!(b.get("env").await.unwrap().is_some());

    let raw = rusqlite::Connection::open(&path).unwrap();
    let (stale_at, expires_at, created_at): (Option<i64>, Option<i64>, i64) = raw
        .query_row(
            "SELECT stale_at, expires_at, created_at FROM steadycache_entries WHERE key = 'env'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(stale_at, Some((now + 1_000) as i64));
    assert_eq!(expires_at, None);
    assert_eq!(created_at, (now - 5) as i64);
    let mode: String = raw
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn blocking_api_and_counters() {
    let b = SqliteBackend::from_url("sqlite::memory:").unwrap();
    let blocking = b.blocking().expect("blocking twins");
    blocking.set_blocking("k", vec![7; 1024], None).unwrap();
    assert_eq!(blocking.get_blocking("k").unwrap(), Some(vec![7; 1024]));
    assert!(blocking.delete_blocking("k").unwrap());
    assert_eq!(blocking.get_blocking("k").unwrap(), None);
    assert!(!blocking.delete_blocking("k").unwrap());
    assert!(blocking
        .set_blocking("z", vec![1], Some(Duration::ZERO))
        .is_err());

    // Outside a runtime the async methods run inline: one poll completes them.
    b.blocking()
        .unwrap()
        .set_blocking("n", b"41".to_vec(), None)
        .unwrap();
    assert_eq!(inline(b.incr("n", 1, None)).unwrap(), 42);
    assert_eq!(inline(b.get("n")).unwrap().as_deref(), Some(&b"42"[..]));
    inline(b.set("s", b"nope".to_vec(), None)).unwrap();
    let err = inline(b.incr("s", 1, None)).unwrap_err();
    assert!(matches!(err, Error::Backend { .. }), "{err:?}");
    inline(b.set("max", i64::MAX.to_string().into_bytes(), None)).unwrap();
    let err = inline(b.incr("max", 1, None)).unwrap_err();
    assert!(matches!(err, Error::Backend { .. }), "{err:?}");
    inline(b.ping()).unwrap();
}

/// Drive a future that never waits (no runtime: the backend runs its I/O inline).
fn inline<F: std::future::Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match fut.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("expected the future to complete inline"),
    }
}

/// The error of opening `path` and, if that works, of reading from it.
fn open_or_first_use_error(path: &std::path::Path) -> Error {
    match SqliteBackend::open(SqliteConfig::new(path).with_purge_on_open(false)) {
        Err(e) => e,
        Ok(b) => {
            let blocking = b.blocking().expect("blocking twins");
            let mut last = None;
            for i in 0..64 {
                if let Err(e) = blocking.get_blocking(&format!("k{i}")) {
                    last = Some(e);
                    break;
                }
            }
            last.or_else(|| b.purge_expired().err())
                .expect("a corrupt database must fail at open or first use")
        }
    }
}

#[test]
fn a_file_that_is_not_a_database_is_a_permanent_error() {
    let path = fresh_dir().join("not-a-db.db");
    let garbage: Vec<u8> = (0..8192u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&path, garbage).unwrap();
    let err = open_or_first_use_error(&path);
    eprintln!("{err}");
    assert!(matches!(err, Error::Backend { .. }), "{err:?}");
    assert!(!err.is_transient());
    assert!(err.to_string().contains("not a SQLite database"), "{err}");
}

#[test]
fn a_corrupt_database_is_a_permanent_error() {
    let path = fresh_dir().join("corrupt.db");
    {
        let b = SqliteBackend::open(SqliteConfig::new(&path).with_purge_on_open(false)).unwrap();
        let blocking = b.blocking().unwrap();
        for i in 0..64 {
            blocking
                .set_blocking(&format!("k{i}"), vec![i as u8; 2000], None)
                .unwrap();
        }
    } // the last connection closes: the WAL is checkpointed into the file
    let mut bytes = std::fs::read(&path).unwrap();
    assert!(bytes.len() > 8192, "the database has several pages");
    for (i, b) in bytes[4096..].iter_mut().enumerate() {
        *b = (i * 13 % 256) as u8;
    }
    std::fs::write(&path, bytes).unwrap();
    let err = open_or_first_use_error(&path);
    eprintln!("{err}");
    assert!(matches!(err, Error::Backend { .. }), "{err:?}");
    assert!(!err.is_transient());
}

#[test]
fn a_directory_is_not_a_database() {
    let dir = fresh_dir();
    let err = SqliteBackend::open(SqliteConfig::new(&dir)).unwrap_err();
    assert!(!err.is_transient(), "{err:?}");
}

#[test]
fn a_missing_parent_directory_is_created() {
    let path = fresh_dir().join("a/b/c/cache.db");
    let b = SqliteBackend::open(SqliteConfig::new(&path)).unwrap();
    b.blocking()
        .unwrap()
        .set_blocking("k", vec![1], None)
        .unwrap();
    assert!(path.exists());
}

#[test]
fn from_url_parsing() {
    let cfg = SqliteConfig::from_url("sqlite:///abs/path/to/cache.db").unwrap();
    assert_eq!(
        cfg.path.as_deref(),
        Some(std::path::Path::new("/abs/path/to/cache.db"))
    );
    assert!(!cfg.is_memory());
    assert_eq!(cfg.busy_timeout, Duration::from_secs(5));
    assert!(!cfg.durable);
    assert_eq!(cfg, SqliteConfig::new("/abs/path/to/cache.db"));

    let cfg = SqliteConfig::from_url("sqlite://relative/cache.db?").unwrap();
    assert_eq!(
        cfg.path.as_deref(),
        Some(std::path::Path::new("relative/cache.db"))
    );
    let cfg = SqliteConfig::from_url("sqlite:cache.db").unwrap();
    assert_eq!(cfg.path.as_deref(), Some(std::path::Path::new("cache.db")));
    let cfg = SqliteConfig::from_url("sqlite:///tmp/with%20space/c.db").unwrap();
    assert_eq!(
        cfg.path.as_deref(),
        Some(std::path::Path::new("/tmp/with space/c.db"))
    );

    let cfg = SqliteConfig::from_url(
        "SQLITE:///x.db?busy_timeout_ms=250&durable=true&pool_size=2&purge_on_open=off&inline_reads=0",
    )
    .unwrap();
    assert_eq!(cfg.busy_timeout, Duration::from_millis(250));
    assert!(cfg.durable);
    assert_eq!(cfg.pool_size, 2);
    assert!(!cfg.purge_on_open);
    assert!(!cfg.inline_reads);
    assert_eq!(
        cfg,
        SqliteConfig::new("/x.db")
            .with_busy_timeout(Duration::from_millis(250))
            .with_durable(true)
            .with_pool_size(2)
            .with_purge_on_open(false)
            .with_inline_reads(false)
    );

    for url in [
        "sqlite::memory:",
        "sqlite://:memory:",
        "sqlite::memory:?durable=0",
    ] {
        let cfg = SqliteConfig::from_url(url).unwrap();
        assert!(cfg.is_memory(), "{url}");
        assert_eq!(cfg.path.as_deref(), None);
    }
    assert!(SqliteConfig::new(":memory:").is_memory());
    let mem = SqliteBackend::from_url("sqlite::memory:").unwrap();
    assert!(!mem.capabilities().shared);
    assert!(!mem.capabilities().persistent);
    assert_eq!(mem.name(), "sqlite");
    assert!(format!("{mem:?}").contains("SqliteBackend"));

    for bad in [
        "redis://localhost",
        "sqlite",
        "sqlite://",
        "sqlite:///",
        "sqlite:///x.db?busy_timeout_ms=soon",
        "sqlite:///x.db?durable=maybe",
        "sqlite:///x.db?pool_size=0",
        "sqlite:///x.db?pool_size=1000",
        "sqlite:///x.db?colour=blue",
        "sqlite:///bad%zzescape.db",
    ] {
        let err = SqliteConfig::from_url(bad).unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{bad}: {err:?}");
    }
    let err = SqliteBackend::open(SqliteConfig::new("/x.db").with_pool_size(0)).unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
}

#[cfg(unix)]
#[tokio::test]
async fn the_database_and_its_directory_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let dir = fresh_dir().join("private");
    let path = dir.join("cache.db");
    let b = open_file(&path);
    b.set("k", b"v".to_vec(), None).await.unwrap();
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&path), 0o600);
    for suffix in ["-wal", "-shm"] {
        let side = dir.join(format!("cache.db{suffix}"));
        if side.exists() {
            assert_eq!(mode(&side), 0o600, "{}", side.display());
        }
    }
}

/// An async read runs on the calling task (`inline_reads`): reading an expired row must not
/// wait for the write lock to delete it, or another process's long write would stall the
/// executor for up to `busy_timeout`.
#[tokio::test(flavor = "current_thread")]
async fn an_inline_read_of_an_expired_row_never_waits_for_the_write_lock() {
    let path = fresh_dir().join("cache.db");
    let cfg = SqliteConfig::new(&path)
        .with_busy_timeout(Duration::from_secs(3))
        .with_purge_on_open(false);
    let b = SqliteBackend::open(cfg).unwrap();
    b.set("old", b"v".to_vec(), Some(Duration::from_millis(10)))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;
    // Another writer holds the database's write lock.
    let other = rusqlite::Connection::open(&path).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let t = std::time::Instant::now();
    assert_eq!(b.get("old").await.unwrap(), None, "expired");
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "the read waited {:?} for the write lock",
        t.elapsed()
    );
    other.execute_batch("ROLLBACK").unwrap();
}
