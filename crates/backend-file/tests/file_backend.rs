//! The file backend: the shared conformance suite, then what is particular to files (names,
//! corruption, permissions, urls). Housekeeping and the size bound: `housekeeping.rs`.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use steadycache_api::{Backend, Error};
use steadycache_file::{FileBackend, FileConfig};

mod common;
use common::*;

mod conformance {
    use super::*;

    steadycache_api::conformance_tests!(async {
        Arc::new(FileBackend::open(FileConfig::new(fresh_dir())).unwrap()) as Arc<dyn Backend>
    });
}

/// The same contract with async reads on tokio's blocking pool instead of inline.
mod conformance_blocking_pool {
    use super::*;

    steadycache_api::conformance_tests!(async {
        let cfg = FileConfig::new(fresh_dir()).with_inline_reads(false);
        Arc::new(FileBackend::open(cfg).unwrap()) as Arc<dyn Backend>
    });
}

#[test]
fn name_capabilities_blocking() {
    let b = backend();
    assert_eq!(b.name(), "file");
    let c = b.capabilities();
    assert!(c.ttl && c.set_if_absent && c.delete_prefix && c.incr && c.locks);
    assert!(c.shared && c.persistent);
    let blocking = b.blocking().expect("blocking twin");
    blocking.set_blocking("ns:k", b"v".to_vec(), None).unwrap();
    assert_eq!(blocking.get_blocking("ns:k").unwrap(), Some(b"v".to_vec()));
    assert!(blocking.delete_blocking("ns:k").unwrap());
    assert_eq!(blocking.get_blocking("ns:k").unwrap(), None);
    assert!(!blocking.delete_blocking("ns:k").unwrap());
}

#[tokio::test]
async fn layout_is_namespace_dir_then_file() {
    let b = backend();
    b.set("my.ns:v1:abc", b"x".to_vec(), None).await.unwrap();
    b.set("plain", b"y".to_vec(), None).await.unwrap();
    let p = b.entry_path("my.ns:v1:abc");
    assert_eq!(p, b.root().join("my.ns").join("v1_3aabc"));
    assert!(p.is_file());
    assert!(b.entry_path("plain").starts_with(b.root().join("_")));
    assert!(b.entry_path("plain").is_file());
    // Case differences never share a file (case-insensitive filesystems).
    assert_ne!(b.entry_path("ns:A"), b.entry_path("ns:a"));
}

#[tokio::test]
async fn hostile_keys_stay_under_root_and_round_trip() {
    let base = fresh_dir();
    let root = base.join("root");
    let b = FileBackend::open(FileConfig::new(&root).with_purge_on_open(false)).unwrap();
    let long = "k".repeat(10 * 1024);
    let keys: Vec<String> = vec![
        "../../etc/passwd".into(),
        "ns:../../etc/passwd".into(),
        "../..:../..".into(),
        "/abs/path".into(),
        "ns:/abs/path".into(),
        "C:\\Windows\\system32".into(),
        "ns:a/b\\c".into(),
        "a\0b".into(),
        "ns\0:x\0y".into(),
        ".".into(),
        "..".into(),
        "ns:.".into(),
        "ns:..".into(),
        ":".into(),
        "".into(),
        "::".into(),
        ":x".into(),
        "x:".into(),
        long.clone(),
        format!("ns:{long}"),
        format!("{long}:x"),
        format!("{long}:{long}"),
        "日本語:ключ:🔑".into(),
        "CON".into(),
        "con:aux".into(),
        "ns:nul.txt".into(),
        "ns:h-0123456789abcdef0123456789abcdef".into(),
        "ns:A".into(),
        "ns:a".into(),
        "ns:a.lock".into(),
        "ns:.tmp-x".into(),
        ".locks:x".into(),
        "_:_".into(),
        "ns:_3a".into(),
        "ns:a b\t\n".into(),
        "%2e%2e:%2f".into(),
    ];
    for (i, k) in keys.iter().enumerate() {
        b.set(k, format!("{i}").into_bytes(), None).await.unwrap();
    }
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(
            b.get(k).await.unwrap(),
            Some(format!("{i}").into_bytes()),
            "key #{i} {:?}",
            k.get(..40).unwrap_or(k)
        );
        assert!(b.entry_path(k).starts_with(&root), "key #{i}");
    }
    // Nothing outside the root; every name portable.
    let outside: Vec<_> = fs::read_dir(&base)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(outside, vec![std::ffi::OsString::from("root")]);
    let files = entry_files(&root);
    assert_eq!(files.len(), keys.len());
    for f in &files {
        let rel = f.strip_prefix(&root).unwrap();
        assert_eq!(rel.components().count(), 2, "{rel:?}");
        for c in rel.components() {
            let s = c.as_os_str().to_str().unwrap();
            assert!(s.len() <= 130, "{s}");
            assert!(s != "." && s != ".." && !s.is_empty());
            assert!(
                s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b)),
                "{s}"
            );
        }
    }
    // Read-modify-write operations on hostile keys stay under the root too.
    assert_eq!(b.incr("../../ctr", 2, None).await.unwrap(), 2);
    assert!(b
        .acquire_lock("/abs:lock", "t", Duration::from_secs(5))
        .await
        .unwrap());
    assert!(b.release_lock("/abs:lock", "t").await.unwrap());
    let outside: Vec<_> = fs::read_dir(&base).unwrap().collect();
    assert_eq!(outside.len(), 1);
    for (i, k) in keys.iter().enumerate() {
        assert!(b.delete(k).await.unwrap(), "key #{i}");
    }
}

