//! A damaged SQLite row, seen through the engine: a logged miss, recomputed, healed. The checks
//! are `steadycache_api::testing::heal`'s.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use steadycache_api::testing::heal::{foreign_codec_case, heal_case, KEY};
use steadycache_sqlite::{SqliteBackend, SqliteConfig};

fn fresh_dir(tag: &str) -> PathBuf {
    steadycache_api::testing::temp_dir(&format!("heal-{tag}"))
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
