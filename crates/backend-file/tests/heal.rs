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
