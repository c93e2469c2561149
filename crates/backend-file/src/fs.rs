//! Small filesystem helpers.

use std::fs::{self, File};
use std::io;
use std::path::Path;
use std::time::{Duration, SystemTime};

pub(crate) fn is_not_found(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
}

/// Whether `path` still names the file `meta` describes (it was not replaced or removed).
pub(crate) fn same_file(meta: &fs::Metadata, path: &Path) -> bool {
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
pub(crate) fn remove_if_same(path: &Path, meta: &fs::Metadata) -> io::Result<bool> {
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
pub(crate) fn list_dir(dir: &Path) -> io::Result<Vec<fs::DirEntry>> {
    match fs::read_dir(dir) {
        Ok(rd) => Ok(rd.filter_map(|e| e.ok()).collect()),
        Err(e) if is_not_found(&e) => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

pub(crate) fn older_than(meta: &fs::Metadata, age: Duration) -> bool {
    meta.modified()
        .ok()
        .and_then(|m| SystemTime::now().duration_since(m).ok())
        .is_some_and(|a| a >= age)
}

#[cfg(unix)]
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
pub(crate) fn sync_dir(_dir: &Path) -> io::Result<()> {
    // Windows cannot open a directory as a file without extra flags; NTFS journals renames.
    Ok(())
}
