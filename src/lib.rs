//! # steadycache
//!
//! Memoize Rust functions, sync and async, into pluggable storage. A slow, rate-limited or
//! expensive call runs once; every later call with the same arguments is served from the cache,
//! fresh or — while it refreshes — stale, never wrong.
//!
//! ```
//! use steadycache::cached;
//! use std::sync::atomic::{AtomicU32, Ordering};
//!
//! static CALLS: AtomicU32 = AtomicU32::new(0);
//!
//! #[cached(ttl = "10m")]
//! fn exchange_rate(from: &str, to: &str) -> Result<f64, String> {
//!     CALLS.fetch_add(1, Ordering::SeqCst); // stands for a slow HTTP call
//!     Ok(if from == to { 1.0 } else { 1.08 })
//! }
//!
//! assert_eq!(exchange_rate("EUR", "USD"), Ok(1.08));
//! assert_eq!(exchange_rate("EUR", "USD"), Ok(1.08)); // from the cache
//! assert_eq!(CALLS.load(Ordering::SeqCst), 1);
//!
//! // The per-function handle: stats, invalidate one call, clear all.
//! assert_eq!(exchange_rate_cache().stats().hits, 1);
//! exchange_rate_cache().invalidate_sync("EUR", "USD").unwrap(); // `invalidate(..).await` in async code
//! exchange_rate_cache().clear_sync().unwrap();
//! ```
//!
//! ## `#[cached]` options
//!
//! | option | meaning |
//! |---|---|
//! | `ttl = "10m"` | hard expiry (a string parsed at compile time, or a `Duration` expression, evaluated each time a value is stored); durations count whole milliseconds: a literal below 1 ms does not compile, one too long to count is "never" |
//! | `ttl_fn = path::to_fn` | the ttl of each value, chosen when it is stored: `fn(&V) -> Duration` (adaptive caching; `V` is the `Ok` type of a `Result` function, else the return type) |
//! | `cache_if = path::to_fn` | store a value only when this `fn(&V) -> bool` says so (the value is returned either way) |
//! | `stale_after = "1m"` | soft expiry: the next caller refreshes (blocking; others coalesce) |
//! | `stale_while_revalidate = "1m"` | after `ttl`, serve stale for this long while ONE background refresh per key per process runs (free functions; arguments are cloned for the refresh) |
//! | `refresh = "block" \| "background"` | refresh mode for `stale_after` |
//! | `lock = "none" \| "local" \| "distributed"` | coalescing of concurrent misses: none, in-process single-flight (default), or across processes through the backend |
//! | `lock_ttl = "30s"` | lease of a distributed lock: renewed every third of it while the holder computes; a dead holder's lock expires after it |
//! | `lock_wait = "10s"` | longest wait on another process's lock before computing anyway (default: while its holder renews the lease) |
//! | `jitter = 0.1` | shorten each entry's lifetimes by a random fraction below this |
//! | `negative_ttl = "30s"` | also cache negative results for this long: `None` of a function returning `Option`, `Err` of one returning `Result` (error type: serde + `Clone`; not with `fail_safe`) |
//! | `serve_stale_on_error = false` | do not serve the stale value when its refresh fails |
//! | `fail_safe = "1h"` | keep values this long past their `ttl`; serve one when its recompute fails (an error; after a panic, to the callers that waited on it); needs a `ttl` (or `ttl_fn`), not with `negative_ttl` on a `Result` function (which stores the failure instead) |
//! | `fail_safe_throttle = "30s"` | after a failed recompute (blocking, background or early), serve the old value this long before calling the function again (default 30 s, with or without `fail_safe`; the expression `std::time::Duration::ZERO` turns it off) |
//! | `early_refresh = 1.0` | early refresh (XFetch): before a value goes stale, each read refreshes it with a probability that grows as the deadline nears and with how long the value took to compute (`1.0` is the paper's optimum; larger refreshes earlier); the value is served meanwhile, one refresh per key per process |
//! | `soft_timeout = "100ms"` | with an old value to serve, stop waiting for a slow function after this long and serve it; the computation finishes in the background and stores its value (free functions); shorter than `hard_timeout` |
//! | `hard_timeout = "2s"` | stop waiting even without an old value: the caller gets `Err(FactoryTimeout.into())` (`Result` functions whose error is `From<steadycache::FactoryTimeout>`) |
//! | `background_completion = false` | a computation abandoned by a timeout stores nothing (an async one is cancelled) |
//! | `min_calls = 3` | store a value only once the same arguments were computed this many times within the ttl (a counter in the backend, shared by its processes) |
//! | `max_hits = 100` | drop an entry after it was served this many times (a counter in the backend; such hits go through the engine, not the typed fast path) |
//! | `cache = "redis://..."` or `cache = expr` | the cache (default: [`default_cache`]); a URL that cannot be opened is served from memory meanwhile and opened again in the background |
//! | `strict = true` | while `cache = "url"` cannot be opened, return its error (`Result` functions whose error is `From<steadycache::Error>`) instead of serving from memory meanwhile |
//! | `key = "user:{id}:{q.page}"` | readable key template, checked at compile time: each placeholder is an argument or a field path from one (`{q.page}`, `{self.id}`); values are escaped (everything but letters, digits and `-_.~`), the text holds no `#` or `%`, and placeholders are separated by a character such as `:` or `/`, so two calls never share a key |
//! | `skip(client, conn)` | arguments left out of the key |
//! | `convert = expr` | hash this expression (a `Serialize` value built from the arguments) instead of the key arguments; a generic function needs it or `key` |
//! | `key_self` / `key_self = false` | a method says whether `self` is in its key: `key_self` hashes `self` (`Serialize`), `key_self = false` shares entries across instances; a method that says neither (and uses no `self` in `key` or `convert`) does not compile |
//! | `key_prefix = "rates"` | namespace instead of `module.path.fn_name` |
//! | `tags = ["user:{id}", "users"]` | tags of each value (templates over the arguments, the rules and escaping of `key`): `Cache::invalidate_tag("user:5")` makes every value stored with that tag a miss, in every process |
//! | `version = "2"` | pin the key version (default: a hash of the function's tokens, so changing the body retires old entries) |
//! | `max_bytes = 1 << 20` | bound of the function's typed in-process tier, within the cache's budget (which all its functions share) |
//!
//! Arguments in the key must implement `serde::Serialize`; return values must be `Serialize +
//! DeserializeOwned + Clone + Send + Sync + 'static`. Errors say so at compile time.
//!
//! Maps in the key are canonical: the entries of every map in the arguments (at any depth, in
//! a struct, a `Vec`, another map) are hashed in the order of their serialized bytes, so equal
//! `HashMap`s give one key whatever their insertion order or hasher seed, in every process.
//! **Sets cannot be**: serde serializes a set as a sequence, which cannot be told apart from a
//! `Vec`, so a `HashSet` would be hashed in its iteration order, which differs between equal
//! sets. Pass a `BTreeSet` or a sorted `Vec` instead (or `convert = …` to one); an argument
//! whose type names `HashSet` (or `FxHashSet`, `AHashSet`, …) is a compile error. A set inside
//! a struct of yours, or behind a type alias, is not seen: sort it in its `Serialize`.
//!
//! What is stored: `Ok` and `Some` values by default; `None`/`Err` only with
//! `negative_ttl`. When a leader's call fails, the callers waiting on it get a clone of its error if
//! the error type is `Clone` (one run for the whole round); otherwise (and after a panic) they
//! all compute at once, side by side (`1 + waiters` runs), never one after another. Nobody
//! hangs.
//!
//! ## Strategies
//!
//! **Fail-safe** (`fail_safe`, `fail_safe_throttle`): an upstream that fails after a value's
//! ttl does not fail its callers. The value is kept `fail_safe` past its ttl; a call that finds
//! it expired computes, and if the function returns an error the old value is served instead
//! (counted as `fail_safe` in the stats), then served for `fail_safe_throttle` (30 s by
//! default) before the function is called again, so a failing upstream sees one call per
//! throttle rather than one per caller. The callers waiting on the failing round get the old
//! value too, also when it panicked (the panic stays with the caller whose call panicked).
//!
//! ```
//! use steadycache::cached;
//! use std::sync::atomic::{AtomicBool, Ordering};
//!
//! static UPSTREAM_DOWN: AtomicBool = AtomicBool::new(false);
//!
//! #[cached(ttl = "1m", fail_safe = "1h", fail_safe_throttle = "30s")]
//! fn price(sku: u32) -> Result<u64, String> {
//!     if UPSTREAM_DOWN.load(Ordering::Relaxed) {
//!         return Err("pricing service down".into());
//!     }
//!     Ok(u64::from(sku) * 100)
//! }
//!
//! assert_eq!(price(7), Ok(700));
//! UPSTREAM_DOWN.store(true, Ordering::Relaxed);
//! // Within the ttl: a hit. After it, for up to an hour: 700 while the service fails.
//! assert_eq!(price(7), Ok(700));
//! ```
//!
//! **Early refresh** (`early_refresh`, XFetch, Vattani et al., VLDB 2015): a hot key is
//! refreshed shortly before it goes stale instead of by every caller at once after. Each value
//! remembers how long it took; inside a window before its deadline (16 × that time × beta) a
//! read rolls dice, refreshing with probability `e^(-gap / (took · beta))`. Reads before the
//! window are plain hits (the window is prepared when the value is stored). The value keeps
//! being served while one refresh per key per process runs (in the background for free
//! functions; a method refreshes inline in the caller that rolled). In a seeded simulation of
//! readers that do not coordinate, recomputations per expiry stay about 2.3 (beta 1) or 1.5
//! (beta 2) whatever the number of readers, where 10, 100 or 1,000 readers without it
//! recompute 10, 100 or 1,000 times; with a distributed lock one refresh runs per fleet.
//!
//! ```
//! #[steadycache::cached(ttl = "10m", early_refresh = 1.0)]
//! fn leaderboard(game: u32) -> Vec<u32> {
//!     vec![game; 3] // stands for a slow query
//! }
//! assert_eq!(leaderboard(1), vec![1, 1, 1]);
//! ```
//!
//! **Factory timeouts** (`soft_timeout`, `hard_timeout`, `background_completion`): a slow
//! function does not hold its callers. With an old value (stale, or kept by `fail_safe`), a
//! caller waits `soft_timeout` and then gets the old value; without one, it waits
//! `hard_timeout` and then gets [`FactoryTimeout`] as its error. The computation goes on in the
//! background (a task; a sync function on the library's bounded pool) and stores its value for
//! the next caller, unless `background_completion = false`. Callers waiting on the same
//! computation wait within the same limits. Free functions (the computation outlives the call).
//!
//! ```
//! use steadycache::{cached, FactoryTimeout};
//!
//! #[cached(ttl = "1m", fail_safe = "1h", soft_timeout = "100ms", hard_timeout = "2s")]
//! fn quote(symbol: String) -> Result<f64, steadycache::Error> {
//!     Ok(if symbol == "ACME" { 12.5 } else { 1.0 }) // stands for a call that may hang
//! }
//! assert_eq!(quote("ACME".into()).ok(), Some(12.5));
//! // `steadycache::Error` takes the timeout with `From` (as `Error::Refused`), and so can an
//! // error type of your own:
//! let e: steadycache::Error = FactoryTimeout { after: std::time::Duration::from_secs(2) }.into();
//! assert!(e.to_string().contains("hard_timeout"));
//! ```
//!
//! **Hit counts** (`min_calls`, `max_hits`), on the backend's atomic counters (so every process
//! sharing it counts together): `min_calls = 3` stores a value only at the third computation of
//! the same arguments within the ttl (one-off calls do not fill the cache; `not_admitted` in
//! the stats); `max_hits = 100` drops an entry after it was served 100 times.
//! On S3, which has no atomic increment, these rules (and the guards below) fail open.
//!
//! ```
//! use std::sync::atomic::{AtomicU32, Ordering};
//! static RUNS: AtomicU32 = AtomicU32::new(0);
//!
//! #[steadycache::cached(ttl = "1h", min_calls = 2)]
//! fn report(id: u32) -> u32 {
//!     RUNS.fetch_add(1, Ordering::SeqCst);
//!     id
//! }
//! for _ in 0..5 {
//!     report(9);
//! }
//! assert_eq!(RUNS.load(Ordering::SeqCst), 2, "stored at the second call, then hits");
//! ```
//!
//! **Rate limits and call breakers** (circuit breakers around a function), attributes of their own on any function, their state
//! in a cache's backend so every process sharing it shares them (cashews' `rate_limit` and
//! `circuit_breaker`):
//!
//! * `#[rate_limit(limit = 10, period = "1s", cache = "redis://…", on_exceed = "error" | "wait",
//!   name = "…")]`: at most `limit` calls per `period` ([`RateLimiter`]). On Redis an exact
//!   sliding window (a sorted-set log in one Lua script, on the server's clock); elsewhere fixed
//!   windows over `incr` (at most `limit` per window). `"error"` (the default) returns
//!   `Err(RateLimited.into())`; `"wait"` waits for a slot. In a test of 4 processes × 200 calls
//!   under 10/s on Redis, the upstream saw at most 10 calls in any second.
//! * `#[call_breaker(error_rate = 0.5, min_calls = 20, period = "1m", half_open_after = "30s",
//!   cache = …)]`: when at least `error_rate` of at least `min_calls` calls in a period failed
//!   (returned `Err`), calls are refused with `Err(CircuitOpen.into())` for `half_open_after`;
//!   then one probe call (across processes) decides: success closes it, failure opens it again
//!   ([`CallBreaker`]).
//!
//! Written under `#[cached]`, they guard the computations only: hits are neither counted nor
//! refused (free functions; on a cached method, put them on a free function it calls, and
//! `negative_ttl` on a `Result` function is refused, as it would store their refusals). A rate limit is checked before a
//! breaker, whichever is written first, so its refusals never count as failures. A method's
//! guard needs `name = "…"`. A backend that cannot answer lets calls through.
//!
//! ```
//! use steadycache::{cached, call_breaker, rate_limit, CircuitOpen, RateLimited};
//!
//! #[derive(Debug)]
//! enum ApiError {
//!     Limited(RateLimited),
//!     Open(CircuitOpen),
//! }
//! impl From<RateLimited> for ApiError {
//!     fn from(e: RateLimited) -> Self { ApiError::Limited(e) }
//! }
//! impl From<CircuitOpen> for ApiError {
//!     fn from(e: CircuitOpen) -> Self { ApiError::Open(e) }
//! }
//!
//! #[cached(ttl = "5m")]
//! #[rate_limit(limit = 2, period = "1m")]
//! #[call_breaker(error_rate = 0.5, min_calls = 10, period = "1m", half_open_after = "30s")]
//! fn repo_stars(repo: String) -> Result<u32, ApiError> {
//!     Ok(repo.len() as u32) // stands for a rate-limited web API
//! }
//! assert_eq!(repo_stars("a".into()).unwrap(), 1);
//! assert_eq!(repo_stars("a".into()).unwrap(), 1); // a hit: not counted
//! assert_eq!(repo_stars("bb".into()).unwrap(), 2);
//! assert!(matches!(repo_stars("ccc".into()), Err(ApiError::Limited(_))));
//! ```
//!
//! **Methods and generics**: key templates read fields (`key = "user:{self.id}:{q.page}"`); a
//! generic function is memoized with an explicit `key` or `convert = expr` (its return type
//! may not depend on its type parameters); a method must say whether instances share entries
//! (`key_self`, `self` in `key` or `convert`, or `key_self = false`). A method's handle is a
//! set of associated functions beside it: `name_cache()` (the `Memo`) and every per-call
//! control a free function's handle has, as `name_refresh`, `name_bypass`, `name_call_with`,
//! `name_call_with_origin` (taking the method's receiver), `name_prime`, `name_get_cached`,
//! `name_key` and `name_invalidate` (taking `&self` when the key or tags read it), with the
//! same `_sync` twins. [`cached`] lists what it defines, and how those names can clash.
//!
//! ```
//! struct Account { id: u64 }
//! impl Account {
//!     #[steadycache::cached(key = "balance:{self.id}:{month}", ttl = "10m")]
//!     fn balance(&self, month: u32) -> u64 { self.id * 100 + u64::from(month) }
//! }
//! #[steadycache::cached(convert = name.as_ref().to_lowercase(), ttl = "10m")]
//! fn greet<S: AsRef<str>>(name: S) -> String { format!("hi {}", name.as_ref()) }
//!
//! assert_eq!(Account { id: 1 }.balance(2), 102);
//! assert_eq!(Account { id: 2 }.balance(2), 202);
//! assert_eq!(greet("Ada"), "hi Ada");
//! assert_eq!(greet(String::from("ADA")), "hi Ada", "one key for both");
//! ```
//!
//! ## Invalidation
//! * [`Cache::invalidate`], [`Cache::invalidate_prefix`], [`Cache::clear`], and per function
//!   `f_cache().invalidate(args…)` / `.clear()` (and their `_sync` twins).
//! * Tags: `#[cached(tags = ["user:{id}"])]` and [`Cache::invalidate_tag`] /
//!   [`Cache::invalidate_tags`]: one write per tag, values judged when read.
//! * Every operation on the store is async under its plain name, with a blocking `_sync` twin
//!   (`invalidate_sync`, `clear_sync`, `set_sync`, ...), on [`Cache`], [`Memo`] and a function's
//!   handle alike (see [`Cache`]).
//! * Patterns: [`Cache::invalidate_matching`]`("user:*:profile")` (a [`Glob`] over stored keys).
//! * [`invalidates`]: `#[invalidates(profile(id), tags = ["user:{id}"])]` on the functions that
//!   change the data, invalidating after they return `Ok`.
//! * Across processes, every change reaches the other processes' in-process copies through the
//!   cache's invalidation bus ([`BusConfig`]: Redis pub/sub, or a feed polled in the store), and
//!   no copy is served past [`BusConfig::grace`] while the bus is down.
//!
//! ```
//! use steadycache::{cached, default_cache, invalidates};
//! #[cached(ttl = "1h", tags = ["user:{id}"])]
//! fn profile(id: u64) -> String { format!("profile {id}") }
//! #[invalidates(profile(id), tags = ["user:{id}"])]
//! fn rename(id: u64, name: String) -> Result<(), String> { let _ = name; Ok(()) }
//! profile(1);
//! rename(1, "Ann".into()).unwrap();
//! default_cache().invalidate_tag_sync("user:1").unwrap();
//! ```
//!
//! ## Switches
//! * [`set_enabled`]`(false)`: every cache in the process off (functions run, nothing stored).
//! * [`Cache::set_enabled`], and `fn_cache().set_enabled(..)` per function.
//! * [`with_options`]`(CallOptions::bypass(), || f())` / [`with_options_async`]: bypass, force
//!   a refresh, or set a `max_age` for the calls made inside, on this thread or task.
//! * Per call, from a function's handle: `f_cache().refresh(args…)` (compute now and
//!   store), `.bypass(args…)` (run without the cache), `.call_with(CallOptions::max_age(d),
//!   args…)` (recompute entries older than `d`), `.prime(args…, value)` (store a value as if
//!   computed), `.get_cached(args…)` (the cached value, without computing), `.key(args…)` and
//!   `.invalidate(args…)`; `prime`, `get_cached` and `invalidate` are async, with blocking
//!   twins `prime_sync`, `get_cached_sync` and `invalidate_sync`, and `refresh`, `bypass`,
//!   `call_with` and `call_with_origin` have the function's mode. A method has the same controls beside it (`name_refresh`,
//!   `name_prime`, …).
//! * Where a value came from: `f_cache().call_with_origin(args…)` returns the value and an
//!   [`Origin`] (`Hit`, `Stale`, `FailSafe`, `Coalesced`, `Computed`, `Uncached`); around any
//!   code, [`with_origin`] / [`with_origin_async`]. Opt-in: a plain call pays nothing for it.
//!
//! ## Caches
//! The default cache is memory, unless `STEADYCACHE_URL` names another or [`set_default_cache`]
//! is called at startup. On a memory cache a memoized function keeps its values typed, in its own
//! store within the cache's byte budget: a hit is a hash of the arguments, one lookup and a
//! clone — no allocation, no serialization, no async runtime. The same typed tier can sit in
//! front of any other backend ([`CacheBuilder::local_tier`], or `?local=64MiB` in the URL). Other backends are cargo features, opened by
//! [`Cache::from_url`] or built with [`Cache::builder`]:
//!
//! | feature | URL | backend |
//! |---|---|---|
//! | `file` | `file:///var/cache/app` | `FileBackend`: one file per entry, safe across processes |
//! | `sqlite` | `sqlite:///var/cache/app.db`, `sqlite::memory:` | `SqliteBackend`: one row per entry, WAL |
//! | `redis` | `redis://host:6379/0`, `?cluster=true` | `RedisBackend`: shared by every process on the server |
//! | `mongo` | `mongodb://host:27017/db?collection=entries` | `MongoBackend`: one document per entry |
//! | `s3` | `s3://bucket/prefix?endpoint=http://host:9000&path_style=true` | `S3Backend`: one object per entry, expiry in its metadata |
//!
//! On a shared backend, `lock = "distributed"` makes a cold key run once across every process,
//! and a stale-while-revalidate refresh run once per key across them.
//!
//! ## The guide
//! The pages of the repository's `docs/guide`, as modules of [`guide`]: [`guide::options`],
//! [`guide::controls`], [`guide::invalidation`], [`guide::consistency`], [`guide::stores`],
//! [`guide::extending`], [`guide::operating`], [`guide::speed`] and [`guide::status`].
#![deny(missing_docs)]
// On docs.rs (nightly), each feature-gated item says which feature it needs.
#![cfg_attr(docsrs, feature(doc_cfg))]

