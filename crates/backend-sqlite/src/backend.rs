//! [`SqliteBackend`]: the [`Backend`] contract on one SQLite table. The design (schema,
//! concurrency, error model) is documented on [`SqliteBackend`], where users of the crate see it.

use crate::config::SqliteConfig;
use crate::error::NAME;
use crate::pool::Inner;
use async_trait::async_trait;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use steadycache_api::plumbing::{check_ttl, run_blocking, BlockingBackend};
use steadycache_api::{Backend, Capabilities, Result};

/// A steadycache backend on a SQLite database: one row per entry, safe for many processes.
///
/// # Storage
/// One table, created idempotently (`CREATE ... IF NOT EXISTS`, so several processes may open a
/// new file at once):
///
/// ```sql
/// CREATE TABLE steadycache_entries (
///     key        TEXT PRIMARY KEY NOT NULL,
///     value      BLOB NOT NULL,
///     stale_at   INTEGER,          -- informational, from the envelope; NULL = never
///     expires_at INTEGER,          -- from the ttl given to `set`; NULL = never
///     created_at INTEGER NOT NULL  -- from the envelope, else the time of the write
/// );
/// CREATE INDEX steadycache_entries_expires_at ON steadycache_entries(expires_at);
/// ```
///
/// Times are milliseconds since the Unix epoch. A value is opaque bytes to this backend; when it
/// happens to be a steadycache envelope ([`Entry`]) its `stale_at` and `created_at` are copied into
/// their columns for people inspecting the file with `sqlite3`, but only `expires_at` (from the
/// ttl passed to `set`) decides liveness. A row is live while `expires_at IS NULL OR expires_at >
/// now`; reads ignore dead rows and delete them lazily, [`SqliteBackend::purge_expired`] sweeps
/// them in bulk (and runs once on a background thread when a file database is opened).
///
/// # Concurrency
/// Every connection runs in WAL mode (readers never wait for the writer) with a busy timeout
/// (default 5 s) and `synchronous=NORMAL` (`FULL` with `durable`): in WAL mode `NORMAL` never
/// corrupts the database and loses at most the last transactions on power loss, not on a crash of
/// the process. Each operation is one autocommit statement, so it is atomic across connections
/// and processes: `set` is an upsert, `set_if_absent` and `acquire_lock` are an upsert that takes
/// over only an expired row (`changes() == 1` says whether it wrote), `release_lock` deletes the
/// row only if it holds the caller's token, `extend_lock` is an `UPDATE` of `expires_at` on the
/// row only if it holds the caller's token and is live (`changes() == 1`: an expired lock is
/// never revived). `incr` is the one read-modify-write and runs in a `BEGIN IMMEDIATE`
/// transaction.
///
/// A counter is a row whose value is its ASCII decimal (`get` reads `b"42"`); its expiry is set
/// when it is created and kept by later increments. A lock is a row keyed by the lock key whose
/// value is the holder's token, with the lock's ttl as expiry (always set, so `extend_lock`
/// never takes a value stored without a ttl for a lock). `delete_prefix` deletes the key
/// range `[prefix, successor)` on the primary-key index (see [`SqliteBackend::prefix_successor`];
/// TEXT compares bytewise) and counts the live rows among those removed.
///
/// A `rusqlite::Connection` is `Send` but not `Sync`, so the backend keeps a small pool (4 by
/// default) of connections, each behind a mutex; an operation takes the first free one, starting
/// round-robin, and waits on one only when all are busy. Statements are prepared once per
/// connection (`prepare_cached`, warmed at open, which also checks the table's shape), so a hit
/// is one cached `SELECT` without an explicit transaction: a few microseconds.
///
/// `sqlite::memory:` is a private in-memory database of this backend value (not shared with other
/// processes, nor with another `SqliteBackend`, and gone when it is dropped). It uses a single
/// connection, since each SQLite connection to `:memory:` is a database of its own.
///
/// # Errors
/// SQLite errors become [`Error`] by meaning: busy / locked (another process holds the database
/// longer than the busy timeout), interrupted, out of memory and I/O errors are transient
/// ([`Error::Unavailable`]); read-only or permission denied, a full disk, a corrupt database or a
/// file that is not a database, and a table of another shape are permanent ([`Error::Backend`]).
/// Nothing here panics on a bad file: opening a file that is not a database fails with a permanent
/// error, and so does a query reaching a corrupt page.
///
/// # Use
/// Cloning is cheap and shares the connections. Async methods run on tokio's blocking pool;
/// sync callers use the [`BlockingBackend`] methods directly (`blocking()` returns this backend).
///
/// ```no_run
/// # use steadycache_sqlite::{SqliteBackend, SqliteConfig};
/// let cache_db = SqliteBackend::open(SqliteConfig::new("/var/cache/app/cache.db"))?;
/// let scratch = SqliteBackend::from_url("sqlite::memory:")?;
/// # Ok::<(), steadycache_api::Error>(())
/// ```
///
/// [`Entry`]: steadycache_api::Entry
/// [`Error`]: steadycache_api::Error
/// [`Error::Unavailable`]: steadycache_api::Error::Unavailable
/// [`Error::Backend`]: steadycache_api::Error::Backend
#[derive(Clone)]
pub struct SqliteBackend {
    inner: Arc<Inner>,
}

