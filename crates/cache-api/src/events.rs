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
