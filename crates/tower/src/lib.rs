//! HTTP response caching for [tower] and [axum] on any steadycache [`Cache`]: memory, files,
//! SQLite, Redis, MongoDB, S3.
//!
//! [tower]: https://docs.rs/tower
//! [axum]: https://docs.rs/axum
//!
//! ```
//! use axum::{routing::get, Router};
//! use steadycache_api::Cache;
//! use steadycache_tower::HttpCacheLayer;
//!
//! async fn report() -> ([(&'static str, &'static str); 1], &'static str) {
//!     ([("cache-control", "max-age=60, stale-while-revalidate=600")], "slow report")
//! }
//!
//! let app: Router = Router::new()
//!     .route("/report", get(report))
//!     .layer(HttpCacheLayer::new(Cache::memory()));
//! # let _ = app;
//! ```
//!
//! # What is stored
//!
//! The layer is a shared cache in RFC 9111's sense, driven by the response's own headers:
//!
//! * **Requests**: `GET` and `HEAD` only (other methods pass through and invalidate nothing).
//!   A request with `Cache-Control: no-cache` or `no-store`, `Pragma: no-cache`, an
//!   `Authorization` or `Range` header, or a body bypasses the cache (neither read nor
//!   written). `HEAD` is keyed apart from `GET`: it is asked of the upstream and stored with
//!   its empty body.
//! * **Responses**: status 200, 203, 204, 300, 301, 308, 404, 405, 410 or 414; not
//!   `no-store`, `no-cache` nor `private`; no `Vary: *`; no `Set-Cookie` (unless
//!   [`HttpCacheLayer::store_set_cookie`]); a body of at most [`HttpCacheLayer::max_body`]
//!   bytes (a longer one streams through; at most the limit is ever held); and a lifetime:
//!   `s-maxage`, else `max-age` (less the `Age` it came with), else
//!   [`HttpCacheLayer::default_ttl`] when set. Anything else is answered to its caller, not
//!   stored. Hop-by-hop headers are not stored; a served response carries its `Age`.
//! * **Lifetimes** become the engine's, per response
//!   ([`Cache::get_or_compute_with_lifetimes`]): fresh for the max-age; then, for
//!   `stale-while-revalidate`, served stale at once while one background request refreshes
//!   it; then, for `stale-if-error`, kept as the engine's fail-safe value: the upstream is
//!   asked, and when it fails (an error, a 5xx, a body cut short) the stored response is
//!   served instead, for [`HttpCacheLayer::fail_safe_throttle`] before it is asked again.
//!   `must-revalidate` turns both stale windows off. Every window is capped by
//!   [`HttpCacheLayer::max_ttl`]. (No conditional revalidation: an expired response is
//!   fetched whole.)
//!
//! # Keys and `Vary`
//!
//! A response is keyed by method, host, URI (or [`HttpCacheLayer::key_with`]) and the values
//! of the request headers its `Vary` names. Those names are known only once a response
//! arrived, so each URI keeps a small variants record of them in the cache; a response whose
//! `Vary` differs from the record it was looked up with rewrites the record and is answered
//! without being stored (the next request is keyed right).
//!
//! # Concurrent requests
//!
//! Misses of one key are coalesced by the engine: one upstream request per key per process
//! ([`Lock::Local`](steadycache_api::Lock::Local), the default), or across every process
//! sharing the store with [`HttpCacheLayer::lock`]`(Lock::Distributed)`; the waiters get the
//! stored response. When the upstream's answer must not be stored (or fails with nothing to
//! serve instead), the first caller gets it and each waiter asks the upstream itself, so every
//! caller gets a response meant for it.

#![deny(missing_docs)]

mod body;
mod config;
mod directives;
mod key;
mod service;
mod stored;

pub use body::{BoxError, HttpCacheBody};
pub use config::{HttpCacheLayer, KeyFn, DEFAULT_MAX_BODY, DEFAULT_MAX_TTL};
pub use service::HttpCache;
pub use steadycache_api::Cache;
