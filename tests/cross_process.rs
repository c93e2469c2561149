//! Several OS processes sharing one on-disk cache (issue 3). The test binary re-invokes itself
//! as the children (`child_main`, ignored in normal runs), so every process is a real process.
#![cfg(all(feature = "file", feature = "sqlite"))]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use steadycache::{cached, Cache};

const KEYS: u32 = 20;
const PROCESSES: usize = 4;

fn xp_cache() -> Cache {
    let url = std::env::var("STEADYCACHE_XP_URL").unwrap_or_else(|_| "mem://".into());
    match Cache::from_url(&url) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cannot open {url}: {e}");
            std::process::exit(4)
        }
    }
}

/// The shared function: its body appends the key to a count file, then the parent counts lines.
#[cached(cache = xp_cache(), ttl = "10m", lock = "distributed", lock_ttl = "20s")]
fn work(key: u32) -> u32 {
    std::thread::sleep(Duration::from_millis(300));
    if let Ok(path) = std::env::var("STEADYCACHE_XP_COUNT") {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
        {
            // One write(2) per line: O_APPEND keeps whole writes from several processes apart,
            // while `writeln!` may split the number and the newline into two writes.
            let _ = f.write_all(format!("{key}\n").as_bytes());
        }
    }
    key * 3
}

/// What a child process does, chosen by `STEADYCACHE_XP_ROLE`. Not a test of its own.
#[test]
#[ignore = "run by the cross-process tests as a child process"]
fn child_main() {
    let Ok(role) = std::env::var("STEADYCACHE_XP_ROLE") else {
        return;
    };
    match role.as_str() {
        "race" => {
            let threads: Vec<_> = (0..KEYS)
                .map(|k| std::thread::spawn(move || work(k)))
                .collect();
            for (k, t) in threads.into_iter().enumerate() {
                assert_eq!(t.join().ok(), Some(k as u32 * 3));
            }
        }
        "reuse" => {
            for k in 0..KEYS {
                assert_eq!(work(k), k * 3);
            }
            let s = work_cache().stats();
            if s.hits != KEYS as u64 || s.misses != 0 {
                eprintln!("expected {KEYS} hits and no miss, got {s:?}");
                std::process::exit(3);
            }
        }
        "writer" => {
            let root = std::env::var("STEADYCACHE_XP_ROOT").unwrap_or_default();
            let b = steadycache::FileBackend::open(steadycache::FileConfig::new(root))
                .unwrap_or_else(|_| std::process::exit(4));
            let rt = tokio::runtime::Runtime::new().unwrap_or_else(|_| std::process::exit(4));
            rt.block_on(async {
                use steadycache::Backend;
                for round in 0u64.. {
                    for i in 0..8u64 {
                        let fill = ((round * 8 + i) % 251) as u8;
                        let _ = b
                            .set(&format!("torn:{i}"), vec![fill; 256 * 1024], None)
                            .await;
                    }
                }
            });
        }
        other => panic!("unknown role {other}"),
    }
}

fn spawn(role: &str, envs: &[(&str, &str)]) -> Child {
    let exe = std::env::current_exe().expect("test binary path");
    let mut cmd = Command::new(exe);
    cmd.args([
        "--ignored",
        "--exact",
        "child_main",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("STEADYCACHE_XP_ROLE", role)
    .stdout(Stdio::null());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.spawn().expect("spawn a child test process")
}

fn wait(mut child: Child, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(st) = child.try_wait().expect("wait for child") {
            return st;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("child process did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn counts(path: &Path) -> Vec<u32> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut keys: Vec<u32> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
    keys.sort_unstable();
    keys
}

fn single_flight_across_processes(url: &str, dir: &Path) {
    let count = dir.join("count.txt");
    let count_s = count.to_string_lossy().to_string();
    let envs = [
        ("STEADYCACHE_XP_URL", url),
        ("STEADYCACHE_XP_COUNT", count_s.as_str()),
    ];
    let children: Vec<Child> = (0..PROCESSES).map(|_| spawn("race", &envs)).collect();
    for c in children {
        assert!(
            wait(c, Duration::from_secs(120)).success(),
            "a racing child failed"
        );
    }
    // 4 processes x 20 cold keys at once: the body ran exactly once per key, across all of them.
    assert_eq!(
        counts(&count),
        (0..KEYS).collect::<Vec<_>>(),
        "runs per key"
    );
    // Persistence: a later process is served from the cache and runs nothing.
    assert!(
        wait(spawn("reuse", &envs), Duration::from_secs(60)).success(),
        "reuse child"
    );
    assert_eq!(counts(&count).len(), KEYS as usize);
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "steadycache-xp-{tag}-{}-{:08x}",
        std::process::id(),
        fastrand_u32()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn fastrand_u32() -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    t ^ std::process::id().rotate_left(16)
}

#[test]
fn file_backend_single_flight_and_persistence_across_processes() {
    let dir = temp_dir("file");
    let url = format!("file://{}", dir.join("cache").display());
    single_flight_across_processes(&url, &dir);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sqlite_backend_single_flight_and_persistence_across_processes() {
    let dir = temp_dir("sqlite");
    let url = format!("sqlite://{}", dir.join("cache.db").display());
    single_flight_across_processes(&url, &dir);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_writer_killed_mid_write_never_leaves_a_torn_entry() {
    use steadycache::Backend;
    let dir = temp_dir("torn");
    let root = dir.join("cache");
    let root_s = root.to_string_lossy().to_string();
    let child = spawn("writer", &[("STEADYCACHE_XP_ROOT", root_s.as_str())]);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut child = child;
    child.kill().expect("SIGKILL the writer");
    let _ = child.wait();
    let b = steadycache::FileBackend::open(steadycache::FileConfig::new(&root)).unwrap();
    let mut seen = 0;
    for i in 0..8 {
        if let Some(v) = b.get(&format!("torn:{i}")).await.unwrap() {
            seen += 1;
            assert_eq!(v.len(), 256 * 1024, "torn length");
            assert!(v.iter().all(|x| *x == v[0]), "torn content");
        }
    }
    assert!(seen > 0, "the writer wrote nothing before it was killed");
    let _ = std::fs::remove_dir_all(&dir);
}
