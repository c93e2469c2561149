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
use super::job::Value;
use super::lease;
use super::tail::share;
use crate::flight::{self, Outcome, Role};
use crate::runtime;
use crate::stats::Counter;

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
    let served = served.clone();
    let early_of = early.then_some(served.created_at);
    let handle = match runtime::handle() {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!(error = %e, "steadycache: no runtime for a background refresh");
            return;
        }
    };
    let place = ctx.place.clone();
    let plan = ctx.plan.clone();
    let stats = ctx.stats.clone();
    let shape = ctx.shape;
    // A child of the call's span (the function's namespace and key hash), so a tracing
    // subscriber sees which function refreshed, and how long it took.
    let span = tracing::debug_span!("steadycache.refresh", early = early_of.is_some());
    let job_run = async move {
        let lease = match wants_distributed(&place, &plan) {
            Some(l2) => match lease::try_once(Mode::Async, l2, &plan, &stats).await {
                Some(lease) => lease,
                None => {
                    tracing::debug!("steadycache: another process is refreshing this key");
                    guard.finish(Outcome::Cancelled);
                    return;
                }
            },
            None => None,
        };
        if let Some(old) = early_of {
            let found = super::lookup::lookup(Mode::Async, &place, &plan, false, &stats).await;
            if let Some(v) = found.filter(|f| f.created_at > old).and_then(Found::fresh) {
                tracing::debug!("steadycache: refreshed early elsewhere already");
                guard.finish(Outcome::Value(v));
                if let Some(lease) = lease {
                    lease.release(Mode::Async, true, &stats).await;
                }
                return;
            }
            stats.incr(Counter::EarlyRefresh);
        }
        stats.incr(Counter::Refreshes);
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
                        lease.release(Mode::Async, false, &stats).await;
                    }
                    return;
                }
            },
        };
        match result {
            Ok(v) => {
                let took = started.elapsed();
                let stored = io::store(Mode::Async, &place, &v, &plan, &shape, took, &stats).await;
                guard.finish(Outcome::Value(v));
                if let Some(lease) = lease {
                    lease.release(Mode::Async, stored, &stats).await;
                }
            }
            Err(e) => {
                stats.incr(Counter::Errors);
                tracing::warn!("steadycache: background refresh failed, backing off");
                let kept = io::store_throttled(Mode::Async, &place, &served, &plan, &stats).await;
                if let Some(lease) = lease {
                    lease.release(Mode::Async, kept, &stats).await;
                }
                guard.finish(share(&shape, &e));
            }
        }
    };
    handle.spawn(tracing::Instrument::instrument(job_run, span));
}
