//! Events (moka's eviction listener, FusionCache's events): a [`CacheListener`] registered on a
//! [`Cache`](crate::Cache) with [`Cache::set_listener`](crate::Cache::set_listener) hears what
//! happens to the calls of every function on it, and to its store.
//!
//! # What is reported, and where it comes from
//! Each call event is a counter of the function's [`stats`](crate::Memo::stats) as it is
//! counted, so the events and the stats always agree: a miss, a stale value served, fail-safe
//! serving an old value, a value too large to keep, a lost distributed lock, a factory timeout.
//! Besides them: a background or early refresh that failed, values dropped from the in-process
//! tier with the cause ([`EvictionCause`]: its size bound, their expiry or idle time, an
//! invalidation), and the store's breaker opening and closing.
//!
//! Evictions are reported for the in-process tier only: a store (Redis' `maxmemory`, S3's
//! lifecycle rules) drops entries without telling its clients.
//!
//! # The hit path
//! Hits are reported only to a listener whose [`wants_hits`](CacheListener::wants_hits) says
//! so. Otherwise a hit costs what it cost before: the flag it checks is read from the cache line
//! its counter bump reads anyway (`cargo bench -p steadycache-bench --bench memory_hit`).
//!
//! # Calling convention
//! The listener is called synchronously, on the thread (or task) where the event happened,
//! with no lock of the cache held: keep it short, and hand slow work to a channel. A listener
//! that panics is not caught. Events of the cache's own calls (`get_or_compute`, `set` …) carry
//! the namespace `""`, as do the breaker's.

use crate::stats::{Counter, Stats};
use std::cell::RefCell;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock, Weak};

/// Hears a cache's events (set with [`Cache::set_listener`](crate::Cache::set_listener)).
/// Every method has a default that does nothing.
///
/// Call events are the counters of the function's stats as they are counted, so events and
/// stats agree: a miss, a stale value served, fail-safe serving an old value, a value too large
/// to keep, a lost distributed lock, a factory timeout. Besides them: a background or early
/// refresh that failed, values dropped from the in-process tier with their [`EvictionCause`]
/// (evictions are reported for that tier only: a store drops entries without telling its
/// clients), and the store's breaker opening and closing.
///
/// Hits are reported only when [`wants_hits`](Self::wants_hits) says so; otherwise a hit costs
/// what it did without a listener. The listener runs synchronously on the thread (or task) where
/// the event happened, never under a lock of the cache: keep it short and hand slow work to a
/// channel. A listener that panics is not caught. The cache's own calls (`get_or_compute`,
/// `set` …) and its breaker report with the namespace `""`.
pub trait CacheListener: Send + Sync + 'static {
    /// Whether hits are reported to [`on_event`](Self::on_event) (default `false`: a hit then
    /// costs nothing more than without a listener). Read when the listener is set.
    fn wants_hits(&self) -> bool {
        false
    }

    /// One event (see the module docs for when it is called).
    fn on_event(&self, event: &CacheEvent<'_>) {
        let _ = event;
    }
}

/// What happened, and to which function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheEvent<'a> {
    /// The function's namespace (`module.path.fn_name`, or its `key_prefix`); `""` for the
    /// cache's own calls and its store.
    pub namespace: &'a str,
    /// What happened.
    pub kind: EventKind,
}

/// The kinds of [`CacheEvent`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EventKind {
    /// A fresh value served (only to a listener that [wants hits](CacheListener::wants_hits)).
    Hit,
    /// Nothing usable found: the function ran.
    Miss,
    /// A stale value served (while it refreshes, or because its refresh failed).
    StaleServed,
    /// An old value served because its recompute failed (also reported as `StaleServed`).
    FailSafe,
    /// A background or early refresh failed (the old value stays, throttled).
    RefreshFailed,
    /// A computed value too large to keep (the tier's bounds, or `entry_size_limit`).
    TooLarge,
    /// A distributed lock lost while its holder computed.
    LockLost,
    /// A caller stopped waiting at `soft_timeout` or `hard_timeout`.
    Timeout,
    /// Values dropped from the in-process tier.
    Evicted {
        /// Why.
        cause: EvictionCause,
        /// How many (an invalidation by prefix or pattern drops several at once).
        entries: u64,
    },
    /// The store's breaker opened: calls skip the store until it answers again.
    BreakerOpened,
    /// The store answers again: the breaker closed.
    BreakerClosed,
}

/// Why values left the in-process tier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EvictionCause {
    /// Room was needed: the function's `max_bytes`, or the cache's budget shared with its other
    /// functions.
    Size,
    /// Past its expiry (dropped when next looked up).
    Expired,
    /// Not read for its `tti` (dropped when next looked up).
    Idle,
    /// Invalidated: by key, prefix, pattern, tag, a clear, here or through the bus.
    Invalidated,
}

/// A cache's listener, and the stats that report to it.
#[derive(Default)]
pub(crate) struct Hub {
    listener: RwLock<Option<Arc<dyn CacheListener>>>,
    /// Whether a listener is set (checked before the lock).
    any: AtomicBool,
    /// The stats of the functions on the cache (and the cache's own), told whether hits are
    /// wanted.
    stats: Mutex<Vec<Weak<Stats>>>,
}

