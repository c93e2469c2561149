//! The SQLite backend: [`SqliteBackend`] and [`SqliteConfig`]. The design (schema, concurrency,
//! error model) is documented on [`SqliteBackend`], where users of the crate see it.

use async_trait::async_trait;
use rusqlite::types::{ToSqlOutput, Type, ValueRef};
use rusqlite::{
    params, Connection, ErrorCode, OpenFlags, OptionalExtension, ToSql, TransactionBehavior,
};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::Duration;
use steadycache_api::plumbing::{
    check_ttl, deadline_i64, io_error, parse_count, parse_flag, redact_url, run_blocking,
    unix_millis, BlockingBackend,
};
use steadycache_api::{Backend, Capabilities, Entry, Error, Result};

const BACKEND: &str = "sqlite";
const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_POOL_SIZE: usize = 4;
const MAX_POOL_SIZE: usize = 64;
/// Rows deleted per statement by `purge_expired`, so a large sweep never holds the write lock
/// for long.
const PURGE_BATCH: i64 = 1_000;
/// WAL file size kept after a checkpoint (bytes).
const JOURNAL_SIZE_LIMIT: i64 = 64 << 20;

const SCHEMA: &str = "\
CREATE TABLE IF NOT EXISTS steadycache_entries (
    key TEXT PRIMARY KEY NOT NULL,
    value BLOB NOT NULL,
    stale_at INTEGER,
    expires_at INTEGER,
    created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS steadycache_entries_expires_at
    ON steadycache_entries(expires_at);";

const GET: &str = "SELECT value, expires_at FROM steadycache_entries WHERE key = ?1";
const DELETE_IF_EXPIRED: &str = "DELETE FROM steadycache_entries \
     WHERE key = ?1 AND expires_at IS NOT NULL AND expires_at <= ?2";
const SET: &str = "INSERT INTO steadycache_entries (key, value, stale_at, expires_at, created_at) \
     VALUES (?1, ?2, ?3, ?4, ?5) \
     ON CONFLICT(key) DO UPDATE SET value = excluded.value, stale_at = excluded.stale_at, \
     expires_at = excluded.expires_at, created_at = excluded.created_at";
const SET_IF_ABSENT: &str =
    "INSERT INTO steadycache_entries (key, value, stale_at, expires_at, created_at) \
     VALUES (?1, ?2, ?3, ?4, ?5) \
     ON CONFLICT(key) DO UPDATE SET value = excluded.value, stale_at = excluded.stale_at, \
     expires_at = excluded.expires_at, created_at = excluded.created_at \
     WHERE steadycache_entries.expires_at IS NOT NULL AND steadycache_entries.expires_at <= ?6";
const DELETE: &str = "DELETE FROM steadycache_entries WHERE key = ?1 RETURNING expires_at";
const DELETE_RANGE: &str =
    "DELETE FROM steadycache_entries WHERE key >= ?1 AND key < ?2 RETURNING expires_at";
const DELETE_FROM: &str = "DELETE FROM steadycache_entries WHERE key >= ?1 RETURNING expires_at";
const UPDATE_VALUE: &str = "UPDATE steadycache_entries SET value = ?2 WHERE key = ?1";
const RELEASE: &str = "DELETE FROM steadycache_entries \
     WHERE key = ?1 AND value = ?2 AND (expires_at IS NULL OR expires_at > ?3)";
const PURGE: &str = "DELETE FROM steadycache_entries WHERE rowid IN (\
     SELECT rowid FROM steadycache_entries \
     WHERE expires_at IS NOT NULL AND expires_at <= ?1 LIMIT ?2)";
const PING: &str = "SELECT 1";

/// Every statement, prepared at open: warms each connection's cache and checks that an existing
/// table has the columns this backend needs.
const STATEMENTS: [&str; 11] = [
    GET,
    DELETE_IF_EXPIRED,
    SET,
    SET_IF_ABSENT,
    DELETE,
    DELETE_RANGE,
    DELETE_FROM,
    UPDATE_VALUE,
    RELEASE,
    PURGE,
    PING,
];

