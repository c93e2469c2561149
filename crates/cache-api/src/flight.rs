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
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

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
