//! [`HttpCacheLayer`]: the layer and its settings (`with_*` setters, as tower's own layers).

use http::request::Parts;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use steadycache_api::{Cache, Lock, Policy, Refresh};

/// The default [`HttpCacheLayer::max_body`]: 1 MiB.
pub const DEFAULT_MAX_BODY: usize = 1 << 20;

/// The default [`HttpCacheLayer::max_ttl`]: a day.
pub const DEFAULT_MAX_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// A key function: the base key of a request (replacing its host and URI), or `None` to
/// let the request bypass the cache. See [`HttpCacheLayer::key_with`].
pub type KeyFn = Arc<dyn Fn(&Parts) -> Option<String> + Send + Sync>;

/// The settings every clone of the service shares.
#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) prefix: String,
    pub(crate) max_body: usize,
    pub(crate) max_ttl: Duration,
    pub(crate) default_ttl: Option<Duration>,
    pub(crate) lock: Lock,
    pub(crate) fail_safe_throttle: Option<Duration>,
    pub(crate) store_set_cookie: bool,
    pub(crate) key_fn: Option<KeyFn>,
}

impl Config {
    /// The engine's policy for every lookup: lifetimes come from each response
    /// (`Cache::get_or_compute_with_lifetimes`); stale responses are refreshed in the
    /// background (`stale-while-revalidate`); the layer's lock and fail-safe throttle.
    pub(crate) fn policy(&self) -> Policy {
        let policy = Policy::forever()
            .with_refresh(Refresh::Background)
            .with_lock(self.lock);
        match self.fail_safe_throttle {
            Some(t) => policy.with_fail_safe_throttle(t),
            None => policy,
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("prefix", &self.prefix)
            .field("max_body", &self.max_body)
            .field("max_ttl", &self.max_ttl)
            .field("default_ttl", &self.default_ttl)
            .field("lock", &self.lock)
            .field("key_fn", &self.key_fn.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            prefix: "http".to_owned(),
            max_body: DEFAULT_MAX_BODY,
            max_ttl: DEFAULT_MAX_TTL,
            default_ttl: None,
            lock: Lock::Local,
            fail_safe_throttle: None,
            store_set_cookie: false,
            key_fn: None,
        }
    }
}

/// A [`tower_layer::Layer`] that caches the responses of `GET` and `HEAD` requests on a
/// steadycache [`Cache`], as a shared HTTP cache (RFC 9111) does: see the [crate] docs for
/// what is stored, under which key and for how long.
///
/// ```
/// use std::time::Duration;
/// use steadycache_api::{Cache, Lock, Policy, Refresh};
/// use steadycache_tower::HttpCacheLayer;
///
/// let layer = HttpCacheLayer::new(Cache::memory())
///     .max_body(256 * 1024)
///     .max_ttl(Duration::from_secs(3600))
///     .lock(Lock::Distributed);
/// # let _ = layer;
/// ```
#[derive(Clone)]
pub struct HttpCacheLayer {
    pub(crate) cache: Cache,
    pub(crate) config: Config,
}

impl fmt::Debug for HttpCacheLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpCacheLayer")
            .field("cache", &self.cache)
            .field("config", &self.config)
            .finish()
    }
}

impl HttpCacheLayer {
    /// Cache responses on `cache` (any backend: memory, files, SQLite, Redis, ...).
    pub fn new(cache: Cache) -> Self {
        HttpCacheLayer {
            cache,
            config: Config::default(),
        }
    }

    /// The first part of every key this layer writes (default `"http"`): two layers on one
    /// cache with different prefixes never share entries, and `Cache::invalidate_prefix`
    /// with it removes them all.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.config.prefix = prefix.into();
        self
    }

    /// The largest body stored, in bytes (default [`DEFAULT_MAX_BODY`]). A larger response is
    /// streamed to its caller, not stored: at most this much of it is held in memory (the part
    /// read before the limit was crossed), the rest flows through as it arrives.
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.config.max_body = bytes;
        self
    }

    /// The longest a response is fresh, stale or kept for `stale-if-error`, whatever its
    /// `Cache-Control` says: each window is capped by it (default [`DEFAULT_MAX_TTL`]).
    pub fn max_ttl(mut self, ttl: Duration) -> Self {
        self.config.max_ttl = ttl;
        self
    }

    /// How long a storable response with neither `s-maxage` nor `max-age` is fresh. Unset (the
    /// default), such a response is not stored: this cache never guesses a lifetime.
    pub fn default_ttl(mut self, ttl: Duration) -> Self {
        self.config.default_ttl = Some(ttl);
        self
    }

    /// How concurrent misses of one key coalesce (default [`Lock::Local`]: one upstream
    /// request per key per process; [`Lock::Distributed`]: one across every process sharing
    /// the cache's store, on a backend with locks; [`Lock::None`]: none).
    pub fn lock(mut self, lock: Lock) -> Self {
        self.config.lock = lock;
        self
    }

    /// After the upstream failed and a stored response was served in its place
    /// (`stale-if-error`), serve it for this long before asking the upstream again (the
    /// engine's fail-safe throttle; default 30 s, never past the response's own
    /// `stale-if-error` window). Zero asks the upstream again on every request.
    pub fn fail_safe_throttle(mut self, throttle: Duration) -> Self {
        self.config.fail_safe_throttle = Some(throttle);
        self
    }

    /// Store responses that carry `Set-Cookie` (default false: a cookie meant for one client
    /// would be served to every client).
    pub fn store_set_cookie(mut self, on: bool) -> Self {
        self.config.store_set_cookie = on;
        self
    }

    /// Key requests with `key` instead of their host and URI: it returns the base key of a
    /// request, or `None` for a request that bypasses the cache. The method and the values of
    /// the headers the response's `Vary` names are still added to it. Two requests with one
    /// base key (and method, and values) share one entry: leave out what does not change the
    /// response (a tracking query parameter), never what does.
    pub fn key_with(
        mut self,
        key: impl Fn(&Parts) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.config.key_fn = Some(Arc::new(key));
        self
    }
}
