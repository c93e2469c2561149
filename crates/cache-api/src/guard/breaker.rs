//! [`CallBreaker`]: stop calling a function that keeps failing, across every process sharing a
//! backend.

use super::{blocking, guarded, Store};
use crate::backend::Backend;
use crate::cache::Cache;
use crate::error::{CircuitOpen, Result};
use crate::memo::CacheSource;
use crate::time::unix_millis;
use std::time::Duration;

/// How long the half-open mark lives without a probe: past it the breaker closes by itself.
const HALF_OPEN_MARK: Duration = Duration::from_secs(24 * 60 * 60);

/// What [`CallBreaker::before`] let through: an ordinary call, or the one probe of a half-open
/// breaker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permit {
    /// The breaker is closed: the call counts towards its error rate.
    Closed,
    /// The breaker is half-open and this call is its probe: success closes it, failure opens
    /// it again.
    Probe,
}

/// A call breaker: a circuit breaker around a function (what `#[call_breaker]` generates), its state in a
/// cache's backend so every process sharing it shares the breaker.
///
/// Not to be confused with [`StoreBreaker`](crate::StoreBreaker), a cache's breaker in front of
/// its store: this one refuses the calls of a function that keeps failing.
///
/// * Closed: calls and failures are counted per fixed window of `period` (`incr`). When a call
///   fails and the window holds at least `min_calls` calls of which at least `error_rate`
///   failed, the breaker opens.
/// * Open: calls are refused with [`CircuitOpen`] for `half_open_after`.
/// * Half-open: one call (across processes) is let through as a probe; the others are still
///   refused. The probe's success closes the breaker (the window's counts start again), its
///   failure opens it for another `half_open_after`.
///
/// A backend that cannot answer lets every call through (fail open, logged).
pub struct CallBreaker {
    store: Store,
    key: String,
    error_rate: f64,
    min_calls: u64,
    period: Duration,
    half_open_after: Duration,
}

impl std::fmt::Debug for CallBreaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallBreaker")
            .field("key", &self.key)
            .field("error_rate", &self.error_rate)
            .field("min_calls", &self.min_calls)
            .field("period", &self.period)
            .field("half_open_after", &self.half_open_after)
            .finish()
    }
}

impl CallBreaker {
    /// A breaker named `name` on the default cache: opens when at least `error_rate` (0 to 1)
    /// of at least `min_calls` calls in a `period` failed; half-opens after `half_open_after`.
    pub fn new(
        name: &str,
        error_rate: f64,
        min_calls: u64,
        period: Duration,
        half_open_after: Duration,
    ) -> Self {
        CallBreaker {
            store: Store::new(CacheSource::Default),
            key: format!("steadycache#breaker:{name}"),
            error_rate: if error_rate.is_finite() {
                error_rate.clamp(0.0, 1.0)
            } else {
                1.0
            },
            min_calls: min_calls.max(1),
            period: period.clamp(Duration::from_millis(1), super::MAX_PERIOD),
            half_open_after: half_open_after.clamp(Duration::from_millis(1), super::MAX_PERIOD),
        }
    }

    /// Keep the state in this cache (opened on first use).
    pub fn with_cache(mut self, source: CacheSource) -> Self {
        self.store = Store::new(source);
        self
    }

    /// Before a call: let it through (as an ordinary call or as the probe), or refuse it.
    pub async fn before(&self) -> std::result::Result<Permit, CircuitOpen> {
        self.decide(self.state_op().await)
    }

    /// Sync twin of [`before`](Self::before).
    pub fn before_blocking(&self) -> std::result::Result<Permit, CircuitOpen> {
        self.decide(blocking(self.state_op()))
    }

    /// After a call let through: count it (`ok`: it succeeded).
    pub async fn after(&self, permit: Permit, ok: bool) {
        let r = self.after_op(permit, ok).await;
        log_failure(r);
    }

