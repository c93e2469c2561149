//! Per-function and per-cache counters.
//!
//! A hit must cost a few nanoseconds, so counters are not shared atomics (a `lock xadd` on a
//! cache line two threads fight over costs more than the whole lookup). Each [`Stats`] has
//! [`SLOTS`] cache-line-aligned rows of counters; every live thread owns one row index (taken from
//! a free list at its first count, returned when it exits), so its increments are a plain relaxed
//! load and store that no other thread races with — exact, and about 1 ns. Threads beyond
//! [`SLOTS`] live at once share an overflow row updated with atomic adds (still exact).

use crate::events::{CacheEvent, CacheListener, EventKind, EvictionCause};
use std::cell::Cell;
use std::cell::RefCell;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};
use std::sync::{RwLock, Weak};

/// Rows of counters per [`Stats`]: threads alive at once that get an uncontended row.
pub(crate) const SLOTS: usize = 32;
const COUNTERS: usize = 16;
const UNSET: usize = usize::MAX;

/// Which counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
#[non_exhaustive]
pub enum Counter {
    /// Fresh values served from the cache.
    Hits = 0,
    /// Calls that found nothing usable and ran the function.
    Misses = 1,
    /// Stale values served (while a refresh runs, or because the refresh failed).
    Stale = 2,
    /// Refreshes of a stale entry (background or blocking) and forced refreshes.
    Refreshes = 3,
    /// Calls whose function returned an error (or whose value could not be encoded).
    Errors = 4,
    /// Backend failures the cache failed open on (the function ran anyway).
    BackendErrors = 5,
    /// Stored entries that were corrupt, foreign or undecodable (treated as misses).
    Corrupt = 6,
    /// Calls that waited for another caller's computation instead of running the function.
    Coalesced = 7,
    /// Values too large for the in-process tier's budget (or the function's own bound): not kept
    /// in process (logged once per function).
    TooLarge = 8,
    /// Distributed locks lost while their holder computed: a renewal of the lease found
    /// another holder or none (the store was unreachable for longer than `lock_ttl`, or the
    /// lock was deleted by hand). The holder still stores its value; another process may
    /// have computed the same key meanwhile.
    LockLost = 9,
    /// Old values served because their recompute failed (an error or a panic): a stale value
    /// with `serve_stale_on_error`, or an expired one kept by `fail_safe`. Each is also
    /// counted as [`Counter::Stale`].
    FailSafe = 10,
    /// Refreshes started before a value went stale by `early_refresh` (XFetch): the value was
    /// still served, fresh. Each is also counted as [`Counter::Refreshes`].
    EarlyRefresh = 11,
    /// Calls that stopped waiting for the function at `soft_timeout` or `hard_timeout` (the
    /// computation went on in the background).
    Timeouts = 12,
    /// Values not stored because an admission rule held them back (`min_calls`: the arguments
    /// were not seen often enough yet).
    NotAdmitted = 13,
    /// Calls that found a key's distributed lock held by another process and waited for it
    /// (once per call, however many times it looked).
    LockWaits = 14,
    /// Calls that waited on another process's distributed lock and then took it themselves:
    /// its holder died (its lease expired) or let go before this caller found a value.
    LockTakeovers = 15,
}

#[repr(align(128))]
#[derive(Default)]
struct Row([AtomicU64; COUNTERS]);

static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);
static FREE_SLOTS: Mutex<Vec<usize>> = Mutex::new(Vec::new());

/// This thread's row index; returned to the free list when the thread exits.
struct SlotLease(Cell<usize>);

impl SlotLease {
    #[cold]
    fn acquire(&self) -> usize {
        let mut free = FREE_SLOTS.lock().unwrap_or_else(|p| p.into_inner());
        let i = free
            .pop()
            .unwrap_or_else(|| NEXT_SLOT.fetch_add(1, Relaxed));
        self.0.set(i);
        i
    }
}

