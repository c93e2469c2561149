//! Leases: the distributed lock that makes one caller across every process compute a key
//! (`lock = "distributed"`).
//!
//! A [`Lease`] is released when the leader is done, and by RAII on every other way out: an
//! error, a panic, or a cancelled future (a dropped `tokio::time::timeout`). Dropping an
//! unreleased lease spawns its release on the library's runtime, so the next caller in another
//! process computes at once instead of after `lock_ttl`.
//!
//! While it is held, a heartbeat on the library's runtime renews the lease every `lock_ttl / 3`
//! ([`Backend::extend_lock`](crate::Backend::extend_lock)), so a computation may run for any
//! multiple of `lock_ttl` and the waiters in other processes keep waiting for its value instead
//! of taking the lock over. The heartbeat stops when the lease is released or dropped, or when
//! a renewal finds the lock taken by another process (the lease is lost: logged, and counted as
//! `lock_lost` when the holder finishes). A renewal that finds the lock expired or removed but
//! unclaimed takes it again, with the same token, as any caller takes a free lock, and the
//! lease goes on. A renewal that fails (the store is down) is retried soon; the lease is lost
//! only if the store says another process holds it. A process that dies stops beating, and its
//! lock expires at most `lock_ttl` after the last renewal.
//!
//! A lease that ran out at any point (`Lease::lapsed`) may have been taken over meanwhile, even
//! if the lock was free again when it renewed (another process took it, computed, stored and
//! let go while this one could not reach the store). Its holder then stores its value only if
//! the store has none computed after it began: the newer value is kept, and the lease counted
//! as `lock_lost` (`tail::conclude`, `io::newer_in_store`).
//!
//! A leader that computed but stored nothing (an `Err`, a `None` without `negative_ttl`, a store
//! that failed) leaves a short-lived marker `key#done` with the time it finished before it
//! releases (written as a plain value, or, when the store refuses plain writes, taken as a
//! lock holding that time). Callers that were waiting on that lease see the marker and compute at once,
//! together, instead of taking the lock one after another and each running the function in
//! turn. A marker older than a waiter's wait is ignored. (Markers compare wall clocks of
//! different machines; a machine running behind makes its markers look old, so its waiters
//! fall back to taking the lock in turn, as without markers.)

use super::io::{backend_error, pause, within, Mode};
use super::job::Value;
use super::lookup::Look;
use super::plan::Plan;
use crate::error::Result;
use crate::stats::{Counter, Stats};
use crate::tier::{Place, Store, L2};
use crate::time::unix_millis;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

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
    store: Arc<Store>,
    key: String,
    token: String,
    released: bool,
    /// Dropping it stops the heartbeat.
    _stop: Option<oneshot::Sender<()>>,
    /// Set by the heartbeat when a renewal found the lock no longer ours.
    lost: Arc<AtomicBool>,
    /// Set by the heartbeat when the lease ran out before a renewal landed (it may have been
    /// taken again since): another process may have computed and stored meanwhile.
    lapsed: Arc<AtomicBool>,
}

impl Lease {
    /// Whether the lease ran out (or was lost) at some point: the holder then stores its value
    /// only if the store has none computed after it began (`io::newer_in_store`).
    pub(crate) fn lapsed(&self) -> bool {
        self.lapsed.load(Ordering::Acquire) || self.lost.load(Ordering::Acquire)
    }

    /// Count the lease as lost (when it finishes): it lapsed and another process stored a
    /// value computed after this one began, so it took the lease over meanwhile, even if the
    /// lock was free again when this one renewed.
    pub(crate) fn mark_lost(&self) {
        self.lost.store(true, Ordering::Release);
    }

    /// A lease on the lock of `l2.key` just taken with `token`, renewed every `beat` for
    /// `lock_ttl` more while it lives.
    fn start(l2: &L2, token: String, lock_ttl: Duration, beat: Duration) -> Lease {
        let lost = Arc::new(AtomicBool::new(false));
        let lapsed = Arc::new(AtomicBool::new(false));
        let (stop, stopped) = oneshot::channel();
        let heartbeat = Heartbeat {
            store: l2.store.clone(),
            lock: lock_key(&l2.key),
            token: token.clone(),
            lock_ttl,
            beat,
            lost: lost.clone(),
            lapsed: lapsed.clone(),
        };
        let stop = match crate::runtime::library_runtime() {
            Ok(rt) => {
                rt.spawn(heartbeat.run(stopped));
                Some(stop)
            }
            Err(e) => {
                tracing::warn!(key = %l2.key, error = %e, "steadycache: no runtime to renew a lock lease; it expires after lock_ttl");
                None
            }
        };
        Lease {
            store: l2.store.clone(),
            key: l2.key.clone(),
            token,
            released: false,
            _stop: stop,
            lost,
            lapsed,
        }
    }

