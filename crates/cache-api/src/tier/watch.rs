//! What lets a cache's in-process copies be trusted: the [`Watch`] (until when the invalidation
//! bus vouches for them, and the epoch of tag invalidations) and the [`TagTable`] (when each
//! tag was last invalidated, as far as this process knows).
//!
//! An L1 hit reads both atomics of the watch, with no lock and no allocation: a copy is served
//! only while the bus is heard (`live_until`) and, for a tagged function, only if it was checked
//! against every tag invalidation this process has learned of (`tag_stamp >= tag_epoch`). A copy
//! checked before a newer invalidation goes through the slow path once, where its tags (rendered
//! from the call's arguments) are compared with the table; a copy still valid is stamped again.

use super::clock;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering, Ordering::Relaxed};
use std::sync::{Mutex, RwLock};

/// The most tags a table remembers. Past it, a memory cache (whose table is the truth) forgets
/// them all behind a floor, a time at which every tag counts as invalidated (safe: it can only
/// turn valid copies into misses); a shared cache forgets them and reads them again.
pub(crate) const MAX_TAGS: usize = 65_536;

/// Who vouches for a shared cache's in-process copies (see [`Watch`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Voucher {
    /// The invalidation bus (pub/sub or the polled feed).
    Bus,
    /// The store's own tracking of changed keys (`tracking=on`, [`Backend::track`]).
    ///
    /// [`Backend::track`]: crate::Backend::track
    Tracking,
}

/// The state an L1 hit checks (see the module docs).
#[derive(Debug)]
pub(crate) struct Watch {
    /// Until when (ms on the tier's clock) in-process copies may be served without asking the
    /// store: `u64::MAX` for a cache no other process writes; on a shared one, the earliest of
    /// what its vouchers vouch for.
    live_until: AtomicU64,
    /// Counts the tag invalidations this process learned of.
    tag_epoch: AtomicU64,
    /// Until when each voucher in use (`Some`) vouches, indexed by [`Voucher`]: `live_until`
    /// is written under this lock, as the least of them (the hit reads only `live_until`).
    vouchers: Mutex<[Option<u64>; 2]>,
}

impl Watch {
    /// A watch of a cache no other process writes to: always live.
    pub(crate) fn local() -> Watch {
        Watch::vouched_by(false, false)
    }

    /// A watch whose copies are vouched for by the bus and/or the store's tracking (neither:
    /// always live); not live until each of them is heard.
    pub(crate) fn vouched_by(bus: bool, tracking: bool) -> Watch {
        let vouchers = [bus.then_some(0), tracking.then_some(0)];
        let live = if bus || tracking { 0 } else { u64::MAX };
        Watch {
            live_until: AtomicU64::new(live),
            tag_epoch: AtomicU64::new(1),
            vouchers: Mutex::new(vouchers),
        }
    }

    /// Whether a copy stamped `tag_stamp` may be served at `now` (tier clock): the hit check.
    #[inline(always)]
    pub(crate) fn trusts(&self, tag_stamp: u64, now: u64) -> bool {
        now < self.live_until.load(Relaxed) && tag_stamp >= self.tag_epoch.load(Relaxed)
    }

    /// Whether the bus vouches for in-process copies now.
    pub(crate) fn is_live(&self) -> bool {
        clock::now_ms() < self.live_until.load(Relaxed)
    }

    /// Whether `voucher` is one this watch waits for.
    pub(crate) fn uses(&self, voucher: Voucher) -> bool {
        self.lock()[voucher as usize].is_some()
    }

    /// `voucher` vouches for in-process copies until `until` (tier clock); whether it did not
    /// just before (it was silent past its grace: copies must be flushed). Nothing for a
    /// voucher the watch does not use.
    pub(crate) fn extend(&self, voucher: Voucher, until: u64) -> bool {
        let mut v = self.lock();
        let Some(slot) = v[voucher as usize].as_mut() else {
            return false;
        };
        let before = *slot;
        *slot = before.max(until);
        self.settle(&v);
        before <= clock::now_ms()
    }

