//! # steadycache-api — the core of steadycache
//!
//! Everything between a memoized call and a store of bytes:
//!
//! * [`Backend`]: the async, object-safe byte store contract, with [`Capabilities`] and the
//!   conveniences of [`BackendExt`]; [`MemoryBackend`] implements it on `quick_cache`;
//! * [`Entry`]: the envelope every backend stores, so any process reads what another wrote;
//! * [`Codec`]: bincode (default), JSON, and an HMAC-signed wrapper;
//! * [`CacheManager`]: the overridable seam (`load`/`save` around `before_save`/`after_load`);
//!   ready hooks in [`transform`]: compression (feature `compress`) and encryption (feature
//!   `encrypt`);
//! * [`Cache`]: a manager with switches and stats, opened by URL or built; [`Cache::get_or_compute`]
//!   memoizes by hand;
//! * [`Policy`]: ttl, stale-after, stale-while-revalidate, single-flight, negative caching,
//!   jitter, fail-safe;
//! * [`Memo`]: one memoized function's engine, which `#[cached]` drives;
//! * keys (a hash of the arguments, see `ARCHITECTURE.md`) and counters ([`StatsSnapshot`]);
//! * the conformance suite every backend runs ([`testing`], feature `testing`).
//!
//! ## Observability
//! Every memoized function counts hits, misses, stale values served, refreshes, errors, backend
//! errors, corrupt entries and coalesced callers ([`StatsSnapshot`]), and emits `tracing` events for
//! each: `debug` for misses, stale serves and refreshes, `warn` for errors and corrupt entries,
//! `trace` for hits. Hits of the typed in-process tier are traced only with the `trace-hits`
//! feature, since even a disabled `trace!` costs about 2 % of such a hit.
//!
//! ## Failure model
//! A backend that is down never fails a call: the function runs, its value is returned, and the
//! error goes to `tracing` and the stats. A corrupt, truncated or foreign entry is a logged miss
//! and is removed, never a wrong value. Nothing reachable from this crate panics on bad input.
#![deny(missing_docs)]
// On docs.rs (nightly), each feature-gated item says which feature it needs.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod backend;
mod bulk;
mod cache;
mod codec;
mod compute;
mod defaults;
mod engine;
mod envelope;
mod error;
mod events;
mod flight;
mod glob;
mod guard;
mod invalidate;
mod key;
pub mod layer;
mod listing;
mod manager;
mod memo;
mod memory;
#[cfg(feature = "metrics")]
pub mod metrics;
mod mode;
mod open;
mod options;
mod policy;
mod registry;
mod reopen;
mod runtime;
mod scheme;
mod scope;
mod skew;
mod stats;
mod tier;
mod time;
pub mod transform;
mod value;

#[cfg(feature = "testing")]
pub mod testing;

pub mod plumbing;

/// What `#[cached]` expands to, re-exported by the facade's own `__private`. Not a public API:
/// it changes without notice.
#[doc(hidden)]
pub mod __private {
    pub use crate::engine::{
        AsyncJob, AsyncRefresh, NoRefresh, RefreshWith, Shape, SyncJob, SyncRefresh,
    };
    pub use crate::key::{hash_args, hash_args_bincode, hash_local, ArgsKey, KeyPart, LocalArg};
    pub use crate::memo::CacheSource;
    pub use crate::scope::{with_call_options, with_call_options_async};
}

// The root: what a user of `#[cached]`, `Cache`, `Policy`, the hooks (`CacheManager`) and the
// backends needs. Plumbing (hook helpers, the defaults' constants, `async_trait`, ...) is in
// `plumbing`; what the macro expands to, in `__private`.
pub use backend::{Backend, BackendExt, Capabilities, Subscription, Tracked, Tracking};
pub use cache::{Cache, CacheBuilder};
pub use codec::{Codec, Format, MIN_SIGNING_KEY};
pub use defaults::{default_cache, set_default_cache};
pub use engine::{Lifetimes, RefreshWith};
pub use envelope::{Entry, Freshness};
pub use error::{CircuitOpen, Error, FactoryTimeout, RateLimited, Refusal, Result};
pub use events::{CacheEvent, CacheListener, EventKind, EvictionCause};
pub use glob::{Glob, MAX_GLOB_LEN};
pub use guard::{CallBreaker, RateLimiter};
pub use listing::{KeyPage, ListedKey};
pub use manager::{CacheManager, DefaultManager};
pub use memo::Memo;
pub use memory::{MemoryBackend, MemoryConfig};
pub use open::CacheHealth;
pub use policy::{Lock, Policy, Refresh};
pub use scope::{
    current_options, is_enabled, set_enabled, with_options, with_options_async, with_origin,
    with_origin_async, CallOptions, Origin,
};
pub use stats::StatsSnapshot;
pub use tier::{BusConfig, LocalTier, StoreBreaker};
pub use value::ValueBytes;

/// The old name of [`StoreBreaker`], the breaker in front of a cache's store (renamed so that
/// it is not confused with [`CallBreaker`], the breaker around a function).
#[deprecated(
    since = "0.2.0",
    note = "renamed `StoreBreaker` (and `CacheBuilder::circuit_breaker` is `store_breaker`)"
)]
pub type CircuitBreaker = StoreBreaker;