// The curated API: what a user of `#[cached]`, `Cache`, `Policy`, the hooks and the backends
// needs. Backend-author plumbing lives in `plumbing`; what the macro expands to, in `__private`.
pub use steadycache_api::{
    current_options, default_cache, is_enabled, set_default_cache, set_enabled, with_options,
    with_options_async, with_origin, with_origin_async, Backend, BackendExt, BusConfig, Cache,
    CacheBuilder, CacheEvent, CacheHealth, CacheListener, CacheManager, CallBreaker, CallOptions,
    Capabilities, CircuitOpen, Codec, DefaultManager, Entry, Error, EventKind, EvictionCause,
    FactoryTimeout, Format, Freshness, Glob, KeyPage, Lifetimes, ListedKey, LocalTier, Lock, Memo,
    MemoryBackend, MemoryConfig, Origin, Policy, RateLimited, RateLimiter, Refresh, RefreshWith,
    Refusal, Result, StatsSnapshot, StoreBreaker, Subscription, Tracked, Tracking,
};
pub use steadycache_macros::{cached, call_breaker, rate_limit};

/// The old name of [`StoreBreaker`] (see `steadycache_api::CircuitBreaker`).
#[allow(deprecated)]
pub use steadycache_api::CircuitBreaker;

/// Invalidate memoized calls and tags after a function that changes the data returns `Ok`.
///
/// `#[invalidates(f(args…), g(args…), tags = ["user:{id}"], cache = expr)]`: each `f(args…)`
/// names a `#[cached]` function with expressions over this function's arguments (cloned); a
/// call that names no memoized function, or gives it the wrong arguments, does not compile. Tag
/// templates follow the rules of `key` templates and go to `cache = …` (a `Cache` expression or
/// a URL; default: the default cache); each call's entry goes to its own function's cache.
/// Keys and tags are computed before the body runs (which may then consume its arguments); the
/// invalidations run after it returns `Ok` (any value, for a function that does not return a
/// `Result`), in every process through the cache's bus. A failed invalidation is logged; the
/// function's result is returned as it is. Sync and async functions; not on methods' own
/// cached siblings (name free functions).
///
/// ```
/// use steadycache::{cached, invalidates};
/// #[cached(ttl = "1h", key = "user:{id}")]
/// fn profile(id: u64) -> String { format!("profile {id}") }
/// #[invalidates(profile(id))]
/// fn rename(id: u64, name: String) -> Result<String, String> { Ok(name) }
/// profile(1);
/// assert_eq!(rename(1, "Ann".into()).as_deref(), Ok("Ann"));
/// ```
pub use steadycache_macros::invalidates;