impl Drop for SlotLease {
    fn drop(&mut self) {
        // What this thread's destructors count from now on goes to the shared overflow row.
        let _ = SLOT.try_with(|s| s.set(UNSET));
        let i = self.0.get();
        if i != UNSET {
            // The mutex orders this thread's last stores before the next owner's loads.
            FREE_SLOTS.lock().unwrap_or_else(|p| p.into_inner()).push(i);
        }
    }
}

thread_local! {
    static LEASE: SlotLease = const { SlotLease(Cell::new(UNSET)) };
    /// A copy of this thread's row index in a thread-local without a destructor, which a hit
    /// reads with one load (the lease's has a destructor, so each read of it first checks that
    /// it is alive: about a third of a hit's count). Reset when the lease is dropped.
    static SLOT: Cell<usize> = const { Cell::new(UNSET) };
}

#[inline(always)]
fn slot() -> usize {
    match SLOT.with(Cell::get) {
        UNSET => leased_slot(),
        i => i,
    }
}

/// This thread's row, leased now if it has none (`UNSET` while the thread is exiting).
#[cold]
fn leased_slot() -> usize {
    LEASE
        .try_with(|l| {
            let i = match l.0.get() {
                UNSET => l.acquire(),
                i => i,
            };
            SLOT.with(|s| s.set(i));
            i
        })
        .unwrap_or(UNSET)
}

/// What one function's figures are labelled with (feature `metrics`): its namespace, and its
/// cache's backend (named when a figure is recorded: a store opened late is named once it is
/// open). Kept here, beside the stats it labels, so `metrics` depends on `stats` and not back.
#[cfg(feature = "metrics")]
#[derive(Clone, Debug)]
pub(crate) struct Labels {
    pub(crate) namespace: String,
    pub(crate) manager: std::sync::Weak<dyn crate::manager::CacheManager>,
    /// The keys of its histograms, built once: recording one allocates nothing (labels built
    /// per call were 3 allocations a store call).
    pub(crate) histograms: HistogramKeys,
}

#[cfg(feature = "metrics")]
impl Labels {
    /// The backend's name now (`gone` once its cache is dropped).
    pub(crate) fn backend(&self) -> String {
        self.manager
            .upgrade()
            .map_or_else(|| "gone".to_owned(), |m| m.backend().name().to_owned())
    }
}

/// The keys of a function's histograms, with its labels.
#[cfg(feature = "metrics")]
#[derive(Clone, Debug)]
pub(crate) struct HistogramKeys {
    pub(crate) compute: metrics::Key,
    pub(crate) load: metrics::Key,
    pub(crate) save: metrics::Key,
}

#[cfg(feature = "metrics")]
impl HistogramKeys {
    /// The keys for the function `namespace` on `backend`.
    pub(crate) fn new(namespace: &str, backend: &str) -> HistogramKeys {
        let labels = |op: Option<&'static str>| {
            let mut l = vec![
                metrics::Label::new("namespace", namespace.to_owned()),
                metrics::Label::new("backend", backend.to_owned()),
            ];
            l.extend(op.map(|op| metrics::Label::from_static_parts("op", op)));
            l
        };
        HistogramKeys {
            compute: metrics::Key::from_parts("steadycache_compute_seconds", labels(None)),
            load: metrics::Key::from_parts("steadycache_backend_seconds", labels(Some("load"))),
            save: metrics::Key::from_parts("steadycache_backend_seconds", labels(Some("save"))),
        }
    }
}

/// Live counters of one memoized function (or of one [`Cache`](crate::Cache) for calls by hand).
pub struct Stats {
    /// What a hit reads: its rows and whether it reports to a listener, on one cache line.
    head: Head,
    overflow: Row,
    /// Where its events go ([`CacheListener`](crate::CacheListener)), once the function is on a cache.
    events: OnceLock<(Arc<Hub>, Box<str>)>,
    /// Whether a value over the policy's `entry_size_limit` was logged (once per function).
    too_large_logged: AtomicBool,
    /// The labels its figures are reported under (feature `metrics`), once registered.
    #[cfg(feature = "metrics")]
    pub(crate) labels: std::sync::OnceLock<Labels>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            head: Head {
                rows: (0..SLOTS).map(|_| Row::default()).collect(),
                report_hits: AtomicBool::new(false),
            },
            overflow: Row::default(),
            events: OnceLock::new(),
            too_large_logged: AtomicBool::new(false),
            #[cfg(feature = "metrics")]
            labels: std::sync::OnceLock::new(),
        }
    }
}

