//! The operations on the shared [`Inner`] state, each one statement (or, for `incr`, one
//! `BEGIN IMMEDIATE` transaction) on a pooled connection, and the row helpers they share.

use crate::backend::SqliteBackend;
use crate::error::{Context, NAME};
use crate::pool::Inner;
use crate::schema::{
    DELETE, DELETE_FROM, DELETE_IF_EXPIRED, DELETE_RANGE, EXTEND_LOCK, GET, PING, PURGE,
    PURGE_BATCH, RELEASE, SELECT_GLOB, SELECT_GLOB_FROM, SET, SET_IF_ABSENT, UPDATE_VALUE,
};
use rusqlite::types::{ToSqlOutput, Type, ValueRef};
use rusqlite::{params, Connection, OptionalExtension, ToSql, TransactionBehavior};
use std::time::Duration;
use steadycache_api::plumbing::{check_ttl, deadline_i64, unix_millis};
use steadycache_api::Glob;
use steadycache_api::{Entry, Error, KeyPage, ListedKey, Result};

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

/// A counter's value: ASCII decimal (surrounding whitespace allowed).
fn parse_counter(v: &[u8]) -> Option<i64> {
    std::str::from_utf8(v).ok()?.trim().parse().ok()
}

impl Inner {
    pub(crate) fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let conn = self.conn()?;
        let (value, expired) = Self::read_on(&conn, key)?;
        if expired {
            Self::delete_if_expired_on(&conn, key);
        }
        Ok(value)
    }

    /// The row of `key`: `None` when there is none, `Some(None)` when it has expired at `now`,
    /// else its value. `what` names the operation in errors.
    fn row_on(
        conn: &Connection,
        key: &str,
        now: i64,
        what: &str,
    ) -> Result<Option<Option<Vec<u8>>>> {
        conn.prepare_cached(GET)
            .ctx(what)?
            .query_row(params![key], |r| {
                let expires_at: Option<i64> = r.get(1)?;
                if live(expires_at, now) {
                    Ok(Some(value_bytes(r.get_ref(0)?)?))
                } else {
                    Ok(None)
                }
            })
            .optional()
            .ctx(what)
    }

    /// Read `key` on a connection already held (the inline async read does): the live value,
    /// and whether an expired row was found (to be removed by the caller, off the async path).
    pub(crate) fn read_on(conn: &Connection, key: &str) -> Result<(Option<Vec<u8>>, bool)> {
        let row = Self::row_on(conn, key, now_ms(), "get")?;
        Ok(match row {
            None => (None, false),
            Some(Some(value)) => (Some(value), false),
            Some(None) => (None, true),
        })
    }

    /// Remove `key` lazily if it is (still) expired, so a concurrent fresh write is kept. It
    /// takes the write lock: callers on an async executor hand it to the blocking pool. A
    /// failure does not fail anything (the purge removes the row later).
    pub(crate) fn delete_if_expired_on(conn: &Connection, key: &str) {
        let deleted = conn
            .prepare_cached(DELETE_IF_EXPIRED)
            .and_then(|mut s| s.execute(params![key, now_ms()]));
        if let Err(e) = deleted {
            tracing::debug!(key, error = %e, "sqlite: lazy delete of an expired row failed");
        }
    }

    /// [`delete_if_expired_on`](Self::delete_if_expired_on) on a pooled connection.
    pub(crate) fn delete_if_expired(&self, key: &str) {
        match self.conn() {
            Ok(conn) => Self::delete_if_expired_on(&conn, key),
            Err(e) => tracing::debug!(key, error = %e, "sqlite: no connection for a lazy delete"),
        }
    }

    pub(crate) fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<()> {
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

    pub(crate) fn set_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool> {
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

    pub(crate) fn delete(&self, key: &str) -> Result<bool> {
        let conn = self.conn()?;
        let now = now_ms();
        let mut stmt = conn.prepare_cached(DELETE).ctx("delete")?;
        Ok(Self::count_live(&mut stmt, &[&key], now, "delete")? > 0)
    }

    pub(crate) fn delete_prefix(&self, prefix: &str) -> Result<u64> {
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

    /// `delete_matching`: in one write transaction, the keys in the range of the pattern's
    /// literal prefix that SQLite's `GLOB` finds (a superset, on the primary key's range), kept
    /// by the exact matcher, deleted one by one; the number of live ones.
    pub(crate) fn delete_matching(&self, pattern: &Glob) -> Result<u64> {
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx("delete_matching")?;
        let now = now_ms();
        let from = pattern.literal_prefix();
        let end = SqliteBackend::prefix_successor(from.as_bytes());
        let glob = pattern.to_sqlite_glob();
        let row = |r: &rusqlite::Row<'_>| Ok((r.get::<_, String>(0)?, r.get::<_, Option<i64>>(1)?));
        let found: Vec<(String, Option<i64>)> = match &end {
            Some(end) => {
                let mut stmt = tx.prepare_cached(SELECT_GLOB).ctx("delete_matching")?;
                let rows = stmt
                    .query_map(params![from, TextBytes(end), glob], row)
                    .ctx("delete_matching")?;
                rows.collect::<rusqlite::Result<_>>()
                    .ctx("delete_matching")?
            }
            None => {
                let mut stmt = tx.prepare_cached(SELECT_GLOB_FROM).ctx("delete_matching")?;
                let rows = stmt
                    .query_map(params![from, glob], row)
                    .ctx("delete_matching")?;
                rows.collect::<rusqlite::Result<_>>()
                    .ctx("delete_matching")?
            }
        };
        let mut removed = 0;
        {
            let mut delete = tx.prepare_cached(DELETE).ctx("delete_matching")?;
            for (key, expires_at) in found.iter().filter(|(k, _)| pattern.matches(k)) {
                let mut rows = delete.query(params![key]).ctx("delete_matching")?;
                while rows.next().ctx("delete_matching")?.is_some() {}
                if expires_at.is_none_or(|e| e > now) {
                    removed += 1;
                }
            }
        }
        tx.commit().ctx("delete_matching")?;
        Ok(removed)
    }

    /// `list_keys`: one range read on the primary key, from the prefix (or just after the
    /// cursor, the last key of the page before) to the prefix's end, live rows only, with the
    /// length of each value.
    pub(crate) fn list_keys(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<KeyPage> {
        let conn = self.conn()?;
        let end = SqliteBackend::prefix_successor(prefix.as_bytes());
        let (from, after) = match cursor {
            Some(c) if c >= prefix => (c, true),
            _ => (prefix, false),
        };
        let sql = format!(
            "SELECT key, length(value) FROM steadycache_entries WHERE key {} ?1{} \
             AND (expires_at IS NULL OR expires_at > ?2) ORDER BY key LIMIT ?3",
            if after { ">" } else { ">=" },
            if end.is_some() { " AND key < ?4" } else { "" },
        );
        let limit = limit.max(1);
        let take = i64::try_from(limit).unwrap_or(i64::MAX).saturating_add(1);
        let now = now_ms();
        let end = end.as_deref().map(TextBytes);
        let mut args: Vec<&dyn ToSql> = vec![&from, &now, &take];
        if let Some(end) = &end {
            args.push(end);
        }
        let mut stmt = conn.prepare_cached(&sql).ctx("list_keys")?;
        // A key that is not UTF-8 (written by something else) is skipped, not an error.
        let rows = stmt
            .query_map(args.as_slice(), |r| {
                let key = String::from_utf8(r.get_ref(0)?.as_bytes()?.to_vec()).ok();
                Ok((key, r.get::<_, i64>(1)?))
            })
            .ctx("list_keys")?;
        let mut found: Vec<(Option<String>, i64)> = Vec::with_capacity(limit.min(1024) + 1);
        for row in rows {
            found.push(row.ctx("list_keys")?);
        }
        // More follow: the page ends at its last UTF-8 key (all of them skipped: it ends).
        let next = if found.len() > limit {
            found[..limit].iter().rev().find_map(|(k, _)| k.clone())
        } else {
            None
        };
        found.truncate(limit);
        let keys = found
            .into_iter()
            .filter_map(|(k, len)| {
                Some(ListedKey::new(k?).with_size(u64::try_from(len).unwrap_or(0)))
            })
            .collect();
        Ok(KeyPage::new(keys, next))
    }

    pub(crate) fn incr(&self, key: &str, by: i64, ttl: Option<Duration>) -> Result<i64> {
        check_ttl(ttl)?;
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx("incr")?;
        // The time is read once the write lock is held, so liveness is judged at commit time.
        let now = now_ms();
        let current = Self::row_on(&tx, key, now, "incr")?.flatten();
        let next = match current {
            Some(value) => {
                let n = parse_counter(&value).ok_or_else(|| {
                    Error::backend(NAME, format!("`{key}` does not hold an integer"))
                })?;
                let next = n.checked_add(by).ok_or_else(|| {
                    Error::backend(NAME, format!("counter `{key}` would overflow"))
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

    pub(crate) fn release_lock(&self, key: &str, token: &str) -> Result<bool> {
        let conn = self.conn()?;
        let changed = conn
            .prepare_cached(RELEASE)
            .ctx("release_lock")?
            .execute(params![key, token.as_bytes(), now_ms()])
            .ctx("release_lock")?;
        Ok(changed > 0)
    }

    /// One `UPDATE`: the check (the row holds `token` and is live) and the renewal are atomic
    /// across connections and processes; an expired lock is never revived.
    pub(crate) fn extend_lock(&self, key: &str, token: &str, ttl: Duration) -> Result<bool> {
        check_ttl(Some(ttl))?;
        let now = now_ms();
        let conn = self.conn()?;
        let changed = conn
            .prepare_cached(EXTEND_LOCK)
            .ctx("extend_lock")?
            .execute(params![
                key,
                token.as_bytes(),
                now,
                deadline_i64(now, Some(ttl))
            ])
            .ctx("extend_lock")?;
        Ok(changed == 1)
    }

    pub(crate) fn ping(&self) -> Result<()> {
        let conn = self.conn()?;
        conn.prepare_cached(PING)
            .ctx("ping")?
            .query_row([], |r| r.get::<_, i64>(0))
            .ctx("ping")?;
        Ok(())
    }

    pub(crate) fn purge_expired(&self) -> Result<u64> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_helpers() {
        assert!(live(None, 5) && live(Some(6), 5));
        assert!(!live(Some(5), 5) && !live(Some(4), 5));

        assert_eq!(parse_counter(b"42"), Some(42));
        assert_eq!(parse_counter(b" -7\n"), Some(-7));
        assert_eq!(parse_counter(b"4x"), None);
        assert_eq!(parse_counter(b"\xff"), None);

        assert_eq!(value_bytes(ValueRef::Blob(b"\0b")).unwrap(), b"\0b");
        assert_eq!(value_bytes(ValueRef::Text(b"t")).unwrap(), b"t");
        assert_eq!(value_bytes(ValueRef::Integer(42)).unwrap(), b"42");
        assert!(value_bytes(ValueRef::Null).is_err());

        assert_eq!(to_i64(u64::MAX), i64::MAX);
    }

    #[test]
    fn envelope_times_come_from_an_envelope_only() {
        assert_eq!(envelope_times(b"not an envelope", 9), (None, 9));
        let mut entry = Entry::new(b"p".to_vec(), 0, 0);
        (entry.created_at, entry.stale_at, entry.expires_at) = (100, 200, 300);
        assert_eq!(
            envelope_times(&entry.encode().unwrap(), 9),
            (Some(200), 100)
        );
        entry.stale_at = u64::MAX;
        assert_eq!(envelope_times(&entry.encode().unwrap(), 9), (None, 100));
    }
}
