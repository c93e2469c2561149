//! The `steadycache` binary, run as a process, against stores filled by memoized functions: a
//! file cache (JSON codec), SQLite (bincode) and a real Redis (bincode, a key prefix).

use assert_cmd::Command;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::OnceLock;
use steadycache::{cached, Cache, Codec, FileBackend, FileConfig};
use steadycache_redis::testing::RedisServer;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Profile {
    id: u32,
    name: String,
}

fn profile(id: u32) -> Profile {
    Profile {
        id,
        name: format!("user {id}"),
    }
}

fn temp(tag: &str) -> std::path::PathBuf {
    steadycache_api::testing::temp_dir(&format!("cli-{tag}"))
}

/// A cache on `url` (bincode, the default codec).
fn cache(url: &str) -> Cache {
    Cache::from_url(url).unwrap_or_else(|e| panic!("{url}: {e}"))
}

fn file_dir() -> &'static std::path::Path {
    static DIR: OnceLock<std::path::PathBuf> = OnceLock::new();
    DIR.get_or_init(|| temp("file"))
}

/// The file cache, with the JSON codec (its entries are JSON documents).
fn json_file_cache() -> Cache {
    match FileBackend::open(FileConfig::new(file_dir())) {
        Ok(b) => Cache::builder().backend(b).codec(Codec::json()).build(),
        Err(e) => panic!("file backend: {e}"),
    }
}

fn file_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| format!("file://{}", file_dir().display()))
}

fn sqlite_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| format!("sqlite://{}", temp("sqlite").join("c.db").display()))
}

fn redis() -> &'static RedisServer {
    static SERVER: OnceLock<RedisServer> = OnceLock::new();
    SERVER.get_or_init(RedisServer::start)
}

fn redis_url() -> String {
    format!("{}?key_prefix=cli-test/", redis().url())
}

static FILE_RUNS: AtomicU32 = AtomicU32::new(0);

#[cached(cache = json_file_cache(), ttl = "10m", key_prefix = "profiles", key = "user:{id}")]
fn on_file(id: u32) -> Profile {
    FILE_RUNS.fetch_add(1, SeqCst);
    profile(id)
}

#[cached(cache = cache(sqlite_url()), ttl = "10m", key_prefix = "profiles", key = "user:{id}")]
fn on_sqlite(id: u32) -> Profile {
    profile(id)
}

#[cached(cache = cache(&redis_url()), ttl = "10m", key_prefix = "profiles", key = "user:{id}")]
async fn on_redis(id: u32) -> Profile {
    profile(id)
}

/// `steadycache --url <url> args…`, stdin closed.
fn cli(url: &str, args: &[&str]) -> assert_cmd::assert::Assert {
    let mut cmd = Command::cargo_bin("steadycache").expect("the steadycache binary");
    cmd.arg("--url").arg(url).args(args).write_stdin("");
    cmd.assert()
}

fn stdout(a: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&a.get_output().stdout).into_owned()
}

fn stderr(a: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&a.get_output().stderr).into_owned()
}

