//! In-process single-flight: one caller per key computes, the others wait for its outcome.
//!
//! A flight is shared by sync waiters (a condvar) and async waiters (a tokio `Notify`). The
//! leader holds a [`LeaderGuard`]; if it panics, or its future is dropped mid-way, the guard's
//! `Drop` releases every waiter ([`Outcome::Failed`] after a panic, [`Outcome::Cancelled`]
//! after a drop) and removes the flight, so nobody hangs and nothing stays poisoned. A flight's
//! outcome is published before the flight leaves the map, so no caller can slip in between,
//! find neither the flight nor the value, and compute a second time.

use std::any::Any;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
// Under the model checker (`--cfg steadycache_loom`) the locks and condition variable are
// loom's, so it explores every interleaving of joins, publishes, removals and waits. (`Arc`
// stays std's: the map type-erases flights to `Arc<dyn Any>`, which loom's `Arc` cannot, and
// reference counts are not what is checked.)
#[cfg(steadycache_loom)]
use loom::sync::{Condvar, Mutex, MutexGuard};
#[cfg(not(steadycache_loom))]
use std::sync::{Condvar, Mutex, MutexGuard};

/// Flights in progress, by key id. Type-erased so one map serves calls of any value type.
pub(crate) type FlightMap = Arc<Mutex<HashMap<u128, Arc<dyn Any + Send + Sync>>>>;

