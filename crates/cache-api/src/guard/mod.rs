//! Guards around a function, shared by every process using one backend: a rate limit
//! ([`RateLimiter`], `#[rate_limit]`) and a call breaker, a circuit breaker around a function ([`CallBreaker`],
//! `#[call_breaker]`). They keep their state in the cache's backend (its atomic counters,
//! `incr`; Redis' sliding-window script for rate limits), under internal keys
//! (`steadycache#rate:<name>`, `steadycache#breaker:<name>…`), and fail open: a backend that
//! cannot answer admits the call (logged).

mod breaker;
mod rate;

pub use breaker::{CallBreaker, Permit};
pub use rate::RateLimiter;

use crate::cache::Cache;
use crate::defaults::default_cache;
use crate::error::Result;
use crate::memo::CacheSource;
use crate::runtime;
use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

/// The longest period (and half-open delay) a guard keeps: longer ones are clamped, as stores
/// keep expiries in milliseconds.
pub const MAX_PERIOD: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// Where a guard keeps its state: the cache, opened on first use.
struct Store {
    source: CacheSource,
    cache: OnceLock<Cache>,
}

impl Store {
    fn new(source: CacheSource) -> Self {
        Store {
            source,
            cache: OnceLock::new(),
        }
    }

    fn cache(&self) -> &Cache {
        self.cache.get_or_init(|| match self.source {
            CacheSource::Default => default_cache(),
            CacheSource::With(f) => f(),
        })
    }
}

/// `op` on `cache`'s backend, within its backend timeout and behind its breaker; owned, so a
/// sync caller can hand it to the library's runtime.
fn guarded<T>(
    cache: &Cache,
    op: impl Future<Output = Result<T>> + Send + 'static,
) -> impl Future<Output = Result<T>> + Send + 'static
where
    T: Send + 'static,
{
    let store = cache.store().clone();
    async move { store.guard(op).await }
}

/// Run `fut` to its end from a sync caller (on the library's runtime; works inside a runtime
/// too).
fn blocking<T: Send + 'static>(fut: impl Future<Output = Result<T>> + Send + 'static) -> Result<T> {
    runtime::block_on(fut)?
}