fn json(a: assert_cmd::assert::Assert) -> Value {
    let out = stdout(&a.success());
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

/// Every key under `prefix`, page by page (`limit` a page), through `ls --json --cursor`.
fn all_keys(url: &str, prefix: &str, limit: usize) -> (Vec<Value>, usize) {
    let (mut keys, mut pages) = (Vec::new(), 0);
    let mut cursor: Option<String> = None;
    loop {
        let limit = limit.to_string();
        let mut args = vec!["--json", "ls", prefix, "--limit", &limit];
        if let Some(c) = &cursor {
            args.extend(["--cursor", c]);
        }
        let page = json(cli(url, &args));
        pages += 1;
        keys.extend(page["keys"].as_array().cloned().unwrap_or_default());
        match page["next"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return (keys, pages),
        }
    }
}

#[test]
fn a_file_cache_is_listed_inspected_read_and_cleared() {
    for id in 1..=3 {
        assert_eq!(on_file(id), profile(id));
    }
    let url = file_url();
    // Namespaces.
    let ns = json(cli(url, &["--json", "ls"]));
    assert_eq!(
        ns["namespaces"],
        serde_json::json!([{ "namespace": "profiles", "entries": 3 }])
    );
    assert!(stdout(&cli(url, &["ls"]).success()).contains("profiles"));
    // Keys, two pages of two and one.
    let (keys, pages) = all_keys(url, "profiles:", 2);
    assert_eq!((keys.len(), pages), (3, 2), "{keys:?}");
    for k in &keys {
        assert_eq!(k["state"], "fresh", "{k}");
        assert!(k["size"].as_u64().unwrap_or(0) > 0, "{k}");
        assert!(k["age_ms"].as_u64().is_some(), "{k}");
    }
    let key = keys[0]["key"].as_str().unwrap_or_default().to_owned();
    assert!(key.ends_with(":user:1"), "{key}");
    // Inspect: the header and the pretty JSON payload.
    let text = stdout(&cli(url, &["inspect", &key]).success());
    for part in [
        "codec        json (id 2)",
        "steadycache envelope v3, JSON form",
        "matches the key",
        "fresh",
        "\"name\": \"user 1\"",
    ] {
        assert!(text.contains(part), "{part:?} in\n{text}");
    }
    let doc = json(cli(url, &["--json", "inspect", &key]));
    assert_eq!(doc["codec"]["name"], "json");
    assert_eq!(doc["format_version"], 3);
    assert_eq!(doc["key_hash_matches"], true);
    assert_eq!(doc["payload"]["name"], "user 1");
    // Get: the payload's bytes.
    let got = cli(url, &["get", &key]).success();
    let back: Profile =
        serde_json::from_slice(&got.get_output().stdout).expect("the payload is the JSON value");
    assert_eq!(back, profile(1));
    // Rm, then a second rm finds nothing (exit 3), and the function computes again.
    cli(url, &["rm", &key]).success();
    let again = cli(url, &["rm", &key]).code(3);
    assert!(stderr(&again).contains("no such key"), "{}", stderr(&again));
    let runs = FILE_RUNS.load(SeqCst);
    assert_eq!(on_file(1), profile(1));
    assert_eq!(
        FILE_RUNS.load(SeqCst),
        runs + 1,
        "removed, so computed again"
    );
    // Stats.
    let stats = json(cli(url, &["--json", "stats"]));
    assert_eq!(stats["entries"], 3);
    assert!(stats["bytes"].as_u64().unwrap_or(0) > 100, "{stats}");
    // Clear: refused without --yes and a terminal (exit 4, nothing removed), then done.
    cli(url, &["clear", "profiles:"]).code(4);
    assert_eq!(all_keys(url, "profiles:", 50).0.len(), 3);
    let cleared = json(cli(url, &["--json", "clear", "profiles:", "--yes"]));
    assert_eq!(cleared["removed"], 3);
    assert!(all_keys(url, "profiles:", 50).0.is_empty());
    cli(url, &["inspect", &key]).code(3);
    let ping = json(cli(url, &["--json", "ping"]));
    assert_eq!(
        (ping["ok"].clone(), ping["backend"].clone()),
        (Value::Bool(true), Value::from("file"))
    );
}

#[test]
fn sqlite_entries_show_a_hex_preview_and_a_large_clear_removes_everything() {
    for id in 1..=2 {
        assert_eq!(on_sqlite(id), profile(id));
    }
    let url = sqlite_url();
    let (keys, _) = all_keys(url, "profiles:", 50);
    assert_eq!(keys.len(), 2);
    let key = keys[1]["key"].as_str().unwrap_or_default().to_owned();
    let text = stdout(&cli(url, &["inspect", &key]).success());
    for part in ["codec        bincode (id 1)", "binary form", "00000000  "] {
        assert!(text.contains(part), "{part:?} in\n{text}");
    }
    let got = cli(url, &["get", &key]).success();
    let expected = Codec::bincode().encode(&profile(2)).expect("encode");
    assert_eq!(
        got.get_output().stdout,
        expected,
        "the payload, byte for byte"
    );
    // 1,500 more entries: the clear deletes them key by key (behind a progress bar on a
    // terminal), then sweeps.
    let bulk = cache(url);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        for i in 0..1_500 {
            bulk.backend()
                .set(&format!("bulk:{i:05}"), vec![1; 10], None)
                .await
                .expect("set");
        }
    });
    let stats = json(cli(url, &["--json", "stats"]));
    assert_eq!(stats["entries"], 1_502, "{stats}");
    let cleared = json(cli(url, &["--json", "clear", "", "--yes"]));
    assert_eq!(cleared["removed"], 1_502);
    assert_eq!(json(cli(url, &["--json", "stats"]))["entries"], 0);
}

