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
