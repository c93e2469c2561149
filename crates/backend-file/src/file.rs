//! [`FileBackend`]: one file per entry in a directory tree, shared safely by every process of the
//! machine.
//!
//! The layout, file format, concurrency and housekeeping are documented on [`FileBackend`].

use async_trait::async_trait;
use std::ffi::OsStr;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime};
use steadycache_api::plumbing::{
    check_ttl, deadline, io_error, parse_count, parse_flag, redact_url, run_blocking, unix_millis,
    BlockingBackend,
};
use steadycache_api::{Backend, Capabilities, Error, Result};
use xxhash_rust::xxh3::{xxh3_128, xxh3_64};

const NAME: &str = "file";
/// The environment variable naming the cache directory ([`FileConfig::from_env`]).
const ENV_DIR: &str = "STEADYCACHE_DIR";

const MAGIC: &[u8; 4] = b"SCFE";
const FORMAT_VERSION: u8 = 1;
const KIND_VALUE: u8 = 0;
const KIND_COUNTER: u8 = 1;
const KIND_LOCK: u8 = 2;
/// Bytes before the key.
const FIXED: usize = 20;
/// The smallest possible file: empty key, empty value.
const MIN_LEN: usize = FIXED + 8 + 8;

/// Encoded names longer than this are replaced by a hash.
const MAX_NAME: usize = 120;
const NO_NAMESPACE_DIR: &str = "_";
const EMPTY_NAME: &str = "_empty";
const LOCKS_DIR: &str = ".locks";
const TEMP_PREFIX: &str = ".tmp-";
const TRASH_PREFIX: &str = ".trash-";

/// Temp files and trash directories older than this belong to a dead writer.
const STALE_AFTER: Duration = Duration::from_secs(60);
/// A hit refreshes an entry's mtime (for LRU eviction) at most this often.
const TOUCH_EVERY: Duration = Duration::from_secs(60);
/// With `max_bytes`, check the total size every this many writes.
const EVICT_EVERY_WRITES: u64 = 100;
/// How often a write retries when its directory vanishes under it (a concurrent namespace clear).
const WRITE_ATTEMPTS: usize = 5;
/// How long a read-modify-write waits for the key's lock file.
const LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// Configuration of a [`FileBackend`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FileConfig {
    /// The cache directory; created by [`FileBackend::open`] when missing.
    pub root: PathBuf,
    /// Fsync every written file before renaming it into place, and its directory after. Off by
    /// default: a cache survives losing its last writes in a power cut.
    pub durable: bool,
    /// Bound on the total size of the entry files in bytes; the least recently used entries are
    /// removed beyond it. `None` (the default): unbounded.
    pub max_bytes: Option<u64>,
    /// Run [`FileBackend::purge_expired`] in a background thread when opening (default `true`).
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
                "`{url}` is not a file url (file:///abs/path)"
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
                    "`{url}` does not name a local absolute path (file:///abs/path)"
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
///   .trash-<ms>-<random>/      a namespace being removed by `delete_prefix("ns:")`
/// ```
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
/// 5        1     kind: 0 value, 1 counter (`incr`), 2 lock (`acquire_lock`)
/// 6        2     reserved, zero
/// 8        8     expires-at, ms since the Unix epoch, little endian; u64::MAX = never
/// 16       4     key length k, little endian
/// 20       k     the full key
/// 20+k     8     value length n, little endian
/// 28+k     n     the value (a counter is ASCII decimal, a lock is its token)
/// 28+k+n   8     XXH3-64 of every byte before it, little endian
/// ```
///
/// A file that does not parse, has the wrong length or the wrong checksum (truncated, garbled,
/// written by another format version) is logged with `tracing::warn!` and removed; `get`
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
/// * `set_if_absent`, `incr`, `acquire_lock` and `release_lock` take an exclusive OS lock
///   ([`File::lock`](std::fs::File::lock), `flock` on Unix) on the key's lock file, so they are
///   atomic across threads and processes. The OS drops the lock of a process that dies; the
///   lock *entry* written by `acquire_lock` carries its ttl, so a dead holder's lock expires.
///   Lock files live under `.locks/`, apart from the entries, so that removing a namespace never
///   removes a lock file someone holds. Waiting for a lock file gives up after 10 s with a
///   transient error.
/// * Plain `set` and `delete` do not take the key's lock: mixing them with `incr` or locks on the
///   same key at the same moment is last-writer-wins.
/// * `delete_prefix("ns:")` renames the namespace directory to `.trash-...` and then removes it,
///   so concurrent readers see the whole namespace or none of it.
///
/// # Housekeeping
///
/// [`FileBackend::purge_expired`] removes expired and corrupt entries, temp files older than a
/// minute (left by crashed writers), orphan lock files and empty namespace directories;
/// [`FileBackend::open`] runs one in a background thread. With [`FileConfig::max_bytes`], a
/// purge and every 100th write (in the background) also remove the least recently used entries
/// (by file mtime; a hit refreshes the mtime at most once a minute) until the entries take at
/// most 90 % of the bound. Held locks and counters are never evicted.
#[derive(Clone)]
pub struct FileBackend {
    inner: Arc<Inner>,
}