/// Store layers: code around every operation into a cache's store (a retry, spans, your own),
/// added with [`CacheBuilder::layer`].
pub use steadycache_api::layer;

/// Ready manager hooks: compression (feature `compress`) and encryption (feature `encrypt`) of
/// every stored entry, and the [`Transform`](transform::Transform) trait for one of yours.
pub use steadycache_api::transform;

/// For backend authors: URL schemes, the blocking fast path, the library runtime, and the
/// helpers every backend of this workspace uses (see `steadycache_api::plumbing`).
pub use steadycache_api::plumbing;

/// Feature `metrics`: what every memoized function reports through the `metrics` crate (see
/// [`metrics::publish`]).
#[cfg(feature = "metrics")]
pub use steadycache_api::metrics;

#[cfg(feature = "file")]
pub use steadycache_file::{FileBackend, FileConfig};
#[cfg(feature = "mongo")]
pub use steadycache_mongo::{MongoBackend, MongoConfig};
#[cfg(feature = "redis")]
pub use steadycache_redis::{RedisBackend, RedisConfig};
#[cfg(feature = "s3")]
pub use steadycache_s3::{S3Backend, S3Config};
#[cfg(feature = "sqlite")]
pub use steadycache_sqlite::{SqliteBackend, SqliteConfig};