/// Corrupt the single entry file of `key` with `damage` and check it reads as a miss and is
/// removed.
async fn corrupt_case(damage: impl FnOnce(&Path)) {
    let b = backend();
    let key = "ns:victim";
    b.set(key, vec![7u8; 1000], None).await.unwrap();
    let path = b.entry_path(key);
    assert!(path.is_file());
    damage(&path);
    assert!(
        matches!(b.get(key).await, Err(Error::Corrupt(_))),
        "a damaged file is reported as corrupt"
    );
    assert!(!path.exists(), "corrupt file must be removed");
    assert_eq!(b.get(key).await.unwrap(), None, "then it is a plain miss");
    // And the key works again.
    b.set(key, b"fresh".to_vec(), None).await.unwrap();
    assert_eq!(b.get(key).await.unwrap(), Some(b"fresh".to_vec()));
}

#[tokio::test]
async fn truncated_file_is_a_miss() {
    corrupt_case(|p| {
        let len = fs::metadata(p).unwrap().len();
        fs::OpenOptions::new()
            .write(true)
            .open(p)
            .unwrap()
            .set_len(len - 3)
            .unwrap();
    })
    .await;
    corrupt_case(|p| {
        fs::OpenOptions::new()
            .write(true)
            .open(p)
            .unwrap()
            .set_len(30)
            .unwrap();
    })
    .await;
}

#[tokio::test]
async fn random_bytes_after_the_magic_are_a_miss() {
    corrupt_case(|p| {
        let len = fs::metadata(p).unwrap().len() as usize;
        let mut rng = fastrand::Rng::with_seed(7);
        let mut junk: Vec<u8> = b"SCFE".to_vec();
        junk.extend((4..len).map(|_| rng.u8(..)));
        fs::write(p, junk).unwrap();
    })
    .await;
}

#[tokio::test]
async fn magic_alone_is_a_miss() {
    corrupt_case(|p| fs::write(p, b"SCFE").unwrap()).await;
}

#[tokio::test]
async fn flipped_value_byte_is_a_miss() {
    corrupt_case(|p| {
        let mut bytes = fs::read(p).unwrap();
        let at = bytes.len() - 20;
        bytes[at] ^= 1;
        fs::write(p, bytes).unwrap();
    })
    .await;
}