impl fmt::Debug for Hub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hub")
            .field("listening", &self.any.load(Relaxed))
            .finish()
    }
}

impl Hub {
    /// Report to `listener` from now on (`None`: to nobody).
    pub(crate) fn set(&self, listener: Option<Arc<dyn CacheListener>>) {
        let stats = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        let hits = listener.as_ref().is_some_and(|l| l.wants_hits());
        self.any.store(listener.is_some(), Relaxed);
        *self.listener.write().unwrap_or_else(|p| p.into_inner()) = listener;
        for s in stats.iter().filter_map(Weak::upgrade) {
            s.report_hits(hits);
        }
    }

    /// Have `stats` (of the function `namespace`) report here.
    pub(crate) fn attach(self: &Arc<Self>, stats: &Arc<Stats>, namespace: &str) {
        let mut all = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        if !stats.report_to(self.clone(), namespace) {
            return; // (already attached)
        }
        let hits = self
            .listener
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|l| l.wants_hits());
        stats.report_hits(hits);
        all.retain(|w| w.strong_count() > 0);
        all.push(Arc::downgrade(stats));
    }

    /// Tell the listener, if any.
    pub(crate) fn emit(&self, namespace: &str, kind: EventKind) {
        if !self.any.load(Relaxed) {
            return;
        }
        let listener = self
            .listener
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(l) = listener {
            l.on_event(&CacheEvent { namespace, kind });
        }
    }
}

/// Events waiting to be told, with the stats they are told through.
type Pending = Vec<(Arc<Stats>, EventKind)>;

thread_local! {
    /// Evictions reported while this thread holds a tier budget's lock: told once it is let go.
    static DEFERRED: RefCell<Option<Pending>> = const { RefCell::new(None) };
}

/// While alive, the evictions this thread reports wait; told when it drops (declare it before
/// the lock guard, so that it drops after it: a listener never runs under the lock).
pub(crate) struct Deferred(bool);

impl Deferred {
    pub(crate) fn begin() -> Deferred {
        Deferred(DEFERRED.with(|d| {
            let mut d = d.borrow_mut();
            d.is_none() && d.replace(Vec::new()).is_none()
        }))
    }
}

impl Drop for Deferred {
    fn drop(&mut self) {
        if !self.0 {
            return;
        }
        let pending = DEFERRED.with(|d| d.borrow_mut().take()).unwrap_or_default();
        for (stats, kind) in pending {
            stats.emit(kind);
        }
    }
}

/// Report `entries` values of `stats`'s function dropped for `cause` (later, inside a
/// [`Deferred`]).
pub(crate) fn evicted(stats: &Arc<Stats>, cause: EvictionCause, entries: u64) {
    let kind = EventKind::Evicted { cause, entries };
    let deferred = DEFERRED.with(|d| match d.borrow_mut().as_mut() {
        Some(pending) => {
            pending.push((stats.clone(), kind));
            true
        }
        None => false,
    });
    if !deferred {
        stats.emit(kind);
    }
}

/// The event a counter reports, if it reports one (hits are reported apart).
pub(crate) fn of_counter(c: Counter) -> Option<EventKind> {
    Some(match c {
        Counter::Misses => EventKind::Miss,
        Counter::Stale => EventKind::StaleServed,
        Counter::FailSafe => EventKind::FailSafe,
        Counter::TooLarge => EventKind::TooLarge,
        Counter::LockLost => EventKind::LockLost,
        Counter::Timeouts => EventKind::Timeout,
        _ => return None,
    })
}

impl crate::Cache {
    /// Report this cache's events to `listener` from now on, replacing any listener set before
    /// (see [`CacheListener`](crate::CacheListener)): the events of every function on it, its own calls and its
    /// store's breaker.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use steadycache_api::{Cache, CacheEvent, CacheListener, EventKind};
    ///
    /// #[derive(Default)]
    /// struct Misses(AtomicU64);
    /// impl CacheListener for Misses {
    ///     fn on_event(&self, e: &CacheEvent<'_>) {
    ///         if e.kind == EventKind::Miss {
    ///             self.0.fetch_add(1, Ordering::Relaxed);
    ///         }
    ///     }
    /// }
    /// let cache = Cache::memory();
    /// let misses = std::sync::Arc::new(Misses::default());
    /// cache.set_listener(misses.clone());
    /// # let p = steadycache_api::Policy::forever();
    /// # let _: u32 = cache.get_or_compute_sync("k", &p, || Ok::<_, String>(1)).unwrap();
    /// # assert_eq!(misses.0.load(Ordering::Relaxed), 1);
    /// ```
    pub fn set_listener<L: CacheListener>(&self, listener: Arc<L>) {
        self.events().set(Some(listener));
    }

    /// Report to no listener any more.
    pub fn clear_listener(&self) {
        self.events().set(None);
    }
}
