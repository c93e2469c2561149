//! [`RateLimiter`]: at most `limit` calls per `period`, across every process sharing a backend.

use super::{blocking, guarded, Store};
use crate::cache::Cache;
use crate::error::{Error, RateLimited, Result};
use crate::memo::CacheSource;
use crate::time::unix_millis;
use std::time::Duration;

/// At most `limit` calls admitted per `period`, counted in a cache's backend, so every process
/// sharing it shares the limit (what `#[rate_limit]` generates).
///
/// * On a backend with an atomic sliding window (Redis: a sorted-set log in one Lua script,
///   on the server's clock), it is exact: at most `limit` admitted in any span of `period`.
/// * Elsewhere it counts fixed windows of `period` aligned on the Unix epoch with `incr`
///   (files, SQLite, MongoDB, S3, memory): at most `limit` in each window, so up to twice the
///   limit in a span of `period` that straddles two windows.
///
/// A backend that cannot answer admits the call (fail open, logged).
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use steadycache_api::RateLimiter;
/// use std::time::Duration;
/// let limiter = RateLimiter::new("docs-example", 2, Duration::from_secs(60));
/// assert!(limiter.try_acquire().await.is_ok());
/// assert!(limiter.try_acquire().await.is_ok());
/// assert!(limiter.try_acquire().await.is_err(), "a third call within the minute");
/// # });
/// ```
pub struct RateLimiter {
    store: Store,
    key: String,
    limit: u64,
    period: Duration,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("key", &self.key)
            .field("limit", &self.limit)
            .field("period", &self.period)
            .finish()
    }
}

impl RateLimiter {
    /// A limiter named `name` (every limiter of that name on one backend shares the limit) on
    /// the default cache. A `limit` of 0 admits nothing; `period` is kept within 1 ms and
    /// a year.
    pub fn new(name: &str, limit: u64, period: Duration) -> Self {
        RateLimiter {
            store: Store::new(CacheSource::Default),
            key: format!("steadycache#rate:{name}"),
            limit,
            period: period.clamp(Duration::from_millis(1), super::MAX_PERIOD),
        }
    }

    /// Keep the counts in this cache (opened on first use).
    pub fn with_cache(mut self, source: CacheSource) -> Self {
        self.store = Store::new(source);
        self
    }

    /// Admit one call, or say how long until one may be.
    pub async fn try_acquire(&self) -> std::result::Result<(), RateLimited> {
        verdict(self.attempt().await)
    }

    /// Sync twin of [`try_acquire`](Self::try_acquire).
    pub fn try_acquire_blocking(&self) -> std::result::Result<(), RateLimited> {
        verdict(blocking(self.attempt()))
    }

    fn attempt(
        &self,
    ) -> impl std::future::Future<Output = Result<Option<Duration>>> + Send + 'static {
        let cache = self.store.cache();
        let op = attempt(cache.clone(), self.key.clone(), self.limit, self.period);
        guarded(cache, op)
    }

    /// Wait until a call is admitted.
    pub async fn acquire(&self) {
        while let Err(r) = self.try_acquire().await {
            tokio::time::sleep(backoff(r.retry_after)).await;
        }
    }

    /// Sync twin of [`acquire`](Self::acquire): blocks this thread.
    pub fn acquire_blocking(&self) {
        while let Err(r) = self.try_acquire_blocking() {
            std::thread::sleep(backoff(r.retry_after));
        }
    }
}

/// The wait before trying again: the time a slot frees, plus up to a tenth (at least 1 ms) so
/// that waiters do not all retry at once.
fn backoff(wait: Duration) -> Duration {
    let spread = (wait / 10).max(Duration::from_millis(1));
    wait + spread.mul_f64(fastrand::f64())
}

/// A backend's answer as the caller's: a failure admits (fail open).
fn verdict(r: Result<Option<Duration>>) -> std::result::Result<(), RateLimited> {
    match r {
        Ok(None) => Ok(()),
        Ok(Some(retry_after)) => Err(RateLimited { retry_after }),
        Err(e) => {
            tracing::warn!(error = %e, "steadycache: rate limit unavailable; admitting the call");
            Ok(())
        }
    }
}

/// One attempt: the backend's sliding window, or fixed windows over `incr`.
async fn attempt(
    cache: Cache,
    key: String,
    limit: u64,
    period: Duration,
) -> Result<Option<Duration>> {
    if limit == 0 {
        return Ok(Some(period));
    }
    let backend = cache.manager().backend();
    match backend.admit_rate(&key, limit, period).await {
        Err(Error::Unsupported { .. }) => {}
        other => return other,
    }
    let p = u64::try_from(period.as_millis()).unwrap_or(u64::MAX).max(1);
    let now = unix_millis();
    let window = now / p;
    let counter = format!("{key}#{window}");
    let n = backend
        .incr(&counter, 1, Some(period.saturating_mul(2)))
        .await?;
    if u64::try_from(n).unwrap_or(0) <= limit && n > 0 {
        return Ok(None);
    }
    let next = window.saturating_add(1).saturating_mul(p);
    Ok(Some(Duration::from_millis(next.saturating_sub(now).max(1))))
}