    /// Sync twin of [`after`](Self::after).
    pub fn after_blocking(&self, permit: Permit, ok: bool) {
        log_failure(blocking(self.after_op(permit, ok)));
    }

    fn decide(&self, state: Result<Option<Permit>>) -> std::result::Result<Permit, CircuitOpen> {
        match state {
            Ok(Some(p)) => Ok(p),
            Ok(None) => Err(CircuitOpen {
                retry_after: self.half_open_after,
            }),
            Err(e) => {
                tracing::warn!(error = %e, "steadycache: call breaker unavailable; letting the call through");
                Ok(Permit::Closed)
            }
        }
    }

    /// `Some(permit)` to let the call through, `None` to refuse it.
    fn state_op(
        &self,
    ) -> impl std::future::Future<Output = Result<Option<Permit>>> + Send + 'static {
        let cache = self.store.cache();
        let (c, key, half_open_after) = (cache.clone(), self.key.clone(), self.half_open_after);
        guarded(cache, async move {
            let b = c.manager().backend();
            if b.get(&format!("{key}#open")).await?.is_some() {
                return Ok(None);
            }
            if b.get(&format!("{key}#half")).await?.is_none() {
                return Ok(Some(Permit::Closed));
            }
            let probe = b
                .set_if_absent(
                    &format!("{key}#probe"),
                    b"1".to_vec(),
                    Some(half_open_after),
                )
                .await?;
            Ok(probe.then_some(Permit::Probe))
        })
    }

    fn after_op(
        &self,
        permit: Permit,
        ok: bool,
    ) -> impl std::future::Future<Output = Result<()>> + Send + 'static {
        let cache = self.store.cache();
        let c: Cache = cache.clone();
        let (key, period, half_open_after) = (self.key.clone(), self.period, self.half_open_after);
        let (error_rate, min_calls) = (self.error_rate, self.min_calls);
        guarded(cache, async move {
            let b = c.manager().backend();
            let p = u64::try_from(period.as_millis()).unwrap_or(u64::MAX).max(1);
            let window = format!("{key}#w{}", unix_millis() / p);
            let (calls, errors) = (format!("{window}#calls"), format!("{window}#errors"));
            match (permit, ok) {
                (Permit::Probe, true) => {
                    tracing::info!(breaker = %key, "steadycache: probe succeeded; circuit closed");
                    for k in [format!("{key}#half"), format!("{key}#probe"), calls, errors] {
                        b.delete(&k).await?;
                    }
                }
                (Permit::Probe, false) => {
                    tracing::warn!(breaker = %key, "steadycache: probe failed; circuit open again");
                    open(b, &key, half_open_after).await?;
                    b.delete(&format!("{key}#probe")).await?;
                }
                (Permit::Closed, true) => {
                    b.incr(&calls, 1, Some(period.saturating_mul(2))).await?;
                }
                (Permit::Closed, false) => {
                    let n = b.incr(&calls, 1, Some(period.saturating_mul(2))).await?;
                    let e = b.incr(&errors, 1, Some(period.saturating_mul(2))).await?;
                    let (n, e) = (n.max(1) as f64, e.max(0) as f64);
                    if n >= min_calls as f64 && e / n >= error_rate {
                        tracing::warn!(breaker = %key, calls = n, errors = e, "steadycache: circuit opened");
                        open(b, &key, half_open_after).await?;
                    }
                }
            }
            Ok(())
        })
    }
}

/// Open the breaker `key` for `half_open_after`, marking it half-open after that.
async fn open(b: &dyn Backend, key: &str, half_open_after: Duration) -> Result<()> {
    b.set(&format!("{key}#open"), b"1".to_vec(), Some(half_open_after))
        .await?;
    b.set(&format!("{key}#half"), b"1".to_vec(), Some(HALF_OPEN_MARK))
        .await
}

fn log_failure(r: Result<()>) {
    if let Err(e) = r {
        tracing::warn!(error = %e, "steadycache: call breaker could not count a call");
    }
}
