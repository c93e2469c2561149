//! The store breaker in front of a cache's backend (FusionCache's distributed-cache circuit
//! breaker). A store that is down costs each call a failed round trip, or a whole
//! `backend_timeout` when it hangs: with Redis killed, every call paid about 0.8 s before
//! failing open. After [`StoreBreaker::threshold`] consecutive transient failures
//! ([`Error::is_transient`]: the store is unreachable or did not answer in time) the breaker
//! opens: the engine stops calling the backend (calls run their function, or are served from
//! L1), and a probe on the library runtime pings the store every [`StoreBreaker::cooldown`].
//! The first ping that succeeds closes the breaker and caching resumes by itself, without a
//! restart of the process. Errors that are not transient (a corrupt entry, a value that is not
//! a counter) say nothing about the store's health and leave the breaker alone.
//!
//! A closed breaker costs a call one relaxed atomic load before and (on success, only when
//! failures had been counted) one store after.

use crate::error::{Error, Result};
use crate::events::EventKind;
use crate::manager::CacheManager;
use crate::stats::Hub;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// The store breaker: when a cache stops calling a failing backend, and how often it checks
/// whether it is back (see [`CacheBuilder::store_breaker`](crate::CacheBuilder::store_breaker)).
///
/// Not to be confused with [`CallBreaker`](crate::CallBreaker) (`#[call_breaker]`), a breaker
/// around one function that refuses its calls while the function keeps failing: this one
/// guards the cache's store, and a call it skips still runs its function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreBreaker {
    /// Consecutive transient failures that open the breaker (at least 1).
    pub threshold: u32,
    /// How long the breaker stays open before each probe of the store.
    pub cooldown: Duration,
}

impl Default for StoreBreaker {
    /// Open after 3 consecutive transient failures, probe every second.
    fn default() -> Self {
        StoreBreaker {
            threshold: 3,
            cooldown: Duration::from_secs(1),
        }
    }
}

impl StoreBreaker {
    /// Open after `threshold` consecutive transient failures (0 is taken as 1); probe every
    /// `cooldown` (at least 1 ms).
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        StoreBreaker {
            threshold: threshold.max(1),
            cooldown: cooldown.max(Duration::from_millis(1)),
        }
    }
}

/// The state of one cache's breaker.
pub(crate) struct Breaker {
    config: Option<StoreBreaker>,
    failures: AtomicU32,
    open: AtomicBool,
    /// Times it opened (for the stats and logs).
    opened: AtomicU32,
    /// The manager the probe pings; weak, so a dropped cache ends its probe.
    manager: Weak<dyn CacheManager>,
    timeout: Duration,
    /// Where its openings and closings are reported.
    events: Arc<Hub>,
}

impl Breaker {
    /// A closed breaker for `manager`'s backend; `None`: never opens.
    pub(crate) fn new(
        config: Option<StoreBreaker>,
        manager: &Arc<dyn CacheManager>,
        timeout: Duration,
        events: Arc<Hub>,
    ) -> Arc<Breaker> {
        Arc::new(Breaker {
            config: config.map(|c| StoreBreaker::new(c.threshold, c.cooldown)),
            failures: AtomicU32::new(0),
            open: AtomicBool::new(false),
            opened: AtomicU32::new(0),
            manager: Arc::downgrade(manager),
            timeout,
            events,
        })
    }

    /// Whether calls skip the backend now.
    #[inline]
    pub(crate) fn is_open(&self) -> bool {
        self.open.load(Ordering::Relaxed)
    }

    /// How many times the breaker has opened.
    pub(crate) fn times_opened(&self) -> u32 {
        self.opened.load(Ordering::Relaxed)
    }

    /// Run `op` unless the breaker is open (then an [`Error::Unavailable`] at once), and count
    /// its outcome.
    pub(crate) async fn guard<T>(
        self: &Arc<Self>,
        op: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        self.check()?;
        let r = op.await;
        self.record(&r);
        r
    }

    /// `Err` while the breaker is open (a call is refused). With [`record`](Self::record)
    /// after the call, what [`guard`](Self::guard) does, for a caller that builds its future
    /// in place (a future passed to an `async fn` is kept twice in its state).
    pub(crate) fn check(&self) -> Result<()> {
        if self.is_open() {
            return Err(Error::unavailable(
                "backend",
                "store breaker open: the store failed repeatedly and is being probed in the background",
            ));
        }
        Ok(())
    }

    /// Count a call's outcome (see [`check`](Self::check)).
    pub(crate) fn record<T>(self: &Arc<Self>, r: &Result<T>) {
        let Some(config) = self.config else {
            return;
        };
        match r {
            Ok(_) => {
                if self.failures.load(Ordering::Relaxed) != 0 {
                    self.failures.store(0, Ordering::Relaxed);
                }
            }
            Err(e) if e.is_transient() => {
                let n = self
                    .failures
                    .fetch_add(1, Ordering::Relaxed)
                    .saturating_add(1);
                if n >= config.threshold && !self.open.swap(true, Ordering::AcqRel) {
                    self.opened.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(failures = n, error = %e, "steadycache: backend failing; store breaker open, calls skip it until a probe succeeds");
                    self.events.emit("", EventKind::BreakerOpened);
                    self.spawn_probe(config.cooldown);
                }
            }
            Err(_) => {}
        }
    }

    fn spawn_probe(self: &Arc<Self>, cooldown: Duration) {
        let breaker = Arc::downgrade(self);
        let rt = match crate::runtime::library_runtime() {
            Ok(rt) => rt,
            Err(e) => {
                // Without a probe the breaker would never close: stay closed instead.
                tracing::warn!(error = %e, "steadycache: no runtime to probe the backend; store breaker stays closed");
                self.close();
                return;
            }
        };
        rt.spawn(async move {
            loop {
                tokio::time::sleep(cooldown).await;
                let Some(b) = breaker.upgrade() else { return };
                let Some(m) = b.manager.upgrade() else { return };
                let ping = m.backend().ping();
                // The store answered (even with an error that is not transient, such as a
                // ping the credentials do not allow): it is reachable again.
                let answered = match tokio::time::timeout(b.timeout, ping).await {
                    Ok(Ok(())) => true,
                    Ok(Err(e)) => !e.is_transient(),
                    Err(_) => false,
                };
                if answered {
                    tracing::info!("steadycache: backend answers again; store breaker closed");
                    b.close();
                    return;
                }
            }
        });
    }

    fn close(&self) {
        self.failures.store(0, Ordering::Relaxed);
        self.open.store(false, Ordering::Release);
        self.events.emit("", EventKind::BreakerClosed);
    }
}
