//! The read-modify-write operations (`set_if_absent`, `incr`, `acquire_lock`, `extend_lock`,
//! `release_lock`), serialized across threads and processes by an exclusive OS lock on the key's
//! lock file.

use std::fs::{self, File, OpenOptions};
use std::path::Path;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};
use steadycache_api::plumbing::{
    check_ttl, create_private_dir_all, deadline, io_error, unix_millis,
};
use steadycache_api::{Error, Result};

use crate::backend::{Inner, NAME};
use crate::format::{KIND_COUNTER, KIND_LOCK, KIND_VALUE};
use crate::fs::{is_not_found, same_file};
use crate::names::{Location, LOCKS_DIR};
use crate::ops::{Found, Stored};

/// How long a read-modify-write waits for the key's lock file.
const LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// An exclusive OS lock on a key's lock file, released when dropped.
struct KeyLock(File);

impl Drop for KeyLock {
    fn drop(&mut self) {
        // Closing the file releases the lock anyway; unlocking first just makes it prompt.
        let _ = self.0.unlock();
    }
}

impl Inner {
    /// The live entry of `key`, if any, for read-modify-write operations: a corrupt file counts
    /// as absent (see [`Inner::read_entry`]).
    fn read_live(&self, key: &str, path: &Path) -> Result<Option<Stored>> {
        Ok(match self.read_entry(key, path)? {
            Found::Live(s) => Some(s),
            Found::Absent | Found::Corrupt(_) => None,
        })
    }

    /// Take the exclusive OS lock of `loc`'s lock file, waiting up to [`LOCK_TIMEOUT`].
    fn lock_key(&self, loc: &Location) -> Result<KeyLock> {
        let dir = self.root.join(LOCKS_DIR).join(&loc.ns);
        let path = dir.join(&loc.name);
        let deadline = Instant::now() + LOCK_TIMEOUT;
        let mut pause = Duration::from_micros(50);
        loop {
            let file = match private_options()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
            {
                Ok(f) => f,
                // The purge removes empty lock directories: recreate it and retry, within the
                // same deadline as a held lock (a directory that keeps vanishing cannot spin us
                // forever).
                Err(e) if is_not_found(&e) && Instant::now() < deadline => {
                    create_private_dir_all(&dir).map_err(|e| {
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

    pub(crate) fn set_if_absent(
        self: &Arc<Self>,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool> {
        check_ttl(ttl)?;
        let loc = Location::of(key);
        let _lock = self.lock_key(&loc)?;
        if self.read_live(key, &loc.path_under(&self.root))?.is_some() {
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

    pub(crate) fn incr(self: &Arc<Self>, key: &str, by: i64, ttl: Option<Duration>) -> Result<i64> {
        check_ttl(ttl)?;
        let loc = Location::of(key);
        let _lock = self.lock_key(&loc)?;
        let (current, expires_at) = match self.read_live(key, &loc.path_under(&self.root))? {
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

    pub(crate) fn acquire_lock(
        self: &Arc<Self>,
        key: &str,
        token: &str,
        ttl: Duration,
    ) -> Result<bool> {
        check_ttl(Some(ttl))?;
        let loc = Location::of(key);
        let _lock = self.lock_key(&loc)?;
        if self.read_live(key, &loc.path_under(&self.root))?.is_some() {
            return Ok(false);
        }
        let expires_at = deadline(unix_millis(), Some(ttl)).unwrap_or(u64::MAX);
        self.write(key, &loc, token.as_bytes(), expires_at, KIND_LOCK)?;
        Ok(true)
    }

    pub(crate) fn release_lock(&self, key: &str, token: &str) -> Result<bool> {
        let loc = Location::of(key);
        let _lock = self.lock_key(&loc)?;
        let path = loc.path_under(&self.root);
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

    /// Renew the lock entry of `key` if `token` holds it and it has not expired: the same entry
    /// (kind, key, token) rewritten with the new expiry, atomically (temp file and rename), under
    /// the key's OS lock, so no `acquire_lock` can slip in between the check and the write.
    pub(crate) fn extend_lock(
        self: &Arc<Self>,
        key: &str,
        token: &str,
        ttl: Duration,
    ) -> Result<bool> {
        check_ttl(Some(ttl))?;
        let loc = Location::of(key);
        let _lock = self.lock_key(&loc)?;
        // `read_live` treats an expired entry as absent (and removes it): never revived.
        match self.read_live(key, &loc.path_under(&self.root))? {
            Some(s) if s.kind == KIND_LOCK && s.value == token.as_bytes() => {
                let expires_at = deadline(unix_millis(), Some(ttl)).unwrap_or(u64::MAX);
                self.write(key, &loc, token.as_bytes(), expires_at, KIND_LOCK)?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

/// Options that create files readable and writable by this user only (`0600` on Unix).
fn private_options() -> OpenOptions {
    #[allow(unused_mut)]
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
}
