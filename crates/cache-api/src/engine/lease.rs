//! Leases: the distributed lock that makes one caller across every process compute a key
//! (`lock = "distributed"`).
//!
//! A [`Lease`] is released when the leader is done, and by RAII on every other way out: an
//! error, a panic, or a cancelled future (a dropped `tokio::time::timeout`). Dropping an
//! unreleased lease spawns its release on the library's runtime, so the next caller in another
//! process computes at once instead of after `lock_ttl`.
//!
//! A leader that computed but stored nothing (an `Err`, a `None` without `cache_none`, a store
//! that failed) leaves a short-lived marker `key#done` with the time it finished before it
//! releases. Callers that were waiting on that lease see the marker and compute at once,
//! together, instead of taking the lock one after another and each running the function in
//! turn. A marker older than a waiter's wait is ignored. (Markers compare wall clocks of
//! different machines; a machine running behind makes its markers look old, so its waiters
//! fall back to taking the lock in turn, as without markers.)

use super::io::{self, backend_error, wait_on_runtime, within, Mode};
use super::job::Value;
use super::plan::Plan;
use crate::envelope::Freshness;
use crate::error::Result;
use crate::manager::CacheManager;
use crate::stats::Stats;
use crate::tier::{Place, L2};
use crate::time::unix_millis;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a "computed, not stored" marker lives: long enough for every waiter's next poll
/// (they poll at least every 100 ms).
const DONE_MARKER_TTL: Duration = Duration::from_secs(2);

/// The first pause between attempts on a held lock; it grows by half up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(5);
const MAX_BACKOFF: Duration = Duration::from_millis(100);

fn lock_key(key: &str) -> String {
    format!("{key}#lock")
}

fn done_key(key: &str) -> String {
    format!("{key}#done")
}

fn new_token() -> String {
    format!("{:032x}", fastrand::u128(..))
}

/// A held distributed lock.
pub(crate) struct Lease {
    manager: Arc<dyn CacheManager>,
    key: String,
    token: String,
    timeout: Duration,
    released: bool,
}

