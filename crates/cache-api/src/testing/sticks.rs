//! An invalidation sticks: the race of a computation and an invalidation, between two caches
//! over one store ("processes"), for the tests of every store (see `Cache::invalidate`).

use crate::{Cache, Policy};
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};

/// What invalidates the key while it is computed.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// `Cache::invalidate` of the key.
    Key,
    /// `Cache::invalidate_prefix` of its namespace.
    Prefix,
    /// `Cache::invalidate_matching` of a pattern that matches it.
    Pattern,
    /// `Cache::clear`.
    Clear,
}

/// Process A computes `f(1)` with this body: it reads the data (its version), says so, and
/// waits to be let go before it returns what it read.
struct Body {
    data: AtomicU64,
    runs: AtomicU64,
    started: Mutex<Option<Sender<()>>>,
    go: Mutex<Option<Receiver<()>>>,
}

impl Body {
    fn run(&self) -> u64 {
        let read = self.data.load(SeqCst);
        self.runs.fetch_add(1, SeqCst);
        if let Some(tx) = self.started.lock().unwrap().take() {
            let _ = tx.send(());
        }
        if let Some(rx) = self.go.lock().unwrap().take() {
            let _ = rx.recv();
        }
        read
    }
}

/// Process `a` computes `ns:v1:user:1` from the old data while process `b` invalidates it
/// (`kind`); afterwards `b` never reads the old value and `a` recomputes it. Panics otherwise.
pub fn race(a: Cache, b: Cache, kind: Kind, ns: &str) {
    let body = Arc::new(Body {
        data: AtomicU64::new(1),
        runs: AtomicU64::new(0),
        started: Mutex::new(None),
        go: Mutex::new(None),
    });
    let key = format!("{ns}:v1:user:1");
    let policy = Policy::expire_after(std::time::Duration::from_secs(600));
    let call = {
        let (a, body, key, policy) = (a.clone(), body.clone(), key.clone(), policy.clone());
        move || {
            let body = body.clone();
            a.get_or_compute_sync(&key, &policy, move || Ok::<u64, ()>(body.run()))
                .unwrap()
        }
    };
    let (started_tx, started_rx) = channel();
    let (go_tx, go_rx) = channel();
    *body.started.lock().unwrap() = Some(started_tx);
    *body.go.lock().unwrap() = Some(go_rx);
    let computing = std::thread::spawn(call.clone());
    started_rx.recv().unwrap();
    // The data changes and B invalidates, while A's computation (of the old data) runs.
    body.data.store(2, SeqCst);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        match kind {
            Kind::Key => drop(b.invalidate(&key).await.unwrap()),
            Kind::Prefix => drop(b.invalidate_prefix(&format!("{ns}:")).await.unwrap()),
            Kind::Pattern => drop(
                b.invalidate_matching(&format!("{ns}:*:user:*"))
                    .await
                    .unwrap(),
            ),
            Kind::Clear => drop(b.clear().await.unwrap()),
        }
    });
    go_tx.send(()).unwrap();
    assert_eq!(
        computing.join().unwrap(),
        1,
        "A's caller gets what it computed"
    );
    // Afterwards: A recomputes from the new data; B never reads the old value.
    let from_b: Option<u64> = rt.block_on(b.get(&key)).unwrap();
    assert_ne!(from_b, Some(1), "{kind:?}: B read the invalidated value");
    assert_eq!(call(), 2, "{kind:?}: A served the invalidated value");
    assert_eq!(body.runs.load(SeqCst), 2, "{kind:?}");
}

/// Every kind of invalidation.
pub const KINDS: [Kind; 4] = [Kind::Key, Kind::Prefix, Kind::Pattern, Kind::Clear];
