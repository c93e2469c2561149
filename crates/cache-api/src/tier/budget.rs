//! One byte budget (and entry bound) per [`Cache`](crate::Cache), shared by the typed tiers of
//! every function that uses it and, on a memory cache, by its memory store (values set by hand,
//! locks, counters): a memory cache of 64 MiB holds 64 MiB, however its values came in.
//!
//! Each memoized function keeps its values in a tier of its own (typed, so a hit is a lookup and
//! a clone), but their sum is bounded: 20 functions on `mem://?max_bytes=64MiB` hold 64 MiB
//! together, not 64 MiB each. Every insertion goes through [`Budget::admit`] (under one mutex,
//! on the miss path only). While the running total of insertions stays under the bound, that is
//! all it does; once it would pass it, it measures what the tiers really hold (evictions and
//! removals lower it), makes room by evicting from the largest tiers first (each evicts its own
//! coldest entries), and starts the running total again from the measure. So a cache with many
//! functions pays the measure only when it is full. A hit never touches the budget.
//!
//! The entry bound is a minimum weight: with `max_entries` set, every entry weighs at least
//! `max_bytes / max_entries`, so at most `max_entries` fit.
//!
//! `Cache::clear`, `invalidate` and `invalidate_prefix` reach every registered tier through
//! [`Budget::forget`]; a prefix that falls inside a function's keys clears that function's whole
//! tier (the tier is keyed by hashes, so it cannot match part of a key: removing more than asked
//! from an in-process copy is always safe).

use std::sync::{Arc, Mutex, MutexGuard, Weak};

/// What the budget needs of anything it bounds: a typed tier, or a memory cache's store.
pub(crate) trait Weighed: Send + Sync {
    /// Bytes held (by the budget's measure).
    fn weight(&self) -> u64;
    /// Evict (coldest first) until at most `weight` bytes are held (what must stay, such as a
    /// held lock, stays).
    fn shrink_to(&self, weight: u64);
}

/// What the budget needs of a typed tier, whatever its value type: also the removals that
/// [`Budget::forget`] passes on (a store's removals are its own: it is never forgotten into).
pub(crate) trait Tier: Weighed {
    /// Remove everything; the number of entries removed.
    fn clear(&self) -> u64;
    /// Remove the entry whose stored key ends in `part` (the args part: a hash in hex or a
    /// rendered template); whether one was removed.
    fn remove_part(&self, part: &str) -> bool;
}

enum Member {
    /// A function's typed tier.
    Tier {
        /// `namespace:version:`: every stored key of the function starts with it.
        key_prefix: String,
        tier: Weak<dyn Tier>,
    },
    /// A memory cache's byte store.
    Store(Weak<dyn Weighed>),
}

impl Member {
    fn weighed(&self) -> Option<Arc<dyn Weighed>> {
        match self {
            Member::Tier { tier, .. } => tier.upgrade().map(|t| t as Arc<dyn Weighed>),
            Member::Store(store) => store.upgrade(),
        }
    }

    fn alive(&self) -> bool {
        match self {
            Member::Tier { tier, .. } => tier.strong_count() > 0,
            Member::Store(store) => store.strong_count() > 0,
        }
    }
}

/// The shared bound of a cache's typed tiers.
pub(crate) struct Budget {
    max_bytes: u64,
    min_weight: u64,
    members: Mutex<Members>,
}