struct Head {
    rows: Box<[Row]>,
    /// A listener wants hits ([`CacheListener::wants_hits`](crate::CacheListener::wants_hits)).
    report_hits: AtomicBool,
}

impl std::fmt::Debug for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.snapshot().fmt(f)
    }
}

/// A point-in-time copy of a function's (or a cache's) counters. Non-exhaustive: counters are
/// added as strategies are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StatsSnapshot {
    /// See [`Counter::Hits`].
    pub hits: u64,
    /// See [`Counter::Misses`].
    pub misses: u64,
    /// See [`Counter::Stale`].
    pub stale: u64,
    /// See [`Counter::Refreshes`].
    pub refreshes: u64,
    /// See [`Counter::Errors`].
    pub errors: u64,
    /// See [`Counter::BackendErrors`].
    pub backend_errors: u64,
    /// See [`Counter::Corrupt`].
    pub corrupt: u64,
    /// See [`Counter::Coalesced`].
    pub coalesced: u64,
    /// See [`Counter::TooLarge`].
    pub too_large: u64,
    /// See [`Counter::LockLost`].
    pub lock_lost: u64,
    /// See [`Counter::FailSafe`].
    pub fail_safe: u64,
    /// See [`Counter::EarlyRefresh`].
    pub early_refreshes: u64,
    /// See [`Counter::Timeouts`].
    pub timeouts: u64,
    /// See [`Counter::NotAdmitted`].
    pub not_admitted: u64,
    /// See [`Counter::LockWaits`].
    pub lock_waits: u64,
    /// See [`Counter::LockTakeovers`].
    pub lock_takeovers: u64,
}

impl Stats {
    /// Add one to `c` (and report it to the cache's listener: see [`CacheListener`](crate::CacheListener)).
    #[inline]
    pub fn incr(&self, c: Counter) {
        self.bump(c);
        if c != Counter::Hits {
            self.counted(c);
        }
    }

    /// Count a hit, and report it when a listener wants hits.
    #[inline(always)]
    pub(crate) fn hit(&self) {
        self.bump(Counter::Hits);
        if self.head.report_hits.load(Relaxed) {
            self.emit(EventKind::Hit);
        }
    }

    #[cold]
    #[inline(never)]
    fn counted(&self, c: Counter) {
        if let Some(kind) = of_counter(c) {
            self.emit(kind);
        }
    }

    /// Report `kind` to the cache's listener, if any.
    pub(crate) fn emit(&self, kind: EventKind) {
        if let Some((hub, namespace)) = self.events.get() {
            hub.emit(namespace, kind);
        }
    }

    /// Report `entries` values dropped from the in-process tier for `cause`.
    pub(crate) fn evicted(&self, cause: EvictionCause, entries: u64) {
        self.emit(EventKind::Evicted { cause, entries });
    }

    /// Report to `hub` as the function `namespace`; `false` if it already reports somewhere.
    pub(crate) fn report_to(&self, hub: Arc<Hub>, namespace: &str) -> bool {
        self.events.set((hub, namespace.into())).is_ok()
    }

    /// Report hits from now on, or stop.
    pub(crate) fn report_hits(&self, on: bool) {
        self.head.report_hits.store(on, Relaxed);
    }

    #[inline(always)]
    fn bump(&self, c: Counter) {
        match self.head.rows.get(slot()) {
            Some(row) => {
                // Only this thread writes this row (see the module docs).
                let a = &row.0[c as usize];
                a.store(a.load(Relaxed).wrapping_add(1), Relaxed);
            }
            None => {
                self.overflow.0[c as usize].fetch_add(1, Relaxed);
            }
        }
    }

