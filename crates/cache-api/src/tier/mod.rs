//! The tiers a memoized value lives in: L1, typed values in process ([`LocalStore`]), bounded
//! by one [`Budget`] per cache; and L2, the cache's [`CacheManager`](crate::CacheManager) (bytes
//! in a backend). A call's [`Place`] names its slot in each tier it uses:
//!
//! * a memory cache (`Cache::memory()`, `mem://`): L1 alone;
//! * a cache on a byte-level backend: L2 alone, or L1 in front of it when the cache has a
//!   [`LocalTier`] (`Cache::builder().local_tier(..)`, or `?local=64MiB` in its URL);
//! * a call by hand (`Cache::get_or_compute`): L2 alone.
//!
//! This layer knows nothing of the engine: the engine reads and writes through the places it
//! is handed.

pub(crate) mod breaker;
pub(crate) mod budget;
pub(crate) mod bus;
pub(crate) mod clock;
pub(crate) mod local;
pub(crate) mod store;
pub(crate) mod watch;

pub(crate) use breaker::Breaker;
pub use breaker::StoreBreaker;
pub(crate) use budget::{Budget, Weighed};
pub use bus::BusConfig;
pub(crate) use bus::{Bus, Event, Reach};
pub(crate) use local::LocalStore;
pub(crate) use store::Store;

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;

/// Where a cache's memoized functions keep their values.
pub(crate) enum Tiers {
    /// A memory cache: typed values in process, the whole store for them; the budget bounds
    /// its memory store (values by hand, locks, counters) too.
    Typed(Arc<Budget>),
    /// Bytes in the manager alone.
    Bytes,
    /// Typed copies in process ([`LocalTier`]) in front of the manager.
    TypedOverBytes(Arc<Budget>),
}

impl Tiers {
    /// The budget of the typed tiers, if there are any.
    pub(crate) fn budget(&self) -> Option<&Arc<Budget>> {
        match self {
            Tiers::Typed(b) | Tiers::TypedOverBytes(b) => Some(b),
            Tiers::Bytes => None,
        }
    }

    /// Whether memoized values are stored in the manager (all but a memory cache's).
    pub(crate) fn memos_use_backend(&self) -> bool {
        !matches!(self, Tiers::Typed(_))
    }
}

/// An in-process tier of typed values in front of a cache's backend: how much it may hold.
///
/// Off by default for shared backends. When on, the cache's invalidation bus keeps the copies
/// coherent across processes (see [`BusConfig`]): a value stored, invalidated or refreshed by
/// one process, a tag invalidated or a cache cleared evicts the copies in every other process
/// (on Redis within about a round trip, on other shared stores within the bus's poll), and
/// while the bus is not heard no copy is served past [`BusConfig::grace`]. Every process of a
/// fleet that keeps copies must have a local tier too: a process announces the values it stores
/// only when it keeps copies itself (a process without one still announces its invalidations).
///
/// ```
/// use steadycache_api::{Cache, LocalTier};
/// let cache = Cache::builder().local_tier(LocalTier::new(64 << 20).with_max_entries(100_000)).build();
/// assert!(cache.has_typed_tier());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalTier {
    /// Bytes all the cache's functions may hold in process together (each value counts its
    /// serialized size plus a small overhead).
    pub max_bytes: u64,
    /// Entries they may hold together (`None`: bounded by bytes only).
    pub max_entries: Option<u64>,
}

impl LocalTier {
    /// At most `max_bytes` in process.
    pub fn new(max_bytes: u64) -> Self {
        LocalTier {
            max_bytes,
            max_entries: None,
        }
    }

    /// Also at most `max_entries` entries.
    pub fn with_max_entries(mut self, max_entries: u64) -> Self {
        self.max_entries = Some(max_entries);
        self
    }
}

/// When a value goes stale, expires and is dropped (fail-safe keeps it past its expiry), in ms
/// on one clock (`u64::MAX` = never): the wall clock in envelopes, the tier's clock in L1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Deadlines {
    /// Until when a read is a plain hit: the hit path serves a value only before it. At or
    /// before `stale_at`: the start of the early-refresh window (`early_refresh`, see
    /// `engine::xfetch`), 0 with `max_hits` (each hit is counted on the slow path), else
    /// `stale_at` itself.
    pub(crate) early_at: u64,
    pub(crate) stale_at: u64,
    pub(crate) expires_at: u64,
    pub(crate) keep_until: u64,
}