struct Inner {
    /// `config.root` made absolute.
    root: PathBuf,
    config: FileConfig,
    writes: AtomicU64,
    evicting: AtomicBool,
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
        fs::create_dir_all(&config.root).map_err(|e| {
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
        self.inner.entry_path(&Location::of(key))
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

// ---------------------------------------------------------------------------------------------
// Names

/// Where a key lives: its namespace directory and file name, both encoded.
struct Location {
    ns: String,
    name: String,
}

impl Location {
    fn of(key: &str) -> Location {
        match key.split_once(':') {
            Some((ns, rest)) => Location {
                ns: encode_name(ns),
                name: encode_name(rest),
            },
            None => Location {
                ns: NO_NAMESPACE_DIR.to_owned(),
                name: encode_name(key),
            },
        }
    }
}

/// Encode one path component (see [`FileBackend`]). Injective for names up to [`MAX_NAME`]
/// bytes; longer ones are hashed.
fn encode_name(raw: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let raw = raw.as_bytes();
    let Some(last) = raw.len().checked_sub(1) else {
        return EMPTY_NAME.to_owned();
    };
    let escape = |out: &mut String, b: u8| {
        out.push('_');
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 0xf)] as char);
    };
    let mut out = String::with_capacity(raw.len().min(MAX_NAME) + 8);
    for (i, &b) in raw.iter().enumerate() {
        let literal = match b {
            b'h' => !(i == 0 && raw.get(1) == Some(&b'-')),
            b'a'..=b'z' | b'0'..=b'9' | b'-' => true,
            b'.' => i != 0 && i != last,
            _ => false,
        };
        if literal {
            out.push(char::from(b));
        } else {
            escape(&mut out, b);
        }
        if out.len() > MAX_NAME {
            return hashed_name(raw);
        }
    }
    if is_windows_device(&out) {
        // The first byte of a device name is a literal letter: escape it.
        let mut escaped = String::with_capacity(out.len() + 2);
        if let Some(&first) = raw.first() {
            escape(&mut escaped, first);
        }
        escaped.push_str(out.get(1..).unwrap_or(""));
        out = escaped;
        if out.len() > MAX_NAME {
            return hashed_name(raw);
        }
    }
    out
}

fn hashed_name(raw: &[u8]) -> String {
    format!("h-{:032x}", xxh3_128(raw))
}

/// `con`, `prn`, `aux`, `nul`, `com0`-`com9`, `lpt0`-`lpt9`, alone or before a `.`: reserved on
/// Windows whatever the extension.
fn is_windows_device(name: &str) -> bool {
    let stem = name.split('.').next().unwrap_or(name);
    match stem.len() {
        3 => matches!(stem, "con" | "prn" | "aux" | "nul"),
        4 => {
            (stem.starts_with("com") || stem.starts_with("lpt"))
                && stem.as_bytes().get(3).is_some_and(u8::is_ascii_digit)
        }
        _ => false,
    }
}

fn starts_with(name: &OsStr, prefix: &str) -> bool {
    name.as_encoded_bytes().starts_with(prefix.as_bytes())
}

fn is_hidden(name: &OsStr) -> bool {
    name.as_encoded_bytes().first() == Some(&b'.')
}

// ---------------------------------------------------------------------------------------------
// The file format

fn encode_entry(key: &[u8], value: &[u8], expires_at: u64, kind: u8) -> Result<Vec<u8>> {
    let key_len = u32::try_from(key.len())
        .map_err(|_| Error::Config("a key may be at most 4 GiB long".into()))?;
    let mut out = Vec::with_capacity(MIN_LEN + key.len() + value.len());
    out.extend_from_slice(MAGIC);
    out.push(FORMAT_VERSION);
    out.push(kind);
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&expires_at.to_le_bytes());
    out.extend_from_slice(&key_len.to_le_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(&(value.len() as u64).to_le_bytes());
    out.extend_from_slice(value);
    let sum = xxh3_64(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    Ok(out)
}

fn le_u64(bytes: &[u8], at: usize) -> Option<u64> {
    let b = bytes.get(at..at.checked_add(8)?)?;
    b.try_into().ok().map(u64::from_le_bytes)
}

fn le_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    b.try_into().ok().map(u32::from_le_bytes)
}

/// The fixed part of a header: kind, expiry and key length.
struct Fixed {
    kind: u8,
    expires_at: u64,
    key_len: usize,
}

fn parse_fixed(bytes: &[u8]) -> std::result::Result<Fixed, &'static str> {
    if bytes.len() < FIXED {
        return Err("shorter than a header");
    }
    if bytes.get(0..4) != Some(&MAGIC[..]) {
        return Err("not a steadycache file entry (bad magic)");
    }
    if bytes.get(4) != Some(&FORMAT_VERSION) {
        return Err("unknown format version");
    }
    let kind = bytes.get(5).copied().unwrap_or(u8::MAX);
    if kind > KIND_LOCK {
        return Err("unknown entry kind");
    }
    if bytes.get(6..8) != Some(&[0, 0][..]) {
        return Err("reserved header bytes are set");
    }
    let expires_at = le_u64(bytes, 8).ok_or("shorter than a header")?;
    let key_len = le_u32(bytes, 16).ok_or("shorter than a header")?;
    let key_len = usize::try_from(key_len).map_err(|_| "key length out of range")?;
    Ok(Fixed {
        kind,
        expires_at,
        key_len,
    })
}

/// Where the value starts and ends given the key length and the value length field; `None` when
/// the sizes do not add up to `total`.
fn value_range(key_len: usize, value_len: u64, total: u64) -> Option<Range<usize>> {
    let start = FIXED.checked_add(key_len)?.checked_add(8)?;
    let end = start.checked_add(usize::try_from(value_len).ok()?)?;
    let expected = u64::try_from(end.checked_add(8)?).ok()?;
    (expected == total).then_some(start..end)
}

