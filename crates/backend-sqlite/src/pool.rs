//! The connection pool behind every clone of a [`SqliteBackend`](crate::SqliteBackend): opening
//! and configuring connections (WAL, busy timeout, `synchronous`, the schema, the statement
//! cache), handing out a free one, and recovering one whose holder panicked.

use crate::config::SqliteConfig;
use crate::error::{Context, NAME};
use crate::schema::{SCHEMA, STATEMENTS};
use rusqlite::{Connection, OpenFlags};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, TryLockError};
use steadycache_api::plumbing::{create_private_dir_all, create_private_file, io_error};
use steadycache_api::{Error, Result};

/// WAL file size kept after a checkpoint (bytes).
const JOURNAL_SIZE_LIMIT: i64 = 64 << 20;

/// The shared state behind every clone of a [`SqliteBackend`](crate::SqliteBackend): the
/// configuration and the pool.
pub(crate) struct Inner {
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

/// `op`, again while it finds the database busy, for up to the busy timeout. Switching a new
/// database to WAL (and creating its schema) needs the database alone, and SQLite answers
/// `SQLITE_BUSY` at once, without its busy handler, when another process does the same at
/// that moment (several processes starting together on one new file).
fn while_busy<T>(
    config: &SqliteConfig,
    mut op: impl FnMut() -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    let started = std::time::Instant::now();
    let mut pause = std::time::Duration::from_millis(2);
    loop {
        match op() {
            Err(rusqlite::Error::SqliteFailure(e, m))
                if matches!(
                    e.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) =>
            {
                if started.elapsed() >= config.busy_timeout {
                    return Err(rusqlite::Error::SqliteFailure(e, m));
                }
                std::thread::sleep(pause.mul_f64(0.5 + fastrand::f64()));
                pause = (pause * 2).min(std::time::Duration::from_millis(100));
            }
            other => return other,
        }
    }
}

/// One connection to the database `config` names, configured; `first` also creates the schema.
fn open_connection(config: &SqliteConfig, first: bool) -> Result<Connection> {
    let what = match config.path.as_deref() {
        Some(path) => format!("opening {}", path.display()),
        None => "opening an in-memory database".to_owned(),
    };
    let conn = match config.path.as_deref() {
        Some(path) => Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        ),
        None => Connection::open_in_memory_with_flags(
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        ),
    }
    .ctx(&what)?;
    conn.busy_timeout(config.busy_timeout).ctx(&what)?;
    if let Some(path) = config.path.as_deref() {
        // The first statement reads the header: a file that is not a database fails here.
        let mode: String = while_busy(config, || {
            conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        })
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
        while_busy(config, || conn.execute_batch(SCHEMA)).ctx(&what)?;
    }
    conn.set_prepared_statement_cache_capacity(STATEMENTS.len() + 4);
    for sql in STATEMENTS {
        conn.prepare_cached(sql).ctx(&what)?;
    }
    Ok(conn)
}

impl Inner {
    /// Validate `config`, create the database file's directory when missing and open the pool
    /// (one connection for an in-memory database); the first connection creates the schema.
    pub(crate) fn open(config: SqliteConfig) -> Result<Inner> {
        config.validate()?;
        let count = match config.path.as_deref() {
            Some(path) => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    create_private_dir_all(parent).map_err(|e| {
                        io_error(
                            NAME,
                            &format!("creating the directory {}", parent.display()),
                            e,
                        )
                    })?;
                }
                // Created here, `0600`, before SQLite opens it: its WAL and shared-memory files
                // take the database file's mode.
                create_private_file(path)
                    .map_err(|e| io_error(NAME, &format!("creating {}", path.display()), e))?;
                config.pool_size
            }
            None => 1,
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
    pub(crate) fn conn(&self) -> Result<MutexGuard<'_, Connection>> {
        if let Some(g) = self.try_conn() {
            return Ok(g);
        }
        let n = self.conns.len().max(1);
        match self
            .conns
            .get(self.next.fetch_add(1, Ordering::Relaxed) % n)
        {
            Some(m) => Ok(recover(m.lock())),
            None => Err(Error::backend(NAME, "the connection pool is empty")),
        }
    }

    /// A connection only if one is free right now (for inline reads on an async task).
    pub(crate) fn try_conn(&self) -> Option<MutexGuard<'_, Connection>> {
        let n = self.conns.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n.max(1);
        (0..n).find_map(|i| match self.conns.get((start + i) % n)?.try_lock() {
            Ok(g) => Some(g),
            Err(TryLockError::Poisoned(p)) => Some(recover(Err(p))),
            Err(TryLockError::WouldBlock) => None,
        })
    }

    /// The configuration the pool was opened with.
    pub(crate) fn config(&self) -> &SqliteConfig {
        &self.config
    }

    /// How many connections the pool holds.
    pub(crate) fn connections(&self) -> usize {
        self.conns.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn try_conn_never_waits() {
        let inner = Inner::open(SqliteConfig::memory()).unwrap();
        assert_eq!(inner.connections(), 1);
        let held = inner.conn().unwrap();
        assert!(inner.try_conn().is_none());
        drop(held);
        assert!(inner.try_conn().is_some());
    }

    #[test]
    fn a_connection_left_in_a_transaction_by_a_panic_is_rolled_back() {
        let inner = Inner::open(SqliteConfig::memory()).unwrap();
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let conn = inner.conn().unwrap();
            conn.execute_batch(
                "BEGIN IMMEDIATE; \
                 INSERT INTO steadycache_entries (key, value, created_at) VALUES ('k', x'00', 0);",
            )
            .unwrap();
            panic!("the holder panics inside its transaction");
        }));
        assert!(panicked.is_err());
        let conn = inner.conn().unwrap();
        assert!(conn.is_autocommit());
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM steadycache_entries", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 0);
    }
}