/// The guide: the pages of the repository's `docs/guide`, one module each. Nothing to import:
/// their code blocks are compiled (and, unless marked `no_run`, run) as doc tests, so the guide
/// cannot drift from the API.
pub mod guide {
    #[doc = include_str!("../docs/guide/options.md")]
    pub mod options {}
    #[doc = include_str!("../docs/guide/controls.md")]
    pub mod controls {}
    #[doc = include_str!("../docs/guide/invalidation.md")]
    pub mod invalidation {}
    #[doc = include_str!("../docs/guide/consistency.md")]
    pub mod consistency {}
    // Its example builds a SQLite backend by hand: compiled where that backend is.
    #[cfg_attr(feature = "sqlite", doc = include_str!("../docs/guide/stores.md"))]
    #[cfg_attr(
        not(feature = "sqlite"),
        doc = "The stores page, `docs/guide/stores.md`: built with the feature `sqlite`, which \
               its example uses (docs.rs builds with every feature)."
    )]
    pub mod stores {}
    #[doc = include_str!("../docs/guide/extending.md")]
    pub mod extending {}
    #[doc = include_str!("../docs/guide/operating.md")]
    pub mod operating {}
    #[doc = include_str!("../docs/guide/speed.md")]
    pub mod speed {}
    #[doc = include_str!("../docs/guide/status.md")]
    pub mod status {}
    #[doc = include_str!("../docs/guide/http.md")]
    pub mod http {}
}

