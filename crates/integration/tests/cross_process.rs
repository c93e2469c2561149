//! Several OS processes sharing one on-disk cache (issue 3). The test binary re-invokes itself
//! as the children (`child_main`, ignored in normal runs), so every process is a real process.

mod support;

use std::path::Path;
use std::time::Duration;
use steadycache::cached;
use support::{spawn, spawn_and_wait, temp_dir, wait, xp_cache, COUNT, ROLE, XP_URL};

const KEYS: u32 = 20;
const PROCESSES: usize = 4;

/// The shared function: its body appends the key to a count file, then the parent counts lines.
#[cached(cache = xp_cache(), ttl = "10m", lock = "distributed", lock_ttl = "20s")]
fn work(key: u32) -> u32 {
    std::thread::sleep(Duration::from_millis(300));
    support::count(&key.to_string());
    key * 3
}

/// What a child process does, chosen by `STEADYCACHE_XP_ROLE`. Not a test of its own.
#[test]
#[ignore = "run by the cross-process tests as a child process"]
fn child_main() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    match role.as_str() {
        // Open the cache (exits 4 when it cannot) and nothing else.
        "open" => drop(xp_cache()),
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
        other => support::race_child(other),
    }
}

fn counts(path: &Path) -> Vec<u32> {
    let mut keys: Vec<u32> = support::lines(path)
        .iter()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    keys.sort_unstable();
    keys
}

fn single_flight_across_processes(url: &str, dir: &Path) {
    let count = dir.join("count.txt");
    let count_s = count.to_string_lossy().to_string();
    let envs = [(XP_URL, url), (COUNT, count_s.as_str())];
    spawn_and_wait(
        PROCESSES,
        "race",
        &envs,
        Duration::from_secs(120),
        "a racing child failed",
    );
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

/// Run `scenario` against a fresh disk cache of `scheme` (`file` or `sqlite`), in a directory of
/// its own that is removed afterwards.
fn on_disk(scheme: &str, tag: &str, scenario: impl FnOnce(&str, &Path)) {
    let dir = temp_dir(&format!("{scheme}-{tag}"));
    let url = match scheme {
        "file" => format!("file://{}", dir.join("cache").display()),
        _ => format!("sqlite://{}", dir.join("cache.db").display()),
    };
    scenario(&url, &dir);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn file_backend_single_flight_and_persistence_across_processes() {
    on_disk("file", "race", single_flight_across_processes);
}

#[test]
fn sqlite_backend_single_flight_and_persistence_across_processes() {
    on_disk("sqlite", "race", single_flight_across_processes);
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

#[test]
fn file_backend_a_lease_outlives_its_ttl_across_processes() {
    on_disk("file", "lease", |url, _| {
        support::a_lease_outlives_its_ttl(url, &[])
    });
}

#[test]
fn sqlite_backend_a_lease_outlives_its_ttl_across_processes() {
    on_disk("sqlite", "lease", |url, _| {
        support::a_lease_outlives_its_ttl(url, &[])
    });
}

#[test]
fn file_backend_a_lock_holder_killed_mid_computation_does_not_block_the_others() {
    on_disk("file", "dead", |url, _| {
        support::killed_holder_then_one_more(url, &[])
    });
}

#[test]
fn sqlite_backend_a_lock_holder_killed_mid_computation_does_not_block_the_others() {
    on_disk("sqlite", "dead", |url, _| {
        support::killed_holder_then_one_more(url, &[])
    });
}

/// Processes starting together on one new SQLite database: switching it to WAL and creating
/// its schema answer "busy" at once (without SQLite's busy handler) to all but one; each must
/// still open it.
#[test]
fn sqlite_processes_opening_a_new_database_together_all_open_it() {
    for round in 0..3 {
        let dir = temp_dir("sqlite-open");
        let url = format!("sqlite://{}", dir.join("cache.db").display());
        spawn_and_wait(
            12,
            "open",
            &[(XP_URL, url.as_str())],
            Duration::from_secs(60),
            &format!("round {round}: a process could not open the new database"),
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