#[tokio::test]
async fn huge_length_fields_are_a_miss() {
    corrupt_case(|p| {
        let mut bytes = fs::read(p).unwrap();
        bytes[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        fs::write(p, bytes).unwrap();
    })
    .await;
    corrupt_case(|p| {
        let mut bytes = fs::read(p).unwrap();
        let key_len = u32::from_le_bytes(bytes[16..20].try_into().unwrap()) as usize;
        bytes[20 + key_len..28 + key_len].copy_from_slice(&u64::MAX.to_le_bytes());
        fs::write(p, bytes).unwrap();
    })
    .await;
}

#[tokio::test]
async fn corrupt_files_do_not_break_other_operations() {
    let b = backend();
    for key in ["ns:c1", "ns:c2", "ns:c3"] {
        b.set(key, b"x".to_vec(), None).await.unwrap();
        fs::write(
            b.entry_path(key),
            b"SCFE garbage garbage garbage garbage garbage",
        )
        .unwrap();
    }
    assert_eq!(b.incr("ns:c1", 5, None).await.unwrap(), 5);
    assert!(b.set_if_absent("ns:c2", b"y".to_vec(), None).await.unwrap());
    assert!(!b.delete("ns:c3").await.unwrap());
    assert!(!b.entry_path("ns:c3").exists());
}

#[tokio::test]
async fn another_keys_file_is_a_miss_not_a_wrong_value() {
    // Simulates a hash collision of two long keys: key B's file holds key A's entry.
    let b = backend();
    let a = format!("ns:{}", "a".repeat(500));
    let other = format!("ns:{}", "b".repeat(500));
    b.set(&a, b"value of a".to_vec(), None).await.unwrap();
    b.set(&other, b"value of b".to_vec(), None).await.unwrap();
    let (pa, pb) = (b.entry_path(&a), b.entry_path(&other));
    assert_ne!(pa, pb);
    assert!(pa.file_name().unwrap().to_str().unwrap().starts_with("h-"));
    fs::copy(&pa, &pb).unwrap();
    assert_eq!(b.get(&other).await.unwrap(), None);
    assert!(!b.delete(&other).await.unwrap());
    assert!(pb.exists(), "another key's file is left alone");
    assert_eq!(b.get(&a).await.unwrap(), Some(b"value of a".to_vec()));
}

#[tokio::test]
async fn expired_entry_is_removed_lazily() {
    let b = backend();
    b.set("ns:t", b"v".to_vec(), Some(Duration::from_millis(50)))
        .await
        .unwrap();
    assert!(b.get("ns:t").await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert!(b.entry_path("ns:t").exists());
    assert_eq!(b.get("ns:t").await.unwrap(), None);
    assert!(!b.entry_path("ns:t").exists());
    assert!(b
        .set("ns:t", b"v".to_vec(), Some(Duration::ZERO))
        .await
        .is_err());
}

#[tokio::test]
async fn delete_prefix_whole_namespace() {
    let b = backend();
    for k in ["a:1", "a:2", "a:x:y"] {
        b.set(k, b"v".to_vec(), None).await.unwrap();
    }
    b.set("a:old", b"v".to_vec(), Some(Duration::from_millis(30)))
        .await
        .unwrap();
    for k in ["ab:1", "b:1", "a"] {
        b.set(k, b"v".to_vec(), None).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert_eq!(
        b.delete_prefix("a:").await.unwrap(),
        3,
        "expired not counted"
    );
    for k in ["a:1", "a:2", "a:x:y", "a:old"] {
        assert_eq!(b.get(k).await.unwrap(), None);
    }
    for k in ["ab:1", "b:1", "a"] {
        assert!(b.get(k).await.unwrap().is_some(), "{k}");
    }
    assert!(!b.root().join("a").exists());
    let trash = fs::read_dir(b.root())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(".trash")
        })
        .count();
    assert_eq!(trash, 0);
    assert_eq!(b.delete_prefix("a:").await.unwrap(), 0);
    // The namespace is usable again.
    b.set("a:1", b"again".to_vec(), None).await.unwrap();
    assert_eq!(b.get("a:1").await.unwrap(), Some(b"again".to_vec()));
}

#[tokio::test]
async fn delete_prefix_partial_and_without_colon() {
    let b = backend();
    for k in [
        "f:v1:1", "f:v1:2", "f:v2:1", "f:v10:1", "fx:v1:1", "g:v1:1", "fkey",
    ] {
        b.set(k, b"v".to_vec(), None).await.unwrap();
    }
    // Lock and counter entries are entries like any other; temp files are not counted.
    assert_eq!(b.incr("f:v1:ctr", 1, None).await.unwrap(), 1);
    fs::write(b.root().join("f").join(".tmp-inflight"), b"partial").unwrap();
    assert_eq!(b.delete_prefix("f:v1:").await.unwrap(), 3);
    assert_eq!(b.get("f:v1:1").await.unwrap(), None);
    assert!(b.get("f:v10:1").await.unwrap().is_some());
    assert!(b.get("f:v2:1").await.unwrap().is_some());
    assert!(b.get("fx:v1:1").await.unwrap().is_some());
    // No ':' in the prefix: namespaces starting with it and keys without a namespace.
    assert_eq!(b.delete_prefix("f").await.unwrap(), 4);
    assert!(b.get("g:v1:1").await.unwrap().is_some());
    assert_eq!(b.get("fkey").await.unwrap(), None);
    // The empty prefix clears everything.
    b.set("h:1", b"v".to_vec(), None).await.unwrap();
    assert_eq!(b.delete_prefix("").await.unwrap(), 2);
    assert!(entry_files(b.root()).is_empty());
}

#[tokio::test]
async fn durable_writes_work() {
    let b = FileBackend::open(
        FileConfig::new(fresh_dir())
            .with_durable(true)
            .with_purge_on_open(false),
    )
    .unwrap();
    assert!(b.config().durable);
    b.set("d:1", b"v".to_vec(), None).await.unwrap();
    assert_eq!(b.get("d:1").await.unwrap(), Some(b"v".to_vec()));
    assert!(b.set_if_absent("d:2", b"w".to_vec(), None).await.unwrap());
    assert_eq!(b.incr("d:3", 3, None).await.unwrap(), 3);
    assert!(b
        .acquire_lock("d:4", "t", Duration::from_secs(5))
        .await
        .unwrap());
    assert!(b.release_lock("d:4", "t").await.unwrap());
    assert!(b.delete("d:1").await.unwrap());
    b.ping().await.unwrap();
}

#[tokio::test]
async fn counters_are_ascii_and_keep_their_creation_ttl() {
    let b = backend();
    assert_eq!(
        b.incr("c:n", 41, Some(Duration::from_millis(300)))
            .await
            .unwrap(),
        41
    );
    assert_eq!(b.get("c:n").await.unwrap(), Some(b"41".to_vec()));
    assert_eq!(
        b.incr("c:n", 1, Some(Duration::from_secs(3600)))
            .await
            .unwrap(),
        42
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(b.get("c:n").await.unwrap(), None, "creation ttl kept");
    b.set("c:text", b"not a number".to_vec(), None)
        .await
        .unwrap();
    let e = b.incr("c:text", 1, None).await.unwrap_err();
    assert!(!e.is_transient());
    b.set("c:seven", b"7".to_vec(), None).await.unwrap();
    assert_eq!(b.incr("c:seven", 1, None).await.unwrap(), 8);
    b.set("c:max", i64::MAX.to_string().into_bytes(), None)
        .await
        .unwrap();
    assert!(b.incr("c:max", 1, None).await.is_err());
    assert!(b
        .acquire_lock("c:lock", "t", Duration::from_secs(5))
        .await
        .unwrap());
    assert!(b.incr("c:lock", 1, None).await.is_err());
}

#[tokio::test]
async fn release_lock_needs_the_token_and_a_lock() {
    let b = backend();
    b.set("l:plain", b"t".to_vec(), None).await.unwrap();
    assert!(
        !b.release_lock("l:plain", "t").await.unwrap(),
        "not a lock entry"
    );
    assert!(b.get("l:plain").await.unwrap().is_some());
    assert!(b
        .acquire_lock("l:x", "t1", Duration::from_secs(5))
        .await
        .unwrap());
    assert_eq!(b.get("l:x").await.unwrap(), Some(b"t1".to_vec()));
    assert!(!b.release_lock("l:x", "t2").await.unwrap());
    assert!(b.release_lock("l:x", "t1").await.unwrap());
    assert!(!b.release_lock("l:x", "t1").await.unwrap());
}

#[test]
fn several_instances_on_one_root_are_atomic() {
    // Separate backends open separate lock files, as separate processes do.
    let dir = fresh_dir();
    let backends: Vec<_> = (0..4)
        .map(|_| FileBackend::open(FileConfig::new(&dir).with_purge_on_open(false)).unwrap())
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut tasks = Vec::new();
        for b in &backends {
            for _ in 0..4 {
                let b = b.clone();
                tasks.push(tokio::spawn(async move {
                    let mut wins = 0;
                    for _ in 0..25 {
                        b.incr("x:ctr", 1, None).await.unwrap();
                    }
                    if b.set_if_absent("x:once", b"v".to_vec(), None)
                        .await
                        .unwrap()
                    {
                        wins += 1;
                    }
                    if b.acquire_lock("x:lock", "t", Duration::from_secs(30))
                        .await
                        .unwrap()
                    {
                        wins += 100;
                    }
                    wins
                }));
            }
        }
        let mut wins = 0;
        for t in tasks {
            wins += t.await.unwrap();
        }
        assert_eq!(wins, 101, "exactly one set_if_absent and one lock win");
        assert_eq!(backends[0].incr("x:ctr", 0, None).await.unwrap(), 400);
    });
}

