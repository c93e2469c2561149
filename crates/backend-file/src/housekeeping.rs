//! Housekeeping: the purge (expired and corrupt entries, stale temp files and trash, orphan lock
//! files, empty namespace directories) and the `max_bytes` bound (LRU eviction).

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, SystemTime};
use steadycache_api::plumbing::{io_error, unix_millis};
use steadycache_api::Result;

use crate::backend::{Inner, NAME};
use crate::format::{is_ours, read_header, Sniffed, KIND_VALUE, MAGIC_LEN};
use crate::fs::{is_not_found, list_dir, older_than, remove_if_same, same_file};
use crate::names::{is_hidden, is_temp_name, is_trash_name, LOCKS_DIR, TRASH_PREFIX};

/// Temp files and trash directories older than this belong to a dead writer.
const STALE_AFTER: Duration = Duration::from_secs(60);
/// With `max_bytes`, check the total size every this many writes.
const EVICT_EVERY_WRITES: u64 = 100;

impl Inner {
    /// Count a write; every [`EVICT_EVERY_WRITES`] writes with a bound, check it in the
    /// background (one check at a time per backend).
    pub(crate) fn note_write(self: &Arc<Self>) {
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

    pub(crate) fn purge(&self) -> Result<u64> {
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
            if is_trash_name(&name) {
                if kind.is_dir() && trash_is_stale(&name, now) {
                    match fs::remove_dir_all(&path) {
                        Ok(()) => {}
                        Err(e) if is_not_found(&e) => {}
                        Err(e) => {
                            tracing::warn!(dir = %path.display(), error = %e, "could not remove trash")
                        }
                    }
                }
            } else if is_temp_name(&name) {
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

    /// Purge one namespace directory; the number of expired or corrupt entries removed. Files
    /// this backend did not write, and subdirectories, are left alone; the directory itself
    /// is removed only when this purge emptied it.
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
            if is_temp_name(&name) {
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
                Ok(Sniffed::Entry(h)) => h.expires_at <= now,
                Ok(Sniffed::Corrupt(why)) => {
                    tracing::warn!(path = %path.display(), reason = why, "corrupt cache file: removed by purge");
                    true
                }
                Ok(Sniffed::Foreign) | Err(_) => false,
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
        if kept == 0 && removed > 0 {
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

    pub(crate) fn enforce_max_bytes(&self) -> Result<u64> {
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
                if !meta.is_file() || !starts_with_magic(&entry.path()) {
                    continue; // a user's file: neither counted nor evicted
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
            match read_header(&mut file, meta.len()) {
                Ok(Sniffed::Entry(h)) if h.kind != KIND_VALUE && h.expires_at > now => {
                    continue; // a held lock or a live counter: not a cache value
                }
                Ok(Sniffed::Foreign) => {
                    // Replaced by a user's file since it was counted.
                    total = total.saturating_sub(len);
                    continue;
                }
                Ok(_) | Err(_) => {}
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

/// Whether the file at `path` starts with the entry magic (one small read).
fn starts_with_magic(path: &Path) -> bool {
    let mut head = [0u8; MAGIC_LEN];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok()
        && is_ours(&head)
}

/// Remove a temp file older than [`STALE_AFTER`]; `true` if it is gone.
fn remove_stale_temp(entry: &fs::DirEntry) -> bool {
    let stale = entry
        .metadata()
        .is_ok_and(|m| m.is_file() && older_than(&m, STALE_AFTER));
    stale && fs::remove_file(entry.path()).is_ok()
}

/// `.trash-<ms>-<random>` older than [`STALE_AFTER`].
fn trash_is_stale(name: &OsStr, now: u64) -> bool {
    let name = name.to_string_lossy();
    let made = name
        .strip_prefix(TRASH_PREFIX)
        .and_then(|rest| rest.split('-').next())
        .and_then(|ms| ms.parse::<u64>().ok());
    let stale_ms = u64::try_from(STALE_AFTER.as_millis()).unwrap_or(u64::MAX);
    made.is_none_or(|ms| now.saturating_sub(ms) >= stale_ms)
}
