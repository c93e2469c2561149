//! Factory timeouts (`soft_timeout`, `hard_timeout`): a layer around the computation.
//!
//! With a timeout, the computation runs as a task (the caller's `'static` job: an async one on
//! the caller's runtime, a sync one on the library's bounded blocking pool), and that task ends
//! the round: it stores the value, releases the distributed lock and publishes to the waiters
//! (`tail::conclude`). The caller waits for it at most the plan's limit. In time, it gets what
//! the task concluded, as if it had computed inline. Out of time, it gets the old value (soft,
//! or hard with one) or the function's timeout error (hard without one), and the task goes on
//! in the background and stores its value (FusionCache's background completion), unless
//! `background_completion` is off: then an async computation is cancelled, and a sync one,
//! which cannot be stopped, finishes unheard (nothing stored).
//!
//! A panic in the function reaches the caller still waiting as a panic (resumed on its thread),
//! unless an old value can be served (fail-safe); its waiters compute on their own, as after
//! any panic.

use super::ctx::Ctx;
use super::job::{RefreshJob, Shape, Value};
use super::plan::Plan;
use super::tail::{self, Round, Tail};
use crate::error::FactoryTimeout;
use crate::flight::Outcome;
use crate::mode::{task_runtime, Mode, Reply, Waited};
use crate::runtime;
use crate::scope::Origin;
use crate::stats::{Counter, Stats};
use crate::tier::Place;
use std::any::Any;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How the task ended, for a caller still waiting.
enum Done<V, E> {
    /// The round's end: the caller's result and where it came from.
    Concluded(Result<V, E>, Origin),
    /// The function panicked (its payload, when there is one).
    Panicked(Option<Box<dyn Any + Send>>),
}

/// Aborts a task when dropped (the async computation of an abandoned, cancelled round).
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What a caller that stops waiting gets.
pub(crate) enum Fallback<V, E> {
    /// The old value (its own copy: the task keeps the original for fail-safe).
    Old(V),
    /// The function's timeout error.
    Fail(fn(FactoryTimeout) -> Result<V, E>),
}

impl<V: Clone, E> Fallback<V, E> {
    /// The fallback of a caller holding `old` (servable) with a function whose shape turns a
    /// timeout into `on_timeout`; `None` when it has neither (it waits for the function).
    pub(crate) fn of(
        old: Option<&V>,
        on_timeout: Option<fn(FactoryTimeout) -> Result<V, E>>,
    ) -> Option<Self> {
        match (old, on_timeout) {
            (Some(v), _) => Some(Fallback::Old(v.clone())),
            (None, Some(f)) => Some(Fallback::Fail(f)),
            (None, None) => None,
        }
    }
}

/// Run `job` as a task that ends `round`, waiting for it at most `limit`, then falling back on
/// `fallback` (see the module docs).
pub(crate) async fn run<V, E>(
    ctx: &Ctx<'_, V, E>,
    mode: Mode,
    job: RefreshJob<V, E>,
    limit: Duration,
    round: Round<V, E>,
    fallback: Fallback<V, E>,
) -> (Result<V, E>, Origin)
where
    V: Value,
    E: Send + 'static,
{
    let handle = match task_runtime(mode) {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!(error = %e, "steadycache: no runtime for a timed computation; computing inline");
            return inline(ctx, mode, job, round).await;
        }
    };
    let sync_job = matches!(job, RefreshJob::Sync(_));
    let (reply, answer) = crate::mode::reply(mode);
    let task = Task {
        place: ctx.place.clone(),
        plan: ctx.plan.clone(),
        stats: ctx.stats.clone(),
        shape: ctx.shape,
        abandoned: Arc::new(AtomicBool::new(false)),
    };
    let abandoned = task.abandoned.clone();
    // In the call's span, as the computation would be inline.
    let running = handle.spawn(tracing::Instrument::in_current_span(
        task.run(job, round, reply),
    ));
    match (answer.wait(limit).await, fallback) {
        (Waited::Got(Done::Concluded(result, origin)), _) => (result, origin),
        // The function panicked: fail-safe serves the old value; otherwise the panic goes on
        // in the caller, as without a timeout.
        (Waited::Got(Done::Panicked(_)), Fallback::Old(v)) => {
            ctx.stats.incr(Counter::Stale);
            ctx.stats.incr(Counter::FailSafe);
            (Ok(v), Origin::FailSafe)
        }
        (Waited::Got(Done::Panicked(Some(p))), Fallback::Fail(_)) => std::panic::resume_unwind(p),
        // Out of time, or the task ended without a word (its runtime shut down).
        (waited, fallback) => {
            if matches!(waited, Waited::Late) {
                if ctx.plan.background_completion {
                    tracing::debug!(
                        "steadycache: timed out; the computation completes in the background"
                    );
                } else if sync_job {
                    // It cannot be stopped: it finishes for its waiters, unstored.
                    abandoned.store(true, Ordering::Release);
                } else {
                    running.abort();
                }
            }
            give_up(ctx, limit, fallback)
        }
    }
}