impl Lease {
    /// Release the lock; first leave the "computed, not stored" marker when nothing was stored.
    pub(crate) async fn release(mut self, mode: Mode, stored: bool, stats: &Stats) {
        self.released = true;
        if !stored {
            let marker = unix_millis().to_string().into_bytes();
            let done = done_key(&self.key);
            if let Err(e) = set(mode, &self.manager, &done, marker, self.timeout).await {
                backend_error(stats, &self.key, "marker", &e);
            }
        }
        if let Err(e) = release(mode, &self.manager, &self.key, &self.token, self.timeout).await {
            backend_error(stats, &self.key, "unlock", &e);
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        // Cancelled or panicking: release in the background, on the runtime that outlives the
        // caller's (a dropped future's runtime may be shutting down).
        let (manager, key, token) = (self.manager.clone(), self.key.clone(), self.token.clone());
        let timeout = self.timeout;
        match crate::runtime::library_runtime() {
            Ok(rt) => {
                rt.spawn(async move {
                    let lock = lock_key(&key);
                    let release = manager.backend().release_lock(&lock, &token);
                    if let Err(e) = within(timeout, release).await {
                        tracing::warn!(key, error = %e, "steadycache: could not release an abandoned lock; it expires after lock_ttl");
                    }
                });
            }
            Err(e) => {
                tracing::warn!(key = %self.key, error = %e, "steadycache: no runtime to release an abandoned lock; it expires after lock_ttl");
            }
        }
    }
}

async fn acquire_lock(mode: Mode, l2: &L2, token: &str, ttl: Duration) -> Result<bool> {
    let lock = lock_key(&l2.key);
    match mode {
        Mode::Async => {
            let acquire = l2.manager.backend().acquire_lock(&lock, token, ttl);
            within(l2.timeout, acquire).await
        }
        Mode::Sync => {
            let token = token.to_owned();
            wait_on_runtime(&l2.manager, &lock, l2.timeout, |m, k| async move {
                m.backend().acquire_lock(&k, &token, ttl).await
            })
        }
    }
}

async fn release(
    mode: Mode,
    m: &Arc<dyn CacheManager>,
    key: &str,
    token: &str,
    timeout: Duration,
) -> Result<bool> {
    let lock = lock_key(key);
    match mode {
        Mode::Async => within(timeout, m.backend().release_lock(&lock, token)).await,
        Mode::Sync => {
            let token = token.to_owned();
            wait_on_runtime(m, &lock, timeout, |m, k| async move {
                m.backend().release_lock(&k, &token).await
            })
        }
    }
}

async fn set(
    mode: Mode,
    m: &Arc<dyn CacheManager>,
    key: &str,
    value: Vec<u8>,
    timeout: Duration,
) -> Result<()> {
    match mode {
        Mode::Async => within(timeout, m.backend().set(key, value, Some(DONE_MARKER_TTL))).await,
        Mode::Sync => wait_on_runtime(m, key, timeout, |m, k| async move {
            m.backend().set(&k, value, Some(DONE_MARKER_TTL)).await
        }),
    }
}

async fn get(mode: Mode, l2: &L2, key: &str) -> Result<Option<Vec<u8>>> {
    let m = &l2.manager;
    match mode {
        Mode::Async => within(l2.timeout, m.backend().get(key)).await,
        Mode::Sync => wait_on_runtime(m, key, l2.timeout, |m, k| async move {
            m.backend().get(&k).await
        }),
    }
}

async fn pause(mode: Mode, d: Duration) {
    match mode {
        Mode::Async => tokio::time::sleep(d).await,
        Mode::Sync => std::thread::sleep(d),
    }
}

/// What [`acquire`] came to.
pub(crate) enum Acquired<V> {
    /// This caller holds the lock: compute, then release.
    Held(Lease),
    /// Compute without the lock (the backend failed, the holder's round ended without a value,
    /// or the wait ran past `lock_wait`).
    NotHeld,
    /// Another process stored the value while this caller waited.
    Found(V),
}

/// Take the lock of `l2.key`, waiting (bounded, jittered backoff) while another process holds
/// it and returning that process's value as soon as it is stored (when `accept_cached`).
///
/// A holder keeps the lock for at most `lock_ttl` (it expires in the backend), so a waiter
/// whose holder died takes the lock over within `lock_ttl` and computes: exactly one of the
/// waiters, since taking the lock is atomic. Past `plan.lock_wait` (a backend that does not
/// expire locks) the caller computes without it. A backend error fails open at once.
pub(crate) async fn acquire<V>(
    mode: Mode,
    place: &Place<V>,
    l2: &L2,
    plan: &Plan,
    accept_cached: bool,
    stats: &Stats,
) -> Acquired<V>
where
    V: Value,
{
    let token = new_token();
    let started = Instant::now();
    let started_ms = unix_millis();
    let mut backoff = FIRST_BACKOFF;
    loop {
        match acquire_lock(mode, l2, &token, plan.lock_ttl).await {
            Ok(true) => {
                let lease = Lease {
                    manager: l2.manager.clone(),
                    key: l2.key.clone(),
                    token,
                    timeout: l2.timeout,
                    released: false,
                };
                // Another process may have stored the value just before we got the lock.
                if accept_cached {
                    if let Some((v, Freshness::Fresh)) = io::lookup(mode, place, stats).await {
                        lease.release(mode, true, stats).await;
                        return Acquired::Found(v);
                    }
                }
                return Acquired::Held(lease);
            }
            Ok(false) => {}
            Err(e) => {
                backend_error(stats, &l2.key, "lock", &e);
                return Acquired::NotHeld;
            }
        }
        if started.elapsed() >= plan.lock_wait {
            tracing::warn!(key = %l2.key, "steadycache: lock not had within twice lock_ttl; computing without it");
            return Acquired::NotHeld;
        }
        // Jittered (half to all of the backoff): waiters that started together, in one process
        // or several, do not retry in step.
        let half = backoff / 2;
        pause(mode, half + half.mul_f64(fastrand::f64())).await;
        backoff = (backoff * 3 / 2).min(MAX_BACKOFF);
        if accept_cached {
            if let Some((v, Freshness::Fresh)) = io::lookup(mode, place, stats).await {
                return Acquired::Found(v);
            }
        }
        if round_ended_empty(mode, l2, started_ms).await {
            tracing::debug!(key = %l2.key, "steadycache: the lock holder stored nothing; computing");
            return Acquired::NotHeld;
        }
    }
}

/// Whether a holder finished, without storing, after this waiter started waiting.
async fn round_ended_empty(mode: Mode, l2: &L2, started_ms: u64) -> bool {
    match get(mode, l2, &done_key(&l2.key)).await {
        Ok(Some(bytes)) => std::str::from_utf8(&bytes)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .is_some_and(|at| at >= started_ms),
        _ => false,
    }
}

/// For a background refresh: take the lock once, without waiting, so that one refresh per key
/// runs across every process. `None` inside `Some`: refresh without a lock (no lock wanted, or
/// the backend failed: fail open); `None`: another process holds it (it is refreshing or
/// computing), skip.
pub(crate) async fn try_once(l2: &L2, plan: &Plan, stats: &Stats) -> Option<Option<Lease>> {
    let token = new_token();
    match acquire_lock(Mode::Async, l2, &token, plan.lock_ttl).await {
        Ok(true) => Some(Some(Lease {
            manager: l2.manager.clone(),
            key: l2.key.clone(),
            token,
            timeout: l2.timeout,
            released: false,
        })),
        Ok(false) => None,
        Err(e) => {
            backend_error(stats, &l2.key, "lock", &e);
            Some(None)
        }
    }
}
