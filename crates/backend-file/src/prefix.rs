//! `delete_prefix` and `delete_matching`: entry by entry, and only the files this backend wrote.
//!
//! A cache directory may hold a user's own files and folders beside the namespaces (a
//! `STEADYCACHE_DIR` pointed at a folder in use, a tool installed under `~/.cache`). Removals
//! therefore never take a directory whole: they remove the files that carry this backend's
//! header ([`Sniffed::Entry`], and [`Sniffed::Corrupt`] when everything is removed), never a
//! [`Sniffed::Foreign`] file or a subdirectory, and remove a namespace directory only when it
//! is empty once they are done.

use std::fs;
use std::path::{Path, PathBuf};
use steadycache_api::plumbing::{io_error, unix_millis, BulkProgress};
use steadycache_api::{Glob, Result};

use crate::backend::{Inner, NAME};
use crate::format::{read_header, Sniffed};
use crate::fs::{is_not_found, list_dir, remove_if_same};
use crate::names::{encode_name, is_hidden};

impl Inner {
    pub(crate) fn delete_prefix(&self, prefix: &str, progress: &BulkProgress) -> Result<u64> {
        let starts = |k: &[u8]| k.starts_with(prefix.as_bytes());
        let dirs = match prefix.split_once(':') {
            // Only that namespace's directory can hold matches.
            Some((ns, _)) => vec![self.root.join(encode_name(ns))],
            None => self.namespace_dirs()?,
        };
        self.remove_in(&dirs, &starts, progress)
    }

    /// [`remove_matching`](Self::remove_matching) in each of `dirs`; the total.
    fn remove_in(
        &self,
        dirs: &[PathBuf],
        keep: &dyn Fn(&[u8]) -> bool,
        progress: &BulkProgress,
    ) -> Result<u64> {
        let now = unix_millis();
        let mut removed = 0;
        for dir in dirs {
            removed += self.remove_matching(dir, keep, now, progress)?;
        }
        Ok(removed)
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

    /// `delete_matching`: the namespace directory of the pattern's literal prefix when it names
    /// one (`ns:…`), else every namespace directory, listed and matched entry by entry.
    pub(crate) fn delete_matching(&self, pattern: &Glob, progress: &BulkProgress) -> Result<u64> {
        let keep = |k: &[u8]| std::str::from_utf8(k).is_ok_and(|k| pattern.matches(k));
        let dirs = match pattern.literal_prefix().split_once(':') {
            Some((ns, _)) => vec![self.root.join(encode_name(ns))],
            None => self.namespace_dirs()?,
        };
        self.remove_in(&dirs, &keep, progress)
    }

    /// Remove the entries of `dir` whose key `keep` accepts (corrupt ones of this backend's
    /// too, when it accepts the empty key: everything is being removed), then `dir` itself if
    /// that left it empty; the number of live entries removed. Foreign files stay.
    fn remove_matching(
        &self,
        dir: &Path,
        keep: &dyn Fn(&[u8]) -> bool,
        now: u64,
        progress: &BulkProgress,
    ) -> Result<u64> {
        let everything = keep(b"");
        let mut removed = 0;
        let mut touched = false;
        each_entry(dir, |path, meta, header| {
            let live = match header {
                Sniffed::Entry(h) if keep(&h.key) => h.expires_at > now,
                Sniffed::Corrupt(_) if everything => false,
                // Not matching, corrupt while only a part is removed, or not ours.
                Sniffed::Entry(_) | Sniffed::Corrupt(_) | Sniffed::Foreign => return Ok(()),
            };
            let gone = remove_if_same(path, meta)
                .map_err(|e| io_error(NAME, &format!("remove `{}`", path.display()), e))?;
            touched |= gone;
            if gone && live {
                removed += 1;
                progress.removed(1);
            }
            Ok(())
        })?;
        if touched {
            // Fails harmlessly when anything is left (a foreign file, a writer's new entry).
            let _ = fs::remove_dir(dir);
        }
        Ok(removed)
    }
}

/// Each file of `dir` (bookkeeping entries and directories skipped) with its metadata and what
/// its header says it is, read with the file closed again
/// before `f` sees it. A missing directory has none; a file removed meanwhile is skipped.
pub(crate) fn each_entry(
    dir: &Path,
    mut f: impl FnMut(&Path, &fs::Metadata, Sniffed) -> Result<()>,
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

/// The metadata of the file at `path` and what its header says it is, the file closed again;
/// `None` when there is no file.
pub(crate) fn header_at(path: &Path) -> Result<Option<(fs::Metadata, Sniffed)>> {
    let mut file = match fs::File::open(path) {
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
