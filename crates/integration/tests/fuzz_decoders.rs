//! Every decoder of stored bytes and every URL parser, fed arbitrary input (issue 12, item 6):
//! none panics, none allocates more than its input justifies, and corrupt input is an error.
//!
//! The number of inputs per decoder comes from `STEADYCACHE_FUZZ_CASES` (default 2,000, what
//! `scripts/test.sh` runs under a memory limit). The dedicated run, a million per decoder:
//!
//! ```text
//! (ulimit -v 4194304; STEADYCACHE_FUZZ_CASES=1000000 \
//!   cargo test --release -p steadycache-integration --test fuzz_decoders)
//! ```
//!
//! Inputs are biased towards the formats (a valid envelope with bytes changed, a URL with
//! characters changed), so that the parsers' inner branches are reached, not only their first
//! check.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use std::collections::HashMap;
use steadycache::{Codec, Entry, FileConfig, MongoConfig, RedisConfig, S3Config, SqliteConfig};

fn cases() -> u32 {
    std::env::var("STEADYCACHE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000)
}

fn run<S: Strategy>(strategy: S, test: impl Fn(S::Value)) {
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&strategy, |v| {
        test(v);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// Arbitrary bytes, or a valid envelope (binary or JSON) with a few bytes changed.
fn stored_bytes() -> impl Strategy<Value = Vec<u8>> {
    let valid = |json: bool| {
        let codec = if json {
            Codec::json()
        } else {
            Codec::bincode()
        };
        let payload = codec.encode(&vec!["a".to_string(); 3]).unwrap();
        let mut e = Entry::new(payload, codec.id(), 7);
        (e.created_at, e.stale_at, e.expires_at, e.keep_until) = (1, 2, 3, 4);
        e.took_ms = 5;
        e.encode().unwrap()
    };
    let edits = prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4);
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        (any::<bool>(), edits).prop_map(move |(json, edits)| {
            let mut b = valid(json);
            for (i, v) in edits {
                let at = i.index(b.len());
                b[at] = v;
            }
            b
        }),
    ]
}

#[test]
fn envelopes_and_payloads() {
    let signed = Codec::bincode()
        .signed(b"a signing key of 16+ bytes")
        .unwrap();
    run(stored_bytes(), |bytes| {
        // A read's decode, in the buffer it was read into, is the same parse.
        assert_eq!(
            Entry::decode_vec(bytes.clone()).ok(),
            Entry::decode(&bytes).ok()
        );
        if let Ok(e) = Entry::decode(&bytes) {
            // What a load does next: open (signed) and decode into a few shapes.
            let _ = signed.open("k", &e);
            let _ = Codec::bincode().decode::<Vec<String>>(&e.payload);
            let _ = Codec::json().decode::<serde_json::Value>(&e.payload);
        }
        let _ = Codec::bincode().decode::<Vec<u64>>(&bytes);
        let _ = Codec::bincode().decode::<HashMap<String, Vec<String>>>(&bytes);
        let _ = Codec::bincode().decode::<(String, Option<Vec<u8>>)>(&bytes);
        let _ = Codec::json().decode::<Vec<String>>(&bytes);
    });
}

/// Arbitrary bytes, or bytes the ready hooks wrote (compressed, encrypted, both) with a few
/// bytes changed, through their `undo` (what a load runs first): never a panic, and never more
/// than the compression bound decompressed (refused before it is allocated, under the fuzz
/// run's memory limit).
fn transformed_bytes() -> impl Strategy<Value = Vec<u8>> {
    use steadycache::transform::{Compression, Encryption, Transform};
    let body = b"SC all systems nominal ".repeat(40);
    let compressed = Compression::default().apply(body.clone()).unwrap();
    let keys = Encryption::new([(1, [9u8; 32])]).unwrap();
    let encrypted = keys.apply(body).unwrap();
    let both = keys.apply(compressed.clone()).unwrap();
    let forms = [compressed, encrypted, both];
    let edits = prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4);
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256).prop_map(|mut b| {
            if let Some(first) = b.first_mut() {
                *first = [0xC0, 0xC1, 0xE1][usize::from(*first) % 3];
            }
            b
        }),
        (0..forms.len(), edits).prop_map(move |(f, edits)| {
            let mut b = forms[f].clone();
            for (i, v) in edits {
                let at = i.index(b.len());
                b[at] = v;
            }
            b
        }),
    ]
}

#[test]
fn compressed_and_encrypted_entries() {
    use steadycache::transform::{Compression, Encryption, Transform};
    let bound = 1 << 20;
    let lz4 = Compression::default().with_max_decompressed(bound);
    let keys = Encryption::new([(1, [9u8; 32])]).unwrap();
    run(transformed_bytes(), |bytes| {
        if let Ok(out) = lz4.undo(bytes.clone()) {
            assert!(out.len() <= bound.max(bytes.len()));
        }
        if let Ok(plain) = keys.undo(bytes) {
            if let Ok(out) = lz4.undo(plain.clone()) {
                assert!(out.len() <= bound.max(plain.len()));
            }
        }
    });
}

