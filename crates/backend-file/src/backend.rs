//! [`FileBackend`]: one file per entry in a directory tree, shared safely by every process of the
//! machine.
//!
//! The layout, file format, concurrency and housekeeping are documented on [`FileBackend`].

use async_trait::async_trait;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;
use std::thread;
use std::time::Duration;
use steadycache_api::plumbing::{
    create_private_dir_all, io_error, run_blocking, BlockingBackend, BulkProgress,
};
use steadycache_api::{Backend, Capabilities, Error, Result};

use crate::names::Location;
use crate::FileConfig;

/// The backend's name, in errors and logs.
pub(crate) const NAME: &str = "file";

/// The file backend: one file per entry under a directory, shared safely by every process of
/// the machine. Cheap to clone: clones share one state.
///
/// # Layout
///
/// ```text
/// <root>/
///   <namespace>/<entry>        one file per key: the key's part before its first ':' names the
///                              directory, the rest names the file
///   _/<entry>                  keys without ':'
///   <namespace>/.tmp-XXXXXX    a write in progress (renamed over <entry> when complete)
///   .locks/<namespace>/<entry> lock files of read-modify-write operations (never hold data)
///   .trash-<ms>-<random>/      a namespace an older version was removing (purged)
/// ```
///
/// The directory may hold a user's own files and folders beside these: only files that start
/// with this backend's magic (below) are entries. Nothing else is ever removed, overwritten,
/// evicted or counted, by a removal, a purge or a write (a write to a key whose path is a
/// user's file fails with an error instead), and a directory is removed only when one of the
/// backend's removals emptied it.
///
/// Directory and file names are encoded so that they are valid and distinct on every filesystem,
/// including case-insensitive ones (macOS, Windows):
///
/// * `a`-`z`, `0`-`9` and `-` stay as they are; `.` too, except as the first or last byte;
/// * every other byte (upper-case letters included, so that `A` and `a` never share a file) is
///   written `_` followed by two lower-case hex digits (`:` → `_3a`, `_` → `_5f`);
/// * a name that would start with `h-` or be a Windows device name (`con`, `nul`, `com1`, ...) has
///   its first byte escaped; the empty name is `_empty`;
/// * a name longer than 120 bytes once encoded becomes `h-<XXH3-128 of the raw bytes, 32 hex>`.
///
/// No name is ever `.`, `..`, empty, hidden, or contains a separator, so no key can address
/// anything outside `<root>/<namespace>/`. Hashed names can collide in theory; every file stores
/// its full key and a read of another key's file is a miss.
///
/// # File format
///
/// ```text
/// offset   size  field
/// 0        4     magic "SCFE"
/// 4        1     format version (1)
/// 5        1     kind: 0 value, 1 counter (`incr`), 2 lock (`acquire_lock`, `extend_lock`)
/// 6        2     reserved, zero
/// 8        8     expires-at, ms since the Unix epoch, little endian; u64::MAX = never
/// 16       4     key length k, little endian
/// 20       k     the full key
/// 20+k     8     value length n, little endian
/// 28+k     n     the value (a counter is ASCII decimal, a lock is its token)
/// 28+k+n   8     XXH3-64 of every byte before it, little endian
/// ```
///
/// A file that starts with the magic but does not parse, has the wrong length or the wrong
/// checksum (truncated, garbled, written by another format version) is logged with `tracing::warn!` and removed; `get`
/// reports it as [`Error::Corrupt`] (which the engine counts and treats as a miss), the
/// read-modify-write operations as absent. An expired entry reads as a miss and is removed on
/// the spot.
///
/// # Concurrency
///
/// * `get` reads the whole file with one `read`; `set` writes a temp file in the same directory
///   and renames it over the entry, so a reader sees the old or the new entry, never a torn one.
///   Neither takes a lock. With [`FileConfig::durable`] the temp file is fsynced before the
///   rename and the directory after it.
/// * `set_if_absent`, `incr`, `acquire_lock`, `extend_lock` and `release_lock` take an
///   exclusive OS lock ([`File::lock`](std::fs::File::lock), `flock` on Unix) on the key's lock
///   file, so they are atomic across threads and processes. The OS drops the lock of a process
///   that dies; the lock *entry* written by `acquire_lock` carries its ttl, so a dead holder's
///   lock expires. `extend_lock` checks, under that OS lock, that the entry is a live lock
///   holding the caller's token, and rewrites it (temp file and rename) with the new expiry.
///   Lock files live under `.locks/`, apart from the entries, so that removing a namespace never
///   removes a lock file someone holds. Waiting for a lock file gives up after 10 s with a
///   transient error.
/// * Plain `set` and `delete` do not take the key's lock: mixing them with `incr` or locks on the
///   same key at the same moment is last-writer-wins.
/// * `delete_prefix` and `delete_matching` remove entry by entry (a reader may see part of a
///   namespace removed), so that a user's file in a namespace directory survives a clear.
///
/// # Housekeeping
///
/// [`FileBackend::purge_expired`] removes expired and corrupt entries, temp files older than a
/// minute (left by crashed writers), orphan lock files and the namespace directories it empties;
/// [`FileBackend::open`] runs one in a background thread. With [`FileConfig::max_bytes`], a
/// purge and every 100th write (in the background) also remove the least recently used entries
/// (by file mtime; a hit refreshes the mtime at most once a minute) until the entries take at
/// most 90 % of the bound. Held locks and counters are never evicted.
#[derive(Clone)]
pub struct FileBackend {
    inner: Arc<Inner>,
}

