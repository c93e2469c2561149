//! [`SqliteConfig`]: where the database is and how to open it, from a builder or a URL.

use std::path::PathBuf;
use std::time::Duration;
use steadycache_api::plumbing::{parse_count, parse_flag, redact_url};
use steadycache_api::{Error, Result};

const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_POOL_SIZE: usize = 4;
const MAX_POOL_SIZE: usize = 64;

/// Configuration of a [`SqliteBackend`](crate::SqliteBackend): where the database is and how to
/// open it.
///
/// ```
/// # use steadycache_sqlite::SqliteConfig;
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
    /// The database file (created with its parent directories when missing), or `None` for a
    /// private in-memory database.
    pub path: Option<PathBuf>,
    /// How long a statement waits for another connection's (or process's) lock before it fails
    /// as busy (default 5 s).
    pub busy_timeout: Duration,
    /// Whether writes use `synchronous=FULL` (default `false`: `NORMAL`, which in WAL mode
    /// loses at most the last transactions on power loss, never the database).
    pub durable: bool,
    /// Connections kept open to a database file (1 to 64, default 4).
    pub pool_size: usize,
    /// Whether opening a database file sweeps its expired rows on a background thread.
    pub purge_on_open: bool,
    /// Whether an async `get` may run its `SELECT` on the calling task (see
    /// [`SqliteConfig::with_inline_reads`]).
    pub inline_reads: bool,
}

impl SqliteConfig {
    /// A database file at `path` (created with its parent directories when missing). The path
    /// `:memory:` means [`SqliteConfig::memory`].
    pub fn new(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        let path = (path.as_os_str() != ":memory:").then_some(path);
        SqliteConfig {
            path,
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
                "`{}` is not a sqlite url (sqlite:///path/to/db or sqlite::memory:)",
                redact_url(url)
            )));
        }
        // A SQLite database has no user or password: a URL with user info is a mistake (and
        // would otherwise become a relative path that carries the password around).
        if let Some(relative) = rest.strip_prefix("//") {
            if !relative.starts_with('/') && relative.contains('@') {
                return Err(invalid("a sqlite url takes no user or password"));
            }
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

    /// Whether this is a private in-memory database (no [`path`](Self::path)).
    pub fn is_memory(&self) -> bool {
        self.path.is_none()
    }

    /// Check the settings a builder may have got wrong (the URL parser and
    /// [`SqliteBackend::open`](crate::SqliteBackend::open) call it).
    pub(crate) fn validate(&self) -> Result<()> {
        if !(1..=MAX_POOL_SIZE).contains(&self.pool_size) {
            return Err(Error::Config(format!(
                "sqlite pool_size must be between 1 and {MAX_POOL_SIZE}, got {}",
                self.pool_size
            )));
        }
        if let Some(path) = &self.path {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decode_rejects_malformed_escapes() {
        assert_eq!(percent_decode("plain/c.db").as_deref(), Some("plain/c.db"));
        assert_eq!(percent_decode("a%20b%2Fc").as_deref(), Some("a b/c"));
        assert_eq!(percent_decode("%e6%97%a5").as_deref(), Some("日"));
        for bad in ["%", "a%2", "a%zz", "%g0", "a%%20", "%ff"] {
            assert_eq!(percent_decode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn validate_checks_the_pool_size_and_the_path() {
        assert!(SqliteConfig::memory().validate().is_ok());
        assert!(SqliteConfig::new("c.db")
            .with_pool_size(64)
            .validate()
            .is_ok());
        for size in [0, 65] {
            let err = SqliteConfig::new("c.db").with_pool_size(size).validate();
            assert!(matches!(err, Err(Error::Config(_))), "pool_size {size}");
        }
        assert!(matches!(
            SqliteConfig::new("").validate(),
            Err(Error::Config(_))
        ));
    }
}
