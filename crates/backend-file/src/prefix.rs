//! `delete_prefix`: a whole namespace is renamed away and removed, a part of one is removed
//! entry by entry.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use steadycache_api::plumbing::{io_error, unix_millis};
use steadycache_api::{Glob, Result};

use crate::backend::{Inner, NAME};
use crate::format::{read_header, Header};
use crate::fs::{is_not_found, list_dir, remove_if_same};
use crate::names::{encode_name, is_hidden, TRASH_PREFIX};

impl Inner {
    pub(crate) fn delete_prefix(&self, prefix: &str) -> Result<u64> {
        let now = unix_millis();
        match prefix.split_once(':') {
            // Every key of one namespace: drop its directory.
            Some((ns, "")) => self.clear_dir(&self.root.join(encode_name(ns)), now),
            // Part of one namespace: only its directory can hold matches.
            Some((ns, _)) => {
                let dir = self.root.join(encode_name(ns));
                self.remove_matching(&dir, &|k| k.starts_with(prefix.as_bytes()), now)
            }
            None => {
                let mut removed = 0;
                for dir in self.namespace_dirs()? {
                    removed += if prefix.is_empty() {
                        self.clear_dir(&dir, now)?
                    } else {
                        self.remove_matching(&dir, &|k| k.starts_with(prefix.as_bytes()), now)?
                    };
                }
                Ok(removed)
            }
        }
    }

    /// The namespace directories (hidden bookkeeping entries excluded).
    pub(crate) fn namespace_dirs(&self) -> Result<Vec<PathBuf>> {
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
                return self.remove_matching(dir, &|_| true, now);
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

    /// `delete_matching`: the namespace directory of the pattern's literal prefix when it names
    /// one (`ns:…`), else every namespace directory, listed and matched entry by entry.
    pub(crate) fn delete_matching(&self, pattern: &Glob) -> Result<u64> {
        let now = unix_millis();
        let keep = |k: &[u8]| std::str::from_utf8(k).is_ok_and(|k| pattern.matches(k));
        let literal = pattern.literal_prefix();
        match literal.split_once(':') {
            Some((ns, _)) => self.remove_matching(&self.root.join(encode_name(ns)), &keep, now),
            None => {
                let mut removed = 0;
                for dir in self.namespace_dirs()? {
                    removed += self.remove_matching(&dir, &keep, now)?;
                }
                Ok(removed)
            }
        }
    }

    /// Remove the entries of `dir` whose key `keep` accepts (all of them, corrupt ones too,
    /// when it accepts the empty key); the number of live ones.
    fn remove_matching(&self, dir: &Path, keep: &dyn Fn(&[u8]) -> bool, now: u64) -> Result<u64> {
        let everything = keep(b"");
        let mut removed = 0;
        each_entry(dir, |path, meta, header| {
            let live = match header {
                Ok(h) if keep(&h.key) => h.expires_at > now,
                // Not matching, or corrupt (unknown key) while only a part is removed.
                Ok(_) => return Ok(()),
                Err(_) if everything => false,
                Err(_) => return Ok(()),
            };
            let gone = remove_if_same(path, meta)
                .map_err(|e| io_error(NAME, &format!("remove `{}`", path.display()), e))?;
            if gone && live {
                removed += 1;
            }
            Ok(())
        })?;
        Ok(removed)
    }
}

/// Each entry file of `dir` (bookkeeping entries and directories skipped) with its metadata
/// and its header (or why it is not a well-formed entry), read with the file closed again
/// before `f` sees it. A missing directory has none; a file removed meanwhile is skipped.
pub(crate) fn each_entry(
    dir: &Path,
    mut f: impl FnMut(&Path, &fs::Metadata, std::result::Result<Header, &'static str>) -> Result<()>,
) -> Result<()> {
    let entries = match list_dir(dir) {
        Ok(e) => e,
        Err(e) if is_not_found(&e) => return Ok(()),
        Err(e) => return Err(io_error(NAME, &format!("list `{}`", dir.display()), e)),
    };
    for entry in entries {
        if is_hidden(&entry.file_name()) || !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let path = entry.path();
        if let Some((meta, header)) = header_at(&path)? {
            f(&path, &meta, header)?;
        }
    }
    Ok(())
}

/// The metadata and header of the file at `path` (or why it is not a well-formed entry), the
/// file closed again; `None` when there is no file.
pub(crate) fn header_at(
    path: &Path,
) -> Result<Option<(fs::Metadata, std::result::Result<Header, &'static str>)>> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if is_not_found(&e) => return Ok(None),
        Err(e) => return Err(io_error(NAME, &format!("open `{}`", path.display()), e)),
    };
    let meta = file
        .metadata()
        .map_err(|e| io_error(NAME, &format!("inspect `{}`", path.display()), e))?;
    let header = read_header(&mut file, meta.len())
        .map_err(|e| io_error(NAME, &format!("read `{}`", path.display()), e))?;
    Ok(Some((meta, header)))
}