struct Members {
    list: Vec<Member>,
    /// An upper bound of what the tiers hold: the last measure plus every insertion since.
    held_at_most: u64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Only whole-vector updates happen under the lock: a poisoned one is still consistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Budget {
    /// At most `max_bytes` (at least 1) in at most `max_entries` entries (`None`: no bound
    /// beyond the bytes).
    pub(crate) fn new(max_bytes: u64, max_entries: Option<u64>) -> Budget {
        let max_bytes = max_bytes.max(1);
        let min_weight = max_entries.map_or(1, |n| max_bytes.div_ceil(n.max(1)).max(1));
        Budget {
            max_bytes,
            min_weight,
            members: Mutex::new(Members {
                list: Vec::new(),
                held_at_most: 0,
            }),
        }
    }

    /// The byte bound.
    pub(crate) fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// The least an entry weighs (the entry bound, as a weight).
    pub(crate) fn min_weight(&self) -> u64 {
        self.min_weight
    }

    /// Add a function's tier, whose keys start with `key_prefix`.
    pub(crate) fn register(&self, key_prefix: String, tier: Weak<dyn Tier>) {
        self.join(Member::Tier { key_prefix, tier });
    }

    /// Add a memory cache's byte store: bounded with the tiers, never reached by
    /// [`forget`](Self::forget) (the cache's removals reach the store as a backend).
    pub(crate) fn register_store(&self, store: Weak<dyn Weighed>) {
        self.join(Member::Store(store));
    }

    fn join(&self, member: Member) {
        let mut members = lock(&self.members);
        members.list.retain(Member::alive);
        members.list.push(member);
    }

    /// Make room for `weight` more bytes (evicting from the largest tiers first, the inserting
    /// one included), then run `insert` with the bytes still free after it, all under the
    /// budget's lock. `false` (and nothing inserted) when `weight` is more than the whole budget.
    pub(crate) fn admit(&self, weight: u64, insert: impl FnOnce(u64)) -> bool {
        if weight > self.max_bytes {
            return false;
        }
        // (Declared first, so it drops last: evictions are reported once the lock is let go.)
        let _deferred = crate::stats::Deferred::begin();
        let mut members = lock(&self.members);
        let at_most = members.held_at_most.saturating_add(weight);
        if at_most <= self.max_bytes {
            members.held_at_most = at_most;
            insert(self.max_bytes - at_most);
            return true;
        }
        let live: Vec<_> = members.list.iter().filter_map(Member::weighed).collect();
        let mut weights: Vec<(u64, usize)> = live
            .iter()
            .enumerate()
            .map(|(i, t)| (t.weight(), i))
            .collect();
        let total: u64 = weights.iter().map(|(w, _)| *w).sum();
        let mut need = total.saturating_add(weight).saturating_sub(self.max_bytes);
        let mut held = total;
        if need > 0 {
            weights.sort_unstable_by_key(|w| std::cmp::Reverse(w.0));
            for (w, i) in weights {
                if need == 0 {
                    break;
                }
                let tier = &live[i];
                tier.shrink_to(w.saturating_sub(need));
                let freed = w.saturating_sub(tier.weight());
                need = need.saturating_sub(freed);
                held = held.saturating_sub(freed);
            }
        }
        members.held_at_most = held.saturating_add(weight);
        insert(self.max_bytes.saturating_sub(held).saturating_sub(weight));
        true
    }

    /// Remove from every tier what a removal of the stored keys matching `what` removes.
    pub(crate) fn forget(&self, what: Forget<'_>) {
        let live: Vec<_> = lock(&self.members)
            .list
            .iter()
            .filter_map(|m| match m {
                Member::Tier { key_prefix, tier } => {
                    tier.upgrade().map(|t| (key_prefix.clone(), t))
                }
                Member::Store(_) => None,
            })
            .collect();
        for (key_prefix, tier) in live {
            match what {
                Forget::All => {
                    tier.clear();
                }
                Forget::Key(key) => {
                    if let Some(part) = key.strip_prefix(key_prefix.as_str()) {
                        tier.remove_part(part);
                    }
                }
                Forget::Keys(keys) => {
                    for part in keys
                        .iter()
                        .filter_map(|k| k.strip_prefix(key_prefix.as_str()))
                    {
                        tier.remove_part(part);
                    }
                }
                Forget::Prefix(prefix) => {
                    if key_prefix.starts_with(prefix) || prefix.starts_with(key_prefix.as_str()) {
                        tier.clear();
                    }
                }
                Forget::Matching(glob) => {
                    if glob.may_match_under(&key_prefix) {
                        tier.clear();
                    }
                }
            }
        }
    }

    /// Bytes held by all the tiers now.
    pub(crate) fn held(&self) -> u64 {
        lock(&self.members)
            .list
            .iter()
            .filter_map(Member::weighed)
            .map(|t| t.weight())
            .sum()
    }
}

impl crate::memory::SharedBound for Budget {
    fn admit(&self, weight: u64, insert: &mut dyn FnMut()) -> bool {
        Budget::admit(self, weight, |_| insert())
    }
}

impl Weighed for crate::memory::MemoryBackend {
    fn weight(&self) -> u64 {
        crate::memory::MemoryBackend::weight(self)
    }