impl fmt::Debug for SqliteBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteBackend")
            .field("config", self.inner.config())
            .field("connections", &self.inner.connections())
            .finish()
    }
}

impl SqliteBackend {
    /// Open (creating when missing) the database `config` names: sets WAL mode, the busy timeout
    /// and `synchronous`, creates the table and index if needed and opens the connection pool.
    /// A file that is not a SQLite database, or that cannot be opened read-write, is a permanent
    /// [`Error::Backend`]. For a file database, expired rows are then swept on a background
    /// thread (see [`SqliteConfig::with_purge_on_open`]); its errors are logged.
    ///
    /// This blocks (it opens files); from async code it takes a few milliseconds.
    ///
    /// [`Error::Backend`]: steadycache_api::Error::Backend
    pub fn open(config: SqliteConfig) -> Result<Self> {
        let purge = config.purge_on_open && !config.is_memory();
        let inner = Arc::new(Inner::open(config)?);
        if purge {
            let bg = Arc::clone(&inner);
            let spawned = std::thread::Builder::new()
                .name("steadycache-sqlite-purge".into())
                .spawn(move || match bg.purge_expired() {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(removed = n, "sqlite: purged expired rows"),
                    Err(e) => tracing::warn!(error = %e, "sqlite: purging expired rows failed"),
                });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "sqlite: could not start the purge thread");
            }
        }
        Ok(SqliteBackend { inner })
    }

    /// Parse a URL (see [`SqliteConfig::from_url`]) and [`open`](SqliteBackend::open) it.
    pub fn from_url(url: &str) -> Result<Self> {
        SqliteBackend::open(SqliteConfig::from_url(url)?)
    }

    /// The configuration.
    pub fn config(&self) -> &SqliteConfig {
        self.inner.config()
    }

    /// Delete every expired row now and return how many were removed (in batches of 1000, so
    /// other writers get the database in between). Blocking; expired rows are invisible anyway,
    /// so this only reclaims space.
    pub fn purge_expired(&self) -> Result<u64> {
        self.inner.purge_expired()
    }

    /// The smallest byte string above every string that starts with `prefix`, or `None` when
    /// there is none (the empty prefix, or one made only of `0xFF` bytes): drop trailing `0xFF`
    /// bytes, then add one to the last byte. `delete_prefix` deletes the key range
    /// `[prefix, successor)`.
    ///
    /// ```
    /// # use steadycache_sqlite::SqliteBackend;
    /// assert_eq!(SqliteBackend::prefix_successor(b"ns:"), Some(b"ns;".to_vec()));
    /// assert_eq!(SqliteBackend::prefix_successor(b"a\xff\xff"), Some(b"b".to_vec()));
    /// assert_eq!(SqliteBackend::prefix_successor(b""), None);
    /// ```
    pub fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
        let mut end = prefix.to_vec();
        while let Some(last) = end.pop() {
            if last < u8::MAX {
                end.push(last + 1);
                return Some(end);
            }
        }
        None
    }

    /// Remove an expired row off the async path: on tokio's blocking pool when there is a
    /// runtime (the read's caller never waits for it), else right here.
    fn delete_expired_in_background(&self, key: &str) {
        let (inner, key) = (Arc::clone(&self.inner), key.to_owned());
        match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                h.spawn_blocking(move || inner.delete_if_expired(&key));
            }
            Err(_) => inner.delete_if_expired(&key),
        }
    }

    async fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        run_blocking(NAME, move || f(&inner)).await
    }
}

