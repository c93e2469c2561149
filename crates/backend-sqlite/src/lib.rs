//! # steadycache-sqlite — steadycache on SQLite
//!
//! [`SqliteBackend`]: one row per entry in a SQLite database in WAL mode with a busy timeout; a
//! persistent backend that needs no server and is safe for many processes on one machine.
//!
//! With the crate linked in, [`Cache::from_url`](steadycache_api::Cache::from_url) opens
//! `sqlite:///path` (or `sqlite::memory:`) URLs: the backend adds its scheme to
//! [`SCHEMES`](static@steadycache_api::plumbing::SCHEMES) at link time.
//!
//! It implements the blocking twins of [`Backend`](steadycache_api::Backend) (`blocking()`), so
//! a sync memoized function reads its entry on its own thread with no runtime hop; async callers
//! run the same I/O on tokio's blocking pool.
#![deny(missing_docs)]
// On docs.rs (nightly), each feature-gated item says which feature it needs.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod backend;
mod config;
mod error;
mod ops;
mod pool;
mod schema;

pub use backend::SqliteBackend;
pub use config::SqliteConfig;

#[steadycache_api::plumbing::linkme::distributed_slice(steadycache_api::plumbing::SCHEMES)]
#[linkme(crate = steadycache_api::plumbing::linkme)]
static SQLITE_SCHEME: steadycache_api::plumbing::Scheme = steadycache_api::plumbing::Scheme {
    name: "sqlite",
    open: |url| Ok(std::sync::Arc::new(SqliteBackend::from_url(url)?)),
};