/// The state every clone of a [`FileBackend`] shares; the operations are its methods, one module
/// per section (`ops`, `rmw`, `prefix`, `housekeeping`).
pub(crate) struct Inner {
    /// `config.root` made absolute.
    pub(crate) root: PathBuf,
    pub(crate) config: FileConfig,
    pub(crate) writes: AtomicU64,
    pub(crate) evicting: AtomicBool,
}

impl fmt::Debug for FileBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileBackend")
            .field("root", &self.inner.root)
            .field("config", &self.inner.config)
            .finish()
    }
}

impl FileBackend {
    /// Open (creating it when missing) the cache directory of `config`, and start one
    /// [`purge_expired`](FileBackend::purge_expired) in a background thread unless
    /// [`purge_on_open`](FileConfig::purge_on_open) is off.
    pub fn open(config: FileConfig) -> Result<Self> {
        if config.max_bytes == Some(0) {
            return Err(Error::Config("max_bytes must be above zero".into()));
        }
        if config.root.as_os_str().is_empty() {
            return Err(Error::Config("the cache directory path is empty".into()));
        }
        if fs::metadata(&config.root).is_ok_and(|m| !m.is_dir()) {
            return Err(Error::backend(
                NAME,
                format!("`{}` is not a directory", config.root.display()),
            ));
        }
        refuse_foreign_symlink(&config.root)?;
        create_private_dir_all(&config.root).map_err(|e| {
            io_error(
                NAME,
                &format!("create cache directory `{}`", config.root.display()),
                e,
            )
        })?;
        let root = std::path::absolute(&config.root).map_err(|e| {
            io_error(
                NAME,
                &format!("resolve cache directory `{}`", config.root.display()),
                e,
            )
        })?;
        let meta = fs::metadata(&root)
            .map_err(|e| io_error(NAME, &format!("inspect `{}`", root.display()), e))?;
        if !meta.is_dir() {
            return Err(Error::backend(
                NAME,
                format!("`{}` is not a directory", root.display()),
            ));
        }
        let inner = Arc::new(Inner {
            root,
            config,
            writes: AtomicU64::new(0),
            evicting: AtomicBool::new(false),
        });
        if inner.config.purge_on_open {
            let bg = Arc::clone(&inner);
            let spawned = thread::Builder::new()
                .name("steadycache-file-purge".into())
                .spawn(move || match bg.purge() {
                    Ok(n) => tracing::debug!(root = %bg.root.display(), removed = n, "purged"),
                    Err(e) => {
                        tracing::warn!(root = %bg.root.display(), error = %e, "purge on open failed")
                    }
                });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "could not start the purge thread");
            }
        }
        Ok(FileBackend { inner })
    }

    /// Open the directory of a `file://` url (see [`FileConfig::from_url`]).
    pub fn from_url(url: &str) -> Result<Self> {
        FileBackend::open(FileConfig::from_url(url)?)
    }

    /// The configuration it was opened with.
    pub fn config(&self) -> &FileConfig {
        &self.inner.config
    }

    /// The cache directory, absolute.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// Where the entry of `key` lives (whether or not it exists).
    pub fn entry_path(&self, key: &str) -> PathBuf {
        Location::of(key).path_under(&self.inner.root)
    }

    /// Remove expired and corrupt entries, temp files and trash older than a minute, orphan lock
    /// files and empty namespace directories; then, with [`max_bytes`](FileConfig::max_bytes),
    /// evict as [`enforce_max_bytes`](FileBackend::enforce_max_bytes) does. Returns how many
    /// expired or corrupt entries it removed (temp files, lock files and evictions are not
    /// counted). Blocking I/O: from async code, call it on a blocking thread.
    pub fn purge_expired(&self) -> Result<u64> {
        self.inner.purge()
    }

    /// With [`max_bytes`](FileConfig::max_bytes): when the entry files take more than the bound,
    /// remove the least recently used ones (oldest mtime first; held locks and live counters are
    /// kept) until they take at most 90 % of it. Returns how many it removed; 0 without a bound.
    /// Blocking I/O.
    pub fn enforce_max_bytes(&self) -> Result<u64> {
        self.inner.enforce_max_bytes()
    }
}

