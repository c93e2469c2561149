//! The worked example of a [`Layer`]: retry an operation that failed for a reason that may
//! pass.

use super::{Layer, Op};
use crate::error::Result;
use std::future::Future;
use std::time::Duration;

/// Retries an operation whose error is transient ([`Error::is_transient`]: the store did not
/// answer, a connection broke) when running it again is safe ([`Op::is_idempotent`]: never a
/// counter, a rate admission, a lock's acquisition or a `set_if_absent`, whose first try may
/// have landed).
///
/// Up to `attempts` tries in all, waiting `backoff` before the second, twice that before the
/// third, and so on (at most 1 s between two). Every try of one call runs within the cache's
/// one [`backend_timeout`](crate::CacheBuilder::backend_timeout), which bounds the call as a
/// whole, so a store that hangs still fails open in time; and the store breaker counts a
/// call that failed after its retries once. Sync callers of a local store (files, SQLite) are
/// retried on their own thread.
///
/// [`Error::is_transient`]: crate::Error::is_transient
#[derive(Clone, Copy, Debug)]
pub struct Retry {
    attempts: u32,
    backoff: Duration,
}

/// The most a retry waits between two tries.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

impl Retry {
    /// Up to `attempts` tries of each operation (at least one), 10 ms apart at first.
    pub fn new(attempts: u32) -> Self {
        Retry {
            attempts: attempts.max(1),
            backoff: Duration::from_millis(10),
        }
    }

    /// Wait `backoff` before the first retry (doubling after each, up to 1 s).
    pub fn with_backoff(mut self, backoff: Duration) -> Self {
        self.backoff = backoff.min(MAX_BACKOFF);
        self
    }

    /// After try `n` ended with `r`: `Ok` with what to return, or `Err` with the wait before
    /// the next try (then counted in `n`).
    fn after<T>(
        &self,
        n: &mut u32,
        op: Op,
        key: &str,
        r: Result<T>,
    ) -> std::result::Result<Result<T>, Duration> {
        let err = match r {
            Err(e) => e,
            ok => return Ok(ok),
        };
        if *n >= self.attempts || !op.is_idempotent() || !err.is_transient() {
            return Ok(Err(err));
        }
        *n += 1;
        tracing::debug!(op = op.name(), key, try_ = *n, error = %err, "steadycache: retrying");
        let doublings = n.saturating_sub(2).min(16);
        Err(self.backoff.saturating_mul(1 << doublings).min(MAX_BACKOFF))
    }
}

impl Layer for Retry {
    const BLOCKING: bool = true;

    async fn around<'a, T, F>(
        &'a self,
        op: Op,
        key: &'a str,
        mut next: impl FnMut() -> F + Send + 'a,
    ) -> Result<T>
    where
        T: Send + 'a,
        F: Future<Output = Result<T>> + Send + 'a,
    {
        let mut n = 1;
        loop {
            match self.after(&mut n, op, key, next().await) {
                Ok(r) => return r,
                Err(wait) => tokio::time::sleep(wait).await,
            }
        }
    }

    fn around_blocking<T>(
        &self,
        op: Op,
        key: &str,
        mut next: impl FnMut() -> Result<T>,
    ) -> Result<T> {
        let mut n = 1;
        loop {
            match self.after(&mut n, op, key, next()) {
                Ok(r) => return r,
                Err(wait) => std::thread::sleep(wait),
            }
        }
    }
}