impl Deadlines {
    /// The same instants on the wall clock (from the tier's, `now` being the wall clock).
    pub(crate) fn to_unix(self, now: u64) -> Deadlines {
        Deadlines {
            early_at: clock::to_unix(self.early_at, now),
            stale_at: clock::to_unix(self.stale_at, now),
            expires_at: clock::to_unix(self.expires_at, now),
            keep_until: clock::to_unix(self.keep_until, now),
        }
    }

    /// The same instants on the tier's clock (from wall-clock ms, `now` being the wall clock).
    pub(crate) fn to_tier(self, now: u64) -> Deadlines {
        Deadlines {
            early_at: clock::from_unix(self.early_at, now),
            stale_at: clock::from_unix(self.stale_at, now),
            expires_at: clock::from_unix(self.expires_at, now),
            keep_until: clock::from_unix(self.keep_until, now),
        }
    }
}

/// A call's slot in L1.
pub(crate) struct L1<V> {
    pub(crate) store: Arc<LocalStore<V>>,
    pub(crate) hash: u128,
    /// The tier's eviction count when the call began: a value it puts in L1 is dropped again if
    /// an invalidation came in between (see [`LocalStore::store`]).
    pub(crate) gen: u64,
}

/// A call's slot in L2: the cache's store (its manager behind the backend timeout and the
/// breaker, which every call into it goes through) and the key.
pub(crate) struct L2 {
    pub(crate) store: Arc<Store>,
    pub(crate) key: String,
    /// A read of the entry went unanswered in this call (a timeout, a broken link, a reply
    /// that made no sense). The call then neither reads nor writes the entry again (`io::load`,
    /// `io::save`): a store that does not answer costs one call one backend timeout, not one
    /// per operation. Removals and bookkeeping are still tried. A clone (a background refresh,
    /// a task that outlives its caller) starts afresh.
    unanswered: AtomicBool,
}

impl L2 {
    /// The slot of `key` in `store`.
    pub(crate) fn new(store: Arc<Store>, key: String) -> L2 {
        L2 {
            store,
            key,
            unanswered: AtomicBool::new(false),
        }
    }

    /// Whether a read of the entry went unanswered in this call.
    pub(crate) fn unanswered(&self) -> bool {
        self.unanswered.load(Relaxed)
    }

    /// Note how a read of the entry ended: any failure but a bad entry (which the call
    /// replaces) ends the call's reads and writes of it, for a call never writes over what it
    /// could not read (a reply that made no sense may hide a newer value).
    pub(crate) fn read_ended<T>(&self, r: &crate::error::Result<T>) {
        if r.as_ref()
            .is_err_and(|e| !matches!(e, crate::Error::Corrupt(_) | crate::Error::Codec { .. }))
        {
            self.unanswered.store(true, Relaxed);
        }
    }
}

impl Clone for L2 {
    fn clone(&self) -> Self {
        L2::new(self.store.clone(), self.key.clone())
    }
}

/// A call's tags (rendered from its arguments on the slow path) and what judges them.
#[derive(Clone)]
pub(crate) struct CallTags {
    pub(crate) names: Arc<[String]>,
    /// The tag epoch read before the call looked anything up: what its values are stamped
    /// with (an invalidation learned later makes them checked again).
    pub(crate) epoch: u64,
    pub(crate) bus: Arc<Bus>,
}

/// Where one call's value lives: L1, L2, or both (L1 first).
pub(crate) struct Place<V> {
    pub(crate) l1: Option<L1<V>>,
    pub(crate) l2: Option<L2>,
    /// Where the call's counters live (`min_calls`, `max_hits`): the cache's backend under the
    /// entry's key (a memory cache's own memory backend), set only when a rule counts.
    pub(crate) counters: Option<L2>,
    /// The call's tags, for a tagged function.
    pub(crate) tags: Option<CallTags>,
    /// The bus a stored value is announced on (a cache with an L1 over a shared store), so
    /// other processes drop their copies.
    pub(crate) announce: Option<Arc<Bus>>,
    /// How the value becomes bytes for L2 (and back).
    pub(crate) bytes: crate::value::ValueBytes<V>,
}

impl<V> Place<V> {
    /// The tag epoch to stamp this call's values with (`u64::MAX`: untagged).
    pub(crate) fn tag_stamp(&self) -> u64 {
        self.tags.as_ref().map_or(u64::MAX, |t| t.epoch)
    }
}

impl<V> Clone for Place<V> {
    fn clone(&self) -> Self {
        Place {
            l1: self.l1.as_ref().map(|l| L1 {
                store: l.store.clone(),
                hash: l.hash,
                gen: l.gen,
            }),
            l2: self.l2.clone(),
            counters: self.counters.clone(),
            tags: self.tags.clone(),
            announce: self.announce.clone(),
            bytes: self.bytes,
        }
    }
}