/// The task a timed computation runs in: what it needs to end the round on its own.
struct Task<V, E> {
    place: Place<V>,
    plan: Plan,
    stats: Arc<Stats>,
    shape: Shape<V, E>,
    /// Set by a caller that stopped waiting for a sync job without background completion.
    abandoned: Arc<AtomicBool>,
}

impl<V: Value, E: Send + 'static> Task<V, E> {
    /// Run `job`, end `round`, and answer the caller if it still waits.
    async fn run(self, job: RefreshJob<V, E>, round: Round<V, E>, reply: Reply<Done<V, E>>) {
        let started = Instant::now();
        let joined = match job {
            RefreshJob::Async(fut) => {
                let inner = tokio::spawn(fut);
                let _cancel_with_us = AbortOnDrop(inner.abort_handle());
                inner.await
            }
            RefreshJob::Sync(f) => match runtime::spawn_blocking(f) {
                Ok(inner) => inner.await,
                Err(e) => {
                    tracing::warn!(error = %e, "steadycache: no blocking pool for a timed computation");
                    return;
                }
            },
        };
        let done = match joined {
            // Abandoned without background completion (a sync job, which cannot be stopped):
            // its waiters get its result, nothing is stored.
            Ok(result)
                if self.abandoned.load(Ordering::Acquire) && !self.plan.background_completion =>
            {
                let outcome = match &result {
                    Ok(v) => Outcome::Value(v.clone()),
                    Err(e) => tail::share(&self.shape, e),
                };
                return self.end_unstored(round, outcome).await;
            }
            Ok(result) => {
                let tail = Tail {
                    place: &self.place,
                    plan: &self.plan,
                    stats: &self.stats,
                    shape: self.shape,
                };
                let took = started.elapsed();
                let (result, origin) =
                    tail::conclude(Mode::Async, &tail, result, took, round).await;
                Done::Concluded(result, origin)
            }
            Err(e) => {
                tracing::warn!("steadycache: the function panicked (timed computation)");
                self.stats.incr(Counter::Errors);
                self.end_unstored(round, Outcome::Failed).await;
                Done::Panicked(e.try_into_panic().ok())
            }
        };
        reply.send(done);
    }

    /// End `round` storing nothing: its waiters get `outcome`, its lease is released.
    async fn end_unstored(&self, round: Round<V, E>, outcome: Outcome<V, E>) {
        let Round { guard, held, .. } = round;
        if let Some(g) = guard {
            g.finish(outcome);
        }
        if let Some(lease) = held {
            lease.release(Mode::Async, false, &self.stats).await;
        }
    }
}

/// What a caller that stopped waiting for the function after `limit` gets (counted as a
/// timeout): its fallback. For the leader here, and for waiters in the driver.
pub(crate) fn give_up<V, E>(
    ctx: &Ctx<'_, V, E>,
    limit: Duration,
    fallback: Fallback<V, E>,
) -> (Result<V, E>, Origin) {
    ctx.stats.incr(Counter::Timeouts);
    match fallback {
        Fallback::Old(v) => {
            ctx.stats.incr(Counter::Stale);
            (Ok(v), Origin::Stale)
        }
        Fallback::Fail(f) => (f(FactoryTimeout { after: limit }), Origin::Computed),
    }
}

/// Without a runtime to run it on: the job on this thread, then the round's end.
async fn inline<V, E>(
    ctx: &Ctx<'_, V, E>,
    mode: Mode,
    job: RefreshJob<V, E>,
    round: Round<V, E>,
) -> (Result<V, E>, Origin)
where
    V: Value,
{
    let started = Instant::now();
    let result = match job {
        RefreshJob::Async(fut) => fut.await,
        RefreshJob::Sync(f) => f(),
    };
    tail::conclude(mode, &ctx.tail(), result, started.elapsed(), round).await
}