/// The README's code blocks, compiled (and, unless marked `no_run`, run) as doc tests, so the
/// README cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

mod probe;

/// What `#[cached]` expands to. Not a public API: it changes without notice.
#[doc(hidden)]
pub mod __private {
    use std::marker::PhantomData;
    pub use steadycache_api::__private::{
        hash_args, hash_args_bincode, hash_local, with_call_options, with_call_options_async,
        ArgsKey, AsyncJob, AsyncRefresh, CacheSource, KeyPart, LocalArg, NoRefresh, RefreshWith,
        Shape, SyncJob, SyncRefresh,
    };
    pub use steadycache_api::{Cache, FactoryTimeout, Lock, Memo, Policy, Refresh, ValueBytes};

    /// A static on cache lines of its own (128 bytes: a pair of lines, as adjacent-line
    /// prefetchers fetch them), so that a memoized function's state, read on every hit, never
    /// shares a line with another static that some thread writes (measured here: two threads
    /// hitting one function ran 1.6x slower without it, depending on what the linker placed
    /// beside the function's state).
    #[repr(align(128))]
    pub struct Padded<T>(pub T);

    /// Splits a `Result` type (also through aliases such as `anyhow::Result<T>`).
    pub trait ResultParts {
        /// The `Ok` type.
        type Ok;
        /// The `Err` type.
        type Err;
        /// As a plain `Result`.
        fn into_result(self) -> Result<Self::Ok, Self::Err>;
        /// Whether it is an `Err`.
        fn is_err_ref(&self) -> bool;
    }