/// A whole parsed file.
struct Parsed {
    kind: u8,
    expires_at: u64,
    key: Range<usize>,
    value: Range<usize>,
}

fn parse_entry(bytes: &[u8]) -> std::result::Result<Parsed, &'static str> {
    if bytes.len() < MIN_LEN {
        return Err("shorter than a header");
    }
    let fixed = parse_fixed(bytes)?;
    let key_end = FIXED
        .checked_add(fixed.key_len)
        .ok_or("length does not match (truncated or padded)")?;
    let value_len = le_u64(bytes, key_end).ok_or("length does not match (truncated or padded)")?;
    let value = value_range(fixed.key_len, value_len, bytes.len() as u64)
        .ok_or("length does not match (truncated or padded)")?;
    let stored = le_u64(bytes, value.end).ok_or("length does not match (truncated or padded)")?;
    let body = bytes.get(..value.end).ok_or("length does not match")?;
    if xxh3_64(body) != stored {
        return Err("checksum mismatch");
    }
    Ok(Parsed {
        kind: fixed.kind,
        expires_at: fixed.expires_at,
        key: FIXED..key_end,
        value,
    })
}

/// The header of a file, read without its value (for walks); its lengths are checked against
/// the file size, its checksum is not.
struct Header {
    kind: u8,
    expires_at: u64,
    key: Vec<u8>,
}

/// `Ok(Err(reason))` when the file is not a well-formed entry.
fn read_header(file: &mut File, len: u64) -> io::Result<std::result::Result<Header, &'static str>> {
    if len < MIN_LEN as u64 {
        return Ok(Err("shorter than a header"));
    }
    let mut fixed = [0u8; FIXED];
    match file.read_exact(&mut fixed) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(Err("truncated")),
        Err(e) => return Err(e),
    }
    let f = match parse_fixed(&fixed) {
        Ok(f) => f,
        Err(why) => return Ok(Err(why)),
    };
    let fits = (FIXED as u64)
        .checked_add(f.key_len as u64)
        .and_then(|n| n.checked_add(16))
        .is_some_and(|n| n <= len);
    if !fits {
        return Ok(Err("length does not match (truncated or padded)"));
    }
    let mut rest = vec![0u8; f.key_len + 8];
    match file.read_exact(&mut rest) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(Err("truncated")),
        Err(e) => return Err(e),
    }
    let Some(value_len) = le_u64(&rest, f.key_len) else {
        return Ok(Err("truncated"));
    };
    if value_range(f.key_len, value_len, len).is_none() {
        return Ok(Err("length does not match (truncated or padded)"));
    }
    rest.truncate(f.key_len);
    Ok(Ok(Header {
        kind: f.kind,
        expires_at: f.expires_at,
        key: rest,
    }))
}

// ---------------------------------------------------------------------------------------------
// Small file helpers

fn is_not_found(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
}

/// Whether `path` still names the file `meta` describes (it was not replaced or removed).
fn same_file(meta: &fs::Metadata, path: &Path) -> bool {
    match fs::symlink_metadata(path) {
        #[cfg(unix)]
        Ok(now) => {
            use std::os::unix::fs::MetadataExt;
            now.dev() == meta.dev() && now.ino() == meta.ino()
        }
        #[cfg(not(unix))]
        Ok(now) => {
            let _ = meta;
            now.is_file()
        }
        Err(_) => false,
    }
}