#[derive(Clone, Debug, PartialEq, Eq)]
enum Target {
    File(PathBuf),
    Memory,
}

/// Configuration of a [`SqliteBackend`]: where the database is and how to open it.
///
/// ```
/// # use steadycache_file::SqliteConfig;
/// # use std::time::Duration;
/// let cfg = SqliteConfig::new("/var/cache/app/cache.db")
///     .with_busy_timeout(Duration::from_secs(10))
///     .with_durable(true);
/// let same = SqliteConfig::from_url("sqlite:///var/cache/app/cache.db?busy_timeout_ms=10000&durable=true")?;
/// assert_eq!(cfg, same);
/// # Ok::<(), steadycache_api::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqliteConfig {
    target: Target,
    busy_timeout: Duration,
    durable: bool,
    pool_size: usize,
    purge_on_open: bool,
    inline_reads: bool,
}

impl SqliteConfig {
    /// A database file at `path` (created with its parent directories when missing). The path
    /// `:memory:` means [`SqliteConfig::memory`].
    pub fn new(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        let target = if path.as_os_str() == ":memory:" {
            Target::Memory
        } else {
            Target::File(path)
        };
        SqliteConfig {
            target,
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
            durable: false,
            pool_size: DEFAULT_POOL_SIZE,
            purge_on_open: true,
            inline_reads: true,
        }
    }

    /// A private in-memory database: not persistent and not shared with any other backend value
    /// or process.
    pub fn memory() -> Self {
        SqliteConfig::new(":memory:")
    }