pub(crate) fn new_map() -> FlightMap {
    Arc::new(Mutex::new(HashMap::new()))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The maps and states are only ever written whole; a panic elsewhere cannot leave them
    // half-updated, so a poisoned lock is still consistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What the leader ended with.
pub(crate) enum Outcome<V, E> {
    /// A value (stored or not).
    Value(V),
    /// The function's error, shared with waiters (only when the error type can be cloned).
    Error(E),
    /// The leader failed in a way that cannot be shared (a panic, or an error whose type is not
    /// `Clone`): the waiters compute at once, each on its own (see `plan::after_wait`).
    Failed,
    /// The leader's future was dropped before it finished: the waiters join again and one of
    /// them leads.
    Cancelled,
}

pub(crate) struct Flight<V, E> {
    state: Mutex<Option<Outcome<V, E>>>,
    cv: Condvar,
    notify: tokio::sync::Notify,
    share: Option<fn(&E) -> E>,
}

impl<V: Clone, E> Flight<V, E> {
    fn outcome(&self, o: &Outcome<V, E>) -> Outcome<V, E> {
        match o {
            Outcome::Value(v) => Outcome::Value(v.clone()),
            Outcome::Error(e) => match self.share {
                Some(f) => Outcome::Error(f(e)),
                None => Outcome::Failed,
            },
            Outcome::Failed => Outcome::Failed,
            Outcome::Cancelled => Outcome::Cancelled,
        }
    }

    /// Block this thread until the leader is done.
    pub(crate) fn wait_sync(&self) -> Outcome<V, E> {
        let mut st = lock(&self.state);
        loop {
            if let Some(o) = st.as_ref() {
                return self.outcome(o);
            }
            st = self.cv.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// [`wait_sync`](Self::wait_sync) for at most `limit` (`None`: no limit); `None` when the
    /// time ran out first.
    pub(crate) fn wait_sync_for(&self, limit: Option<Duration>) -> Option<Outcome<V, E>> {
        let Some(deadline) = limit.and_then(|l| Instant::now().checked_add(l)) else {
            return Some(self.wait_sync());
        };
        let mut st = lock(&self.state);
        loop {
            if let Some(o) = st.as_ref() {
                return Some(self.outcome(o));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            st = match self.cv.wait_timeout(st, left) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
    }

    /// Wait as a caller in `mode` does: blocking this thread ([`wait_sync_for`](Self::wait_sync_for))
    /// or awaiting ([`wait_async_for`](Self::wait_async_for)).
    pub(crate) async fn wait_for(
        &self,
        mode: crate::mode::Mode,
        limit: Option<Duration>,
    ) -> Option<Outcome<V, E>> {
        match mode {
            crate::mode::Mode::Sync => self.wait_sync_for(limit),
            crate::mode::Mode::Async => self.wait_async_for(limit).await,
        }
    }

    /// [`wait_async`](Self::wait_async) for at most `limit` (`None`: no limit); `None` when the
    /// time ran out first.
    pub(crate) async fn wait_async_for(&self, limit: Option<Duration>) -> Option<Outcome<V, E>> {
        match limit {
            None => Some(self.wait_async().await),
            Some(l) => tokio::time::timeout(l, self.wait_async()).await.ok(),
        }
    }

    /// Wait (asynchronously) until the leader is done.
    pub(crate) async fn wait_async(&self) -> Outcome<V, E> {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(o) = lock(&self.state).as_ref() {
                return self.outcome(o);
            }
            notified.await;
        }
    }

    fn finish(&self, o: Outcome<V, E>) {
        *lock(&self.state) = Some(o);
        self.cv.notify_all();
        self.notify.notify_waiters();
    }
}

/// Held by the one caller computing a key.
pub(crate) struct LeaderGuard<V: Clone, E> {
    map: FlightMap,
    id: u128,
    flight: Arc<Flight<V, E>>,
    done: bool,
}

impl<V: Clone, E> LeaderGuard<V, E> {
    /// Publish the outcome and release the waiters.
    pub(crate) fn finish(mut self, o: Outcome<V, E>) {
        self.done = true;
        // Publish first: a caller that joins between the two steps gets this outcome.
        self.flight.finish(o);
        self.remove();
    }

    fn remove(&self) {
        let mut map = lock(&self.map);
        if let Some(f) = map.get(&self.id) {
            if std::ptr::addr_eq(Arc::as_ptr(f), Arc::as_ptr(&self.flight)) {
                map.remove(&self.id);
            }
        }
    }
}

impl<V: Clone, E> Drop for LeaderGuard<V, E> {
    fn drop(&mut self) {
        if !self.done {
            self.flight.finish(if std::thread::panicking() {
                Outcome::Failed
            } else {
                Outcome::Cancelled
            });
            self.remove();
        }
    }
}

/// What a caller is to do.
pub(crate) enum Role<V: Clone, E> {
    /// Compute, then `finish` the guard.
    Leader(LeaderGuard<V, E>),
    /// Wait for the flight.
    Waiter(Arc<Flight<V, E>>),
    /// The key is in flight with another value type (the same key used for two types): compute
    /// alone, without coalescing.
    Solo,
}

/// Join the flight for `id`, or lead a new one.
pub(crate) fn join<V, E>(map: &FlightMap, id: u128, share: Option<fn(&E) -> E>) -> Role<V, E>
where
    V: Clone + Send + 'static,
    E: Send + 'static,
{
    let mut m = lock(map);
    if let Some(f) = m.get(&id) {
        return match Arc::clone(f).downcast::<Flight<V, E>>() {
            Ok(f) => Role::Waiter(f),
            Err(_) => Role::Solo,
        };
    }
    let flight = Arc::new(Flight {
        state: Mutex::new(None),
        cv: Condvar::new(),
        notify: tokio::sync::Notify::new(),
        share,
    });
    m.insert(id, flight.clone());
    Role::Leader(LeaderGuard {
        map: map.clone(),
        id,
        flight,
        done: false,
    })
}

/// The model check of the single-flight: `RUSTFLAGS="--cfg steadycache_loom" cargo test -p
/// steadycache-api --lib flight::model` (scripts/test.sh runs it). Every interleaving of a
/// leader and two callers of one key is explored.
#[cfg(all(test, steadycache_loom))]
mod model {
    use super::*;

    /// A caller: lead (and publish `v`, or drop the guard unfinished when `v` is `None`) or
    /// wait; what it ended with.
    fn call(map: &FlightMap, v: Option<u32>) -> (bool, Option<u32>) {
        match join::<u32, ()>(map, 7, None) {
            Role::Leader(g) => match v {
                Some(v) => {
                    g.finish(Outcome::Value(v));
                    (true, Some(v))
                }
                None => {
                    drop(g); // cancelled
                    (true, None)
                }
            },
            Role::Waiter(f) => match f.wait_sync() {
                Outcome::Value(v) => (false, Some(v)),
                _ => (false, None),
            },
            Role::Solo => panic!("one value type per key here"),
        }
    }

    #[test]
    fn waiters_get_the_leaders_value_or_lead_after_it() {
        loom::model(|| {
            let map = new_map();
            let others: Vec<_> = (0..2)
                .map(|i| {
                    let map = map.clone();
                    loom::thread::spawn(move || call(&map, Some(10 + i)))
                })
                .collect();
            let mine = call(&map, Some(1));
            let mut all = vec![mine];
            all.extend(others.into_iter().map(|t| t.join().unwrap()));
            // Nobody hangs (loom reports a deadlock otherwise), everybody has a value, and a
            // waiter has the value of a leader: the one it waited on.
            let leaders: Vec<u32> = all.iter().filter(|c| c.0).filter_map(|c| c.1).collect();
            for (led, v) in &all {
                let v = v.expect("every caller ends with a value");
                assert!(
                    *led || leaders.contains(&v),
                    "a waiter got a value nobody led"
                );
            }
            assert!(!leaders.is_empty());
            // The map is empty once every flight is over.
            assert!(lock(&map).is_empty());
        });
    }

    /// The driver's protocol over a store: look up, join, look up again as the leader,
    /// compute and store, publish. The function runs once, whatever the interleaving.
    fn memoized(
        map: &FlightMap,
        store: &loom::sync::Mutex<Option<u32>>,
        runs: &loom::sync::atomic::AtomicUsize,
    ) -> u32 {
        use loom::sync::atomic::Ordering::SeqCst;
        if let Some(v) = *store.lock().unwrap() {
            return v;
        }
        loop {
            match join::<u32, ()>(map, 7, None) {
                Role::Leader(g) => {
                    if let Some(v) = *store.lock().unwrap() {
                        g.finish(Outcome::Value(v));
                        return v;
                    }
                    runs.fetch_add(1, SeqCst);
                    *store.lock().unwrap() = Some(42);
                    g.finish(Outcome::Value(42));
                    return 42;
                }
                Role::Waiter(f) => match f.wait_sync() {
                    Outcome::Value(v) => return v,
                    _ => continue,
                },
                Role::Solo => panic!("one value type per key here"),
            }
        }
    }

    #[test]
    fn the_function_runs_once_across_three_callers() {
        use loom::sync::atomic::{AtomicUsize, Ordering::SeqCst};
        // Every interleaving with up to 3 preemptions (the full space takes minutes).
        let mut model = loom::model::Builder::new();
        model.preemption_bound = Some(3);
        model.check(|| {
            let map = new_map();
            let store = std::sync::Arc::new(loom::sync::Mutex::new(None));
            let runs = std::sync::Arc::new(AtomicUsize::new(0));
            let others: Vec<_> = (0..2)
                .map(|_| {
                    let (map, store, runs) = (map.clone(), store.clone(), runs.clone());
                    loom::thread::spawn(move || memoized(&map, &store, &runs))
                })
                .collect();
            assert_eq!(memoized(&map, &store, &runs), 42);
            for t in others {
                assert_eq!(t.join().unwrap(), 42);
            }
            assert_eq!(runs.load(SeqCst), 1);
        });
    }

    #[test]
    fn a_cancelled_leader_releases_its_waiters() {
        loom::model(|| {
            let map = new_map();
            let waiter = {
                let map = map.clone();
                loom::thread::spawn(move || call(&map, Some(2)))
            };
            let mine = call(&map, None);
            let theirs = waiter.join().unwrap();
            // Either the waiter came after the cancelled flight and led its own, or it waited
            // and was released (Cancelled: the driver then joins again).
            assert!(mine.0 || theirs.0, "somebody led");
            assert!(lock(&map).is_empty(), "no flight is left behind");
        });
    }
}
