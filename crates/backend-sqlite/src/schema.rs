//! The schema and every SQL statement of the backend. The table is described for users on
//! [`SqliteBackend`](crate::SqliteBackend).

/// The table and its expiry index, created idempotently (several processes may open a new file
/// at once).
pub(crate) const SCHEMA: &str = "\
CREATE TABLE IF NOT EXISTS steadycache_entries (
    key TEXT PRIMARY KEY NOT NULL,
    value BLOB NOT NULL,
    stale_at INTEGER,
    expires_at INTEGER,
    created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS steadycache_entries_expires_at
    ON steadycache_entries(expires_at);";

pub(crate) const GET: &str = "SELECT value, expires_at FROM steadycache_entries WHERE key = ?1";
pub(crate) const DELETE_IF_EXPIRED: &str = "DELETE FROM steadycache_entries \
     WHERE key = ?1 AND expires_at IS NOT NULL AND expires_at <= ?2";
pub(crate) const SET: &str =
    "INSERT INTO steadycache_entries (key, value, stale_at, expires_at, created_at) \
     VALUES (?1, ?2, ?3, ?4, ?5) \
     ON CONFLICT(key) DO UPDATE SET value = excluded.value, stale_at = excluded.stale_at, \
     expires_at = excluded.expires_at, created_at = excluded.created_at";
pub(crate) const SET_IF_ABSENT: &str =
    "INSERT INTO steadycache_entries (key, value, stale_at, expires_at, created_at) \
     VALUES (?1, ?2, ?3, ?4, ?5) \
     ON CONFLICT(key) DO UPDATE SET value = excluded.value, stale_at = excluded.stale_at, \
     expires_at = excluded.expires_at, created_at = excluded.created_at \
     WHERE steadycache_entries.expires_at IS NOT NULL AND steadycache_entries.expires_at <= ?6";
pub(crate) const DELETE: &str =
    "DELETE FROM steadycache_entries WHERE key = ?1 RETURNING expires_at";
pub(crate) const DELETE_RANGE: &str =
    "DELETE FROM steadycache_entries WHERE key >= ?1 AND key < ?2 RETURNING expires_at";
pub(crate) const DELETE_FROM: &str =
    "DELETE FROM steadycache_entries WHERE key >= ?1 RETURNING expires_at";
/// The keys from `?1` up to `?2` that `GLOB ?3` matches, with their expiry (both bounds on the
/// primary key, so the scan stays in the range).
pub(crate) const SELECT_GLOB: &str = "SELECT key, expires_at FROM steadycache_entries \
     WHERE key >= ?1 AND key < ?2 AND key GLOB ?3";
/// The keys from `?1` on that `GLOB ?2` matches (a prefix with no successor).
pub(crate) const SELECT_GLOB_FROM: &str = "SELECT key, expires_at FROM steadycache_entries \
     WHERE key >= ?1 AND key GLOB ?2";
pub(crate) const UPDATE_VALUE: &str = "UPDATE steadycache_entries SET value = ?2 WHERE key = ?1";
pub(crate) const RELEASE: &str = "DELETE FROM steadycache_entries \
     WHERE key = ?1 AND value = ?2 AND (expires_at IS NULL OR expires_at > ?3)";
/// Renew a live lock held by `?2`: a lock row always has an expiry (its ttl), a plain value
/// written without a ttl is never taken for one.
pub(crate) const EXTEND_LOCK: &str = "UPDATE steadycache_entries SET expires_at = ?4 \
     WHERE key = ?1 AND value = ?2 AND expires_at IS NOT NULL AND expires_at > ?3";
pub(crate) const PURGE: &str = "DELETE FROM steadycache_entries WHERE rowid IN (\
     SELECT rowid FROM steadycache_entries \
     WHERE expires_at IS NOT NULL AND expires_at <= ?1 LIMIT ?2)";
pub(crate) const PING: &str = "SELECT 1";

/// Rows deleted per statement by `purge_expired` (the `LIMIT` of [`PURGE`]), so a large sweep
/// never holds the write lock for long.
pub(crate) const PURGE_BATCH: i64 = 1_000;

/// Every statement, prepared at open: warms each connection's cache and checks that an existing
/// table has the columns this backend needs.
pub(crate) const STATEMENTS: [&str; 14] = [
    GET,
    DELETE_IF_EXPIRED,
    SET,
    SET_IF_ABSENT,
    DELETE,
    DELETE_RANGE,
    DELETE_FROM,
    SELECT_GLOB,
    SELECT_GLOB_FROM,
    UPDATE_VALUE,
    RELEASE,
    EXTEND_LOCK,
    PURGE,
    PING,
];