    /// Parse a URL:
    ///
    /// * `sqlite:///abs/path/to/cache.db`: an absolute path;
    /// * `sqlite://relative/cache.db` (or `sqlite:relative/cache.db`): relative to the current
    ///   directory;
    /// * `sqlite::memory:`: [`SqliteConfig::memory`].
    ///
    /// The path may be percent-encoded (`%20` for a space). Query options:
    /// `busy_timeout_ms` (whole milliseconds), `durable` (`true`/`false`, also `1`/`0`,
    /// `yes`/`no`, `on`/`off`), `pool_size` (1 to 64), `purge_on_open` and `inline_reads`
    /// (booleans).
    pub fn from_url(url: &str) -> Result<Self> {
        let invalid =
            |why: &str| Error::Config(format!("invalid sqlite url `{}`: {why}", redact_url(url)));
        let (scheme, rest) = url.split_once(':').ok_or_else(|| {
            invalid("expected sqlite:///path/to/db, sqlite://relative/path or sqlite::memory:")
        })?;
        if !scheme.eq_ignore_ascii_case("sqlite") {
            return Err(Error::Config(format!(
                "`{url}` is not a sqlite url (sqlite:///path/to/db or sqlite::memory:)"
            )));
        }
        let (location, query) = match rest.split_once('?') {
            Some((location, query)) => (location, Some(query)),
            None => (rest, None),
        };
        let mut cfg = if location == ":memory:" || location == "//:memory:" {
            SqliteConfig::memory()
        } else {
            let raw = if let Some(abs) = location.strip_prefix("///") {
                format!("/{abs}")
            } else if let Some(rel) = location.strip_prefix("//") {
                rel.to_owned()
            } else {
                location.to_owned()
            };
            let path = percent_decode(&raw)
                .ok_or_else(|| invalid("the path is not valid percent-encoded UTF-8"))?;
            let path = strip_windows_drive_slash(path);
            if path.is_empty() || path == "/" {
                return Err(invalid("no database path"));
            }
            SqliteConfig::new(path)
        };
        for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            let number = || parse_count(&k, &v);
            let boolean = || parse_flag(&k, &v);
            match &*k {
                "busy_timeout_ms" => cfg.busy_timeout = Duration::from_millis(number()?),
                "durable" => cfg.durable = boolean()?,
                "pool_size" => {
                    cfg.pool_size = usize::try_from(number()?).unwrap_or(usize::MAX);
                }
                "purge_on_open" => cfg.purge_on_open = boolean()?,
                "inline_reads" => cfg.inline_reads = boolean()?,
                other => {
                    return Err(Error::Config(format!(
                        "unknown sqlite url option `{other}` \
                         (known: busy_timeout_ms, durable, pool_size, purge_on_open, \
                         inline_reads)"
                    )))
                }
            }
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// How long an operation waits for another connection or process holding the database
    /// before failing with a transient error (default 5 s; zero fails at once).
    pub fn with_busy_timeout(mut self, busy_timeout: Duration) -> Self {
        self.busy_timeout = busy_timeout;
        self
    }

    /// `true`: `synchronous=FULL`, every committed write survives a power loss. `false`
    /// (default): `synchronous=NORMAL`, much faster writes; a crash of the process loses
    /// nothing, a power loss may lose the last writes (fine for a cache).
    pub fn with_durable(mut self, durable: bool) -> Self {
        self.durable = durable;
        self
    }

    /// Connections kept open to a database file (1 to 64, default 4): how many operations of
    /// this backend run at once. Ignored for an in-memory database (always one connection).
    pub fn with_pool_size(mut self, pool_size: usize) -> Self {
        self.pool_size = pool_size;
        self
    }

    /// Whether opening a database file sweeps its expired rows on a background thread (default
    /// `true`).
    pub fn with_purge_on_open(mut self, purge_on_open: bool) -> Self {
        self.purge_on_open = purge_on_open;
        self
    }

    /// Whether an async `get` may run its `SELECT` on the calling task (default `true`): only
    /// when a pooled connection is free at that moment, so the executor never waits for the
    /// pool or for another process's lock; otherwise it goes to tokio's blocking pool. A
    /// cached point `SELECT` in WAL mode takes a few microseconds, less than the two thread hops
    /// of `spawn_blocking` (about 20 µs here). Turn it off for a database on storage where a
    /// read may stall (a network filesystem).
    pub fn with_inline_reads(mut self, inline_reads: bool) -> Self {
        self.inline_reads = inline_reads;
        self
    }

    /// Whether async reads may run inline (see [`SqliteConfig::with_inline_reads`]).
    pub fn inline_reads(&self) -> bool {
        self.inline_reads
    }

    /// The database file, or `None` for an in-memory database.
    pub fn path(&self) -> Option<&Path> {
        match &self.target {
            Target::File(path) => Some(path),
            Target::Memory => None,
        }
    }

    /// Whether this is a private in-memory database.
    pub fn is_memory(&self) -> bool {
        self.target == Target::Memory
    }

    /// The busy timeout.
    pub fn busy_timeout(&self) -> Duration {
        self.busy_timeout
    }

    /// Whether writes use `synchronous=FULL`.
    pub fn durable(&self) -> bool {
        self.durable
    }

    /// The number of connections to a database file.
    pub fn pool_size(&self) -> usize {
        self.pool_size
    }

    /// Whether opening sweeps expired rows in the background.
    pub fn purge_on_open(&self) -> bool {
        self.purge_on_open
    }

    fn validate(&self) -> Result<()> {
        if !(1..=MAX_POOL_SIZE).contains(&self.pool_size) {
            return Err(Error::Config(format!(
                "sqlite pool_size must be between 1 and {MAX_POOL_SIZE}, got {}",
                self.pool_size
            )));
        }
        if let Target::File(path) = &self.target {
            if path.as_os_str().is_empty() {
                return Err(Error::Config(
                    "a sqlite database path must not be empty".into(),
                ));
            }
        }
        Ok(())
    }
}

/// Decode `%XX` escapes with `percent-encoding`; `None` when an escape is malformed (a `%` not
/// followed by two hex digits, which that crate would keep as text: a typo in a path should be
/// an error, not a second database) or the result is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let malformed = b.iter().enumerate().any(|(i, &c)| {
        c == b'%'
            && !(b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
    });
    if malformed {
        return None;
    }
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

