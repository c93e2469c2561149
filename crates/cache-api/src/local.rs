//! The typed in-process tier: a memoized function's own values, unserialized, on `quick_cache`.
//!
//! A hit here is the product's hot path: one `quick_cache` lookup by the 128-bit args hash, one
//! relaxed atomic load of a recent clock, one clone of the value. No allocation, no
//! serialization, no async runtime.
//!
//! ## The clock
//! Reading even a coarse OS clock (`CLOCK_MONOTONIC_COARSE` through the vDSO) costs about 5 ns,
//! a fifth of a hit. So a hit reads [`recent_ms`]: milliseconds since the process's clock base,
//! advanced every millisecond by one `steadycache-clock` thread (started with the first typed
//! store; the same design as `quanta`'s upkeep thread). The only effect of that thread running
//! late is that a value can be served up to that lateness past its expiry; it is never dropped
//! early. Stores, stale checks and everything off the hit path read the precise clock. If the
//! thread cannot be started, hits read the precise clock too.
//!
//! Each item weighs its bincode-serialized size (measured once, when stored, with a counting
//! writer that allocates nothing) plus `size_of::<V>()` and a fixed overhead, so the store is
//! bounded in bytes like the byte-level memory backend.

use crate::engine::Lookup;
use crate::memory::ITEM_OVERHEAD;
use crate::policy::Policy;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Once, OnceLock};
use std::time::{Duration, Instant};

#[derive(Clone)]
pub(crate) struct LocalItem<V> {
    value: V,
    /// The earlier of `stale_at` and `expires_at` (ms on the clock base; `u64::MAX` = never): one
    /// comparison on the hot path.
    fresh_until: u64,
    stale_at: u64,
    expires_at: u64,
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

fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

/// Milliseconds since the clock base, read from the OS now.
fn now() -> u64 {
    base().elapsed().as_millis().min(u64::MAX as u128 - 1) as u64
}

static RECENT: AtomicU64 = AtomicU64::new(0);
static TICKING: AtomicBool = AtomicBool::new(false);

fn start_clock() {
    static START: Once = Once::new();
    START.call_once(|| {
        RECENT.store(now(), Relaxed);
        let spawned = std::thread::Builder::new()
            .name("steadycache-clock".into())
            .spawn(|| loop {
                RECENT.store(now(), Relaxed);
                std::thread::sleep(Duration::from_millis(1));
            });
        TICKING.store(spawned.is_ok(), Relaxed);
    });
}

/// The recent clock (see the module docs): at most about a millisecond behind [`now`].
#[inline]
fn recent_ms() -> u64 {
    if TICKING.load(Relaxed) {
        RECENT.load(Relaxed)
    } else {
        now()
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
        // Not reached for u128 keys; fold anything else in so the hasher stays total.
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ *b as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    #[inline]
    fn write_u128(&mut self, i: u128) {
        self.0 = (i as u64) ^ ((i >> 64) as u64);
    }
}

impl std::hash::BuildHasher for KeyIsHash {
    type Hasher = KeyHasher;
    #[inline]
    fn build_hasher(&self) -> KeyHasher {
        KeyHasher(0)
    }
}

/// One function's typed values.
pub(crate) struct LocalStore<V> {
    items: quick_cache::sync::Cache<
        u128,
        LocalItem<V>,
        LocalWeighter,
        KeyIsHash,
        quick_cache::sync::DefaultLifecycle<u128, LocalItem<V>>,
    >,
}

impl<V: Clone> LocalStore<V> {
    pub(crate) fn new(max_bytes: u64) -> Self {
        start_clock();
        LocalStore {
            items: quick_cache::sync::Cache::with(
                1024,
                max_bytes.max(1),
                LocalWeighter,
                KeyIsHash,
                Default::default(),
            ),
        }
    }

    /// The value if present and fresh: the hot path.
    #[inline]
    pub(crate) fn get_fresh(&self, hash: u128) -> Option<V> {
        let item = self.items.get(&hash)?;
        (recent_ms() < item.fresh_until).then_some(item.value)
    }

    pub(crate) fn lookup(&self, hash: u128) -> Lookup<V> {
        let Some(item) = self.items.get(&hash) else {
            return Lookup::Miss;
        };
        let t = now();
        if t >= item.expires_at {
            self.items.remove_if(&hash, |i| now() >= i.expires_at);
            return Lookup::Miss;
        }
        if t >= item.stale_at {
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
        // `u64::MAX` means never; a finite deadline stays below it.
        let at = |d: Option<Duration>| {
            d.map_or(u64::MAX, |d| {
                crate::plumbing::deadline(t, Some(d)).map_or(u64::MAX, |at| at.min(u64::MAX - 1))
            })
        };
        let (stale_at, expires_at) = (at(stale), at(ttl));
        let fresh_until = stale_at.min(expires_at);
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