#[cfg(unix)]
#[tokio::test]
async fn read_only_root_is_a_permanent_error() {
    use std::os::unix::fs::PermissionsExt;
    let dir = fresh_dir();
    let b = FileBackend::open(FileConfig::new(&dir).with_purge_on_open(false)).unwrap();
    b.set("ro:a", b"v".to_vec(), None).await.unwrap();
    let ns = dir.join("ro");
    for d in [&dir, &ns] {
        fs::set_permissions(d, fs::Permissions::from_mode(0o555)).unwrap();
    }
    // Root ignores permissions: then there is nothing to check.
    let probe = dir.join("probe");
    let privileged = fs::write(&probe, b"x").is_ok();
    if !privileged {
        let e = b.set("ro:b", b"v".to_vec(), None).await.unwrap_err();
        assert!(!e.is_transient(), "{e}");
        assert!(matches!(e, Error::Backend { .. }), "{e}");
        let e = b.set("other:x", b"v".to_vec(), None).await.unwrap_err();
        assert!(!e.is_transient(), "{e}");
        let e = b.ping().await.unwrap_err();
        assert!(!e.is_transient(), "{e}");
        // Reads still work.
        assert_eq!(b.get("ro:a").await.unwrap(), Some(b"v".to_vec()));
        assert_eq!(b.get("other:x").await.unwrap(), None);
    } else {
        eprintln!("running with privileges: permission checks skipped");
    }
    for d in [&dir, &ns] {
        fs::set_permissions(d, fs::Permissions::from_mode(0o755)).unwrap();
    }
}