/// `sqlite:///C:/dir/cache.db` names `C:/dir/cache.db` on Windows.
fn strip_windows_drive_slash(path: String) -> String {
    let b = path.as_bytes();
    if cfg!(windows) && b.len() >= 3 && b[0] == b'/' && b[1].is_ascii_alphabetic() && b[2] == b':' {
        path[1..].to_owned()
    } else {
        path
    }
}

/// A SQLite error of operation `what`, by meaning (see the module docs).
fn sql_error(what: &str, e: rusqlite::Error) -> Error {
    let transient = matches!(
        e.sqlite_error_code(),
        Some(
            ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::OutOfMemory
                | ErrorCode::OperationInterrupted
                | ErrorCode::OperationAborted
                | ErrorCode::SystemIoFailure
                | ErrorCode::SchemaChanged
                | ErrorCode::FileLockingProtocolFailed
        )
    );
    let hint = match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) => " (the file exists but is not a SQLite database)",
        Some(ErrorCode::DatabaseCorrupt) => {
            " (the database file is corrupt; delete it to start an empty cache)"
        }
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            " (another connection or process held the database past the busy timeout)"
        }
        Some(ErrorCode::ReadOnly | ErrorCode::PermissionDenied) => " (the database is read-only)",
        Some(ErrorCode::DiskFull) => " (the disk is full)",
        _ => "",
    };
    let message = format!("{what}: {e}{hint}");
    Error::from_backend(BACKEND, message, transient, e)
}

trait Context<T> {
    fn ctx(self, what: &str) -> Result<T>;
}

impl<T> Context<T> for rusqlite::Result<T> {
    fn ctx(self, what: &str) -> Result<T> {
        self.map_err(|e| sql_error(what, e))
    }
}

/// Bytes bound as TEXT even when they are not UTF-8 (a range bound past a prefix): SQLite
/// compares TEXT under the BINARY collation with `memcmp`, so the bound orders exactly like the
/// UTF-8 bytes of the keys.
struct TextBytes<'a>(&'a [u8]);

impl ToSql for TextBytes<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(ValueRef::Text(self.0)))
    }
}

fn to_i64(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

fn now_ms() -> i64 {
    to_i64(unix_millis())
}

fn live(expires_at: Option<i64>, now: i64) -> bool {
    expires_at.is_none_or(|at| at > now)
}

/// `(stale_at, created_at)` for a value: from its envelope when it is one.
fn envelope_times(value: &[u8], now: i64) -> (Option<i64>, i64) {
    match Entry::decode(value) {
        Ok(entry) => (
            (entry.stale_at != u64::MAX).then(|| to_i64(entry.stale_at)),
            to_i64(entry.created_at),
        ),
        Err(_) => (None, now),
    }
}

/// The stored bytes of a `value` column (BLOB as written by this backend; TEXT and numbers
/// written by hand are accepted as their bytes).
fn value_bytes(v: ValueRef<'_>) -> rusqlite::Result<Vec<u8>> {
    match v {
        ValueRef::Blob(b) | ValueRef::Text(b) => Ok(b.to_vec()),
        ValueRef::Integer(i) => Ok(i.to_string().into_bytes()),
        ValueRef::Real(r) => Ok(r.to_string().into_bytes()),
        ValueRef::Null => Err(rusqlite::Error::InvalidColumnType(
            0,
            "value".into(),
            Type::Null,
        )),
    }
}

fn parse_counter(v: &[u8]) -> Option<i64> {
    std::str::from_utf8(v).ok()?.trim().parse().ok()
}

/// The shared state behind every clone of a [`SqliteBackend`].
struct Inner {
    config: SqliteConfig,
    conns: Box<[Mutex<Connection>]>,
    next: AtomicUsize,
}

/// A connection taken from the pool; a connection left inside a transaction by a panicking
/// holder is rolled back before reuse.
fn recover<'a>(
    guard: std::result::Result<MutexGuard<'a, Connection>, PoisonError<MutexGuard<'a, Connection>>>,
) -> MutexGuard<'a, Connection> {
    match guard {
        Ok(g) => g,
        Err(poisoned) => {
            let g = poisoned.into_inner();
            if !g.is_autocommit() {
                if let Err(e) = g.execute_batch("ROLLBACK") {
                    tracing::warn!(error = %e, "sqlite: rolling back a connection left in a transaction failed");
                }
            }
            g
        }
    }
}

