//! L1: one function's values, typed and unserialized, on `quick_cache`.
//!
//! A hit here is the product's hot path: one `quick_cache` lookup by the 128-bit args hash, one
//! relaxed atomic load of the recent clock ([`clock::recent_ms`]), one comparison, one clone of
//! the value. No allocation, no serialization, no async runtime, no lock of the budget.
//!
//! Each item weighs its bincode-serialized size (measured once, when stored, with a counting
//! writer that allocates nothing; 0 for a value without serde, see
//! [`ValueBytes::opaque`](crate::ValueBytes::opaque)) plus `size_of::<V>()` and a fixed overhead, and at least the
//! budget's minimum weight (its entry bound). Insertions go through the cache's shared
//! [`Budget`].
//!
//! `quick_cache` splits its capacity over its shards, so it refuses an item larger than one
//! shard's share. Such an item (a value that fits the budget but not a shard) is kept in a small
//! side map instead, looked at only when the main table misses and the side map is not empty,
//! so the hit path of ordinary values does not change. A value larger than the whole budget is
//! not kept: it is counted (`too_large` in the stats) and logged once per function.

use super::budget::{Budget, Tier, Weighed};
use super::clock;
use super::watch::Watch;
use super::Deadlines;
use crate::envelope::Freshness;
use crate::events::EvictionCause;
use crate::memory::ITEM_OVERHEAD;
use crate::stats::{Counter, Stats};
use crate::value::ValueBytes;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering, Ordering::Relaxed};
use std::sync::{Arc, RwLock};

#[derive(Clone)]
pub(crate) struct LocalItem<V> {
    value: V,
    /// Until when a read is a plain hit: the earliest of `early_at`, `stale_at` and
    /// `expires_at` (ms on the tier's clock; `u64::MAX` = never), and with a time-to-idle the
    /// end of its touch window: one comparison on the hot path.
    fresh_until: u64,
    /// The earliest of `early_at`, `stale_at` and `expires_at` (what `fresh_until` is without a
    /// time-to-idle).
    early_at: u64,
    /// Gone from then unless read again (`u64::MAX`: no time-to-idle).
    idle_until: u64,
    /// Stale from then (at or after `fresh_until`; later only inside an early-refresh window).
    stale_at: u64,
    expires_at: u64,
    /// Kept (for fail-safe) until then; at or after `expires_at`.
    keep_until: u64,
    /// When it was computed, ms since the Unix epoch (for a call's `max_age`).
    created_at: u64,
    /// At most `u32::MAX`: larger values never fit a budget (which `Budget::admit` bounds), and
    /// a smaller item is a smaller clone on every hit.
    weight: u32,
    /// How long the value took to compute, ms (early refresh rolls its dice with it).
    took_ms: u32,
    /// The tag epoch the value was last checked at (`u64::MAX`: untagged; see [`Watch`]).
    tag_stamp: u64,
}

/// What L1 holds for a key, read on the slow path.
pub(crate) struct Held<V> {
    pub(crate) value: V,
    /// How fresh it is (precise clock).
    pub(crate) freshness: Freshness,
    /// Its deadlines, on the tier's clock.
    pub(crate) at: Deadlines,
    /// When it was computed, ms since the Unix epoch.
    pub(crate) created_at: u64,
    /// How long it took to compute, ms.
    pub(crate) took_ms: u32,
    /// Whether its tags must be checked before it is served (a tag invalidation was learned
    /// since it was last checked).
    pub(crate) unchecked: bool,
}

#[derive(Clone)]
pub(crate) struct LocalWeighter;

impl<V> quick_cache::Weighter<Slot, LocalItem<V>> for LocalWeighter {
    fn weight(&self, _key: &Slot, item: &LocalItem<V>) -> u64 {
        u64::from(item.weight)
    }
}

fn weigh<V>(encoded: u64, min: u64) -> u64 {
    encoded
        .saturating_add(std::mem::size_of::<V>() as u64)
        .saturating_add(ITEM_OVERHEAD)
        .max(min)
}

