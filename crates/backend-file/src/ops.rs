//! The plain operations: `get`, `set`, `delete` and `ping`, and the atomic write every writing
//! operation goes through. None of them takes a key's lock.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use steadycache_api::plumbing::{
    check_ttl, create_private_dir_all, deadline, io_error, unix_millis,
};
use steadycache_api::{Error, Result};

use crate::backend::{Inner, NAME};
use crate::format::{encode_entry, is_ours, parse_entry, Sniffed, KIND_VALUE, MIN_LEN};
use crate::fs::{is_not_found, older_than, remove_if_same, sync_dir};
use crate::names::{Location, TEMP_PREFIX, TEMP_RAND};
use crate::prefix::header_at;

/// The first read of an entry file: an entry up to this long (key and value included) is read
/// whole by it.
const FIRST_READ: usize = 4096;
/// A hit refreshes an entry's mtime (for LRU eviction) at most this often.
const TOUCH_EVERY: Duration = Duration::from_secs(60);
/// How often a write retries when its directory vanishes under it (a concurrent namespace clear).
const WRITE_ATTEMPTS: usize = 5;

/// What reading an entry file found.
pub(crate) enum Found {
    Live(Stored),
    /// No file, an expired one (removed), or another key's file.
    Absent,
    /// A damaged file, removed; the reason.
    Corrupt(&'static str),
}

/// Read into `buf` once (again if interrupted): how many bytes came, `buf.len()` at most.
fn read_some(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match file.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// A file at an entry's path that this backend did not write: a miss, left alone.
fn foreign(path: &Path) -> Found {
    tracing::debug!(path = %path.display(), "a file the cache did not write: read as a miss, left alone");
    Found::Absent
}

/// What a read returns: the value with its kind and expiry.
pub(crate) struct Stored {
    pub(crate) kind: u8,
    pub(crate) expires_at: u64,
    pub(crate) value: Vec<u8>,
}

/// A temp file for an entry in `dir` (named so that listings and clears pass it by);
/// `Ok(Err(_))` when `dir` was missing: it is created now, try again.
fn temp_file_in(dir: &Path) -> Result<io::Result<tempfile::NamedTempFile>> {
    match tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .rand_bytes(TEMP_RAND)
        .tempfile_in(dir)
    {
        Ok(t) => Ok(Ok(t)),
        Err(e) if is_not_found(&e) => {
            create_private_dir_all(dir)
                .map_err(|e| io_error(NAME, &format!("create directory `{}`", dir.display()), e))?;
            Ok(Err(e))
        }
        Err(e) => Err(io_error(
            NAME,
            &format!("create a temp file in `{}`", dir.display()),
            e,
        )),
    }
}

impl Inner {
    /// Read the entry of `key`. Corrupt and expired files are removed; another key's file (a
    /// hash collision) is absent and left alone.
    ///
    /// One `read` of up to [`FIRST_READ`] bytes, into the stack, holds a whole ordinary entry:
    /// a hit is `open`, `read`, `close` (no `stat`: the header says how long the entry is, and
    /// a short read of a regular file is its end). A file that fills the first read is sized
    /// with `stat` and read on only if it starts with the magic: a user's file is read at most
    /// its first 4 KiB, never whole, and never removed. The file's identity (to remove only
    /// the file read) and its mtime (LRU touches, with `max_bytes`) are asked for only when
    /// needed.
    pub(crate) fn read_entry(&self, key: &str, path: &Path) -> Result<Found> {
        let mut file = match File::open(path) {
            Ok(f) => f,
            Err(e) if is_not_found(&e) => return Ok(Found::Absent),
            Err(e) => return Err(io_error(NAME, &format!("open `{}`", path.display()), e)),
        };
        let mut first = [0u8; FIRST_READ];
        let n = read_some(&mut file, &mut first)
            .map_err(|e| io_error(NAME, &format!("read `{}`", path.display()), e))?;
        let head = first.get(..n).unwrap_or_default();
        if !is_ours(head) {
            return Ok(foreign(path));
        }
        let mut long = Vec::new();
        let bytes = if n < FIRST_READ {
            head
        } else {
            match self.read_rest(&mut file, path, key, head, &mut long)? {
                Some(()) => &long[..],
                None => return Ok(Found::Corrupt("truncated while reading")),
            }
        };
        self.judge(key, path, &file, bytes)
    }

    /// The rest of a file whose first read filled [`FIRST_READ`] (`head`), into `whole`; `None`
    /// (removed as corrupt) when it ends before its size said.
    fn read_rest(
        &self,
        file: &mut File,
        path: &Path,
        key: &str,
        head: &[u8],
        whole: &mut Vec<u8>,
    ) -> Result<Option<()>> {
        let meta = file
            .metadata()
            .map_err(|e| io_error(NAME, &format!("inspect `{}`", path.display()), e))?;
        let Some(len) = usize::try_from(meta.len())
            .ok()
            .filter(|&l| l >= head.len())
        else {
            // Larger than memory, or shorter than what was read: not an entry of ours.
            self.discard(path, file, key, "truncated while reading");
            return Ok(None);
        };
        whole.reserve_exact(len);
        whole.extend_from_slice(head);
        whole.resize(len, 0);
        match file.read_exact(whole.get_mut(head.len()..).unwrap_or_default()) {
            Ok(()) => Ok(Some(())),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                self.discard(path, file, key, "truncated while reading");
                Ok(None)
            }
            Err(e) => Err(io_error(NAME, &format!("read `{}`", path.display()), e)),
        }
    }

    /// A whole file of ours, `bytes`, judged: live (its value copied out), absent (expired and
    /// removed, or another key's) or corrupt (removed).
    fn judge(&self, key: &str, path: &Path, file: &File, bytes: &[u8]) -> Result<Found> {
        if bytes.len() < MIN_LEN {
            self.discard(path, file, key, "shorter than a header");
            return Ok(Found::Corrupt("shorter than a header"));
        }
        let parsed = match parse_entry(bytes) {
            Ok(p) => p,
            Err(why) => {
                self.discard(path, file, key, why);
                return Ok(Found::Corrupt(why));
            }
        };
        if bytes.get(parsed.key.clone()) != Some(key.as_bytes()) {
            tracing::debug!(path = %path.display(), key, "file holds another key (hash collision)");
            return Ok(Found::Absent);
        }
        if parsed.expires_at <= unix_millis() {
            let removed = file.metadata().and_then(|meta| remove_if_same(path, &meta));
            if let Err(e) = removed {
                tracing::debug!(path = %path.display(), error = %e, "could not remove an expired entry");
            }
            return Ok(Found::Absent);
        }
        if self.config.max_bytes.is_some()
            && file.metadata().is_ok_and(|m| older_than(&m, TOUCH_EVERY))
        {
            touch(file, path);
        }
        Ok(Found::Live(Stored {
            kind: parsed.kind,
            expires_at: parsed.expires_at,
            value: bytes.get(parsed.value).unwrap_or_default().to_vec(),
        }))
    }

    /// Log and remove a corrupt file (if it is still the file read: not replaced meanwhile).
    fn discard(&self, path: &Path, file: &File, key: &str, why: &str) {
        tracing::warn!(path = %path.display(), key, reason = why, "corrupt cache file: removed, read as a miss");
        if let Err(e) = file.metadata().and_then(|meta| remove_if_same(path, &meta)) {
            tracing::warn!(path = %path.display(), error = %e, "could not remove a corrupt cache file");
        }
    }

    /// A corrupt file is removed and reported as [`Error::Corrupt`], so that the engine counts
    /// and logs it as the corrupt miss it is (read-modify-write operations treat it as absent).
    pub(crate) fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let path = Location::of(key).path_under(&self.root);
        match self.read_entry(key, &path)? {
            Found::Live(s) => Ok(Some(s.value)),
            Found::Absent => Ok(None),
            Found::Corrupt(why) => Err(Error::Corrupt(format!(
                "cache file `{}` (removed): {why}",
                path.display()
            ))),
        }
    }

