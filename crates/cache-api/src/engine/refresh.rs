//! Background refreshes (stale-while-revalidate): one per key per process, and with
//! `lock = "distributed"` one per key across every process sharing the backend.
//!
//! The refresh joins the key's flight before its job is made, so a stale hit whose refresh is
//! already running neither starts another nor clones the arguments again. Async jobs are
//! spawned on the caller's runtime (the library's outside one); sync jobs run on the library
//! runtime's blocking pool, which is bounded ([`crate::runtime::BLOCKING_THREADS`]), never on a
//! thread of their own per stale key.

use super::ctx::{wants_distributed, Ctx};
use super::io::{self, Mode};
use super::job::RefreshJob;
use super::job::Value;
use super::lease;
use super::tail::share;
use crate::flight::{self, Outcome, Role};
use crate::runtime;
use crate::stats::Counter;

/// Start a background refresh of `ctx`'s key with the job `make` makes, unless one runs;
/// whether it started one.
pub(crate) fn spawn<V, E>(
    ctx: &Ctx<'_, V, E>,
    make: impl FnOnce() -> Option<RefreshJob<V, E>>,
) -> bool
where
    V: Value,
    E: Send + 'static,
{
    let Role::Leader(guard) = flight::join::<V, E>(ctx.flights, ctx.id, ctx.shape.share_err) else {
        return false; // a refresh (or a computation) of this key is already running
    };
    let Some(job) = make() else {
        return false; // dropping the guard releases anyone who joined meanwhile
    };
    let handle = match runtime::handle() {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!(error = %e, "steadycache: no runtime for a background refresh");
            return false;
        }
    };
    let place = ctx.place.clone();
    let plan = ctx.plan.clone();
    let stats = ctx.stats.clone();
    let shape = ctx.shape;
    handle.spawn(async move {
        let lease = match wants_distributed(&place, &plan) {
            Some(l2) => match lease::try_once(l2, &plan, &stats).await {
                Some(lease) => lease,
                None => {
                    tracing::debug!("steadycache: another process is refreshing this key");
                    guard.finish(Outcome::Cancelled);
                    return;
                }
            },
            None => None,
        };
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
                tracing::warn!("steadycache: background refresh failed");
                if let Some(lease) = lease {
                    lease.release(Mode::Async, false, &stats).await;
                }
                guard.finish(share(&shape, &e));
            }
        }
    });
    true
}