    /// Count a value over the policy's `entry_size_limit` (as `too_large`); `true` the first
    /// time, when it is to be logged.
    pub(crate) fn over_size_limit(&self) -> bool {
        self.incr(Counter::TooLarge);
        !self.too_large_logged.swap(true, Relaxed)
    }

    /// The total of `c`.
    pub fn get(&self, c: Counter) -> u64 {
        self.head
            .rows
            .iter()
            .chain(std::iter::once(&self.overflow))
            .map(|r| r.0[c as usize].load(Relaxed))
            .fold(0u64, u64::wrapping_add)
    }

    /// Copy the counters.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            hits: self.get(Counter::Hits),
            misses: self.get(Counter::Misses),
            stale: self.get(Counter::Stale),
            refreshes: self.get(Counter::Refreshes),
            errors: self.get(Counter::Errors),
            backend_errors: self.get(Counter::BackendErrors),
            corrupt: self.get(Counter::Corrupt),
            coalesced: self.get(Counter::Coalesced),
            too_large: self.get(Counter::TooLarge),
            lock_lost: self.get(Counter::LockLost),
            fail_safe: self.get(Counter::FailSafe),
            early_refreshes: self.get(Counter::EarlyRefresh),
            timeouts: self.get(Counter::Timeouts),
            not_admitted: self.get(Counter::NotAdmitted),
            lock_waits: self.get(Counter::LockWaits),
            lock_takeovers: self.get(Counter::LockTakeovers),
        }
    }

    /// Zero every counter. Increments racing with the reset may survive it.
    pub fn reset(&self) {
        for r in self.head.rows.iter().chain(std::iter::once(&self.overflow)) {
            for a in &r.0 {
                a.store(0, Relaxed);
            }
        }
    }
}

/// Log and count a backend error; the call goes on without the backend (fail open).
pub(crate) fn backend_error(stats: &Stats, key: &str, op: &'static str, err: &crate::error::Error) {
    stats.incr(Counter::BackendErrors);
    tracing::warn!(key, op, error = %err, "steadycache: backend error, failing open");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn counts_are_exact_across_many_threads() {
        let s = Arc::new(Stats::default());
        // More threads than rows, several generations: rows are reused and the overflow row used.
        for _ in 0..3 {
            let hs: Vec<_> = (0..SLOTS + 8)
                .map(|_| {
                    let s = s.clone();
                    std::thread::spawn(move || {
                        for _ in 0..1000 {
                            s.incr(Counter::Hits);
                        }
                    })
                })
                .collect();
            for h in hs {
                h.join().unwrap();
            }
        }
        assert_eq!(s.get(Counter::Hits), 3 * (SLOTS as u64 + 8) * 1000);
        assert_eq!(s.snapshot().misses, 0);
    }

    /// A thread that counts from its thread-locals' destructors (after its row's lease may
    /// have been returned, and taken by another thread) loses nothing, and does not panic.
    #[test]
    fn counts_from_thread_exit_are_kept() {
        struct CountsOnExit(Arc<Stats>);
        impl Drop for CountsOnExit {
            fn drop(&mut self) {
                for _ in 0..100 {
                    self.0.hit();
                }
            }
        }
        thread_local!(static ON_EXIT: std::cell::RefCell<Option<CountsOnExit>> = const { std::cell::RefCell::new(None) });
        let s = Arc::new(Stats::default());
        let hs: Vec<_> = (0..8)
            .map(|_| {
                let s = s.clone();
                std::thread::spawn(move || {
                    s.hit(); // leases a row
                    ON_EXIT.with(|c| *c.borrow_mut() = Some(CountsOnExit(s.clone())));
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(s.get(Counter::Hits), 8 * 101);
    }
}

// ---- where the events go (see `CacheListener`) ----

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
