//! A damaged entry on disk, seen through the engine: each is a logged miss, the function runs
//! again, the caller gets the right value, and the rewritten entry is a hit afterwards (issue 3,
//! "corruption tests"). The checks are `steadycache_api::testing::heal`'s.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use steadycache_api::plumbing::BlockingBackend;
use steadycache_api::testing::heal::{foreign_codec_case, heal_case, KEY};
use steadycache_file::{FileBackend, FileConfig};

fn fresh_dir(tag: &str) -> PathBuf {
    steadycache_api::testing::temp_dir(&format!("heal-{tag}"))
}

fn file_backend(dir: &Path) -> FileBackend {
    FileBackend::open(FileConfig::new(dir).with_purge_on_open(false)).unwrap()
}

#[tokio::test]
async fn file_truncated_entry_heals() {
    let b = file_backend(&fresh_dir("trunc"));
    let path = b.entry_path(KEY);
    heal_case(Arc::new(b), || {
        let len = std::fs::metadata(&path).unwrap().len();
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(len / 2).unwrap();
    })
    .await;
}

#[tokio::test]
async fn file_random_bytes_heal() {
    let b = file_backend(&fresh_dir("random"));
    let path = b.entry_path(KEY);
    heal_case(Arc::new(b), || {
        let mut rng = fastrand::Rng::with_seed(11);
        // A damaged entry of ours: the magic, then noise (a file without the magic is a
        // user's, left alone: tests/foreign.rs).
        let mut junk: Vec<u8> = b"SCFE".to_vec();
        junk.extend((4..300).map(|_| rng.u8(..)));
        std::fs::write(&path, junk).unwrap();
    })
    .await;
}

#[tokio::test]
async fn file_well_formed_file_with_a_garbage_payload_heals() {
    // The file format is intact (valid checksum), the envelope inside is not.
    let b = file_backend(&fresh_dir("payload"));
    let raw = b.clone();
    heal_case(Arc::new(b), || {
        raw.set_blocking(KEY, b"not an envelope".to_vec(), None)
            .unwrap();
    })
    .await;
}

#[tokio::test]
async fn file_entry_of_another_codec_heals() {
    foreign_codec_case(Arc::new(file_backend(&fresh_dir("codec")))).await;
}

/// Entries longer than the first read (4 KiB) are read whole after a `stat`; damaged ones are
/// corrupt misses and removed; a long file of the user's at a key's path is a miss, left
/// alone; and a short entry with bytes appended is caught although it is read in one go.
#[tokio::test]
async fn long_entries_and_padded_ones() {
    use steadycache_api::{Backend, Error};
    let dir = fresh_dir("long");
    let b = file_backend(&dir);
    let path = b.entry_path(KEY);
    let long: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
    let corrupt = |r: steadycache_api::Result<Option<Vec<u8>>>| matches!(r, Err(Error::Corrupt(_)));
    for cut in [3u64, 10_000, 16_000] {
        b.set(KEY, long.clone(), None).await.unwrap();
        assert_eq!(b.get(KEY).await.unwrap().as_deref(), Some(&long[..]));
        let len = std::fs::metadata(&path).unwrap().len();
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(len - cut).unwrap();
        assert!(corrupt(b.get(KEY).await), "cut by {cut}");
        assert!(!path.exists(), "a corrupt entry is removed");
    }
    for value in [vec![5u8; 100], long.clone()] {
        b.set(KEY, value, None).await.unwrap();
        let mut padded = std::fs::read(&path).unwrap();
        padded.extend_from_slice(b"tail");
        std::fs::write(&path, &padded).unwrap();
        assert!(
            corrupt(b.get(KEY).await),
            "bytes appended to a {} byte file",
            padded.len()
        );
        assert!(!path.exists());
    }
    let users = vec![b'u'; 50_000];
    std::fs::write(&path, &users).unwrap();
    assert_eq!(b.get(KEY).await.unwrap(), None);
    assert_eq!(
        std::fs::read(&path).unwrap(),
        users,
        "a user's file is left alone"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
