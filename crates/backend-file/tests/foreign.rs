//! A cache directory that holds a user's own files and folders (issue 21, item 7): no removal,
//! purge, eviction or write of the file backend deletes, overwrites or counts a file it did
//! not write, or a folder with anything of the user's in it.

mod common;

use common::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;
use steadycache_api::{Backend, Glob};
use steadycache_file::{FileBackend, FileConfig};

/// The user's files, relative to the cache root, with their contents.
const FOREIGN: &[(&str, &[u8])] = &[
    ("readme.txt", b"keep me"),
    ("mydata/notes.txt", b"my notes"),
    ("oha-1.16.0/bin/oha", b"\x7fELF a binary"),
    // In a namespace directory, beside entries: a note, an empty file, and one named as a
    // key's file would be.
    ("ns/notes.txt", b"mine too"),
    ("ns/empty", b""),
    ("ns/v1_3a1", b"named like an entry, but mine"),
    // A folder inside a namespace directory, and a hidden one at the root.
    ("ns/sub/deep.txt", b"deep"),
    (".config/app.toml", b"x = 1"),
];

fn plant(root: &Path) {
    for (rel, bytes) in FOREIGN {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, bytes).unwrap();
        // Old, so that nothing spares them for being recent.
        fs::File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_modified(std::time::SystemTime::now() - Duration::from_secs(7 * 86_400))
            .unwrap();
    }
}

#[track_caller]
fn assert_intact(root: &Path) {
    for (rel, bytes) in FOREIGN {
        let got = fs::read(root.join(rel)).unwrap_or_else(|e| panic!("{rel} is gone: {e}"));
        assert_eq!(&got[..], *bytes, "{rel} was changed");
    }
}

async fn fill(b: &FileBackend) {
    for k in ["ns:v1:2", "ns:v1:3", "other:v1:1", "plain"] {
        b.set(k, b"value".to_vec(), None).await.unwrap();
    }
    b.set("ns:v1:gone", b"v".to_vec(), Some(Duration::from_millis(1)))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await; // expired: not counted
}

fn root_with_files() -> (PathBuf, FileBackend) {
    let root = fresh_dir();
    plant(&root);
    let b = FileBackend::open(FileConfig::new(&root).with_purge_on_open(false)).unwrap();
    (root, b)
}

#[tokio::test]
async fn clearing_everything_removes_only_entries() {
    let (root, b) = root_with_files();
    fill(&b).await;
    assert_eq!(b.delete_prefix("").await.unwrap(), 4, "the live entries");
    assert_intact(&root);
    for k in ["ns:v1:2", "other:v1:1", "plain"] {
        assert_eq!(b.get(k).await.unwrap(), None);
    }
    // The namespace the clear emptied is gone; one with a user's file in it stays.
    assert!(!root.join("other").exists() && !root.join("_").exists());
    assert!(root.join("ns").is_dir());
}

#[tokio::test]
async fn clearing_a_namespace_and_a_pattern_removes_only_entries() {
    let (root, b) = root_with_files();
    fill(&b).await;
    assert_eq!(b.delete_prefix("ns:").await.unwrap(), 2);
    assert_intact(&root);
    fill(&b).await;
    assert_eq!(b.delete_prefix("ns:v1:").await.unwrap(), 2);
    assert_intact(&root);
    fill(&b).await;
    let all = Glob::new("*").unwrap();
    assert_eq!(b.delete_matching(&all).await.unwrap(), 4);
    assert_intact(&root);
    assert_eq!(b.get("other:v1:1").await.unwrap(), None);
}

#[tokio::test]
async fn the_purge_leaves_foreign_files_alone() {
    let (root, b) = root_with_files();
    fill(&b).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(b.purge_expired().unwrap(), 1, "the expired entry only");
    assert_intact(&root);
    // The purge a cache runs when it opens (the quickstart's case).
    drop(b);
    let again = FileBackend::open(FileConfig::new(&root)).unwrap();
    again.purge_expired().unwrap();
    assert_intact(&root);
    assert!(again.get("ns:v1:2").await.unwrap().is_some());
}

#[tokio::test]
async fn eviction_neither_counts_nor_evicts_foreign_files() {
    let root = fresh_dir();
    plant(&root);
    // A big file of the user's in a namespace directory: counted, it alone would exceed the
    // bound and make every entry evicted.
    let big = root.join("ns").join("big.bin");
    fs::write(&big, vec![1u8; 64 * 1024]).unwrap();
    let cfg = FileConfig::new(&root)
        .with_purge_on_open(false)
        .with_max_bytes(16 * 1024);
    let b = FileBackend::open(cfg).unwrap();
    for i in 0..4 {
        b.set(&format!("ns:v1:e{i}"), vec![0u8; 1000], None)
            .await
            .unwrap();
    }
    b.purge_expired().unwrap();
    assert_intact(&root);
    assert!(big.exists());
    for i in 0..4 {
        let key = format!("ns:v1:e{i}");
        assert!(b.get(&key).await.unwrap().is_some(), "{key}");
    }
}

#[tokio::test]
async fn a_foreign_file_at_a_keys_path_is_a_miss_never_removed_or_overwritten() {
    let (root, b) = root_with_files();
    // `ns/v1_3a1` is where the key `ns:v1:1` lives.
    assert_eq!(b.entry_path("ns:v1:1"), root.join("ns/v1_3a1"));
    assert_eq!(b.get("ns:v1:1").await.unwrap(), None);
    assert!(!b.delete("ns:v1:1").await.unwrap());
    let err = b.set("ns:v1:1", b"x".to_vec(), None).await.unwrap_err();
    assert!(err.to_string().contains("did not write"), "{err}");
    assert!(b.incr("ns:v1:1", 1, None).await.is_err());
    assert!(b
        .acquire_lock("ns:v1:1", "t", Duration::from_secs(1))
        .await
        .is_err());
    assert_intact(&root);
}
