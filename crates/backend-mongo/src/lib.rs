//! # backend-mongo — steadycache on MongoDB
//!
//! [`MongoBackend`] keeps the cache's entries in one MongoDB collection, so every process and
//! machine that reaches the database shares one cache (cachier's MongoDB core, with expiry,
//! locks and counters done natively). See [`MongoBackend`] for the document layout and the
//! operations.
//!
//! ```no_run
//! use backend_mongo::{MongoBackend, MongoConfig};
//! use cache_api::Cache;
//!
//! let backend = MongoBackend::open(
//!     MongoConfig::new("mongodb://db.internal:27017").with_collection("fx_rates"),
//! )?;
//! let cache = Cache::builder().backend(backend).build();
//! // or, with this crate linked in: Cache::from_url("mongodb://db.internal:27017/cachedb?collection=fx_rates")
//! # Ok::<(), cache_api::Error>(())
//! ```
#![deny(missing_docs)]

mod backend;
mod config;
mod error;
#[cfg(feature = "testing")]
pub mod testing;

pub use backend::MongoBackend;
pub use config::MongoConfig;

fn open_url(url: &str) -> cache_api::Result<std::sync::Arc<dyn cache_api::Backend>> {
    Ok(std::sync::Arc::new(MongoBackend::from_url(url)?))
}

#[cache_api::linkme::distributed_slice(cache_api::SCHEMES)]
#[linkme(crate = cache_api::linkme)]
static MONGODB_SCHEME: cache_api::Scheme = cache_api::Scheme {
    name: "mongodb",
    open: open_url,
};