/// A table key: the 128-bit args hash as two words, so it is aligned to 8 bytes, not 16 (a
/// `u128` key pads every table entry to a multiple of 16: 112 bytes instead of 96 for a `u64`
/// value: a seventh less memory per entry; no change in a hit's time was measurable).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Slot {
    lo: u64,
    hi: u64,
}

impl From<u128> for Slot {
    #[inline(always)]
    fn from(h: u128) -> Self {
        Slot {
            lo: h as u64,
            hi: (h >> 64) as u64,
        }
    }
}

impl std::hash::Hash for Slot {
    #[inline(always)]
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.lo ^ self.hi);
    }
}

/// Keys are already XXH3-128 hashes: hashing them again is wasted work, so the table uses
/// their bits as they are.
#[derive(Clone, Copy, Default)]
pub(crate) struct KeyIsHash;

/// The [`std::hash::Hasher`] of [`KeyIsHash`].
#[derive(Default)]
pub(crate) struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        // Not reached for `Slot` keys; fold anything else in so the hasher stays total.
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ *b as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.0 = i;
    }
}

impl std::hash::BuildHasher for KeyIsHash {
    type Hasher = KeyHasher;
    #[inline]
    fn build_hasher(&self) -> KeyHasher {
        KeyHasher(0)
    }
}

type Table<V> = quick_cache::sync::Cache<Slot, LocalItem<V>, LocalWeighter, KeyIsHash, Evictions>;

/// Counts what `quick_cache` evicts to make room, and reports it once the table's lock is
/// released (its request state drops after the lock guard). A value replaced by a concurrent
/// store of the same key is counted too.
#[derive(Clone)]
pub(crate) struct Evictions(Arc<Stats>);

/// What one table operation evicted.
#[derive(Default)]
pub(crate) struct Evicted(Option<(Arc<Stats>, u64)>);

impl Drop for Evicted {
    fn drop(&mut self) {
        if let Some((stats, n)) = self.0.take() {
            crate::stats::evicted(&stats, EvictionCause::Size, n);
        }
    }
}

impl<V> quick_cache::Lifecycle<Slot, LocalItem<V>> for Evictions {
    type RequestState = Evicted;

    fn on_evict(&self, state: &mut Evicted, _key: Slot, _item: LocalItem<V>) {
        state.0.get_or_insert_with(|| (self.0.clone(), 0)).1 += 1;
    }
}

/// What a tier checks and reports besides its values: the bus's watch (`None`: an untagged
/// function on a cache no other process writes), its time-to-idle (ms, 0: none), and the stats
/// its evictions are reported through.
pub(crate) struct Rules {
    pub(crate) watch: Option<Arc<Watch>>,
    pub(crate) tti_ms: u64,
    pub(crate) stats: Arc<Stats>,
}

/// How a key's args part maps to the tier's hash ([`Tier::remove_part`]).
pub(crate) type PartHash = fn(&str) -> Vec<u128>;

/// One function's typed values.
pub(crate) struct LocalStore<V> {
    items: Table<V>,
    /// Items larger than one shard's share (see the module docs).
    big: RwLock<HashMap<u128, LocalItem<V>>>,
    has_big: AtomicBool,
    big_weight: AtomicU64,
    budget: Arc<Budget>,
    /// This function's own bound (`#[cached(max_bytes = …)]`), within the budget.
    max_bytes: u64,
    namespace: String,
    part_hash: PartHash,
    warned_too_large: AtomicBool,
    /// Invalidations that reached this tier (removals by key, prefix, pattern or clear, from this
    /// process or the bus): a fill that raced one is undone.
    evictions: AtomicU64,
    /// What a hit checks besides freshness: `None` for an untagged function on a cache no
    /// other process writes (a plain memory hit), else the cache's watch.
    watch: Option<Arc<Watch>>,
    /// Time-to-idle, ms (0: none; see `Memo::with_tti`).
    tti_ms: u64,
    /// The function's stats: evictions are reported through them.
    stats: Arc<Stats>,
    /// How values are weighed (their encoded size).
    bytes: ValueBytes<V>,
}