    /// `voucher` stops vouching for in-process copies (it broke).
    pub(crate) fn lapse(&self, voucher: Voucher) {
        let mut v = self.lock();
        if let Some(slot) = v[voucher as usize].as_mut() {
            *slot = 0;
            self.settle(&v);
        }
    }

    /// `voucher` no longer vouches at all (it cannot run): the others alone decide.
    pub(crate) fn withdraw(&self, voucher: Voucher) {
        let mut v = self.lock();
        v[voucher as usize] = None;
        self.settle(&v);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, [Option<u64>; 2]> {
        self.vouchers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `live_until` := the least of what the vouchers in use vouch for (under their lock).
    fn settle(&self, vouchers: &[Option<u64>; 2]) {
        let least = vouchers.iter().flatten().copied().min().unwrap_or(u64::MAX);
        self.live_until.store(least, Relaxed);
    }

    /// The current tag epoch (read before a check: a copy is stamped with it).
    pub(crate) fn tag_epoch(&self) -> u64 {
        self.tag_epoch.load(Relaxed)
    }

    /// A tag invalidation was learned: every tagged copy is checked again.
    pub(crate) fn bump(&self) {
        self.tag_epoch.fetch_add(1, Relaxed);
    }
}

/// When each tag was last invalidated (ms since the Unix epoch), as far as this process knows.
#[derive(Debug)]
pub(crate) struct TagTable {
    known: RwLock<HashMap<String, u64>>,
    /// Every tag counts as invalidated at least then (see [`MAX_TAGS`]).
    floor: AtomicU64,
    /// Whether the table is the truth (a memory cache) rather than a copy of the store's.
    authoritative: bool,
    /// Counts what the table forgot (flushes, overflows): a store read that began before is
    /// not recorded.
    generation: AtomicU64,
}

impl TagTable {
    /// A table; `authoritative` for a cache no other process writes to.
    pub(crate) fn new(authoritative: bool) -> TagTable {
        TagTable {
            known: RwLock::new(HashMap::new()),
            floor: AtomicU64::new(0),
            authoritative,
            generation: AtomicU64::new(0),
        }
    }

    /// Whether the table is the truth (nothing to read from the store).
    pub(crate) fn is_authoritative(&self) -> bool {
        self.authoritative
    }

    /// When `tag` was last invalidated (0: never), if the table knows (an authoritative table
    /// always does). Call only while the watch is live, or on an authoritative table.
    pub(crate) fn get(&self, tag: &str) -> Option<u64> {
        let floor = self.floor.load(Relaxed);
        let known = self.known.read().unwrap_or_else(|p| p.into_inner());
        match known.get(tag) {
            Some(t) => Some((*t).max(floor)),
            None if self.authoritative => Some(floor),
            None => None,
        }
    }

    /// The generation to pass to [`learn_read`](Self::learn_read) (read before the store).
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Record that `tag` was invalidated at `at` (made here or heard).
    pub(crate) fn learn(&self, tag: &str, at: u64) {
        let mut known = self.known.write().unwrap_or_else(|p| p.into_inner());
        self.insert(&mut known, tag, at);
    }

    /// Record `tag`'s time `at` read from the store, unless the table forgot anything since
    /// `gen` (the read may predate a missed invalidation); whether a known time grew.
    pub(crate) fn learn_read(&self, tag: &str, at: u64, gen: u64) -> bool {
        let mut known = self.known.write().unwrap_or_else(|p| p.into_inner());
        if self.generation.load(Ordering::Acquire) != gen {
            return false;
        }
        self.insert(&mut known, tag, at)
    }

    /// Keep the later of two times; whether a known time grew.
    fn insert(&self, known: &mut HashMap<String, u64>, tag: &str, at: u64) -> bool {
        if let Some(t) = known.get_mut(tag) {
            let newer = at > *t;
            *t = (*t).max(at);
            return newer;
        }
        if known.len() >= MAX_TAGS {
            if self.authoritative {
                let latest = known.values().copied().max().unwrap_or(0);
                self.floor.fetch_max(latest, Relaxed);
            }
            known.clear();
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
        known.insert(tag.to_owned(), at);
        false
    }

    /// Forget what was read from the store (the bus lapsed: invalidations may have been missed).
    pub(crate) fn forget(&self) {
        if !self.authoritative {
            let mut known = self.known.write().unwrap_or_else(|p| p.into_inner());
            known.clear();
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Forget every tag, as a clear of the whole cache does: for an authoritative table, every
    /// tag counts as invalidated now.
    pub(crate) fn clear_all(&self, now_unix_ms: u64) {
        if self.authoritative {
            self.floor.fetch_max(now_unix_ms, Relaxed);
        }
        let mut known = self.known.write().unwrap_or_else(|p| p.into_inner());
        known.clear();
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_watch_trusts_only_live_and_checked_copies() {
        let w = Watch::vouched_by(true, false);
        let now = clock::now_ms();
        assert!(!w.trusts(u64::MAX, now), "not live before the bus is heard");
        assert!(w.extend(Voucher::Bus, now + 1000), "was not live: flush");
        assert!(w.trusts(w.tag_epoch(), now));
        let stamp = w.tag_epoch();
        w.bump();
        assert!(!w.trusts(stamp, now), "checked before the invalidation");
        assert!(w.trusts(u64::MAX, now), "untagged copies are not concerned");
        assert!(!w.extend(Voucher::Bus, now + 2000), "was live: no flush");
        w.lapse(Voucher::Bus);
        assert!(!w.trusts(u64::MAX, now));
        let l = Watch::local();
        l.lapse(Voucher::Bus);
        l.lapse(Voucher::Tracking);
        assert!(
            l.trusts(u64::MAX, u64::MAX - 1),
            "a local watch never lapses"
        );
    }

    #[test]
    fn two_vouchers_trust_only_while_both_are_heard() {
        let w = Watch::vouched_by(true, true);
        let now = clock::now_ms();
        assert!(w.uses(Voucher::Tracking));
        assert!(w.extend(Voucher::Bus, now + 1000));
        assert!(!w.trusts(u64::MAX, now), "tracking not heard yet");
        assert!(
            w.extend(Voucher::Tracking, now + 500),
            "was not heard: flush"
        );
        assert!(w.trusts(u64::MAX, now + 499));
        assert!(!w.trusts(u64::MAX, now + 500), "the earlier of the two");
        w.lapse(Voucher::Tracking);
        assert!(!w.trusts(u64::MAX, now), "either lapsing stops the copies");
        assert!(!w.extend(Voucher::Bus, now + 2000), "the bus was live");
        assert!(!w.trusts(u64::MAX, now));
        assert!(
            w.extend(Voucher::Tracking, now + 2000),
            "tracking lapsed: flush"
        );
        assert!(w.trusts(u64::MAX, now + 1999));
        let t = Watch::vouched_by(false, true);
        assert!(!t.uses(Voucher::Bus));
        assert!(
            !t.extend(Voucher::Bus, now + 1000),
            "not a voucher of this watch"
        );
        assert!(!t.trusts(u64::MAX, now), "tracking alone: not heard yet");
        t.extend(Voucher::Tracking, now + 1000);
        assert!(t.trusts(u64::MAX, now));
    }

    #[test]
    fn an_authoritative_table_floors_when_full() {
        let t = TagTable::new(true);
        assert_eq!(t.get("a"), Some(0));
        t.learn("a", 10);
        t.learn("a", 5);
        assert_eq!(t.get("a"), Some(10), "older news changes nothing");
        for i in 0..MAX_TAGS {
            t.learn(&format!("t{i}"), 20);
        }
        t.learn("overflow", 1);
        assert_eq!(t.get("a"), Some(20), "forgotten behind the floor");
        let s = TagTable::new(false);
        assert_eq!(s.get("a"), None, "a copy does not know");
        let gen = s.generation();
        assert!(!s.learn_read("a", 0, gen), "first read: nothing grew");
        assert_eq!(s.get("a"), Some(0));
        assert!(s.learn_read("a", 7, gen), "a known time grew");
        let gen = s.generation();
        s.forget();
        assert_eq!(s.get("a"), None);
        assert!(
            !s.learn_read("a", 3, gen),
            "a read the flush overtook is dropped"
        );
        assert_eq!(s.get("a"), None);
    }
}