    /// Release the lock; first leave the "computed, not stored" marker when nothing was stored.
    ///
    /// Cancellation-safe: until the unlock has returned, dropping this future drops the lease,
    /// whose `Drop` releases it in the background. The unlock does not go through the circuit
    /// breaker (an open breaker would leave the lock held for `lock_ttl`).
    pub(crate) async fn release(mut self, mode: Mode, stored: bool, stats: &Stats) {
        // Stop renewing before releasing: a beat racing the release only finds the lock gone.
        self._stop = None;
        if self.lost.load(Ordering::Acquire) {
            stats.incr(Counter::LockLost);
        }
        if !stored {
            self.leave_marker(mode, stats).await;
        }
        let released = release(mode, &self.store, &self.key, &self.token).await;
        self.released = true;
        if let Err(e) = released {
            backend_error(stats, &self.key, "unlock", &e);
        }
    }
}

impl Lease {
    /// Leave the "computed, not stored" marker: a plain write, or, when the store refuses
    /// plain writes (the reason nothing was stored, often), the marker taken as a lock on
    /// `key#done`, which waiters read alike (replacing an older marker's lock). Without it the
    /// waiters would take the lock in turn, each running the function after the last.
    async fn leave_marker(&self, mode: Mode, stats: &Stats) {
        let at = unix_millis().to_string();
        let done = done_key(&self.key);
        let value = at.clone().into_bytes();
        let plain = self.store.call(mode, &done, move |m, k| async move {
            m.backend().set(&k, value, Some(DONE_MARKER_TTL)).await
        });
        let Err(e) = plain.await else {
            return;
        };
        tracing::debug!(key = %self.key, error = %e, "steadycache: marker not written; leaving it as a lock");
        for _ in 0..2 {
            let taken = self.store.call_unguarded(mode, &done, {
                let at = at.clone();
                move |m, k| async move { m.backend().acquire_lock(&k, &at, DONE_MARKER_TTL).await }
            });
            match taken.await {
                Ok(true) => return,
                // An older marker holds it: let it go, then take it again.
                Ok(false) => {
                    let old = self.store.call_unguarded(mode, &done, |m, k| async move {
                        m.backend().get(&k).await
                    });
                    let Ok(Some(old)) = old.await else { break };
                    let token = String::from_utf8_lossy(&old).into_owned();
                    let freed = self.store.call_unguarded(mode, &done, |m, k| async move {
                        m.backend().release_lock(&k, &token).await
                    });
                    if !matches!(freed.await, Ok(true)) {
                        break;
                    }
                }
                Err(e) => {
                    backend_error(stats, &self.key, "marker", &e);
                    return;
                }
            }
        }
        backend_error(stats, &self.key, "marker", &e);
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        // Stop renewing first (as `release` does): a heartbeat taking the lock back must see
        // that the lease ended, and let go of what it took.
        self._stop = None;
        // Cancelled or panicking: release in the background, on the runtime that outlives the
        // caller's (a dropped future's runtime may be shutting down).
        let (store, key, token) = (self.store.clone(), self.key.clone(), self.token.clone());
        match crate::runtime::library_runtime() {
            Ok(rt) => {
                rt.spawn(async move {
                    let lock = lock_key(&key);
                    let release = store.manager().backend().release_lock(&lock, &token);
                    if let Err(e) = within(store.timeout(), release).await {
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

/// The renewal loop of one lease, on the library runtime.
struct Heartbeat {
    /// Called within its timeout, never through its breaker (a lease is renewed while it
    /// lives, whatever other calls do).
    store: Arc<Store>,
    lock: String,
    token: String,
    lock_ttl: Duration,
    beat: Duration,
    lost: Arc<AtomicBool>,
    lapsed: Arc<AtomicBool>,
}

impl Heartbeat {
    async fn run(self, mut stopped: oneshot::Receiver<()>) {
        if self.beat_until_done(&mut stopped).await {
            // The lock was taken back (or a try may have landed unanswered), maybe while the
            // holder was letting go: make sure nothing of ours outlives the lease. Only our own
            // token is ever removed; releasing twice is harmless.
            let release = self
                .store
                .manager()
                .backend()
                .release_lock(&self.lock, &self.token);
            if let Err(e) = within(self.store.timeout(), release).await {
                tracing::debug!(lock = %self.lock, error = %e, "steadycache: could not release a lock taken back; it expires after lock_ttl");
            }
        }
    }

    /// Renew until the lease ends or is lost; whether the lock was taken back meanwhile.
    async fn beat_until_done(&self, stopped: &mut oneshot::Receiver<()>) -> bool {
        let mut retook = false;
        // When the lease runs out, as far as this process knows: `lock_ttl` after the last
        // renewal the store confirmed (or the acquisition).
        let mut expires = Instant::now() + self.lock_ttl;
        let mut pause = self.beat;
        loop {
            // The sender is dropped (never sent on) when the lease ends: that ends the wait.
            if tokio::time::timeout(pause, &mut *stopped).await.is_ok() {
                return retook;
            }
            let left = expires.saturating_duration_since(Instant::now());
            if left.is_zero() {
                self.lapsed.store(true, Ordering::Release);
                // Not renewed in time (the store was slow or unreachable): another process may
                // hold it now. One more try says whether it is still ours.
                tracing::debug!(lock = %self.lock, "steadycache: a lock lease ran out before it could be renewed");
            }
            let started = Instant::now();
            let renew =
                self.store
                    .manager()
                    .backend()
                    .extend_lock(&self.lock, &self.token, self.lock_ttl);
            // A renewal may take the whole backend timeout, even past what the lease has left:
            // the store renews only a lock that is still ours (atomically, or conditionally on
            // the version read), so one that lands late is as good as one on time, while
            // cancelling it at the lease's end would leave only a retry that finds it expired.
            match within(self.store.timeout(), renew).await {
                Ok(true) => {
                    expires = started + self.lock_ttl;
                    pause = self.beat;
                }
                Ok(false) => {
                    if !ended(stopped) {
                        self.lapsed.store(true, Ordering::Release);
                    }
                    if ended(stopped) {
                        return retook; // released meanwhile: gone because it was let go
                    }
                    let taking = Instant::now();
                    match self.take_again().await {
                        Retaken::Yes => {
                            tracing::info!(lock = %self.lock, "steadycache: a lock lease ran out before it was renewed; no other process held it, so it was taken again");
                            retook = true;
                            expires = taking + self.lock_ttl;
                            pause = self.beat;
                        }
                        Retaken::Unknown => {
                            retook = true;
                            pause = (self.beat / 4).max(Duration::from_millis(1));
                        }
                        Retaken::No => {
                            self.lost.store(true, Ordering::Release);
                            tracing::warn!(lock = %self.lock, "steadycache: lost the lock lease while computing (another process holds it now); it may compute the same key");
                            return retook;
                        }
                    }
                }
                Err(e) => {
                    tracing::debug!(lock = %self.lock, error = %e, "steadycache: could not renew a lock lease; retrying");
                    // Try again soon: the lease is running out.
                    pause = (self.beat / 4).max(Duration::from_millis(1));
                }
            }
        }
    }

    /// A renewal found the lock no longer ours: it ran out before a renewal landed (a slow or
    /// unreachable store, a stalled process) or was removed (a `clear`). Unless another process
    /// took it since, take it again with the same token, as any caller would take a free or
    /// expired lock (atomically: of two takers exactly one wins), and keep computing under it;
    /// giving it up would let the next waiter compute the same key a second time. A lease lost
    /// to another holder stays lost: that holder's lock is never touched. (One case cannot be
    /// told apart: another process took the lock, computed and let go, all while this one could
    /// not reach the store. Then it is taken again here; the second run has happened, and it is
    /// not counted as `lock_lost`.)
    async fn take_again(&self) -> Retaken {
        let take =
            self.store
                .manager()
                .backend()
                .acquire_lock(&self.lock, &self.token, self.lock_ttl);
        match within(self.store.timeout(), take).await {
            Ok(true) => Retaken::Yes,
            Ok(false) => Retaken::No,
            Err(e) => {
                tracing::debug!(lock = %self.lock, error = %e, "steadycache: could not take a lapsed lock lease again; retrying");
                Retaken::Unknown
            }
        }
    }
}

/// Whether the lease's holder let it go (its stop sender was dropped).
fn ended(stopped: &mut oneshot::Receiver<()>) -> bool {
    !matches!(stopped.try_recv(), Err(oneshot::error::TryRecvError::Empty))
}

/// What taking a lapsed lease again came to.
enum Retaken {
    /// It is ours again (released by [`Heartbeat::run`] once the lease ends).
    Yes,
    /// Another process holds it: the lease is lost.
    No,
    /// The store did not answer: try again soon (the take may still have landed).
    Unknown,
}

async fn acquire_lock(mode: Mode, l2: &L2, token: &str, ttl: Duration) -> Result<bool> {
    let token = token.to_owned();
    l2.store
        .call(mode, &lock_key(&l2.key), move |m, k| async move {
            m.backend().acquire_lock(&k, &token, ttl).await
        })
        .await
}

/// Release our lock of `key`, within the timeout, not through the breaker (an open breaker
/// would leave the lock held for `lock_ttl`).
async fn release(mode: Mode, store: &Store, key: &str, token: &str) -> Result<bool> {
    let token = token.to_owned();
    store
        .call_unguarded(mode, &lock_key(key), move |m, k| async move {
            m.backend().release_lock(&k, &token).await
        })
        .await
}

async fn get(mode: Mode, l2: &L2, key: &str) -> Result<Option<Vec<u8>>> {
    l2.store
        .call(mode, key, |m, k| async move { m.backend().get(&k).await })
        .await
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
    /// The caller's factory timeout ran out while another process held the lock.
    TimedOut,
}

/// Take the lock of `l2.key`, waiting (bounded, jittered backoff) while another process holds
/// it and returning that process's value as soon as it is stored (when `accept_cached`; not
/// when the caller refreshes). Past `timeout` (the caller's factory timeout), `TimedOut`.
///
/// A holder renews its lease while it computes and a dead holder's lock expires within
/// `lock_ttl` (in the backend), so a waiter whose holder died takes the lock over and
/// computes: exactly one of the waiters, since taking the lock is atomic. Past
/// `plan.lock_wait`, when set, the caller computes without it. A backend error fails open at
/// once.
pub(crate) async fn acquire<V>(
    mode: Mode,
    place: &Place<V>,
    l2: &L2,
    plan: &Plan,
    accept_cached: bool,
    timeout: Option<Duration>,
    stats: &Stats,
) -> Acquired<V>
where
    V: Value,
{
    let token = new_token();
    let started = Instant::now();
    let started_ms = unix_millis();
    let mut backoff = FIRST_BACKOFF;
    let mut waited = false;
    loop {
        match acquire_lock(mode, l2, &token, plan.lock_ttl).await {
            Ok(true) => {
                let lease = Lease::start(l2, token, plan.lock_ttl, plan.heartbeat);
                // Another process may have stored the value just before we got the lock.
                if accept_cached {
                    let found =
                        super::lookup::lookup(mode, place, plan, Look::FirstFresh, stats).await;
                    if let Some(v) = found.and_then(|f| f.fresh()) {
                        lease.release(mode, true, stats).await;
                        return Acquired::Found(v);
                    }
                }
                if waited {
                    // Not a handoff (the holder's value was not there): its holder died, or
                    // let go without storing.
                    stats.incr(Counter::LockTakeovers);
                }
                return Acquired::Held(lease);
            }
            Ok(false) if !waited => {
                waited = true;
                stats.incr(Counter::LockWaits);
            }
            Ok(false) => {}
            Err(e) => {
                backend_error(stats, &l2.key, "lock", &e);
                return Acquired::NotHeld;
            }
        }
        if timeout.is_some_and(|t| started.elapsed() >= t) {
            return Acquired::TimedOut;
        }
        if plan.lock_wait.is_some_and(|w| started.elapsed() >= w) {
            tracing::warn!(key = %l2.key, "steadycache: lock_wait ran out while another process held the lock; computing without it");
            return Acquired::NotHeld;
        }
        // Jittered (half to all of the backoff): waiters that started together, in one process
        // or several, do not retry in step.
        let half = backoff / 2;
        pause(mode, half + half.mul_f64(fastrand::f64())).await;
        backoff = (backoff * 3 / 2).min(MAX_BACKOFF);
        if accept_cached {
            let found = super::lookup::lookup(mode, place, plan, Look::FirstFresh, stats).await;
            if let Some(v) = found.and_then(|f| f.fresh()) {
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
pub(crate) async fn try_once(
    mode: Mode,
    l2: &L2,
    plan: &Plan,
    stats: &Stats,
) -> Option<Option<Lease>> {
    let token = new_token();
    match acquire_lock(mode, l2, &token, plan.lock_ttl).await {
        Ok(true) => Some(Some(Lease::start(l2, token, plan.lock_ttl, plan.heartbeat))),
        Ok(false) => None,
        Err(e) => {
            backend_error(stats, &l2.key, "lock", &e);
            Some(None)
        }
    }
}
