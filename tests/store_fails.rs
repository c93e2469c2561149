//! A holder whose store fails lets its waiters go together (issue 21, item 6): five caches
//! ("processes") over one store whose `set` always fails, one cold key, a distributed lock, a
//! 500 ms body. Nothing can be stored, so each process runs the function; the waiters must
//! run together once the first holder is done (two rounds), not take the lock one after
//! another (five rounds). Counted by the most runs under way at once, never by time. On memory
//! and on SQLite.

use std::sync::Arc;
use std::time::Duration;
use steadycache::{Backend, Lock, Policy};
use steadycache_api::testing::fault::Op;
use steadycache_api::testing::sim::Fleet;

fn policy() -> Policy {
    Policy::expire_after(Duration::from_secs(600))
        .with_lock(Lock::Distributed)
        .with_lock_ttl(Duration::from_secs(5))
}

async fn waiters_go_together(fleet: Fleet) {
    for i in 0..fleet.len() {
        if let Some(f) = fleet.faults(i) {
            f.fail_always(Op::Set);
        }
    }
    let s = fleet
        .stampede("cold", 1, &policy(), Duration::from_millis(500))
        .await;
    assert_eq!(s.runs, 5, "nothing stored: each process ran it ({s:?})");
    assert_eq!(s.served, 5, "{s:?}");
    assert!(
        s.most_at_once >= 4,
        "the four waiters ran together after the first holder, not in turn: {s:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_memory() {
    waiters_go_together(Fleet::new(5)).await;
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqlite() {
    let dir = steadycache_api::testing::temp_dir("store-fails");
    let url = format!("sqlite://{}", dir.join("c.db").display());
    let store: Arc<dyn Backend> = Arc::new(steadycache::SqliteBackend::from_url(&url).unwrap());
    waiters_go_together(Fleet::over(store, 5, None)).await;
}
