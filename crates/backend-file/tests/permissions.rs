//! What the cache directory shows other users (issue 12, item 8): directories are `0700` and
//! files `0600` whatever the umask, and a root that is a symbolic link owned by another user is
//! refused.
#![cfg(unix)]

mod common;

use common::*;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;
use steadycache_api::Backend;
use steadycache_file::{FileBackend, FileConfig};

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn directories_and_files_are_private() {
    let parent = fresh_dir();
    let root = parent.join("cache");
    let b = FileBackend::open(FileConfig::new(&root).with_purge_on_open(false)).unwrap();
    b.set("users:alice", b"v".to_vec(), None).await.unwrap();
    assert!(b
        .acquire_lock("users:alice#lock", "t", Duration::from_secs(5))
        .await
        .unwrap());
    let entry = b.entry_path("users:alice");
    assert_eq!(mode(&root), 0o700, "the root");
    assert_eq!(
        mode(entry.parent().unwrap()),
        0o700,
        "a namespace directory"
    );
    assert_eq!(mode(&entry), 0o600, "an entry file");
    for f in files_under(&root) {
        assert_eq!(mode(&f), 0o600, "{}", f.display());
    }
}

#[test]
fn a_root_that_is_another_users_symlink_is_refused() {
    // Needs to give a link to another user: only root can.
    let me = tempfile::tempfile().unwrap().metadata().unwrap().uid();
    if me != 0 {
        eprintln!("skipped: not running as root");
        return;
    }
    let parent = fresh_dir();
    let target = parent.join("target");
    std::fs::create_dir(&target).unwrap();
    let link = parent.join("link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    std::os::unix::fs::lchown(&link, Some(1), Some(1)).unwrap();
    let err = FileBackend::open(FileConfig::new(&link)).unwrap_err();
    assert!(err.to_string().contains("owned by another user"), "{err}");
    // The user's own link is fine.
    std::os::unix::fs::lchown(&link, Some(0), Some(0)).unwrap();
    assert!(FileBackend::open(FileConfig::new(&link)).is_ok());
}