/// Remove `path` if it still is the file `meta` describes; `true` if this call removed it.
fn remove_if_same(path: &Path, meta: &fs::Metadata) -> io::Result<bool> {
    if !same_file(meta, path) {
        return Ok(false);
    }
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if is_not_found(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The entries of a directory; a missing directory is empty.
fn list_dir(dir: &Path) -> io::Result<Vec<fs::DirEntry>> {
    match fs::read_dir(dir) {
        Ok(rd) => Ok(rd.filter_map(|e| e.ok()).collect()),
        Err(e) if is_not_found(&e) => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

fn older_than(meta: &fs::Metadata, age: Duration) -> bool {
    meta.modified()
        .ok()
        .and_then(|m| SystemTime::now().duration_since(m).ok())
        .is_some_and(|a| a >= age)
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    // Windows cannot open a directory as a file without extra flags; NTFS journals renames.
    Ok(())
}

/// An exclusive OS lock on a key's lock file, released when dropped.
struct KeyLock(File);

impl Drop for KeyLock {
    fn drop(&mut self) {
        // Closing the file releases the lock anyway; unlocking first just makes it prompt.
        let _ = self.0.unlock();
    }
}

/// What reading an entry file found.
enum Found {
    Live(Stored),
    /// No file, an expired one (removed), or another key's file.
    Absent,
    /// A damaged file, removed; the reason.
    Corrupt(&'static str),
}

/// What a read returns: the value with its kind and expiry.
struct Stored {
    kind: u8,
    expires_at: u64,
    value: Vec<u8>,
}

// ---------------------------------------------------------------------------------------------
// The operations

impl Inner {
    fn entry_path(&self, loc: &Location) -> PathBuf {
        let mut p = self.root.join(&loc.ns);
        p.push(&loc.name);
        p
    }

    /// The live entry of `key`, if any, for read-modify-write operations: a corrupt file counts
    /// as absent (see [`Inner::read_entry`]).
    fn read_live(&self, key: &str, path: &Path) -> Result<Option<Stored>> {
        Ok(match self.read_entry(key, path)? {
            Found::Live(s) => Some(s),
            Found::Absent | Found::Corrupt(_) => None,
        })
    }

    /// Read the entry of `key`. Corrupt and expired files are removed; another key's file (a
    /// hash collision) is absent and left alone.
    fn read_entry(&self, key: &str, path: &Path) -> Result<Found> {
        let mut file = match File::open(path) {
            Ok(f) => f,
            Err(e) if is_not_found(&e) => return Ok(Found::Absent),
            Err(e) => return Err(io_error(NAME, &format!("open `{}`", path.display()), e)),
        };
        let meta = file
            .metadata()
            .map_err(|e| io_error(NAME, &format!("inspect `{}`", path.display()), e))?;
        let Ok(len) = usize::try_from(meta.len()) else {
            self.discard(path, &meta, key, "larger than memory");
            return Ok(Found::Corrupt("larger than memory"));
        };
        if len < MIN_LEN {
            self.discard(path, &meta, key, "shorter than a header");
            return Ok(Found::Corrupt("shorter than a header"));
        }
        let mut buf = vec![0u8; len];
        match file.read_exact(&mut buf) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                self.discard(path, &meta, key, "truncated while reading");
                return Ok(Found::Corrupt("truncated while reading"));
            }
            Err(e) => return Err(io_error(NAME, &format!("read `{}`", path.display()), e)),
        }
        let parsed = match parse_entry(&buf) {
            Ok(p) => p,
            Err(why) => {
                self.discard(path, &meta, key, why);
                return Ok(Found::Corrupt(why));
            }
        };
        if buf.get(parsed.key.clone()) != Some(key.as_bytes()) {
            tracing::debug!(path = %path.display(), key, "file holds another key (hash collision)");
            return Ok(Found::Absent);
        }
        if parsed.expires_at <= unix_millis() {
            if let Err(e) = remove_if_same(path, &meta) {
                tracing::debug!(path = %path.display(), error = %e, "could not remove an expired entry");
            }
            return Ok(Found::Absent);
        }
        if self.config.max_bytes.is_some() && older_than(&meta, TOUCH_EVERY) {
            touch(&file, path);
        }
        buf.truncate(parsed.value.end);
        buf.drain(..parsed.value.start);
        Ok(Found::Live(Stored {
            kind: parsed.kind,
            expires_at: parsed.expires_at,
            value: buf,
        }))
    }

    /// Log and remove a corrupt file (if it was not replaced meanwhile).
    fn discard(&self, path: &Path, meta: &fs::Metadata, key: &str, why: &str) {
        tracing::warn!(path = %path.display(), key, reason = why, "corrupt cache file: removed, read as a miss");
        if let Err(e) = remove_if_same(path, meta) {
            tracing::warn!(path = %path.display(), error = %e, "could not remove a corrupt cache file");
        }
    }

    /// A corrupt file is removed and reported as [`Error::Corrupt`], so that the engine counts
    /// and logs it as the corrupt miss it is (read-modify-write operations treat it as absent).
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let path = self.entry_path(&Location::of(key));
        match self.read_entry(key, &path)? {
            Found::Live(s) => Ok(Some(s.value)),
            Found::Absent => Ok(None),
            Found::Corrupt(why) => Err(Error::Corrupt(format!(
                "cache file `{}` (removed): {why}",
                path.display()
            ))),
        }
    }

    fn set(self: &Arc<Self>, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<()> {
        check_ttl(ttl)?;
        let loc = Location::of(key);
        self.write(
            key,
            &loc,
            value,
            deadline(unix_millis(), ttl).unwrap_or(u64::MAX),
            KIND_VALUE,
        )
    }

    /// Write an entry atomically: temp file in the entry's directory, optional fsync, rename.
    fn write(
        self: &Arc<Self>,
        key: &str,
        loc: &Location,
        value: &[u8],
        expires_at: u64,
        kind: u8,
    ) -> Result<()> {
        let bytes = encode_entry(key.as_bytes(), value, expires_at, kind)?;
        let dir = self.root.join(&loc.ns);
        let path = dir.join(&loc.name);
        let mut last = None;
        for _ in 0..WRITE_ATTEMPTS {
            let mut tmp = match tempfile::Builder::new()
                .prefix(TEMP_PREFIX)
                .tempfile_in(&dir)
            {
                Ok(t) => t,
                Err(e) if is_not_found(&e) => {
                    fs::create_dir_all(&dir).map_err(|e| {
                        io_error(NAME, &format!("create directory `{}`", dir.display()), e)
                    })?;
                    last = Some(e);
                    continue;
                }
                Err(e) => {
                    return Err(io_error(
                        NAME,
                        &format!("create a temp file in `{}`", dir.display()),
                        e,
                    ))
                }
            };
            let written = tmp.write_all(&bytes).and_then(|()| {
                if self.config.durable {
                    tmp.as_file().sync_all()
                } else {
                    Ok(())
                }
            });
            match written {
                Ok(()) => {}
                // The directory was renamed away (a namespace clear): write again.
                Err(e) if is_not_found(&e) => {
                    last = Some(e);
                    continue;
                }
                Err(e) => {
                    return Err(io_error(
                        NAME,
                        &format!("write `{}`", tmp.path().display()),
                        e,
                    ))
                }
            }
            match tmp.persist(&path) {
                Ok(_) => {
                    if self.config.durable {
                        sync_dir(&dir).map_err(|e| {
                            io_error(NAME, &format!("sync directory `{}`", dir.display()), e)
                        })?;
                    }
                    self.note_write();
                    return Ok(());
                }
                Err(e) if is_not_found(&e.error) => last = Some(e.error),
                Err(e) => {
                    return Err(io_error(
                        NAME,
                        &format!("rename into `{}`", path.display()),
                        e.error,
                    ))
                }
            }
        }
        Err(io_error(
            NAME,
            &format!("write `{}` (its directory kept vanishing)", path.display()),
            last.unwrap_or_else(|| io::Error::from(io::ErrorKind::NotFound)),
        ))
    }

    /// Count a write; every [`EVICT_EVERY_WRITES`] writes with a bound, check it in the
    /// background (one check at a time per backend).
    fn note_write(self: &Arc<Self>) {
        if self.config.max_bytes.is_none() {
            return;
        }
        let n = self.writes.fetch_add(1, Ordering::Relaxed) + 1;
        if !n.is_multiple_of(EVICT_EVERY_WRITES) || self.evicting.swap(true, Ordering::AcqRel) {
            return;
        }
        let bg = Arc::clone(self);
        let spawned = thread::Builder::new()
            .name("steadycache-file-evict".into())
            .spawn(move || {
                if let Err(e) = bg.enforce_max_bytes() {
                    tracing::warn!(root = %bg.root.display(), error = %e, "eviction failed");
                }
                bg.evicting.store(false, Ordering::Release);
            });
        if let Err(e) = spawned {
            self.evicting.store(false, Ordering::Release);
            tracing::warn!(error = %e, "could not start the eviction thread");
        }
    }

    fn delete(&self, key: &str) -> Result<bool> {
        let path = self.entry_path(&Location::of(key));
        let mut file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if is_not_found(&e) => return Ok(false),
            Err(e) => return Err(io_error(NAME, &format!("open `{}`", path.display()), e)),
        };
        let meta = file
            .metadata()
            .map_err(|e| io_error(NAME, &format!("inspect `{}`", path.display()), e))?;
        let header = read_header(&mut file, meta.len())
            .map_err(|e| io_error(NAME, &format!("read `{}`", path.display()), e))?;
        drop(file);
        let live = match header {
            // Another key's file (hash collision): not ours to remove.
            Ok(h) if h.key != key.as_bytes() => return Ok(false),
            Ok(h) => h.expires_at > unix_millis(),
            Err(_) => false,
        };
        let removed = remove_if_same(&path, &meta)
            .map_err(|e| io_error(NAME, &format!("remove `{}`", path.display()), e))?;
        Ok(removed && live)
    }

    /// Take the exclusive OS lock of `loc`'s lock file, waiting up to [`LOCK_TIMEOUT`].
    fn lock_key(&self, loc: &Location) -> Result<KeyLock> {
        let dir = self.root.join(LOCKS_DIR).join(&loc.ns);
        let path = dir.join(&loc.name);
        let deadline = Instant::now() + LOCK_TIMEOUT;
        let mut pause = Duration::from_micros(50);
        loop {
            let file = match OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
            {
                Ok(f) => f,
                Err(e) if is_not_found(&e) => {
                    fs::create_dir_all(&dir).map_err(|e| {
                        io_error(NAME, &format!("create directory `{}`", dir.display()), e)
                    })?;
                    continue;
                }
                Err(e) => {
                    return Err(io_error(
                        NAME,
                        &format!("open lock file `{}`", path.display()),
                        e,
                    ))
                }
            };
            // Poll with backoff rather than block, so a stopped holder cannot hang us forever.
            loop {
                match file.try_lock() {
                    Ok(()) => break,
                    Err(fs::TryLockError::WouldBlock) => {
                        if Instant::now() >= deadline {
                            return Err(Error::unavailable(
                                NAME,
                                format!(
                                    "timed out after {LOCK_TIMEOUT:?} waiting for lock file `{}`",
                                    path.display()
                                ),
                            ));
                        }
                        let jitter = Duration::from_micros(fastrand::u64(0..50));
                        thread::sleep(pause + jitter);
                        pause = (pause * 2).min(Duration::from_millis(5));
                    }
                    Err(fs::TryLockError::Error(e)) => {
                        return Err(io_error(NAME, &format!("lock `{}`", path.display()), e))
                    }
                }
            }
            // A purge may have removed the lock file between our open and our lock: then we hold
            // a lock nobody else will see. Check the path still names our file.
            let meta = file
                .metadata()
                .map_err(|e| io_error(NAME, &format!("inspect `{}`", path.display()), e))?;
            if same_file(&meta, &path) {
                return Ok(KeyLock(file));
            }
            if Instant::now() >= deadline {
                return Err(Error::unavailable(
                    NAME,
                    format!("lock file `{}` kept being removed", path.display()),
                ));
            }
        }
    }

    fn set_if_absent(
        self: &Arc<Self>,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool> {
        check_ttl(ttl)?;
        let loc = Location::of(key);
        let _lock = self.lock_key(&loc)?;
        if self.read_live(key, &self.entry_path(&loc))?.is_some() {
            return Ok(false);
        }
        self.write(
            key,
            &loc,
            value,
            deadline(unix_millis(), ttl).unwrap_or(u64::MAX),
            KIND_VALUE,
        )?;
        Ok(true)
    }

    fn incr(self: &Arc<Self>, key: &str, by: i64, ttl: Option<Duration>) -> Result<i64> {
        check_ttl(ttl)?;
        let loc = Location::of(key);
        let _lock = self.lock_key(&loc)?;
        let (current, expires_at) = match self.read_live(key, &self.entry_path(&loc))? {
            None => (0, deadline(unix_millis(), ttl).unwrap_or(u64::MAX)),
            Some(s) if s.kind == KIND_LOCK => {
                return Err(Error::backend(
                    NAME,
                    format!("`{key}` holds a lock, not a counter"),
                ))
            }
            Some(s) => {
                let n = std::str::from_utf8(&s.value)
                    .ok()
                    .and_then(|t| t.trim().parse::<i64>().ok())
                    .ok_or_else(|| {
                        Error::backend(NAME, format!("`{key}` does not hold an integer"))
                    })?;
                (n, s.expires_at)
            }
        };
        let next = current
            .checked_add(by)
            .ok_or_else(|| Error::backend(NAME, format!("counter `{key}` would overflow")))?;
        self.write(
            key,
            &loc,
            next.to_string().as_bytes(),
            expires_at,
            KIND_COUNTER,
        )?;
        Ok(next)
    }

    fn acquire_lock(self: &Arc<Self>, key: &str, token: &str, ttl: Duration) -> Result<bool> {
        check_ttl(Some(ttl))?;
        let loc = Location::of(key);
        let _lock = self.lock_key(&loc)?;
        if self.read_live(key, &self.entry_path(&loc))?.is_some() {
            return Ok(false);
        }
        let expires_at = deadline(unix_millis(), Some(ttl)).unwrap_or(u64::MAX);
        self.write(key, &loc, token.as_bytes(), expires_at, KIND_LOCK)?;
        Ok(true)
    }

    fn release_lock(&self, key: &str, token: &str) -> Result<bool> {
        let loc = Location::of(key);
        let _lock = self.lock_key(&loc)?;
        let path = self.entry_path(&loc);
        match self.read_live(key, &path)? {
            Some(s) if s.kind == KIND_LOCK && s.value == token.as_bytes() => {
                match fs::remove_file(&path) {
                    Ok(()) => Ok(true),
                    Err(e) if is_not_found(&e) => Ok(false),
                    Err(e) => Err(io_error(NAME, &format!("remove `{}`", path.display()), e)),
                }
            }
            _ => Ok(false),
        }
    }

    fn ping(&self) -> Result<()> {
        let meta = fs::metadata(&self.root)
            .map_err(|e| io_error(NAME, &format!("inspect `{}`", self.root.display()), e))?;
        if !meta.is_dir() {
            return Err(Error::backend(
                NAME,
                format!("`{}` is not a directory", self.root.display()),
            ));
        }
        tempfile::Builder::new()
            .prefix(".tmp-ping-")
            .tempfile_in(&self.root)
            .map_err(|e| {
                io_error(
                    NAME,
                    &format!("write a probe file in `{}`", self.root.display()),
                    e,
                )
            })?;
        Ok(())
    }

    // -- delete_prefix ---------------------------------------------------------------------

    fn delete_prefix(&self, prefix: &str) -> Result<u64> {
        let now = unix_millis();
        match prefix.split_once(':') {
            // Every key of one namespace: drop its directory.
            Some((ns, "")) => self.clear_dir(&self.root.join(encode_name(ns)), now),
            // Part of one namespace: only its directory can hold matches.
            Some((ns, _)) => self.remove_matching(&self.root.join(encode_name(ns)), prefix, now),
            None => {
                let mut removed = 0;
                for dir in self.namespace_dirs()? {
                    removed += if prefix.is_empty() {
                        self.clear_dir(&dir, now)?
                    } else {
                        self.remove_matching(&dir, prefix, now)?
                    };
                }
                Ok(removed)
            }
        }
    }

    /// The namespace directories (hidden bookkeeping entries excluded).
    fn namespace_dirs(&self) -> Result<Vec<PathBuf>> {
        let entries = list_dir(&self.root)
            .map_err(|e| io_error(NAME, &format!("list `{}`", self.root.display()), e))?;
        Ok(entries
            .into_iter()
            .filter(|e| !is_hidden(&e.file_name()))
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.path())
            .collect())
    }

    /// Remove a whole namespace directory: rename it to a trash name (readers and writers see
    /// all of it or none), count its live entries, remove it.
    fn clear_dir(&self, dir: &Path, now: u64) -> Result<u64> {
        let trash = self
            .root
            .join(format!("{TRASH_PREFIX}{now}-{:016x}", fastrand::u64(..)));
        match fs::rename(dir, &trash) {
            Ok(()) => {}
            Err(e) if is_not_found(&e) => return Ok(0),
            Err(e) => {
                // Renaming can fail where removing files works (a Windows file held open):
                // fall back to removing entry by entry.
                tracing::debug!(dir = %dir.display(), error = %e, "rename to trash failed");
                return self.remove_matching(dir, "", now);
            }
        }
        let mut live = 0;
        for entry in list_dir(&trash).unwrap_or_default() {
            let name = entry.file_name();
            if is_hidden(&name) {
                continue;
            }
            let path = entry.path();
            let Ok(mut file) = File::open(&path) else {
                continue;
            };
            let len = file.metadata().map(|m| m.len()).unwrap_or(0);
            if let Ok(Ok(h)) = read_header(&mut file, len) {
                if h.expires_at > now {
                    live += 1;
                }
            }
        }
        if let Err(e) = fs::remove_dir_all(&trash) {
            tracing::warn!(dir = %trash.display(), error = %e, "could not remove a cleared namespace; the next purge retries");
        }
        Ok(live)
    }

    /// Remove the entries of `dir` whose key starts with `prefix`; the number of live ones.
    fn remove_matching(&self, dir: &Path, prefix: &str, now: u64) -> Result<u64> {
        let entries =
            list_dir(dir).map_err(|e| io_error(NAME, &format!("list `{}`", dir.display()), e))?;
        let mut removed = 0;
        for entry in entries {
            if is_hidden(&entry.file_name()) || !entry.file_type().is_ok_and(|t| t.is_file()) {
                continue;
            }
            let path = entry.path();
            let mut file = match File::open(&path) {
                Ok(f) => f,
                Err(e) if is_not_found(&e) => continue,
                Err(e) => return Err(io_error(NAME, &format!("open `{}`", path.display()), e)),
            };
            let meta = file
                .metadata()
                .map_err(|e| io_error(NAME, &format!("inspect `{}`", path.display()), e))?;
            let header = read_header(&mut file, meta.len())
                .map_err(|e| io_error(NAME, &format!("read `{}`", path.display()), e))?;
            drop(file);
            let live = match header {
                Ok(h) if h.key.starts_with(prefix.as_bytes()) => h.expires_at > now,
                // Not matching, or corrupt (unknown key) while only a part is removed.
                Ok(_) => continue,
                Err(_) if prefix.is_empty() => false,
                Err(_) => continue,
            };
            let gone = remove_if_same(&path, &meta)
                .map_err(|e| io_error(NAME, &format!("remove `{}`", path.display()), e))?;
            if gone && live {
                removed += 1;
            }
        }
        Ok(removed)
    }

    // -- housekeeping -------------------------------------------------------------------------

    fn purge(&self) -> Result<u64> {
        let now = unix_millis();
        let top = list_dir(&self.root)
            .map_err(|e| io_error(NAME, &format!("list `{}`", self.root.display()), e))?;
        let mut removed = 0;
        for entry in top {
            let name = entry.file_name();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let path = entry.path();
            if starts_with(&name, TRASH_PREFIX) {
                if kind.is_dir() && trash_is_stale(&name, now) {
                    match fs::remove_dir_all(&path) {
                        Ok(()) => {}
                        Err(e) if is_not_found(&e) => {}
                        Err(e) => {
                            tracing::warn!(dir = %path.display(), error = %e, "could not remove trash")
                        }
                    }
                }
            } else if starts_with(&name, TEMP_PREFIX) {
                remove_stale_temp(&entry);
            } else if !is_hidden(&name) && kind.is_dir() {
                removed += self.purge_dir(&path, now);
            }
        }
        self.purge_orphan_locks();
        if self.config.max_bytes.is_some() {
            let evicted = self.enforce_max_bytes()?;
            tracing::debug!(root = %self.root.display(), evicted, "eviction after purge");
        }
        Ok(removed)
    }

    /// Purge one namespace directory; the number of expired or corrupt entries removed.
    fn purge_dir(&self, dir: &Path, now: u64) -> u64 {
        let entries = match list_dir(dir) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "could not list a namespace");
                return 0;
            }
        };
        let mut removed = 0;
        let mut kept = 0usize;
        for entry in entries {
            let name = entry.file_name();
            if starts_with(&name, TEMP_PREFIX) {
                if !remove_stale_temp(&entry) {
                    kept += 1;
                }
                continue;
            }
            kept += 1;
            if is_hidden(&name) || !entry.file_type().is_ok_and(|t| t.is_file()) {
                continue;
            }
            let path = entry.path();
            let Ok(mut file) = File::open(&path) else {
                continue;
            };
            let Ok(meta) = file.metadata() else {
                continue;
            };
            let doomed = match read_header(&mut file, meta.len()) {
                Ok(Ok(h)) => h.expires_at <= now,
                Ok(Err(why)) => {
                    tracing::warn!(path = %path.display(), reason = why, "corrupt cache file: removed by purge");
                    true
                }
                Err(_) => false,
            };
            drop(file);
            if doomed {
                match remove_if_same(&path, &meta) {
                    Ok(true) => {
                        removed += 1;
                        kept -= 1;
                    }
                    Ok(false) => {}
                    Err(e) => {
                        tracing::debug!(path = %path.display(), error = %e, "could not purge an entry")
                    }
                }
            }
        }
        if kept == 0 {
            // Fails harmlessly if a writer just put a temp file in it (writers recreate it).
            let _ = fs::remove_dir(dir);
        }
        removed
    }

    /// Remove lock files whose entry does not exist and that nobody holds.
    fn purge_orphan_locks(&self) {
        let locks = self.root.join(LOCKS_DIR);
        for ns in list_dir(&locks).unwrap_or_default() {
            if !ns.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let ns_name = ns.file_name();
            let entries = list_dir(&ns.path()).unwrap_or_default();
            let mut kept = 0usize;
            for lock in entries {
                kept += 1;
                let lock_path = lock.path();
                let mut entry_path = self.root.join(&ns_name);
                entry_path.push(lock.file_name());
                if fs::symlink_metadata(&entry_path).is_ok() {
                    continue;
                }
                let Ok(file) = OpenOptions::new().read(true).write(true).open(&lock_path) else {
                    continue;
                };
                if file.try_lock().is_err() {
                    continue; // held: in use
                }
                let orphan = fs::symlink_metadata(&entry_path).is_err()
                    && file.metadata().is_ok_and(|m| same_file(&m, &lock_path));
                // Removed while we hold it: whoever opened it before sees, after locking, that
                // the path no longer names their file and opens it again.
                if orphan && fs::remove_file(&lock_path).is_ok() {
                    kept -= 1;
                }
                let _ = file.unlock();
            }
            if kept == 0 {
                let _ = fs::remove_dir(ns.path());
            }
        }
    }

    fn enforce_max_bytes(&self) -> Result<u64> {
        let Some(max) = self.config.max_bytes else {
            return Ok(0);
        };
        let mut files: Vec<(SystemTime, u64, PathBuf)> = Vec::new();
        let mut total: u64 = 0;
        for dir in self.namespace_dirs()? {
            for entry in list_dir(&dir).unwrap_or_default() {
                if is_hidden(&entry.file_name()) {
                    continue;
                }
                let Ok(meta) = entry.metadata() else {
                    continue;
                };
                if !meta.is_file() {
                    continue;
                }
                total = total.saturating_add(meta.len());
                let mtime = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                files.push((mtime, meta.len(), entry.path()));
            }
        }
        if total <= max {
            return Ok(0);
        }
        let target = max - max / 10;
        files.sort_unstable_by_key(|f| f.0);
        let now = unix_millis();
        let mut evicted = 0;
        for (_, len, path) in files {
            if total <= target {
                break;
            }
            let Ok(mut file) = File::open(&path) else {
                total = total.saturating_sub(len); // gone already
                continue;
            };
            let Ok(meta) = file.metadata() else {
                continue;
            };
            if let Ok(Ok(h)) = read_header(&mut file, meta.len()) {
                if h.kind != KIND_VALUE && h.expires_at > now {
                    continue; // a held lock or a live counter: not a cache value
                }
            }
            drop(file);
            match remove_if_same(&path, &meta) {
                Ok(true) => {
                    total = total.saturating_sub(len);
                    evicted += 1;
                }
                Ok(false) => total = total.saturating_sub(len),
                Err(e) => return Err(io_error(NAME, &format!("evict `{}`", path.display()), e)),
            }
        }
        if evicted > 0 {
            tracing::debug!(root = %self.root.display(), evicted, total, max, "evicted least recently used entries");
        }
        Ok(evicted)
    }
}

