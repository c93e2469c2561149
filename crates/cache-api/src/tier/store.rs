//! The store a cache's engine calls: its manager wrapped once, when the cache is built, in the
//! layers every call goes through (innermost first): the backend timeout, which turns a store
//! that does not answer into a transient error; then the store breaker, which stops calling
//! a store that keeps failing. A call's [`L2`](super::L2) holds the cache's one `Store` and a
//! key, so nothing threads `(manager, timeout, breaker)` around.
//!
//! Bulk operations (clear, removal by prefix or pattern) do not come here: they run within the
//! bulk bound, outside the breaker (`crate::bulk`).

use super::breaker::Breaker;
use crate::error::Result;
use crate::manager::{BlockingManager, CacheManager};
use crate::mode::{on_manager, within, Mode};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// A cache's manager behind its backend timeout and breaker.
pub(crate) struct Store {
    manager: Arc<dyn CacheManager>,
    timeout: Duration,
    breaker: Arc<Breaker>,
}

impl Store {
    /// `manager` with each call bounded by `timeout`, behind `breaker`.
    pub(crate) fn new(
        manager: Arc<dyn CacheManager>,
        timeout: Duration,
        breaker: Arc<Breaker>,
    ) -> Store {
        Store {
            manager,
            timeout,
            breaker,
        }
    }

    /// The manager itself (its codec, its backend's capabilities).
    pub(crate) fn manager(&self) -> &Arc<dyn CacheManager> {
        &self.manager
    }

    /// The deadline of each call.
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The breaker.
    pub(crate) fn breaker(&self) -> &Arc<Breaker> {
        &self.breaker
    }

    /// `op` within the timeout, through the breaker.
    pub(crate) async fn guard<T>(&self, op: impl Future<Output = Result<T>>) -> Result<T> {
        self.breaker.guard(within(self.timeout, op)).await
    }

    /// `op` on the manager for `key`, in either mode, within the timeout, through the breaker.
    pub(crate) async fn call<T, F, Fut>(&self, mode: Mode, key: &str, op: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(Arc<dyn CacheManager>, String) -> Fut,
        Fut: Future<Output = Result<T>> + Send + 'static,
    {
        // The breaker's guard written out (see `Breaker::check`): the call's future is built
        // in place, not passed.
        self.breaker.check()?;
        let r = on_manager(mode, &self.manager, key, self.timeout, op).await;
        self.breaker.record(&r);
        r
    }

    /// The same, not through the breaker: a lease's own bookkeeping (its release, its marker)
    /// is tried even while the breaker is open.
    pub(crate) async fn call_unguarded<T, F, Fut>(&self, mode: Mode, key: &str, op: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(Arc<dyn CacheManager>, String) -> Fut,
        Fut: Future<Output = Result<T>> + Send + 'static,
    {
        on_manager(mode, &self.manager, key, self.timeout, op).await
    }

    /// `op` with `arg` on the manager for `key`, through the breaker; a sync caller uses the
    /// manager's blocking path (`blocking`) when it has one (local stores: bounded by their own
    /// timeouts, not this one).
    pub(crate) async fn through<A, T, B, F, Fut>(
        &self,
        mode: Mode,
        key: &str,
        arg: A,
        blocking: B,
        op: F,
    ) -> Result<T>
    where
        T: Send + 'static,
        B: FnOnce(&dyn BlockingManager, A) -> Result<T>,
        F: FnOnce(Arc<dyn CacheManager>, String, A) -> Fut,
        Fut: Future<Output = Result<T>> + Send + 'static,
    {
        self.breaker.check()?;
        let r = match (mode, self.manager.blocking()) {
            (Mode::Sync, Some(b)) => blocking(b, arg),
            _ => on_manager(mode, &self.manager, key, self.timeout, |m, k| op(m, k, arg)).await,
        };
        self.breaker.record(&r);
        r
    }
}