impl<V: Clone + Send + Sync + 'static> LocalStore<V> {
    /// A tier of the function `namespace` (keys `key_prefix…`), registered with `budget`,
    /// with its `rules`.
    pub(crate) fn new(
        budget: Arc<Budget>,
        max_bytes: Option<u64>,
        namespace: &str,
        key_prefix: String,
        part_hash: PartHash,
        rules: Rules,
        bytes: ValueBytes<V>,
    ) -> Arc<Self> {
        clock::start();
        let max_bytes = max_bytes.unwrap_or(u64::MAX).min(budget.max_bytes()).max(1);
        let store = Arc::new(LocalStore {
            items: quick_cache::sync::Cache::with(
                1024,
                max_bytes,
                LocalWeighter,
                KeyIsHash,
                Evictions(rules.stats.clone()),
            ),
            big: RwLock::new(HashMap::new()),
            has_big: AtomicBool::new(false),
            big_weight: AtomicU64::new(0),
            budget: budget.clone(),
            max_bytes,
            namespace: namespace.to_owned(),
            part_hash,
            warned_too_large: AtomicBool::new(false),
            evictions: AtomicU64::new(0),
            watch: rules.watch,
            tti_ms: rules.tti_ms,
            stats: rules.stats,
            bytes,
        });
        let as_tier: Arc<dyn Tier> = store.clone();
        budget.register(key_prefix, Arc::downgrade(&as_tier));
        store
    }

    /// The value if present and fresh: the hot path.
    #[inline(always)]
    pub(crate) fn get_fresh(&self, hash: u128) -> Option<V> {
        if let Some(item) = self.items.get(&Slot::from(hash)) {
            return self.servable(&item).then_some(item.value);
        }
        if self.has_big.load(Relaxed) {
            return self
                .big_get(hash)
                .and_then(|item| self.servable(&item).then_some(item.value));
        }
        None
    }

    /// The hit check: fresh, and (with a watch) vouched for by the bus and checked against the
    /// tag invalidations learned.
    #[inline(always)]
    fn servable(&self, item: &LocalItem<V>) -> bool {
        let now = clock::recent_ms();
        now < item.fresh_until
            && self
                .watch
                .as_ref()
                .is_none_or(|w| w.trusts(item.tag_stamp, now))
    }

    #[cold]
    fn big_get(&self, hash: u128) -> Option<LocalItem<V>> {
        self.big
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&hash)
            .cloned()
    }

    /// What is held for `hash`; an expired item is removed. Nothing while the bus does not vouch
    /// for this cache's copies (they may have been invalidated elsewhere).
    pub(crate) fn lookup(&self, hash: u128) -> Option<Held<V>> {
        let item = match self.items.get(&Slot::from(hash)) {
            Some(i) => i,
            None if self.has_big.load(Relaxed) => self.big_get(hash)?,
            None => return None,
        };
        let now = clock::now_ms();
        if now >= item.idle_until {
            if self.remove(hash) {
                self.stats.evicted(EvictionCause::Idle, 1);
            }
            return None;
        }
        if now >= item.fresh_until && self.tti_ms > 0 {
            self.touch(hash, item.created_at, now);
        }
        let unchecked = match &self.watch {
            Some(w) if !w.trusts(u64::MAX, now) => return None,
            Some(w) => item.tag_stamp < w.tag_epoch(),
            None => false,
        };
        match crate::envelope::freshness(item.stale_at, item.expires_at, item.keep_until, now) {
            Freshness::Expired => {
                if self.remove(hash) {
                    self.stats.evicted(EvictionCause::Expired, 1);
                }
                None
            }
            freshness => Some(Held {
                at: Deadlines {
                    early_at: item.early_at,
                    stale_at: item.stale_at,
                    expires_at: item.expires_at,
                    keep_until: item.keep_until,
                },
                value: item.value,
                freshness,
                created_at: item.created_at,
                took_ms: item.took_ms,
                unchecked,
            }),
        }
    }

    /// Mark the item under `hash` computed at `created_at` as checked at tag epoch `stamp` (its
    /// tags were found valid); nothing if the item there is another by now.
    pub(crate) fn restamp(&self, hash: u128, created_at: u64, stamp: u64) {
        self.update(hash, |item: &mut LocalItem<V>| {
            if item.created_at == created_at {
                item.tag_stamp = item.tag_stamp.max(stamp);
            }
        });
    }

    /// `(fresh_until, idle_until)` of a value whose other deadlines end its plain hits at
    /// `early_at`, touched at `now`: with a time-to-idle, plain hits for an eighth of it (the
    /// first read after that comes here again), and gone after all of it unread.
    fn idle_deadlines(&self, early_at: u64, now: u64) -> (u64, u64) {
        match self.tti_ms {
            0 => (early_at, u64::MAX),
            tti => (
                early_at.min(now.saturating_add((tti / 8).max(1))),
                now.saturating_add(tti),
            ),
        }
    }

    /// A read of the item under `hash` computed at `created_at`, at `now`: its idle deadline
    /// moves to `now + tti` (nothing if the item there is another by now).
    #[cold]
    fn touch(&self, hash: u128, created_at: u64, now: u64) {
        let update = |item: &mut LocalItem<V>| {
            if item.created_at == created_at {
                (item.fresh_until, item.idle_until) = self.idle_deadlines(item.early_at, now);
            }
        };
        self.update(hash, update);
    }

    /// Apply `f` to the item under `hash`, wherever it is kept.
    fn update(&self, hash: u128, f: impl Fn(&mut LocalItem<V>)) {
        let _ = self.items.entry(
            &Slot::from(hash),
            Some(std::time::Duration::ZERO),
            |_, item| {
                f(item);
                quick_cache::sync::EntryAction::Retain(())
            },
        );
        if self.has_big.load(Relaxed) {
            let mut big = self.big.write().unwrap_or_else(|p| p.into_inner());
            if let Some(item) = big.get_mut(&hash) {
                f(item);
            }
        }
    }

    /// Keep `value` until the deadlines (ms on the tier's clock, `u64::MAX` = never); it was
    /// computed at `created_at` (ms since the Unix epoch) in `took_ms`, and its tags checked at
    /// tag epoch `tag_stamp` (`u64::MAX`: untagged). A value larger than this function's bound
    /// or the cache's budget is counted and logged once.
    ///
    /// `gen` is [`generation`](Self::generation) when the call began: if an invalidation
    /// reached the tier since, the value (read or computed before it) is dropped again once
    /// inserted, so a fill racing an invalidation never outlives it. (An invalidation counts
    /// first and removes second; a fill inserts first and checks second: whichever way they
    /// interleave, the value does not stay.)
    pub(crate) fn store(
        &self,
        hash: u128,
        value: &V,
        at: Deadlines,
        stamp: (u64, u32, u64),
        gen: u64,
        stats: &Stats,
    ) {
        let weight = weigh::<V>(self.bytes.size(value), self.budget.min_weight());
        if weight > self.max_bytes || weight > u64::from(u32::MAX) {
            self.too_large(weight, stats);
            return;
        }
        let stale_at = at.stale_at.min(at.expires_at);
        let early_at = at.early_at.min(stale_at);
        let (fresh_until, idle_until) = self.idle_deadlines(early_at, clock::now_ms());
        let item = LocalItem {
            value: value.clone(),
            fresh_until,
            early_at,
            idle_until,
            stale_at,
            expires_at: at.expires_at,
            keep_until: at.keep_until.max(at.expires_at),
            created_at: stamp.0,
            weight: u32::try_from(weight).unwrap_or(u32::MAX),
            took_ms: stamp.1,
            tag_stamp: stamp.2,
        };
        self.remove(hash);
        let admitted = self.budget.admit(weight, |free| {
            // This function's own bound first, then whatever the budget leaves free.
            if self.weight().saturating_add(weight) > self.max_bytes {
                self.shrink_to(self.max_bytes.saturating_sub(weight));
            }
            let capacity = self
                .weight()
                .saturating_add(weight)
                .saturating_add(free)
                .min(self.max_bytes);
            if capacity != self.items.capacity() {
                self.items.set_capacity(capacity);
            }
            // quick_cache admits an item up to its shard's hot target (97 % of the shard).
            if weight <= self.items.shard_capacity() / 10 * 9 {
                self.items.insert(Slot::from(hash), item);
            } else {
                let mut big = self.big.write().unwrap_or_else(|p| p.into_inner());
                big.insert(hash, item);
                self.big_weight.fetch_add(weight, Relaxed);
                self.has_big.store(true, Relaxed);
            }
        });
        if !admitted {
            self.too_large(weight, stats);
        }
        if self.evictions.load(Ordering::SeqCst) != gen {
            self.remove(hash);
        }
    }

    /// How many invalidations reached this tier (read when a call begins).
    pub(crate) fn generation(&self) -> u64 {
        self.evictions.load(Ordering::SeqCst)
    }

    /// Remove one item as an invalidation does (counted, so a racing fill is undone).
    pub(crate) fn evict(&self, hash: u128) -> bool {
        self.evictions.fetch_add(1, Ordering::SeqCst);
        let removed = self.remove(hash);
        if removed {
            self.stats.evicted(EvictionCause::Invalidated, 1);
        }
        removed
    }

    fn too_large(&self, weight: u64, stats: &Stats) {
        stats.incr(Counter::TooLarge);
        if !self.warned_too_large.swap(true, Relaxed) {
            tracing::warn!(
                namespace = %self.namespace,
                weight,
                max_bytes = self.max_bytes.min(self.budget.max_bytes()),
                "steadycache: a value is larger than the in-process cache can hold; it is not kept \
                 (counted as too_large; logged once per function)"
            );
        }
    }

    /// Remove one item; whether it was there.
    pub(crate) fn remove(&self, hash: u128) -> bool {
        let mut removed = self.items.remove(&Slot::from(hash)).is_some();
        if self.has_big.load(Relaxed) {
            let mut big = self.big.write().unwrap_or_else(|p| p.into_inner());
            if let Some(item) = big.remove(&hash) {
                self.big_weight.fetch_sub(u64::from(item.weight), Relaxed);
                removed = true;
            }
            self.has_big.store(!big.is_empty(), Relaxed);
        }
        removed
    }

    /// Entries held.
    pub(crate) fn len(&self) -> usize {
        let big = if self.has_big.load(Relaxed) {
            self.big.read().unwrap_or_else(|p| p.into_inner()).len()
        } else {
            0
        };
        self.items.len() + big
    }
}