#[async_trait]
impl Backend for SqliteBackend {
    fn name(&self) -> &str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        if self.inner.config().is_memory() {
            Capabilities::all()
                .with_shared(false)
                .with_persistent(false)
                .with_pubsub(false)
                .with_tracking(false)
        } else {
            Capabilities::all().with_pubsub(false).with_tracking(false)
        }
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        if self.inner.config().inline_reads {
            // See `SqliteConfig::with_inline_reads`: never waits for a connection here.
            if let Some(conn) = self.inner.try_conn() {
                let (value, expired) = Inner::read_on(&conn, key)?;
                drop(conn);
                if expired {
                    // The delete takes the write lock, which may wait up to `busy_timeout`:
                    // never on the caller's task.
                    self.delete_expired_in_background(key);
                }
                return Ok(value);
            }
        }
        let key = key.to_owned();
        self.run(move |db| db.get(&key)).await
    }

    async fn set(&self, key: &str, value: Vec<u8>, ttl: Option<Duration>) -> Result<()> {
        check_ttl(ttl)?;
        let key = key.to_owned();
        self.run(move |db| db.set(&key, &value, ttl)).await
    }

    async fn set_if_absent(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> Result<bool> {
        check_ttl(ttl)?;
        let key = key.to_owned();
        self.run(move |db| db.set_if_absent(&key, &value, ttl))
            .await
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        let key = key.to_owned();
        self.run(move |db| db.delete(&key)).await
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64> {
        let prefix = prefix.to_owned();
        self.run(move |db| db.delete_prefix(&prefix)).await
    }

    async fn delete_matching(&self, pattern: &steadycache_api::Glob) -> Result<u64> {
        let pattern = pattern.clone();
        self.run(move |db| db.delete_matching(&pattern)).await
    }

    async fn list_keys(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<steadycache_api::KeyPage> {
        let (prefix, cursor) = (prefix.to_owned(), cursor.map(str::to_owned));
        self.run(move |db| db.list_keys(&prefix, cursor.as_deref(), limit))
            .await
    }

    async fn incr(&self, key: &str, by: i64, ttl: Option<Duration>) -> Result<i64> {
        check_ttl(ttl)?;
        let key = key.to_owned();
        self.run(move |db| db.incr(&key, by, ttl)).await
    }

    async fn acquire_lock(&self, key: &str, token: &str, ttl: Duration) -> Result<bool> {
        check_ttl(Some(ttl))?;
        let key = key.to_owned();
        let token = token.to_owned();
        self.run(move |db| db.set_if_absent(&key, token.as_bytes(), Some(ttl)))
            .await
    }

    async fn release_lock(&self, key: &str, token: &str) -> Result<bool> {
        let key = key.to_owned();
        let token = token.to_owned();
        self.run(move |db| db.release_lock(&key, &token)).await
    }

    async fn extend_lock(&self, key: &str, token: &str, ttl: Duration) -> Result<bool> {
        check_ttl(Some(ttl))?;
        let key = key.to_owned();
        let token = token.to_owned();
        self.run(move |db| db.extend_lock(&key, &token, ttl)).await
    }

    async fn ping(&self) -> Result<()> {
        self.run(|db| db.ping()).await
    }

    fn blocking(&self) -> Option<&dyn BlockingBackend> {
        Some(self)
    }
}

impl BlockingBackend for SqliteBackend {
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