#[test]
fn from_url_parses_paths_and_options() {
    let dir = fresh_dir();
    let url = format!(
        "file://{}?durable=true&max_bytes=1_000&purge_on_open=false&inline_reads=off",
        dir.display()
    );
    let b = FileBackend::from_url(&url).unwrap();
    assert_eq!(b.root(), dir.as_path());
    assert!(b.config().durable);
    assert_eq!(b.config().max_bytes, Some(1000));
    assert!(!b.config().purge_on_open);
    assert!(!b.config().inline_reads);

    let plain = FileConfig::from_url("file:///var/cache/x").unwrap();
    assert_eq!(plain.root, PathBuf::from("/var/cache/x"));
    assert!(!plain.durable && plain.max_bytes.is_none() && plain.purge_on_open);
    assert!(plain.inline_reads, "inline reads are the default");
    let spaced = FileConfig::from_url("file:///tmp/a%20b").unwrap();
    assert_eq!(spaced.root, PathBuf::from("/tmp/a b"));
    let local = FileConfig::from_url("file://localhost/tmp/x").unwrap();
    assert_eq!(local.root, PathBuf::from("/tmp/x"));

    // No path: the default directory (from the environment), with the options.
    match FileConfig::from_url("file://?durable=1") {
        Ok(cfg) => {
            assert!(cfg.durable);
            assert!(!cfg.root.as_os_str().is_empty());
        }
        Err(e) => assert!(matches!(e, Error::Config(_)), "{e}"),
    }

    for bad in [
        "redis://localhost",
        "not a url",
        "file:///x?bogus=1",
        "file:///x?max_bytes=lots",
        "file:///x?max_bytes=0",
        "file:///x?durable=maybe",
        "file://remote-host/x",
    ] {
        let e = FileConfig::from_url(bad).unwrap_err();
        assert!(matches!(e, Error::Config(_)), "{bad}: {e}");
    }
    assert!(matches!(
        FileBackend::open(FileConfig::new(fresh_dir()).with_max_bytes(0)),
        Err(Error::Config(_))
    ));
}

#[test]
fn open_rejects_a_file_as_root() {
    let dir = fresh_dir();
    let file = dir.join("not-a-dir");
    fs::write(&file, b"x").unwrap();
    let e = FileBackend::open(FileConfig::new(&file)).unwrap_err();
    assert!(!e.is_transient(), "{e}");
}

#[test]
fn config_builders_and_debug() {
    let c = FileConfig::new("/tmp/x")
        .with_durable(true)
        .with_max_bytes(5)
        .with_purge_on_open(false);
    assert!(c.durable && c.max_bytes == Some(5) && !c.purge_on_open);
    assert_eq!(c.clone().with_max_bytes(None).max_bytes, None);
    assert!(format!("{c:?}").contains("durable"));
    let b = backend();
    assert!(format!("{b:?}").contains("FileBackend"));
}