/// Refresh an entry's mtime (its recency for LRU eviction). Best effort.
fn touch(file: &File, path: &Path) {
    let now = SystemTime::now();
    if file.set_modified(now).is_ok() {
        return;
    }
    // Some platforms need a handle opened for writing to change times.
    let retried = OpenOptions::new()
        .append(true)
        .open(path)
        .and_then(|f| f.set_modified(now));
    if let Err(e) = retried {
        tracing::debug!(path = %path.display(), error = %e, "could not refresh an entry's mtime");
    }
}

/// Remove a temp file older than [`STALE_AFTER`]; `true` if it is gone.
fn remove_stale_temp(entry: &fs::DirEntry) -> bool {
    let stale = entry
        .metadata()
        .is_ok_and(|m| m.is_file() && older_than(&m, STALE_AFTER));
    stale && fs::remove_file(entry.path()).is_ok()
}

/// `.trash-<ms>-<random>` older than [`STALE_AFTER`] (or not named by us: stale).
fn trash_is_stale(name: &OsStr, now: u64) -> bool {
    let name = name.to_string_lossy();
    let made = name
        .strip_prefix(TRASH_PREFIX)
        .and_then(|rest| rest.split('-').next())
        .and_then(|ms| ms.parse::<u64>().ok());
    let stale_ms = u64::try_from(STALE_AFTER.as_millis()).unwrap_or(u64::MAX);
    made.is_none_or(|ms| now.saturating_sub(ms) >= stale_ms)
}