    pub(crate) fn set(
        self: &Arc<Self>,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<()> {
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
    pub(crate) fn write(
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
        refuse_foreign(&path)?;
        let mut last = None;
        for _ in 0..WRITE_ATTEMPTS {
            let mut tmp = match temp_file_in(&dir)? {
                Ok(t) => t,
                Err(missing) => {
                    last = Some(missing);
                    continue;
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

    pub(crate) fn delete(&self, key: &str) -> Result<bool> {
        let path = Location::of(key).path_under(&self.root);
        let Some((meta, header)) = header_at(&path)? else {
            return Ok(false);
        };
        let live = match header {
            // Another key's file (hash collision), or a file this backend did not write: not
            // ours to remove.
            Sniffed::Entry(h) if h.key != key.as_bytes() => return Ok(false),
            Sniffed::Foreign => return Ok(false),
            Sniffed::Entry(h) => h.expires_at > unix_millis(),
            Sniffed::Corrupt(_) => false,
        };
        let removed = remove_if_same(&path, &meta)
            .map_err(|e| io_error(NAME, &format!("remove `{}`", path.display()), e))?;
        Ok(removed && live)
    }

    pub(crate) fn ping(&self) -> Result<()> {
        let meta = fs::metadata(&self.root)
            .map_err(|e| io_error(NAME, &format!("inspect `{}`", self.root.display()), e))?;
        if !meta.is_dir() {
            return Err(Error::backend(
                NAME,
                format!("`{}` is not a directory", self.root.display()),
            ));
        }
        tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .rand_bytes(TEMP_RAND)
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
}

/// A write never replaces a file this backend did not write (a user's file whose path happens
/// to be a key's): it is an error instead. A path that is no file, or an entry of ours, is
/// fine. Checked before the rename, not atomically with it: a file a user puts there in the
/// same instant may still be replaced.
fn refuse_foreign(path: &Path) -> Result<()> {
    match header_at(path)? {
        Some((_, Sniffed::Foreign)) => Err(Error::backend(
            NAME,
            format!(
                "`{}` is a file the cache did not write: not overwritten",
                path.display()
            ),
        )),
        Some(_) | None => Ok(()),
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
