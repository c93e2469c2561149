//! [`FileConfig`]: where the cache directory is and how it is written, from code, the
//! environment or a `file://` url.

use std::path::PathBuf;
use steadycache_api::plumbing::{parse_count, parse_flag, redact_url};
use steadycache_api::{Error, Result};

/// The environment variable naming the cache directory ([`FileConfig::from_env`]).
const ENV_DIR: &str = "STEADYCACHE_DIR";

/// Configuration of a [`FileBackend`](crate::FileBackend).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FileConfig {
    /// The cache directory; created by [`FileBackend::open`](crate::FileBackend::open) when
    /// missing.
    pub root: PathBuf,
    /// Fsync every written file before renaming it into place, and its directory after. Off by
    /// default: a cache survives losing its last writes in a power cut.
    pub durable: bool,
    /// Bound on the total size of the entry files in bytes; the least recently used entries are
    /// removed beyond it. `None` (the default): unbounded.
    pub max_bytes: Option<u64>,
    /// Run [`FileBackend::purge_expired`](crate::FileBackend::purge_expired) in a background thread
    /// when opening (default `true`).
    pub purge_on_open: bool,
    /// Async `get` reads the entry file on the calling task instead of handing it to tokio's
    /// blocking pool (default `true`). Reading a small file from a warm page cache takes a few
    /// microseconds, less than the two thread hops of `spawn_blocking` (about 20 µs here), so a
    /// hit is about 4× faster. Turn it off when a read may stall for long (a network filesystem,
    /// a spinning disk, very large values): the executor thread would wait with it. Writes and
    /// the other operations always run on the blocking pool.
    pub inline_reads: bool,
}

impl FileConfig {
    /// A configuration for the directory `root`, not durable, unbounded, purged on open.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        FileConfig {
            root: root.into(),
            durable: false,
            max_bytes: None,
            purge_on_open: true,
            inline_reads: true,
        }
    }

    /// The directory in `$STEADYCACHE_DIR` when set and not empty, else `steadycache` in the
    /// user's cache directory (`~/.cache/steadycache` on Linux); [`Error::Config`] when there is
    /// neither.
    pub fn from_env() -> Result<Self> {
        if let Some(dir) = std::env::var_os(ENV_DIR).filter(|d| !d.is_empty()) {
            return Ok(FileConfig::new(dir));
        }
        dirs::cache_dir()
            .map(|d| FileConfig::new(d.join("steadycache")))
            .ok_or_else(|| {
                Error::Config(format!(
                    "no cache directory: set ${ENV_DIR} or give a path (file:///abs/path)"
                ))
            })
    }

    /// Parse `file:///abs/path`, optionally with options:
    /// `file:///abs/path?durable=true&max_bytes=1_000_000&purge_on_open=false&inline_reads=false`. `file://` (or
    /// `file://?options`) without a path means the directory of [`FileConfig::from_env`].
    /// Percent-escapes in the path are decoded.
    pub fn from_url(url: &str) -> Result<Self> {
        let parsed = url::Url::parse(url)
            .map_err(|e| Error::Config(format!("invalid file url `{}`: {e}", redact_url(url))))?;
        if parsed.scheme() != "file" {
            return Err(Error::Config(format!(
                "`{}` is not a file url (file:///abs/path)",
                redact_url(url)
            )));
        }
        let lower = url.trim().to_ascii_lowercase();
        let no_path = lower
            .strip_prefix("file://")
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['?', '#']));
        let mut cfg = if no_path {
            FileConfig::from_env()?
        } else {
            let path = parsed.to_file_path().map_err(|()| {
                Error::Config(format!(
                    "`{}` does not name a local absolute path (file:///abs/path)",
                    redact_url(url)
                ))
            })?;
            FileConfig::new(path)
        };
        for (k, v) in parsed.query_pairs() {
            match &*k {
                "durable" => cfg.durable = parse_flag("durable", &v)?,
                "purge_on_open" => cfg.purge_on_open = parse_flag("purge_on_open", &v)?,
                "inline_reads" => cfg.inline_reads = parse_flag("inline_reads", &v)?,
                "max_bytes" => {
                    let n = parse_count("max_bytes", &v)?;
                    if n == 0 {
                        return Err(Error::Config("max_bytes must be above zero".into()));
                    }
                    cfg.max_bytes = Some(n);
                }
                other => {
                    return Err(Error::Config(format!(
                        "unknown file url option `{other}` (known: durable, max_bytes, \
                         purge_on_open, inline_reads)"
                    )))
                }
            }
        }
        Ok(cfg)
    }

    /// Set [`durable`](FileConfig::durable).
    pub fn with_durable(mut self, durable: bool) -> Self {
        self.durable = durable;
        self
    }

    /// Set [`max_bytes`](FileConfig::max_bytes): a number of bytes, or `None` for no bound.
    pub fn with_max_bytes(mut self, max_bytes: impl Into<Option<u64>>) -> Self {
        self.max_bytes = max_bytes.into();
        self
    }

    /// Set [`inline_reads`](FileConfig::inline_reads).
    pub fn with_inline_reads(mut self, inline_reads: bool) -> Self {
        self.inline_reads = inline_reads;
        self
    }

    /// Set [`purge_on_open`](FileConfig::purge_on_open).
    pub fn with_purge_on_open(mut self, purge_on_open: bool) -> Self {
        self.purge_on_open = purge_on_open;
        self
    }
}
