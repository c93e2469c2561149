//! # steadycache-s3 — steadycache on S3 and S3-compatible object stores
//!
//! [`S3Backend`] keeps the cache's entries as objects in one bucket, under a prefix, so every
//! process and machine that reaches the bucket shares one cache: cachier's S3 core, and the
//! cheapest shared store for large, rarely-changing results (model outputs, reports, dataset
//! extracts). Expiry lives in object metadata, in the store's time (estimated from the `Date`
//! of its answers), and is checked on every read; locks are conditional creates
//! (`If-None-Match: *`), renewed and released `If-Match` the version read. See [`S3Backend`]
//! for the object layout, the operations, the locks and the clocks.
//!
//! ```no_run
//! use steadycache_s3::{S3Backend, S3Config};
//! use steadycache_api::Cache;
//!
//! // Credentials and region from the AWS chain (environment, profile, instance role):
//! let backend = S3Backend::open(S3Config::new("reports-cache").with_prefix("steadycache/"))?;
//! let cache = Cache::builder().backend(backend).build();
//! // or, with this crate linked in:
//! // Cache::from_url("s3://reports-cache/steadycache?endpoint=http://127.0.0.1:9000&path_style=true")
//! # Ok::<(), steadycache_api::Error>(())
//! ```
#![deny(missing_docs)]
// On docs.rs (nightly), each feature-gated item says which feature it needs.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod backend;
mod config;
mod error;
#[cfg(feature = "testing")]
pub mod testing;

pub use backend::{S3Backend, SKEW_MARGIN};
pub use config::{S3Config, StaticCredentials};

fn open_url(url: &str) -> steadycache_api::Result<std::sync::Arc<dyn steadycache_api::Backend>> {
    Ok(std::sync::Arc::new(S3Backend::from_url(url)?))
}

#[steadycache_api::plumbing::linkme::distributed_slice(steadycache_api::plumbing::SCHEMES)]
#[linkme(crate = steadycache_api::plumbing::linkme)]
static S3_SCHEME: steadycache_api::plumbing::Scheme = steadycache_api::plumbing::Scheme {
    name: "s3",
    open: open_url,
};
