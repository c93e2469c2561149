//! # steadycache-file — steadycache on the local disk
//!
//! [`FileBackend`]: a persistent backend that needs no server and is safe for many processes on
//! one machine. One file per entry under `<root>/<namespace>/`, written to a temp file and
//! renamed (a reader never sees a torn entry); read-modify-write operations are serialized
//! across processes by OS file locks.
//!
//! With the crate linked in, [`Cache::from_url`](steadycache_api::Cache::from_url) opens
//! `file:///path` URLs: the backend adds its scheme to
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
mod format;
mod fs;
mod housekeeping;
mod listing;
mod names;
mod ops;
mod prefix;
mod rmw;

pub use backend::FileBackend;
pub use config::FileConfig;

#[steadycache_api::plumbing::linkme::distributed_slice(steadycache_api::plumbing::SCHEMES)]
#[linkme(crate = steadycache_api::plumbing::linkme)]
static FILE_SCHEME: steadycache_api::plumbing::Scheme = steadycache_api::plumbing::Scheme {
    name: "file",
    open: |url| Ok(std::sync::Arc::new(FileBackend::from_url(url)?)),
};