// ---------------------------------------------------------------------------------------------
// The contract

#[async_trait]
impl Backend for FileBackend {
    fn name(&self) -> &str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::all()
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
        run_blocking(NAME, move || inner.delete_prefix(&prefix)).await
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_safe_and_distinct() {
        let cases = [
            "", ".", "..", "...", "a", "A", "h-x", "h", "con", "CON", "nul.txt", "com1", "lpt9.x",
            "a.b", ".a", "a.", "a/b", "a\\b", "a\0b", "_", "_5f", "_empty", "日本",
        ];
        let mut seen = std::collections::HashSet::new();
        for c in cases {
            let n = encode_name(c);
            assert!(!n.is_empty() && n != "." && n != "..", "{c:?} -> {n:?}");
            assert!(!n.starts_with('.') && !n.ends_with('.'), "{c:?} -> {n:?}");
            assert!(
                n.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b)),
                "{c:?} -> {n:?}"
            );
            assert!(!is_windows_device(&n), "{c:?} -> {n:?}");
            assert!(seen.insert(n.clone()), "{c:?} collides as {n:?}");
        }
        assert!(seen.insert(NO_NAMESPACE_DIR.to_owned()));
        let long = "x".repeat(10_000);
        let h = encode_name(&long);
        assert!(h.starts_with("h-") && h.len() == 34);
        assert_eq!(encode_name("h-x"), "_68-x");
    }

    #[test]
    fn format_round_trips_and_rejects_damage() {
        let bytes = encode_entry(b"ns:k", b"value", 42, KIND_COUNTER).unwrap();
        let p = parse_entry(&bytes).unwrap();
        assert_eq!(&bytes[p.key.clone()], b"ns:k");
        assert_eq!(&bytes[p.value.clone()], b"value");
        assert_eq!((p.kind, p.expires_at), (KIND_COUNTER, 42));
        for cut in 0..bytes.len() {
            assert!(parse_entry(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x10;
            assert!(parse_entry(&b).is_err(), "flip at {i}");
        }
        let mut padded = bytes.clone();
        padded.push(0);
        assert!(parse_entry(&padded).is_err());
        let mut huge_key = bytes.clone();
        huge_key[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(parse_entry(&huge_key).is_err());
    }
}