/// Arbitrary text, or one of the URL forms with characters changed.
fn urls() -> impl Strategy<Value = String> {
    let forms = [
        "mem://?max_bytes=64MiB&max_entries=10",
        "file:///var/cache/app?durable=true&max_bytes=10",
        "sqlite:///var/cache/app.db?busy_timeout_ms=10&pool_size=2",
        "redis://u:p@127.0.0.1:6379/0?key_prefix=a:&cluster=true&local=1MiB",
        "mongodb://u:p@h:27017/db?collection=c&server_selection_timeout_ms=5",
        "s3://bucket/prefix?endpoint=http://h:9000&region=x&path_style=true",
    ];
    let edits = prop::collection::vec((any::<prop::sample::Index>(), any::<char>()), 0..4);
    prop_oneof![
        ".{0,80}",
        (0..forms.len(), edits).prop_map(move |(f, edits)| {
            let mut chars: Vec<char> = forms[f].chars().collect();
            for (i, c) in edits {
                let at = i.index(chars.len());
                chars[at] = c;
            }
            chars.into_iter().collect()
        }),
    ]
}

/// Parse `url` with every parser (none may panic) and check that what is shown of it holds no
/// userinfo, unless the rest of the URL holds the same text (then it is not only a secret:
/// `mem://?max_@ytes=64MiB?max_entries=10` shows `?max_entries`, which holds `?max_`).
fn parse_and_redact(url: &str) {
    let _ = steadycache::MemoryConfig::from_url(url);
    let _ = FileConfig::from_url(url);
    let _ = SqliteConfig::from_url(url);
    let _ = RedisConfig::from_url(url);
    let _ = MongoConfig::from_url(url);
    let _ = S3Config::from_url(url);
    let shown = steadycache::plumbing::redact_url(url);
    if let Some((_, rest)) = url.split_once("://") {
        if let Some((userinfo, after)) = rest.rsplit_once('@') {
            if userinfo.len() > 3 && !after.contains(userinfo) {
                assert!(!shown.contains(userinfo), "{url} shown as {shown}");
            }
        }
    }
}

#[test]
fn url_parsers() {
    // Inputs the fuzzing found once, kept.
    for url in [
        "mem://?max_@ytes=64MiB?max_entries=10",
        "redis://user:s3cret@host:6379/0?key_prefix=s3cret",
    ] {
        parse_and_redact(url);
    }
    run(urls(), |url| parse_and_redact(&url));
}

/// The file backend's header and entry parser, through its public read path: arbitrary bytes,
/// or a real entry file (value, lock or counter) with bytes changed or cut, written where the
/// backend reads a key. A read never panics and never claims more than the file holds: it is a
/// value no longer than the file, a miss, or an error.
#[test]
fn file_entries() {
    use steadycache::{Backend, FileBackend};
    let dir = steadycache_api::testing::temp_dir("fuzz-file");
    let b = FileBackend::open(FileConfig::new(dir.join("c"))).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Real files of each kind to start from.
    let seeds: Vec<Vec<u8>> = rt.block_on(async {
        b.set("seed:v", b"some value bytes".to_vec(), None)
            .await
            .unwrap();
        b.set(
            "seed:t",
            vec![7; 40],
            Some(std::time::Duration::from_secs(600)),
        )
        .await
        .unwrap();
        b.incr("seed:n", 5, None).await.unwrap();
        b.acquire_lock("seed:l", "token", std::time::Duration::from_secs(600))
            .await
            .unwrap();
        ["seed:v", "seed:t", "seed:n", "seed:l"]
            .iter()
            .map(|k| std::fs::read(b.entry_path(k)).unwrap())
            .collect()
    });
    let edits = prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4);
    let strategy = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        (
            0..seeds.len(),
            edits,
            any::<prop::sample::Index>(),
            any::<bool>()
        )
            .prop_map(move |(s, edits, cut, truncate)| {
                let mut bytes = seeds[s].clone();
                for (i, v) in edits {
                    let at = i.index(bytes.len());
                    bytes[at] = v;
                }
                if truncate {
                    bytes.truncate(cut.index(bytes.len() + 1));
                }
                bytes
            }),
    ];
    let path = b.entry_path("fuzz:k");
    let blocking = b.blocking().expect("the file backend reads inline");
    let parent = path
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    run(strategy, |bytes| {
        // A read that heals a corrupt file may remove its (then empty) directory.
        std::fs::create_dir_all(&parent).unwrap();
        std::fs::write(&path, &bytes).unwrap();
        if let Ok(Some(v)) = blocking.get_blocking("fuzz:k") {
            assert!(v.len() <= bytes.len(), "a value longer than its file");
        }
        let _ = rt.block_on(b.release_lock("fuzz:k", "token"));
        let _ = std::fs::create_dir_all(&parent);
        let _ = std::fs::write(&path, &bytes);
        let _ = rt.block_on(b.incr("fuzz:k", 1, None));
    });
    let _ = std::fs::remove_dir_all(&dir);
}