#[async_trait]
impl Backend for FileBackend {
    fn name(&self) -> &str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::all().with_pubsub(false).with_tracking(false)
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        if self.inner.config.inline_reads {
            // See `FileConfig::inline_reads`: cheaper than a hop to the blocking pool.
            return self.inner.get(key);
        }
        let inner = Arc::clone(&self.inner);
        let key = key.to_owned();
        run_blocking(NAME, move || inner.get(&key)).await
    }

    async fn set(&self, key: &str, value: Vec<u8>, ttl: Option<Duration>) -> Result<()> {
        let inner = Arc::clone(&self.inner);
        let key = key.to_owned();
        run_blocking(NAME, move || inner.set(&key, &value, ttl)).await
    }

    async fn set_if_absent(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> Result<bool> {
        let inner = Arc::clone(&self.inner);
        let key = key.to_owned();
        run_blocking(NAME, move || inner.set_if_absent(&key, &value, ttl)).await
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        let inner = Arc::clone(&self.inner);
        let key = key.to_owned();
        run_blocking(NAME, move || inner.delete(&key)).await
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64> {
        let inner = Arc::clone(&self.inner);
        let prefix = prefix.to_owned();
        let progress = BulkProgress::current();
        run_blocking(NAME, move || inner.delete_prefix(&prefix, &progress)).await
    }

    async fn delete_matching(&self, pattern: &steadycache_api::Glob) -> Result<u64> {
        let inner = Arc::clone(&self.inner);
        let pattern = pattern.clone();
        let progress = BulkProgress::current();
        run_blocking(NAME, move || inner.delete_matching(&pattern, &progress)).await
    }

    async fn list_keys(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<steadycache_api::KeyPage> {
        let inner = Arc::clone(&self.inner);
        let (prefix, cursor) = (prefix.to_owned(), cursor.map(str::to_owned));
        run_blocking(NAME, move || {
            inner.list_keys(&prefix, cursor.as_deref(), limit)
        })
        .await
    }

    async fn incr(&self, key: &str, by: i64, ttl: Option<Duration>) -> Result<i64> {
        let inner = Arc::clone(&self.inner);
        let key = key.to_owned();
        run_blocking(NAME, move || inner.incr(&key, by, ttl)).await
    }

    async fn acquire_lock(&self, key: &str, token: &str, ttl: Duration) -> Result<bool> {
        let inner = Arc::clone(&self.inner);
        let (key, token) = (key.to_owned(), token.to_owned());
        run_blocking(NAME, move || inner.acquire_lock(&key, &token, ttl)).await
    }

    async fn release_lock(&self, key: &str, token: &str) -> Result<bool> {
        let inner = Arc::clone(&self.inner);
        let (key, token) = (key.to_owned(), token.to_owned());
        run_blocking(NAME, move || inner.release_lock(&key, &token)).await
    }

    async fn extend_lock(&self, key: &str, token: &str, ttl: Duration) -> Result<bool> {
        let inner = Arc::clone(&self.inner);
        let (key, token) = (key.to_owned(), token.to_owned());
        run_blocking(NAME, move || inner.extend_lock(&key, &token, ttl)).await
    }

    async fn ping(&self) -> Result<()> {
        let inner = Arc::clone(&self.inner);
        run_blocking(NAME, move || inner.ping()).await
    }

    fn blocking(&self) -> Option<&dyn BlockingBackend> {
        Some(self)
    }
}

impl BlockingBackend for FileBackend {
    fn get_blocking(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.inner.get(key)
    }

    fn set_blocking(&self, key: &str, value: Vec<u8>, ttl: Option<Duration>) -> Result<()> {
        self.inner.set(key, &value, ttl)
    }

    fn delete_blocking(&self, key: &str) -> Result<bool> {
        self.inner.delete(key)
    }
}

/// A root that is a symbolic link owned by another user lets that user point the cache wherever
/// they like (a directory of this user's to fill or to clear): refused. A link of this user's
/// own, or a real directory, is fine.
fn refuse_foreign_symlink(root: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let Ok(link) = fs::symlink_metadata(root) {
            if link.file_type().is_symlink() {
                // This process's user: the owner of a file it creates.
                let me = tempfile::tempfile()
                    .and_then(|f| f.metadata())
                    .map_err(|e| io_error(NAME, "find this process's user", e))?
                    .uid();
                if link.uid() != me {
                    return Err(Error::Config(format!(
                        "`{}` is a symbolic link owned by another user (uid {}): refusing it as a \
                         cache directory",
                        root.display(),
                        link.uid()
                    )));
                }
            }
        }
    }
    #[cfg(not(unix))]
    let _ = root;
    Ok(())
}
