//! Background refreshes (stale-while-revalidate): one per key per process, and with
//! `lock = "distributed"` one per key across every process sharing the backend.
//!
//! The refresh joins the key's flight before its job is made, so a stale hit whose refresh is
//! already running neither starts another nor clones the arguments again. Async jobs are
//! spawned on the caller's runtime (the library's outside one); sync jobs run on the library
//! runtime's blocking pool, which is bounded ([`crate::runtime::BLOCKING_THREADS`]), never on a
//! thread of their own per stale key.

use super::ctx::{wants_distributed, Ctx};
use super::io::{self, Found, Mode};
use super::job::RefreshJob;
use super::job::Shape;
use super::job::Value;
use super::lease;
use super::lease::Lease;
use super::lookup::Look;
use super::plan::Plan;
use super::tail::share;
use crate::flight::{self, LeaderGuard, Outcome, Role};
use crate::runtime;
use crate::stats::{Counter, Stats};
use crate::tier::Place;
use std::sync::Arc;

/// Start a background refresh of `ctx`'s key with the job `make` makes, unless one runs.
/// `served` is the value the caller was served (stale, or fresh when `early`). An early
/// refresh first looks for a value newer than it in L2 (another process may have refreshed it
/// already), and computes only without one. A refresh that fails stores `served` again as
/// [`io::store_throttled`] does after any failed recompute, so the failing function is not
/// called again, by this process or another, before the plan's throttle ends.
pub(crate) fn spawn<V, E>(
    ctx: &Ctx<'_, V, E>,
    make: impl FnOnce() -> Option<RefreshJob<V, E>>,
    served: &Found<V>,
    early: bool,
) where
    V: Value,
    E: Send + 'static,
{
    let Role::Leader(guard) = flight::join::<V, E>(ctx.flights, ctx.id, ctx.shape.share_err) else {
        return; // a refresh (or a computation) of this key is already running
    };
    let Some(job) = make() else {
        return; // dropping the guard releases anyone who joined meanwhile
    };
    let handle = match runtime::handle() {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!(error = %e, "steadycache: no runtime for a background refresh");
            return;
        }
    };
    let refresh = Refresh {
        place: ctx.place.clone(),
        plan: ctx.plan.clone(),
        stats: ctx.stats.clone(),
        shape: ctx.shape,
        served: served.clone(),
        early,
    };
    // A child of the call's span (the function's namespace and key hash), so a tracing
    // subscriber sees which function refreshed, and how long it took.
    let span = tracing::debug_span!("steadycache.refresh", early);
    handle.spawn(tracing::Instrument::instrument(
        refresh.run(guard, job),
        span,
    ));
}

/// One background refresh, owned by its task.
struct Refresh<V: Clone, E> {
    place: Place<V>,
    plan: Plan,
    stats: Arc<Stats>,
    shape: Shape<V, E>,
    /// The value the caller was served: kept (throttled) when the refresh fails.
    served: Found<V>,
    early: bool,
}

impl<V: Value, E: Send + 'static> Refresh<V, E> {
    /// The phases: take the lease (or step aside), look for a newer value (early refresh),
    /// compute, conclude.
    async fn run(self, guard: LeaderGuard<V, E>, job: RefreshJob<V, E>) {
        let Some(lease) = self.take_lease().await else {
            tracing::debug!("steadycache: another process is refreshing this key");
            guard.finish(Outcome::Cancelled);
            return;
        };
        if self.early {
            if let Some(v) = self.newer_elsewhere().await {
                tracing::debug!("steadycache: refreshed early elsewhere already");
                guard.finish(Outcome::Value(v));
                if let Some(lease) = lease {
                    lease.release(Mode::Async, true, &self.stats).await;
                }
                return;
            }
            self.stats.incr(Counter::EarlyRefresh);
        }
        self.stats.incr(Counter::Refreshes);
        let started = std::time::Instant::now();
        let result = match job {
            RefreshJob::Async(fut) => fut.await,
            RefreshJob::Sync(f) => match runtime::run_blocking_job(f).await {
                Ok(r) => r,
                Err(e) => {
                    // The job panicked: its waiters compute on their own, as after any panic.
                    tracing::warn!(error = %e, "steadycache: background refresh panicked");
                    guard.finish(Outcome::Failed);
                    if let Some(lease) = lease {
                        lease.release(Mode::Async, false, &self.stats).await;
                    }
                    return;
                }
            },
        };
        self.conclude(guard, lease, result, started.elapsed()).await;
    }

    /// The distributed lease when the plan wants one: `Some(None)` without one (none wanted,
    /// or the store failed: fail open), `None` when another process holds it.
    async fn take_lease(&self) -> Option<Option<Lease>> {
        match wants_distributed(&self.place, &self.plan) {
            Some(l2) => lease::try_once(Mode::Async, l2, &self.plan, &self.stats).await,
            None => Some(None),
        }
    }

    /// A fresh value in L2 newer than the one served (another process refreshed it early).
    async fn newer_elsewhere(&self) -> Option<V> {
        let (place, plan, stats) = (&self.place, &self.plan, &self.stats);
        let found = super::lookup::lookup(Mode::Async, place, plan, Look::Newest, stats).await;
        found
            .filter(|f| f.created_at > self.served.created_at)
            .and_then(Found::fresh)
    }

    /// Store the value, or keep the served one throttled after an error; release; publish.
    async fn conclude(
        self,
        guard: LeaderGuard<V, E>,
        lease: Option<Lease>,
        result: Result<V, E>,
        took: std::time::Duration,
    ) {
        let (place, plan, stats) = (&self.place, &self.plan, &self.stats);
        match result {
            Ok(v) => {
                let stored =
                    io::store(Mode::Async, place, &v, plan, &self.shape, took, stats).await;
                guard.finish(Outcome::Value(v));
                if let Some(lease) = lease {
                    lease.release(Mode::Async, stored, stats).await;
                }
            }
            Err(e) => {
                stats.incr(Counter::Errors);
                stats.emit(crate::events::EventKind::RefreshFailed);
                tracing::warn!("steadycache: background refresh failed, backing off");
                let kept = io::store_throttled(Mode::Async, place, &self.served, plan, stats).await;
                if let Some(lease) = lease {
                    lease.release(Mode::Async, kept, stats).await;
                }
                guard.finish(share(&self.shape, &e));
            }
        }
    }
}