fn open_connection(config: &SqliteConfig, first: bool) -> Result<Connection> {
    let what = match &config.target {
        Target::File(path) => format!("opening {}", path.display()),
        Target::Memory => "opening an in-memory database".to_owned(),
    };
    let conn = match &config.target {
        Target::File(path) => Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        ),
        Target::Memory => Connection::open_in_memory_with_flags(
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        ),
    }
    .ctx(&what)?;
    conn.busy_timeout(config.busy_timeout).ctx(&what)?;
    if let Target::File(path) = &config.target {
        // The first statement reads the header: a file that is not a database fails here.
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .ctx(&what)?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(
                path = %path.display(),
                journal_mode = %mode,
                "sqlite: WAL mode is not available; readers and the writer will block each other"
            );
        }
        conn.query_row(
            &format!("PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT}"),
            [],
            |r| r.get::<_, i64>(0),
        )
        .ctx(&what)?;
    }
    conn.execute_batch(if config.durable {
        "PRAGMA synchronous=FULL"
    } else {
        "PRAGMA synchronous=NORMAL"
    })
    .ctx(&what)?;
    if first {
        conn.execute_batch(SCHEMA).ctx(&what)?;
    }
    conn.set_prepared_statement_cache_capacity(STATEMENTS.len() + 4);
    for sql in STATEMENTS {
        conn.prepare_cached(sql).ctx(&what)?;
    }
    Ok(conn)
}

