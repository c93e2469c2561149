//! # steadycache-redis — steadycache on Redis and Redis Cluster
//!
//! [`RedisBackend`] stores the cache's entries in Redis, so every process that points at the
//! same server (or cluster) shares one cache: a value computed by one is a hit for all, and with
//! `lock = "distributed"` a cold key is computed once across all of them. Locks, counters and
//! prefix deletes are native Redis operations (`SET NX PX`, a token-checked Lua release and
//! renewal, `INCRBY` + `PEXPIRE`, `SCAN` + `UNLINK`).
//!
//! ```no_run
//! use steadycache_redis::{RedisBackend, RedisConfig};
//! use steadycache_api::Cache;
//!
//! let backend = RedisBackend::open(
//!     RedisConfig::new("redis://127.0.0.1:6379/0").with_key_prefix("app1:"),
//! )?;
//! let cache = Cache::builder().backend(backend).build();
//! // or, with this crate linked in: Cache::from_url("redis://127.0.0.1:6379/0?key_prefix=app1:")
//! # Ok::<(), steadycache_api::Error>(())
//! ```
//!
//! With the crate linked in, [`Cache::from_url`](steadycache_api::Cache::from_url) opens `redis://`
//! and `rediss://` URLs (options on [`RedisConfig::from_url`]; `?cluster=true` for a cluster).
#![deny(missing_docs)]
// On docs.rs (nightly), each feature-gated item says which feature it needs.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod backend;
mod config;
mod error;
mod pubsub;
mod scan;
mod scripts;
#[cfg(feature = "testing")]
pub mod testing;
mod timed;
mod tracking;

pub use backend::RedisBackend;
pub use config::RedisConfig;

fn open_url(url: &str) -> steadycache_api::Result<std::sync::Arc<dyn steadycache_api::Backend>> {
    Ok(std::sync::Arc::new(RedisBackend::from_url(url)?))
}

#[steadycache_api::plumbing::linkme::distributed_slice(steadycache_api::plumbing::SCHEMES)]
#[linkme(crate = steadycache_api::plumbing::linkme)]
static REDIS_SCHEME: steadycache_api::plumbing::Scheme = steadycache_api::plumbing::Scheme {
    name: "redis",
    open: open_url,
};

#[steadycache_api::plumbing::linkme::distributed_slice(steadycache_api::plumbing::SCHEMES)]
#[linkme(crate = steadycache_api::plumbing::linkme)]
static REDISS_SCHEME: steadycache_api::plumbing::Scheme = steadycache_api::plumbing::Scheme {
    name: "rediss",
    open: open_url,
};
