//! Per-function and per-cache counters.
//!
//! Counters are striped over cache-line-padded slots chosen per thread, so two threads hitting the
//! same function do not fight over one cache line (a shared atomic costs more than the whole hit).

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

const SLOTS: usize = 16;

#[repr(align(128))]
#[derive(Default)]
struct Padded(AtomicU64);

/// A counter that many threads bump without contention.
pub struct StripedCounter {
    slots: [Padded; SLOTS],
}

impl Default for StripedCounter {
    fn default() -> Self {
        StripedCounter {
            slots: std::array::from_fn(|_| Padded::default()),
        }
    }
}

fn slot() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local!(static SLOT: Cell<usize> = const { Cell::new(usize::MAX) });
    SLOT.with(|s| {
        let mut v = s.get();
        if v == usize::MAX {
            v = NEXT.fetch_add(1, Relaxed) % SLOTS;
            s.set(v);
        }
        v
    })
}

impl StripedCounter {
    /// Add one.
    #[inline]
    pub fn incr(&self) {
        self.slots[slot()].0.fetch_add(1, Relaxed);
    }

    /// The total.
    pub fn get(&self) -> u64 {
        self.slots.iter().map(|s| s.0.load(Relaxed)).sum()
    }

    /// Set every slot to zero.
    pub fn reset(&self) {
        for s in &self.slots {
            s.0.store(0, Relaxed);
        }
    }
}

impl std::fmt::Debug for StripedCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.get())
    }
}

/// Live counters of one memoized function (or of one [`Cache`](crate::Cache) for calls by hand).
#[derive(Default, Debug)]
pub struct Stats {
    /// Fresh values served from the cache.
    pub hits: StripedCounter,
    /// Calls that found nothing usable and ran the function.
    pub misses: StripedCounter,
    /// Stale values served (while a refresh runs, or because the refresh failed).
    pub stale: StripedCounter,
    /// Refreshes of a stale entry (background or blocking).
    pub refreshes: StripedCounter,
    /// Calls whose function returned an error or panicked.
    pub errors: StripedCounter,
    /// Backend failures the cache failed open on (the function ran anyway).
    pub backend_errors: StripedCounter,
    /// Stored entries that were corrupt, foreign or undecodable (treated as misses).
    pub corrupt: StripedCounter,
    /// Calls that waited for another caller's computation instead of running the function.
    pub coalesced: StripedCounter,
}

/// A point-in-time copy of [`Stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// See [`Stats::hits`].
    pub hits: u64,
    /// See [`Stats::misses`].
    pub misses: u64,
    /// See [`Stats::stale`].
    pub stale: u64,
    /// See [`Stats::refreshes`].
    pub refreshes: u64,
    /// See [`Stats::errors`].
    pub errors: u64,
    /// See [`Stats::backend_errors`].
    pub backend_errors: u64,
    /// See [`Stats::corrupt`].
    pub corrupt: u64,
    /// See [`Stats::coalesced`].
    pub coalesced: u64,
}

impl Stats {
    /// Copy the counters.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            hits: self.hits.get(),
            misses: self.misses.get(),
            stale: self.stale.get(),
            refreshes: self.refreshes.get(),
            errors: self.errors.get(),
            backend_errors: self.backend_errors.get(),
            corrupt: self.corrupt.get(),
            coalesced: self.coalesced.get(),
        }
    }

    /// Zero every counter.
    pub fn reset(&self) {
        for c in [
            &self.hits,
            &self.misses,
            &self.stale,
            &self.refreshes,
            &self.errors,
            &self.backend_errors,
            &self.corrupt,
            &self.coalesced,
        ] {
            c.reset();
        }
    }
}
