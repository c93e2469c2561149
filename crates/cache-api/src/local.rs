//! The typed in-process tier: a memoized function's own values, unserialized, on `quick_cache`.
//!
//! A hit here is the product's hot path: one `quick_cache` lookup by the 128-bit args hash, one
//! coarse monotonic clock read (`CLOCK_MONOTONIC_COARSE`, a few ns, ms resolution), one clone of
//! the value. No allocation, no serialization, no async runtime.
//!
//! Each item weighs its bincode-serialized size (measured once, when stored, with a counting
//! writer that allocates nothing) plus `size_of::<V>()` and a fixed overhead, so the store is
//! bounded in bytes like the byte-level memory backend.

use crate::engine::Lookup;
use crate::memory::ITEM_OVERHEAD;
use crate::policy::Policy;
use coarsetime::Instant;
use serde::Serialize;

#[derive(Clone)]
pub(crate) struct LocalItem<V> {
    value: V,
    /// The earlier of `stale_at` and `expires_at`: one comparison on the hot path.
    fresh_until: Option<Instant>,
    stale_at: Option<Instant>,
    expires_at: Option<Instant>,
    weight: u32,
}

#[derive(Clone)]
pub(crate) struct LocalWeighter;

impl<V> quick_cache::Weighter<u128, LocalItem<V>> for LocalWeighter {
    fn weight(&self, _key: &u128, item: &LocalItem<V>) -> u64 {
        item.weight as u64
    }
}

struct SizeWriter(usize);

impl bincode::enc::write::Writer for SizeWriter {
    fn write(&mut self, bytes: &[u8]) -> Result<(), bincode::error::EncodeError> {
        self.0 += bytes.len();
        Ok(())
    }
}

fn weigh<V: Serialize>(value: &V) -> u32 {
    let mut w = SizeWriter(0);
    let _ = bincode::serde::encode_into_writer(value, &mut w, bincode::config::standard());
    let total = w.0 as u64 + std::mem::size_of::<V>() as u64 + ITEM_OVERHEAD;
    total.min(u32::MAX as u64) as u32
}

#[inline]
fn now() -> Instant {
    Instant::now_without_cache_update()
}

/// One function's typed values.
pub(crate) struct LocalStore<V> {
    items: quick_cache::sync::Cache<u128, LocalItem<V>, LocalWeighter>,
}

impl<V: Clone> LocalStore<V> {
    pub(crate) fn new(max_bytes: u64) -> Self {
        LocalStore {
            items: quick_cache::sync::Cache::with_weighter(1024, max_bytes.max(1), LocalWeighter),
        }
    }

    /// The value if present and fresh: the hot path.
    #[inline]
    pub(crate) fn get_fresh(&self, hash: u128) -> Option<V> {
        let item = self.items.get(&hash)?;
        match item.fresh_until {
            Some(t) if now() >= t => None,
            _ => Some(item.value),
        }
    }

    pub(crate) fn lookup(&self, hash: u128) -> Lookup<V> {
        let Some(item) = self.items.get(&hash) else {
            return Lookup::Miss;
        };
        let t = now();
        if item.expires_at.is_some_and(|e| t >= e) {
            self.items
                .remove_if(&hash, |i| i.expires_at.is_some_and(|e| now() >= e));
            return Lookup::Miss;
        }
        if item.stale_at.is_some_and(|s| t >= s) {
            return Lookup::Stale(item.value);
        }
        Lookup::Fresh(item.value)
    }

    pub(crate) fn store(&self, hash: u128, value: &V, policy: &Policy, negative: bool)
    where
        V: Serialize,
    {
        let Some((stale, ttl)) = policy.lifetimes(negative) else {
            return;
        };
        let t = now();
        let at = |d: Option<std::time::Duration>| {
            d.and_then(|d| t.checked_add(coarsetime::Duration::from(d)))
        };
        let (stale_at, expires_at) = (at(stale), at(ttl));
        let fresh_until = match (stale_at, expires_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.items.insert(
            hash,
            LocalItem {
                value: value.clone(),
                fresh_until,
                stale_at,
                expires_at,
                weight: weigh(value),
            },
        );
    }

    pub(crate) fn remove(&self, hash: u128) -> bool {
        self.items.remove(&hash).is_some()
    }

    pub(crate) fn clear(&self) -> u64 {
        let n = self.items.len() as u64;
        self.items.clear();
        n
    }

    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }
}
