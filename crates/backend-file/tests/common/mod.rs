//! What the file backend's test files share: fresh directories and a look at the files.
#![allow(dead_code)] // each test file uses a part

use std::fs;
use std::path::{Path, PathBuf};
use steadycache_file::{FileBackend, FileConfig};

/// A fresh directory under cargo's per-target temp dir, kept (not deleted) so that background
/// threads and later steps of a test never see it vanish.
pub fn fresh_dir() -> PathBuf {
    tempfile::Builder::new()
        .prefix("file-backend-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap()
        .keep()
}

/// A backend on a fresh directory without the purge on open (so counts are exact).
pub fn backend() -> FileBackend {
    FileBackend::open(FileConfig::new(fresh_dir()).with_purge_on_open(false)).unwrap()
}

/// Every regular file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let t = e.file_type().unwrap();
            if t.is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

/// Entry files (not lock, temp or trash files).
pub fn entry_files(root: &Path) -> Vec<PathBuf> {
    files_under(root)
        .into_iter()
        .filter(|p| {
            p.strip_prefix(root)
                .unwrap()
                .components()
                .all(|c| !c.as_os_str().to_string_lossy().starts_with('.'))
        })
        .collect()
}

pub fn entry_bytes(root: &Path) -> u64 {
    entry_files(root)
        .iter()
        .map(|p| fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .sum()
}