    impl<T, E> ResultParts for Result<T, E> {
        type Ok = T;
        type Err = E;
        #[inline]
        fn into_result(self) -> Result<T, E> {
            self
        }
        #[inline]
        fn is_err_ref(&self) -> bool {
            self.is_err()
        }
    }

    /// Unwrap a result that cannot be an error.
    #[inline]
    pub fn infallible<T>(r: Result<T, std::convert::Infallible>) -> T {
        match r {
            Ok(v) => v,
            Err(never) => match never {},
        }
    }

    /// Arguments that are part of a key on a cache known at compile time to be a store
    /// (`cache = "redis://…"`): their bytes are the key other processes share.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` cannot be part of a key of a store cache: it does not implement `serde::Serialize`",
        label = "this argument is hashed into the key this cache shares",
        note = "derive `serde::Serialize` for it, leave it out of the key with `#[cached(skip(arg))]`, or cache the function in memory (the default cache or `mem://`), where a `Hash` argument is enough"
    )]
    pub trait KeyArg {}
    impl<T: serde::Serialize + ?Sized> KeyArg for T {}

    /// Check an argument at compile time (a store cache known at compile time).
    #[inline(always)]
    pub fn assert_key_arg<T: KeyArg + ?Sized>(_: &T) {}

    /// Values a memoized function returns (any cache).
    #[diagnostic::on_unimplemented(
        message = "`{Self}` cannot be cached: it must be `Clone + Send + Sync + 'static`",
        label = "the value this function returns is kept in the cache",
        note = "derive `Clone` for it (wrap it in `Arc` if cloning is costly or impossible)"
    )]
    pub trait CacheValue {}
    impl<T> CacheValue for T where T: Clone + Send + Sync + 'static {}

    /// Check the value type at compile time.
    #[inline(always)]
    pub fn assert_value<T: CacheValue>() {}

    /// Values a memoized function stores in a cache known at compile time to be a store.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` cannot be cached in a store: it must be `Serialize + DeserializeOwned + Clone + Send + Sync + 'static`",
        label = "the value this function returns is stored in the cache",
        note = "derive `serde::Serialize`, `serde::Deserialize` and `Clone` for it (wrap it in `Arc` if cloning is costly), or cache the function in memory (the default cache or `mem://`), where `Clone + Send + Sync + 'static` is enough"
    )]
    pub trait StoreValue {}
    impl<T> StoreValue for T where
        T: serde::Serialize + serde::de::DeserializeOwned + Clone + Send + Sync + 'static
    {
    }

    /// Check the value type of a store cache at compile time.
    #[inline(always)]
    pub fn assert_store_value<T: StoreValue>() {}

    pub use crate::probe::{
        KeyPiece, KeyProbe, KeyViaHash, KeyViaSerde, ValueOpaque, ValueProbe, ValueViaSerde,
    };

    /// Autoref-specialization probe: shares an error with waiters when it is `Clone`.
    pub struct ErrProbe<E>(PhantomData<fn() -> E>);
    impl<E> ErrProbe<E> {
        /// A probe.
        pub fn new() -> Self {
            ErrProbe(PhantomData)
        }
    }
    impl<E> Default for ErrProbe<E> {
        fn default() -> Self {
            Self::new()
        }
    }
    /// Chosen when `E: Clone`.
    pub trait ShareViaClone<E> {
        /// The clone function.
        fn share_fn(&self) -> Option<fn(&E) -> E>;
    }
    impl<E: Clone> ShareViaClone<E> for &ErrProbe<E> {
        fn share_fn(&self) -> Option<fn(&E) -> E> {
            Some(<E as Clone>::clone)
        }
    }
    /// Chosen otherwise.
    pub trait ShareNone<E> {
        /// No clone function.
        fn share_fn(&self) -> Option<fn(&E) -> E>;
    }
    impl<E> ShareNone<E> for ErrProbe<E> {
        fn share_fn(&self) -> Option<fn(&E) -> E> {
            None
        }
    }

    /// `cache = "url"`: open it; if it cannot be opened now, serve from memory while it is
    /// opened again in the background (see `Cache::from_url_failing_open`).
    pub fn cache_from_url(url: &str) -> Cache {
        Cache::from_url_failing_open(url)
    }

    /// `cache = expr`: a `Cache` or a `&Cache`.
    pub fn into_cache(c: impl Into<Cache>) -> Cache {
        c.into()
    }

    /// `#[invalidates]`: log an invalidation that failed (the function's result is returned as
    /// it is; its stale entries expire with their ttl, or go with the next invalidation).
    pub fn report_invalidation(what: &str, result: steadycache_api::Result<()>) {
        if let Err(e) = result {
            tracing::warn!(target: "steadycache", what, error = %e, "steadycache: #[invalidates] could not invalidate");
        }
    }
}
