//! # For backend authors
//!
//! What a crate that implements [`Backend`](crate::Backend) needs beyond the trait itself, in one
//! place, so that the rest of the API stays what a user of `#[cached]` and
//! [`Cache`](crate::Cache) reads:
//!
//! * URL schemes: [`Scheme`], [`SCHEMES`] (link-time registration through [`linkme`]) and
//!   [`register_scheme`] (at run time), which [`Cache::from_url`](crate::Cache::from_url)
//!   dispatches on;
//! * the blocking fast path of local stores: [`BlockingBackend`], [`run_blocking`];
//! * the library's own runtime for clients whose background tasks must outlive a caller's
//!   runtime: [`library_runtime`], [`block_on`];
//! * one way to do the small things every backend does: [`check_ttl`] and [`deadline`] /
//!   [`deadline_i64`] for expiry, [`unix_millis`], [`parse_flag`] / [`parse_count`] for URL
//!   options, [`redact_url`] for every URL a message shows, [`io_error`] for I/O errors by
//!   meaning;
//! * for bulk removals (`delete_prefix`, `delete_matching`): [`BulkProgress`], how many keys a
//!   removal stopped part way had removed;
//! * for stores that share their keyspace with other data: [`is_library_value`], whether a key
//!   is one the library wrote, so that a clear removes only those;
//! * for stores that judge expiry in the client (MongoDB, S3): [`StoreClock`], an estimate of
//!   the store's clock from the times its answers carry, and [`SKEW_MARGIN`], how far past its
//!   expiry an entry must be before a read deletes it;
//! * for a [`CacheManager`](crate::CacheManager) of your own: [`async_trait`](macro@async_trait) (the trait's
//!   methods are `async_trait` methods), and, when its I/O is local, the blocking path:
//!   [`BlockingManager`] with [`load_blocking_with_hooks`] / [`save_blocking_with_hooks`];
//! * the guards' internals: [`Permit`] (what a [`CallBreaker`](crate::CallBreaker) lets
//!   through) and [`Counter`] (one of the stats' counters);
//! * the defaults and formats: [`DEFAULT_BACKEND_TIMEOUT`], [`DEFAULT_BULK_TIMEOUT`],
//!   [`DEFAULT_MAX_BYTES`], [`DEFAULT_FAIL_SAFE_THROTTLE`], [`FORMAT_VERSION`] (of the stored
//!   envelope), and [`parse_duration`] (the durations of URLs and attributes).
//!
//! The backend crates of this workspace (`steadycache-file`, `-sqlite`, `-redis`, `-mongo`,
//! `-s3`) use exactly these; a new backend follows one of them (see `ARCHITECTURE.md`).

use crate::error::{Error, Result};

pub use crate::backend::{check_ttl, BlockingBackend};
pub use crate::bulk::{BulkProgress, DEFAULT_BULK_TIMEOUT};
pub use crate::cache::DEFAULT_BACKEND_TIMEOUT;
pub use crate::envelope::FORMAT_VERSION;
pub use crate::guard::Permit;
pub use crate::manager::{load_blocking_with_hooks, save_blocking_with_hooks, BlockingManager};
pub use crate::memory::DEFAULT_MAX_BYTES;
pub use crate::mode::caller_deadline;
pub use crate::options::{parse_bytes, parse_count, parse_flag, redact_url};
pub use crate::policy::DEFAULT_FAIL_SAFE_THROTTLE;
pub use crate::runtime::{block_on, library_runtime};
pub use crate::scheme::{register_scheme, Scheme, SchemeOpener, SCHEMES};
pub use crate::skew::{StoreClock, SKEW_MARGIN};
pub use crate::stats::Counter;
pub use crate::time::parse_duration;
pub use crate::time::{deadline, deadline_i64, unix_millis};
pub use async_trait::async_trait;
/// The link-time registry behind [`SCHEMES`], re-exported so backend crates need no dependency
/// of their own on it.
pub use linkme;

/// How many bytes of a stored string [`is_library_value`] reads.
pub const LIBRARY_HEAD_LEN: usize = 40;

/// Whether `key` (without a store's own key prefix) is one the library wrote, given `head`, the
/// first [`LIBRARY_HEAD_LEN`] bytes of the string it holds (`None`: it holds no string, or
/// nothing). The library's keys are: `steadycache#…` (tag times, the guards' state, the bus
/// feed), whatever they hold; stored entries, by the envelope's magic or its JSON form,
/// whatever their name; and the bookkeeping keys of memoized calls by name and content
/// (`<key>#lock` holding one of the engine's tokens, `#done` a time, `#calls` and
/// `#hits<n>` a count). A store whose keyspace may hold other data (a Redis without a key
/// prefix) removes only such keys in its bulk removals.
pub fn is_library_value(key: &str, head: Option<&[u8]>) -> bool {
    if key.starts_with("steadycache#") {
        return true;
    }
    head.is_some_and(|h| crate::envelope::is_entry_head(h) || crate::key::is_bookkeeping(key, h))
}

/// An I/O error of backend `backend` during `what`, by meaning: permission denied, read-only
/// storage, a full disk and an invalid path are permanent ([`Error::Backend`]); anything else may
/// pass ([`Error::Unavailable`], transient).
pub fn io_error(backend: &'static str, what: &str, e: std::io::Error) -> Error {
    use std::io::ErrorKind as K;
    let permanent = matches!(
        e.kind(),
        K::PermissionDenied
            | K::ReadOnlyFilesystem
            | K::StorageFull
            | K::QuotaExceeded
            | K::InvalidInput
            | K::NotADirectory
            | K::IsADirectory
    );
    Error::from_backend(backend, format!("{what}: {e}"), !permanent, e)
}

/// Run blocking I/O from async code: on tokio's blocking pool when inside a runtime, inline
/// otherwise. A blocking task that panics or is cancelled is an [`Error::Unavailable`] of
/// `backend`, never a panic of the caller.
pub async fn run_blocking<T, F>(backend: &'static str, f: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    match tokio::runtime::Handle::try_current() {
        Ok(h) => h
            .spawn_blocking(f)
            .await
            .map_err(|e| Error::unavailable(backend, format!("blocking task failed: {e}")))?,
        Err(_) => f(),
    }
}

/// Create `dir` and its missing parents readable by this user only (mode `0700` on Unix): a
/// cache directory's file names are keys, and keys name other users' data. Directories that
/// already exist keep their mode (the user chose it).
pub fn create_private_dir_all(dir: &std::path::Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(dir)
    }
}

/// Create `path` if it is missing, readable and writable by this user only (mode `0600` on
/// Unix); an existing file is left as it is.
pub fn create_private_file(path: &std::path::Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path).map(drop)
}
