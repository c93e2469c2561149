//! # backend-redis — steadycache on Redis and Redis Cluster
//!
//! [`RedisBackend`] stores the cache's entries in Redis, so every process that points at the
//! same server (or cluster) shares one cache: a value computed by one is a hit for all, and with
//! `lock = "distributed"` a cold key is computed once across all of them. Locks, counters and
//! prefix deletes are native Redis operations (`SET NX PX`, a token-checked Lua release,
//! `INCRBY` + `PEXPIRE`, `SCAN` + `UNLINK`).
//!
//! ```no_run
//! use backend_redis::{RedisBackend, RedisConfig};
//! use cache_api::Cache;
//!
//! let backend = RedisBackend::open(
//!     RedisConfig::new("redis://127.0.0.1:6379/0").with_key_prefix("app1:"),
//! )?;
//! let cache = Cache::builder().backend(backend).build();
//! // or, with this crate linked in: Cache::from_url("redis://127.0.0.1:6379/0?key_prefix=app1:")
//! # Ok::<(), cache_api::Error>(())
//! ```
//!
//! With the crate linked in, [`Cache::from_url`](cache_api::Cache::from_url) opens `redis://`
//! and `rediss://` URLs (options on [`RedisConfig::from_url`]; `?cluster=true` for a cluster).
#![deny(missing_docs)]

mod backend;
mod config;
mod error;
#[cfg(feature = "testing")]
pub mod testing;

pub use backend::RedisBackend;
pub use config::RedisConfig;

fn open_url(url: &str) -> cache_api::Result<std::sync::Arc<dyn cache_api::Backend>> {
    Ok(std::sync::Arc::new(RedisBackend::from_url(url)?))
}

#[cache_api::linkme::distributed_slice(cache_api::SCHEMES)]
#[linkme(crate = cache_api::linkme)]
static REDIS_SCHEME: cache_api::Scheme = cache_api::Scheme {
    name: "redis",
    open: open_url,
};

#[cache_api::linkme::distributed_slice(cache_api::SCHEMES)]
#[linkme(crate = cache_api::linkme)]
static REDISS_SCHEME: cache_api::Scheme = cache_api::Scheme {
    name: "rediss",
    open: open_url,
};
