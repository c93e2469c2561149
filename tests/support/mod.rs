//! What the multi-process tests share: re-invoking the test binary as a child process in a
//! role, waiting for it with a hang guard, temp dirs and a count file the children append to.
#![allow(dead_code)] // each test file uses a part

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The environment variable naming a child's role.
pub const ROLE: &str = "STEADYCACHE_XP_ROLE";
/// The environment variable naming the count file.
pub const COUNT: &str = "STEADYCACHE_XP_COUNT";

/// Run this test binary again as a child: only its ignored `child_main` test, in `role`.
pub fn spawn(role: &str, envs: &[(&str, &str)]) -> Child {
    let exe = std::env::current_exe().expect("test binary path");
    let mut cmd = Command::new(exe);
    cmd.args([
        "--ignored",
        "--exact",
        "child_main",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(ROLE, role)
    .stdout(Stdio::null());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.spawn().expect("spawn a child test process")
}

/// Wait for a child; one that does not finish within `limit` is killed and fails the test (a
/// guard against hangs, not a timing assertion).
pub fn wait(mut child: Child, limit: Duration) -> ExitStatus {
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

/// Run a child's async body on a 2-worker runtime of its own (as a real service would have).
pub fn block_on<F: std::future::Future>(body: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(body)
}

/// A fresh directory under the system temp dir.
pub fn temp_dir(tag: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "steadycache-xp-{tag}-{}-{nanos:08x}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Append `line` to the count file named by [`COUNT`], if any, in one `write(2)`: with
/// `O_APPEND` whole writes of several processes never mix (`writeln!` may split a line in two).
pub fn count(line: &str) {
    if let Ok(path) = std::env::var(COUNT) {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
        {
            let _ = f.write_all(format!("{line}\n").as_bytes());
        }
    }
}

/// The lines of the count file at `path` (none if it does not exist).
pub fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}
