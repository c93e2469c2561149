//! # steadycache-mongo — steadycache on MongoDB
//!
//! [`MongoBackend`] keeps the cache's entries in one MongoDB collection, so every process and
//! machine that reaches the database shares one cache (cachier's MongoDB core, with expiry,
//! locks and counters done natively). Expiry is in the server's time (read from `hello`), so
//! machines whose clocks differ agree on it. See [`MongoBackend`] for the document layout, the
//! operations and the clocks.
//!
//! ```no_run
//! use steadycache_mongo::{MongoBackend, MongoConfig};
//! use steadycache_api::Cache;
//!
//! let backend = MongoBackend::open(
//!     MongoConfig::new("mongodb://db.internal:27017").with_collection("fx_rates"),
//! )?;
//! let cache = Cache::builder().backend(backend).build();
//! // or, with this crate linked in: Cache::from_url("mongodb://db.internal:27017/cachedb?collection=fx_rates")
//! # Ok::<(), steadycache_api::Error>(())
//! ```
#![deny(missing_docs)]
// On docs.rs (nightly), each feature-gated item says which feature it needs.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod backend;
mod clock;
mod config;
mod error;
mod matching;
#[cfg(feature = "testing")]
pub mod testing;

pub use backend::MongoBackend;
pub use clock::SKEW_MARGIN;
pub use config::MongoConfig;

fn open_url(url: &str) -> steadycache_api::Result<std::sync::Arc<dyn steadycache_api::Backend>> {
    Ok(std::sync::Arc::new(MongoBackend::from_url(url)?))
}

#[steadycache_api::plumbing::linkme::distributed_slice(steadycache_api::plumbing::SCHEMES)]
#[linkme(crate = steadycache_api::plumbing::linkme)]
static MONGODB_SCHEME: steadycache_api::plumbing::Scheme = steadycache_api::plumbing::Scheme {
    name: "mongodb",
    open: open_url,
};