#[test]
fn a_redis_cache_is_listed_paged_inspected_and_cleared() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        for id in 1..=25 {
            assert_eq!(on_redis(id).await, profile(id));
        }
    });
    let url = redis_url();
    let (keys, pages) = all_keys(&url, "profiles:", 10);
    let mut names: Vec<&str> = keys.iter().filter_map(|k| k["key"].as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), 25, "{names:?}");
    assert!(pages >= 2, "paged: {pages}");
    let key = names[0].to_owned();
    let doc = json(cli(&url, &["--json", "inspect", &key]));
    assert_eq!(doc["codec"]["name"], "bincode");
    assert_eq!(doc["state"], "fresh");
    assert!(doc["payload_hex"].as_str().is_some_and(|h| !h.is_empty()));
    // A copy of an entry under another key is misplaced: never printed as that key's value.
    let copy = key.replace(":user:", ":copy:");
    rt.block_on(async {
        let b = cache(&url);
        let bytes = b.backend().get(&key).await.expect("get").expect("present");
        b.backend().set(&copy, bytes, None).await.expect("set");
    });
    let a = cli(&url, &["get", &copy]).code(3);
    assert!(stderr(&a).contains("misplaced"), "{}", stderr(&a));
    assert_eq!(
        json(cli(&url, &["--json", "inspect", &copy]))["state"],
        "misplaced"
    );
    // A key of another type (a list) cannot be read with GET: shown as such, nothing fails.
    redis().command("RPUSH cli-test/profiles:a-list x");
    let (listed, _) = all_keys(&url, "profiles:", 100);
    let state = |k: &str| {
        listed
            .iter()
            .find(|v| v["key"] == k)
            .map(|v| v["state"].clone())
    };
    assert_eq!(state(&copy), Some(Value::from("misplaced")));
    assert_eq!(state("profiles:a-list"), Some(Value::from("unreadable")));
    let stats = json(cli(&url, &["--json", "stats"]));
    assert_eq!(stats["backend"], "redis");
    assert_eq!(stats["namespaces"][0]["entries"], 27, "{stats}");
    assert_eq!(
        json(cli(&url, &["--json", "clear", "profiles:", "--yes"]))["removed"],
        27
    );
    assert_eq!(json(cli(&url, &["--json", "stats"]))["entries"], 0);
    cli(&url, &["ping"]).success();
}

#[test]
fn errors_are_one_line_with_their_exit_code_and_no_secret() {
    // A server that is not there: the store fails (1), and the password is never printed.
    let url = "redis://app:hunter2secret@127.0.0.1:1/0?connect_timeout_ms=200";
    for json in [false, true] {
        let mut args = vec!["ping"];
        if json {
            args.insert(0, "--json");
        }
        let a = cli(url, &args).code(1);
        let err = stderr(&a);
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(!err.contains("hunter2secret"), "{err}");
        if json {
            let doc: Value = serde_json::from_str(err.trim()).expect("a JSON error");
            assert_eq!(doc["exit"], 1);
        }
    }
    // A path that names no store is an error, and is not created.
    let missing = temp("missing").join("no-such-dir");
    cli(&format!("file://{}", missing.display()), &["stats"]).code(1);
    assert!(!missing.exists(), "the CLI created a store");
    // A URL given in the wrong place is quoted back by the usage error: scrubbed.
    let mut cmd = Command::cargo_bin("steadycache").expect("binary");
    let a = cmd
        .args(["ping", "redis://app:hunter2secret@127.0.0.1:1/0"])
        .assert()
        .code(2);
    assert!(!stderr(&a).contains("hunter2secret"), "{}", stderr(&a));
    cli(file_url(), &["ls", "p:", "--limit", "0"]).code(2);
    // Usage: no URL, an unknown scheme, a bad cursor (2).
    let mut cmd = Command::cargo_bin("steadycache").expect("binary");
    cmd.env_remove("STEADYCACHE_URL")
        .arg("ping")
        .assert()
        .code(2);
    cli("nosuch://x", &["ping"]).code(2);
    cli(&redis_url(), &["ls", "p:", "--cursor", "not-a-cursor"]).code(2);
    // The exit codes are documented.
    let help = Command::cargo_bin("steadycache")
        .expect("binary")
        .arg("--help")
        .assert()
        .success();
    assert!(stdout(&help).contains("Exit codes:"));
}

/// Issue 21, item 7, as a new user met it: a cache directory holding, besides memoized
/// entries, a folder of notes, an installed tool and a readme. `clear "" --yes` removes the
/// entries and nothing else (before, it removed both folders whole).
#[test]
fn clearing_a_file_cache_leaves_the_users_files() {
    let dir = temp("foreign");
    let mine = [
        ("mydata/notes.txt", &b"my notes"[..]),
        ("oha-1.16.0/bin/oha", b"\x7fELF"),
        ("readme.txt", b"read me"),
    ];
    for (rel, bytes) in mine {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, bytes).expect("write");
    }
    let url = format!("file://{}", dir.display());
    let filled = cache(&url);
    let policy = steadycache::Policy::expire_after(std::time::Duration::from_secs(600));
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        for i in 0..4 {
            let key = format!("quickstart:v1:{i}");
            filled.set(&key, &i, &policy).await.expect("set");
        }
    });
    let cleared = json(cli(&url, &["--json", "clear", "", "--yes"]));
    // The four entries, and the invalidation bus's feed the sets wrote.
    assert!(cleared["removed"].as_u64() >= Some(4), "{cleared}");
    for (rel, bytes) in mine {
        let got = std::fs::read(dir.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
        assert_eq!(got, bytes, "{rel}");
    }
    assert!(
        !dir.join("quickstart").exists(),
        "the emptied namespace is gone"
    );
}
