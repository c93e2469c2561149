//! # backend-file — steadycache on the local disk
//!
//! Two persistent backends that need no server and are safe for many processes on one machine:
//!
//! * [`FileBackend`] (feature `file`): one file per entry under
//!   `<root>/<namespace>/`, written to a temp file and renamed (a reader never sees a torn
//!   entry), read-modify-write operations serialized across processes by OS file locks.
//! * [`SqliteBackend`] (feature `sqlite`): one row per entry in a SQLite database in WAL mode
//!   with a busy timeout.
//!
//! With the crate linked in, [`Cache::from_url`](cache_api::Cache::from_url) opens
//! `file:///path` and `sqlite:///path` (or `sqlite::memory:`) URLs: each backend adds its
//! scheme to [`cache_api::SCHEMES`] at link time.
//!
//! Both implement the blocking twins of [`Backend`](cache_api::Backend) (`blocking()`), so a sync
//! memoized function reads its entry on its own thread with no runtime hop; async callers run
//! the same I/O on tokio's blocking pool.
#![deny(missing_docs)]

mod error;

#[cfg(feature = "file")]
mod file;
#[cfg(feature = "file")]
pub use file::{FileBackend, FileConfig};

#[cfg(feature = "sqlite")]
mod sqlite;
#[cfg(feature = "sqlite")]
pub use sqlite::{SqliteBackend, SqliteConfig};

#[cfg(feature = "file")]
#[cache_api::linkme::distributed_slice(cache_api::SCHEMES)]
#[linkme(crate = cache_api::linkme)]
static FILE_SCHEME: cache_api::Scheme = cache_api::Scheme {
    name: "file",
    open: |url| Ok(std::sync::Arc::new(FileBackend::from_url(url)?)),
};

#[cfg(feature = "sqlite")]
#[cache_api::linkme::distributed_slice(cache_api::SCHEMES)]
#[linkme(crate = cache_api::linkme)]
static SQLITE_SCHEME: cache_api::Scheme = cache_api::Scheme {
    name: "sqlite",
    open: |url| Ok(std::sync::Arc::new(SqliteBackend::from_url(url)?)),
};

/// Run blocking I/O from async code: on tokio's blocking pool when inside a runtime, inline
/// otherwise.
pub(crate) async fn run_blocking<T, F>(f: F) -> cache_api::Result<T>
where
    F: FnOnce() -> cache_api::Result<T> + Send + 'static,
    T: Send + 'static,
{
    match tokio::runtime::Handle::try_current() {
        Ok(h) => h.spawn_blocking(f).await.map_err(|e| {
            cache_api::Error::unavailable("file", format!("blocking task failed: {e}"))
        })?,
        Err(_) => f(),
    }
}
