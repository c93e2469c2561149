//! `Lock::Distributed` across OS processes: this test binary runs itself twice as a server
//! (`child_server`), each its own process with its own `Cache` over one file store, and one
//! hundred concurrent requests for one cold URL, spread over both, reach the upstream once.
//! The upstream appends a line to a file per request it serves, so the count spans processes.

mod common;

use axum::routing::get;
use axum::Router;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;
use steadycache_api::{Cache, Lock};
use steadycache_tower::HttpCacheLayer;

const CHILD: &str = "STEADYCACHE_TOWER_CHILD_DIR";

/// The children started, killed however the test ends.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// In a child (`CHILD` set): serve `/shared` behind the layer until killed. Else nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn child_server() {
    let Some(dir) = std::env::var_os(CHILD).map(PathBuf::from) else {
        return;
    };
    let backend =
        steadycache_file::FileBackend::open(steadycache_file::FileConfig::new(dir.join("store")))
            .expect("file backend");
    let cache = Cache::builder().backend(backend).build();
    let log = dir.join("upstream.log");
    let app = Router::new()
        .route(
            "/shared",
            get(move || {
                let log = log.clone();
                async move {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    let mut f = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&log)
                        .expect("log");
                    writeln!(f, "{}", std::process::id()).expect("write");
                    (
                        [("cache-control", "max-age=600")],
                        format!("from {}", std::process::id()),
                    )
                }
            }),
        )
        .layer(
            HttpCacheLayer::new(cache)
                .lock(Lock::Distributed)
                .key_with(|p| Some(p.uri.path().to_owned())),
        );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let tmp = dir.join(format!("port.{}.tmp", std::process::id()));
    std::fs::write(&tmp, port.to_string()).expect("port");
    std::fs::rename(&tmp, dir.join(format!("port.{}", std::process::id()))).expect("rename");
    axum::serve(listener, app).await.expect("serve");
}

fn ports(dir: &Path) -> Vec<u16> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with("port.") && !name.ends_with(".tmp")
        })
        .filter_map(|e| std::fs::read_to_string(e.path()).ok()?.trim().parse().ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_upstream_request_across_two_processes() {
    if std::env::var_os(CHILD).is_some() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = std::env::current_exe().expect("exe");
    let spawn = || {
        Command::new(&exe)
            .args(["child_server", "--exact", "--nocapture"])
            .env(CHILD, dir.path())
            .spawn()
            .expect("spawn")
    };
    let _children = Children(vec![spawn(), spawn()]);
    common::until(|| ports(dir.path()).len() == 2).await;
    let ports = ports(dir.path());
    let c = common::client();
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let c = c.clone();
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], ports[i % 2]));
            tokio::spawn(async move { common::get_(&c, addr, "/shared").await })
        })
        .collect();
    let mut bodies = Vec::new();
    for t in tasks {
        let got = t.await.expect("task");
        assert_eq!(got.status, 200);
        bodies.push(got.body);
    }
    bodies.dedup();
    assert_eq!(
        bodies.len(),
        1,
        "every answer is the one stored response: {bodies:?}"
    );
    let log = std::fs::read_to_string(dir.path().join("upstream.log")).expect("log");
    assert_eq!(log.lines().count(), 1, "one upstream request in all: {log}");
}