/// An integer near one of bincode's varint boundaries (250/251, 2^16, 2^32, 2^64), or any.
fn int() -> impl Strategy<Value = u128> {
    let edges: Vec<u128> = [0u128, 250, 251, 1 << 16, 1 << 32, 1 << 64]
        .iter()
        .flat_map(|&e| [e.saturating_sub(1), e, e + 1])
        .collect();
    prop_oneof![
        prop::sample::select(edges),
        any::<u128>(),
        any::<u8>().prop_map(u128::from)
    ]
}

#[derive(serde::Serialize, Debug, Clone)]
struct Unit;

#[derive(serde::Serialize, Debug, Clone)]
enum Shape {
    Empty,
    One(i32),
    Pair(i16, String),
    Named { c: char, f: f32, unit: Unit },
}

#[derive(serde::Serialize, Debug, Clone)]
struct Args {
    small: (u8, i8, u16, i16, u32, i32),
    wide: (u64, i64, u128, i128, usize, isize),
    floats: (f32, f64),
    flags: (bool, char),
    text: String,
    bytes: Vec<u8>,
    maybe: Option<Shape>,
    list: Vec<(u32, Option<String>)>,
    /// A map sends the whole argument list to the general path (canonical maps).
    map: Option<HashMap<String, u8>>,
}

fn args() -> impl Strategy<Value = Args> {
    let shape = prop_oneof![
        Just(Shape::Empty),
        any::<i32>().prop_map(Shape::One),
        (any::<i16>(), ".{0,8}").prop_map(|(a, b)| Shape::Pair(a, b)),
        (any::<char>(), any::<f32>()).prop_map(|(c, f)| Shape::Named { c, f, unit: Unit }),
    ];
    (
        (int(), int(), int(), int()),
        (any::<bool>(), any::<char>(), any::<f32>(), any::<f64>()),
        (".{0,40}", prop::collection::vec(any::<u8>(), 0..40)),
        prop::option::of(shape),
        prop::collection::vec((any::<u32>(), prop::option::of("[a-z]{0,5}")), 0..4),
        prop::option::of(prop::collection::hash_map("[a-z]{1,3}", any::<u8>(), 0..3)),
    )
        .prop_map(
            |((a, b, c, d), (t, ch, f, g), (text, bytes), maybe, list, map)| Args {
                small: (a as u8, b as i8, c as u16, d as i16, a as u32, b as i32),
                wide: (c as u64, d as i64, a, b as i128, c as usize, d as isize),
                floats: (f, g),
                flags: (t, ch),
                text,
                bytes,
                maybe,
                list,
                map,
            },
        )
}

/// The args hash's fast encoder (`key::direct`) writes bincode's bytes exactly: the hash of any
/// argument list is the one bincode's own encoder gives (keys stay what they were), whether the
/// list fits the fast path's buffer or not, has a map or not.
#[test]
fn args_hash_fast_path_is_bincode() {
    use steadycache_api::__private::{hash_args, hash_args_bincode};
    run((args(), int(), ".{0,70}"), |(a, n, s)| {
        assert_eq!(
            hash_args(&a).unwrap(),
            hash_args_bincode(&a).unwrap(),
            "{a:?}"
        );
        let one = (n as u64,);
        assert_eq!(hash_args(&one).unwrap(), hash_args_bincode(&one).unwrap());
        let (signed, wide) = ((n as i64, n as i32, n as i16), (n, n as i128));
        assert_eq!(
            hash_args(&signed).unwrap(),
            hash_args_bincode(&signed).unwrap()
        );
        assert_eq!(hash_args(&wide).unwrap(), hash_args_bincode(&wide).unwrap());
        assert_eq!(
            hash_args(&(&s, n as u32)).unwrap(),
            hash_args_bincode(&(&s, n as u32)).unwrap()
        );
    });
}

/// Keys are stable across versions: the args hash of a few argument lists, as every release so
/// far computed them (a change here orphans every stored entry), on both paths.
#[test]
fn args_hash_is_pinned() {
    use steadycache_api::__private::{hash_args, hash_args_bincode};
    let lists: [(u128, u128, u128); 3] = [
        (
            hash_args(&(42u64,)).unwrap(),
            hash_args_bincode(&(42u64,)).unwrap(),
            0x14c9ae9594c463c479d03016b7aeed0d,
        ),
        (
            hash_args(&("EUR", "USD", 3u32)).unwrap(),
            hash_args_bincode(&("EUR", "USD", 3u32)).unwrap(),
            0x2c3a82fef2baafa7f829dfc68136d007,
        ),
        (
            hash_args(&(Some(-7i64), vec![1u16, 300], 'é')).unwrap(),
            hash_args_bincode(&(Some(-7i64), vec![1u16, 300], 'é')).unwrap(),
            0xc04eb69976efe37efb269ae7a9a9d038,
        ),
    ];
    for (i, (fast, general, pinned)) in lists.into_iter().enumerate() {
        assert_eq!(fast, pinned, "argument list {i}, fast path");
        assert_eq!(general, pinned, "argument list {i}, general path");
    }
}