    fn shrink_to(&self, weight: u64) {
        self.evict_to(weight);
    }
}

/// Which stored keys a removal covered.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Forget<'a> {
    /// Every key.
    All,
    /// One key.
    Key(&'a str),
    /// These keys (a batch the store's tracking reported): one pass over the tiers.
    Keys(&'a [String]),
    /// Every key starting with this.
    Prefix(&'a str),
    /// Every key matching this pattern (a tier some of whose keys may match is cleared).
    Matching(&'a crate::glob::Glob),
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering::SeqCst};

    /// A tier that holds a weight and nothing else.
    struct Fake(AtomicU64);
    impl Weighed for Fake {
        fn weight(&self) -> u64 {
            self.0.load(SeqCst)
        }
        fn shrink_to(&self, w: u64) {
            self.0.fetch_min(w, SeqCst);
        }
    }
    impl Tier for Fake {
        fn clear(&self) -> u64 {
            self.0.swap(0, SeqCst)
        }
        fn remove_part(&self, _: &str) -> bool {
            false
        }
    }

    #[test]
    fn room_is_made_from_the_largest_first() {
        let b = Budget::new(100, None);
        let big = Arc::new(Fake(AtomicU64::new(0)));
        let small = Arc::new(Fake(AtomicU64::new(0)));
        let big_dyn: Arc<dyn Tier> = big.clone();
        let small_dyn: Arc<dyn Tier> = small.clone();
        b.register("a:1:".into(), Arc::downgrade(&big_dyn));
        b.register("b:1:".into(), Arc::downgrade(&small_dyn));
        assert!(b.admit(70, |free| {
            big.0.fetch_add(70, SeqCst);
            assert_eq!(free, 30);
        }));
        assert!(b.admit(20, |_| {
            small.0.fetch_add(20, SeqCst);
        }));
        let mut free_seen = None;
        assert!(b.admit(30, |free| {
            small.0.fetch_add(30, SeqCst);
            free_seen = Some(free);
        }));
        assert_eq!(big.weight(), 50, "20 bytes evicted from the largest");
        assert_eq!(small.weight(), 50);
        assert_eq!(free_seen, Some(0));
        assert!(b.held() <= 100);
        assert!(!b.admit(101, |_| unreachable!()), "too large");
    }

    #[test]
    fn the_entry_bound_is_a_minimum_weight() {
        assert_eq!(Budget::new(1000, Some(10)).min_weight(), 100);
        assert_eq!(Budget::new(1000, Some(3)).min_weight(), 334);
        assert_eq!(Budget::new(10, Some(1000)).min_weight(), 1);
        assert_eq!(Budget::new(10, None).min_weight(), 1);
        assert_eq!(Budget::new(10, Some(0)).min_weight(), 10);
    }

    #[test]
    fn forgetting_reaches_the_tiers_it_covers() {
        let b = Budget::new(100, None);
        let t: Arc<dyn Tier> = Arc::new(Fake(AtomicU64::new(5)));
        let u: Arc<dyn Tier> = Arc::new(Fake(AtomicU64::new(7)));
        b.register("app.users:1:".into(), Arc::downgrade(&t));
        b.register("app.orders:1:".into(), Arc::downgrade(&u));
        b.forget(Forget::Prefix("app.users:"));
        assert_eq!((t.weight(), u.weight()), (0, 7));
        b.forget(Forget::Prefix("app.orders:1:page:"));
        assert_eq!(u.weight(), 0, "a prefix inside a function clears its tier");
    }
}