impl<V: Clone + Send + Sync + 'static> Weighed for LocalStore<V> {
    fn weight(&self) -> u64 {
        self.items
            .weight()
            .saturating_add(self.big_weight.load(Relaxed))
    }

    fn shrink_to(&self, weight: u64) {
        if self.has_big.load(Relaxed) {
            // The side map holds the largest items: they go first.
            let mut big = self.big.write().unwrap_or_else(|p| p.into_inner());
            let mut n = 0;
            while self.weight() > weight {
                let Some(hash) = big.keys().next().copied() else {
                    break;
                };
                if let Some(item) = big.remove(&hash) {
                    self.big_weight.fetch_sub(u64::from(item.weight), Relaxed);
                    n += 1;
                }
            }
            self.has_big.store(!big.is_empty(), Relaxed);
            drop(big);
            if n > 0 {
                crate::stats::evicted(&self.stats, EvictionCause::Size, n);
            }
        }
        let rest = weight.saturating_sub(self.big_weight.load(Relaxed));
        if self.items.weight() > rest {
            self.items.set_capacity(rest.max(1));
        }
    }
}

impl<V: Clone + Send + Sync + 'static> Tier for LocalStore<V> {
    fn clear(&self) -> u64 {
        self.evictions.fetch_add(1, Ordering::SeqCst);
        let n = self.len() as u64;
        self.items.clear();
        let mut big = self.big.write().unwrap_or_else(|p| p.into_inner());
        big.clear();
        self.big_weight.store(0, Relaxed);
        self.has_big.store(false, Relaxed);
        drop(big);
        if n > 0 {
            self.stats.evicted(EvictionCause::Invalidated, n);
        }
        n
    }

    fn remove_part(&self, part: &str) -> bool {
        self.evictions.fetch_add(1, Ordering::SeqCst);
        let mut removed = 0;
        for hash in (self.part_hash)(part) {
            removed += u64::from(self.remove(hash));
        }
        if removed > 0 {
            self.stats.evicted(EvictionCause::Invalidated, removed);
        }
        removed > 0
    }
}
