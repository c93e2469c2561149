//! The engine: what a memoized call does between its arguments and the tiers.
//!
//! * [`plan`]: the decision core. A [`Policy`](crate::Policy) compiled into a `Plan`, and pure
//!   functions that choose the next step from what the tiers found, the clock and the call's
//!   options. No I/O; unit-tested with injected time.
//! * [`counted`]: the hit-count rules (`min_calls`, `max_hits`) on the backend's counters.
//! * [`ctx`]: one call's context, shared by the driver and the refreshes it starts.
//! * [`driver`]: the one driver that runs those steps for sync and async callers alike.
//! * [`io`]: the tier operations it runs, written once for both kinds of caller.
//! * [`lease`]: the distributed lock, released by RAII.
//! * [`refresh`]: background refreshes on bounded resources.
//! * [`sticks`]: invalidations that stick (marks, and the check after a save).
//! * [`job`]: what callers hand in besides the computation (`#[cached]` generates it).
//! * [`tail`]: the end of a round (store, release, publish), run by the caller or by
//!   [`timeout`], the layer that lets a caller stop waiting for a slow computation.
//! * [`xfetch`]: early refresh (XFetch), the rule and its stampede simulation.

pub(crate) mod counted;
pub(crate) mod ctx;
pub(crate) mod driver;
pub(crate) mod io;
pub(crate) mod job;
pub(crate) mod lease;
pub(crate) mod lookup;
pub(crate) mod plan;
pub(crate) mod refresh;
pub(crate) mod sticks;
pub(crate) mod tags;
pub(crate) mod tail;
pub(crate) mod timeout;
pub(crate) mod xfetch;

pub use job::{
    AsyncJob, AsyncRefresh, Lifetimes, NoRefresh, RefreshWith, Shape, SyncJob, SyncRefresh,
};