impl Inner {
    fn open(config: SqliteConfig) -> Result<Inner> {
        config.validate()?;
        let count = match &config.target {
            Target::File(path) => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent).map_err(|e| {
                        io_error(
                            BACKEND,
                            &format!("creating the directory {}", parent.display()),
                            e,
                        )
                    })?;
                }
                config.pool_size
            }
            Target::Memory => 1,
        };
        let mut conns = Vec::with_capacity(count);
        for i in 0..count {
            conns.push(Mutex::new(open_connection(&config, i == 0)?));
        }
        Ok(Inner {
            config,
            conns: conns.into_boxed_slice(),
            next: AtomicUsize::new(0),
        })
    }

    /// A free connection if there is one (trying each once, round-robin), else wait for one.
    fn conn(&self) -> Result<MutexGuard<'_, Connection>> {
        if let Some(g) = self.try_conn() {
            return Ok(g);
        }
        let n = self.conns.len().max(1);
        match self
            .conns
            .get(self.next.fetch_add(1, Ordering::Relaxed) % n)
        {
            Some(m) => Ok(recover(m.lock())),
            None => Err(Error::backend(BACKEND, "the connection pool is empty")),
        }
    }

    /// A connection only if one is free right now (for inline reads on an async task).
    fn try_conn(&self) -> Option<MutexGuard<'_, Connection>> {
        let n = self.conns.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n.max(1);
        (0..n).find_map(|i| match self.conns.get((start + i) % n)?.try_lock() {
            Ok(g) => Some(g),
            Err(TryLockError::Poisoned(p)) => Some(recover(Err(p))),
            Err(TryLockError::WouldBlock) => None,
        })
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let conn = self.conn()?;
        Self::get_on(&conn, key)
    }

    fn get_on(conn: &Connection, key: &str) -> Result<Option<Vec<u8>>> {
        let now = now_ms();
        let row = conn
            .prepare_cached(GET)
            .ctx("get")?
            .query_row(params![key], |r| {
                let expires_at: Option<i64> = r.get(1)?;
                if live(expires_at, now) {
                    Ok(Some(value_bytes(r.get_ref(0)?)?))
                } else {
                    Ok(None)
                }
            })
            .optional()
            .ctx("get")?;
        match row {
            None => Ok(None),
            Some(Some(value)) => Ok(Some(value)),
            Some(None) => {
                // Expired: remove it lazily (only if still expired, so a concurrent fresh write
                // is kept). A failure here does not fail the read.
                let deleted = conn
                    .prepare_cached(DELETE_IF_EXPIRED)
                    .and_then(|mut s| s.execute(params![key, now]));
                if let Err(e) = deleted {
                    tracing::debug!(key, error = %e, "sqlite: lazy delete of an expired row failed");
                }
                Ok(None)
            }
        }
    }

    fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<()> {
        check_ttl(ttl)?;
        let now = now_ms();
        let (stale_at, created_at) = envelope_times(value, now);
        let conn = self.conn()?;
        conn.prepare_cached(SET)
            .ctx("set")?
            .execute(params![
                key,
                value,
                stale_at,
                deadline_i64(now, ttl),
                created_at
            ])
            .ctx("set")?;
        Ok(())
    }

    fn set_if_absent(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<bool> {
        // `?6` is now: an existing row is taken over only when it has expired by then.
        check_ttl(ttl)?;
        let now = now_ms();
        let (stale_at, created_at) = envelope_times(value, now);
        let conn = self.conn()?;
        let changed = conn
            .prepare_cached(SET_IF_ABSENT)
            .ctx("set_if_absent")?
            .execute(params![
                key,
                value,
                stale_at,
                deadline_i64(now, ttl),
                created_at,
                now
            ])
            .ctx("set_if_absent")?;
        Ok(changed == 1)
    }

    /// Count the live rows among the `expires_at` values a `DELETE ... RETURNING` gives back.
    fn count_live(
        stmt: &mut rusqlite::CachedStatement<'_>,
        params: &[&dyn ToSql],
        now: i64,
        what: &str,
    ) -> Result<u64> {
        let mut rows = stmt.query(params).ctx(what)?;
        let mut removed = 0u64;
        while let Some(row) = rows.next().ctx(what)? {
            let expires_at: Option<i64> = row.get(0).ctx(what)?;
            if live(expires_at, now) {
                removed += 1;
            }
        }
        Ok(removed)
    }

    fn delete(&self, key: &str) -> Result<bool> {
        let conn = self.conn()?;
        let now = now_ms();
        let mut stmt = conn.prepare_cached(DELETE).ctx("delete")?;
        Ok(Self::count_live(&mut stmt, &[&key], now, "delete")? > 0)
    }

    fn delete_prefix(&self, prefix: &str) -> Result<u64> {
        let conn = self.conn()?;
        let now = now_ms();
        match SqliteBackend::prefix_successor(prefix.as_bytes()) {
            Some(end) => {
                let mut stmt = conn.prepare_cached(DELETE_RANGE).ctx("delete_prefix")?;
                Self::count_live(
                    &mut stmt,
                    &[&prefix, &TextBytes(&end)],
                    now,
                    "delete_prefix",
                )
            }
            None => {
                let mut stmt = conn.prepare_cached(DELETE_FROM).ctx("delete_prefix")?;
                Self::count_live(&mut stmt, &[&prefix], now, "delete_prefix")
            }
        }
    }

    fn incr(&self, key: &str, by: i64, ttl: Option<Duration>) -> Result<i64> {
        check_ttl(ttl)?;
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx("incr")?;
        // The time is read once the write lock is held, so liveness is judged at commit time.
        let now = now_ms();
        let current = tx
            .prepare_cached(GET)
            .ctx("incr")?
            .query_row(params![key], |r| {
                let expires_at: Option<i64> = r.get(1)?;
                if live(expires_at, now) {
                    Ok(Some(value_bytes(r.get_ref(0)?)?))
                } else {
                    Ok(None)
                }
            })
            .optional()
            .ctx("incr")?
            .flatten();
        let next = match current {
            Some(value) => {
                let n = parse_counter(&value).ok_or_else(|| {
                    Error::backend(BACKEND, format!("`{key}` does not hold an integer"))
                })?;
                let next = n.checked_add(by).ok_or_else(|| {
                    Error::backend(BACKEND, format!("counter `{key}` would overflow"))
                })?;
                tx.prepare_cached(UPDATE_VALUE)
                    .ctx("incr")?
                    .execute(params![key, next.to_string().as_bytes()])
                    .ctx("incr")?;
                next
            }
            None => {
                tx.prepare_cached(SET)
                    .ctx("incr")?
                    .execute(params![
                        key,
                        by.to_string().as_bytes(),
                        None::<i64>,
                        deadline_i64(now, ttl),
                        now
                    ])
                    .ctx("incr")?;
                by
            }
        };
        tx.commit().ctx("incr")?;
        Ok(next)
    }

    fn release_lock(&self, key: &str, token: &str) -> Result<bool> {
        let conn = self.conn()?;
        let changed = conn
            .prepare_cached(RELEASE)
            .ctx("release_lock")?
            .execute(params![key, token.as_bytes(), now_ms()])
            .ctx("release_lock")?;
        Ok(changed > 0)
    }

    fn ping(&self) -> Result<()> {
        let conn = self.conn()?;
        conn.prepare_cached(PING)
            .ctx("ping")?
            .query_row([], |r| r.get::<_, i64>(0))
            .ctx("ping")?;
        Ok(())
    }

    fn purge_expired(&self) -> Result<u64> {
        let now = now_ms();
        let mut total = 0u64;
        loop {
            // One batch per statement, giving the connection (and the write lock) back between
            // batches.
            let n = {
                let conn = self.conn()?;
                let mut stmt = conn.prepare_cached(PURGE).ctx("purge_expired")?;
                stmt.execute(params![now, PURGE_BATCH])
                    .ctx("purge_expired")?
            };
            total += n as u64;
            if n < PURGE_BATCH as usize {
                return Ok(total);
            }
        }
    }
}

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
/// row only if it holds the caller's token. `incr` is the one read-modify-write and runs in a
/// `BEGIN IMMEDIATE` transaction.
///
/// A counter is a row whose value is its ASCII decimal (`get` reads `b"42"`); its expiry is set
/// when it is created and kept by later increments. A lock is a row keyed by the lock key whose
/// value is the holder's token, with the lock's ttl as expiry. `delete_prefix` deletes the key
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
/// # use steadycache_file::{SqliteBackend, SqliteConfig};
/// let cache_db = SqliteBackend::open(SqliteConfig::new("/var/cache/app/cache.db"))?;
/// let scratch = SqliteBackend::from_url("sqlite::memory:")?;
/// # Ok::<(), steadycache_api::Error>(())
/// ```
#[derive(Clone)]
pub struct SqliteBackend {
    inner: Arc<Inner>,
}

impl fmt::Debug for SqliteBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteBackend")
            .field("config", &self.inner.config)
            .field("connections", &self.inner.conns.len())
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
        &self.inner.config
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
    /// # use steadycache_file::SqliteBackend;
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

    async fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        run_blocking(BACKEND, move || f(&inner)).await
    }
}

#[async_trait]
impl Backend for SqliteBackend {
    fn name(&self) -> &str {
        BACKEND
    }

    fn capabilities(&self) -> Capabilities {
        if self.inner.config.is_memory() {
            Capabilities::all()
                .with_shared(false)
                .with_persistent(false)
        } else {
            Capabilities::all()
        }
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        if self.inner.config.inline_reads {
            // See `SqliteConfig::with_inline_reads`: never waits for a connection here.
            if let Some(conn) = self.inner.try_conn() {
                return Inner::get_on(&conn, key);
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
