//! The one driver: runs the steps the decision core chooses, for sync and async callers alike.
//!
//! [`drive`] is an `async fn` over an I/O [`Mode`]. Async callers await it; sync callers poll
//! it on their own thread ([`run_sync`] through [`io::block_local`]), where every operation
//! blocks instead of pending, so the function runs on the caller's thread and no runtime is
//! needed. Hits of the typed tier never come here (see `Memo::call_sync`).
//!
//! Guarantees:
//! * one computation per key at a time in a process (unless the plan's lock is `None`); the
//!   others wait and get its value;
//! * a leader that fails releases its waiters at once: they get a clone of its error when the
//!   error type is `Clone`; otherwise (and after a panic) each computes on its own, at once. So a
//!   failing round runs the function once with a `Clone` error, and `1 + waiters` times in
//!   parallel without one; nobody waits for more than about two runs, nobody hangs;
//! * a leader whose future is dropped lets one waiter lead instead;
//! * a new leader looks again before computing (the previous round may have just stored);
//! * stale-while-revalidate runs one background refresh per key per process;
//! * a backend error never fails a call: the function runs and its value is returned (fail
//!   open), and the error is logged and counted.

use super::counted;
use super::ctx::{wants_distributed, Ctx};
use super::io::{self, block_local, Found, Mode};
use super::job::Value;
use super::job::{AsyncRefresh, RefreshJob, SyncRefresh};
use super::lease::{self, Acquired};
use super::plan::{after_wait, decide, AfterWait, Call, Ended, Step};
use super::refresh;
use super::tail::{self, publish, Round};
use super::timeout::{self, Fallback};
use crate::envelope::Freshness;
use crate::flight::{self, Outcome, Role};
use crate::policy::Lock;
use crate::scope::{enter_call, note_origin, Origin};
use crate::stats::Counter;
use crate::time::unix_millis;
use std::future::Future;

/// How the round a waiter waited on ended, for the decision core.
fn ended<V, E>(o: &Outcome<V, E>) -> Ended {
    match o {
        Outcome::Value(_) => Ended::Value,
        Outcome::Error(_) => Ended::SharedError,
        Outcome::Failed => Ended::Failed,
        Outcome::Cancelled => Ended::Cancelled,
    }
}

/// The factory timeout of a caller holding `stale` (and able to hand over a job): how long it
/// waits for the function, and what it gets then. The old value is cloned only when a limit
/// applies.
fn timeout_of<V: Clone, E>(
    ctx: &Ctx<'_, V, E>,
    stale: Option<&Found<V>>,
    job: bool,
) -> Option<(std::time::Duration, Fallback<V, E>)> {
    if !job {
        return None;
    }
    let old = stale.filter(|o| o.servable(unix_millis()));
    let limit = ctx
        .plan
        .timeout(old.is_some(), ctx.shape.on_timeout.is_some())?;
    Some((
        limit,
        Fallback::of(old.map(|o| &o.value), ctx.shape.on_timeout)?,
    ))
}

/// What a caller that stopped waiting after `limit` gets ([`timeout::give_up`]), noted as the
/// call's origin.
fn fall_back<V, E>(
    ctx: &Ctx<'_, V, E>,
    opts: crate::scope::CallOptions,
    limit: std::time::Duration,
    fallback: Fallback<V, E>,
) -> Result<V, E> {
    let (result, origin) = timeout::give_up(ctx, limit, fallback);
    note_origin(opts, origin);
    result
}

/// Whether `step` serves the value found (and so counts as one of its `max_hits`).
fn serves_found(step: Step) -> bool {
    matches!(
        step,
        Step::Hit | Step::ServeStaleRefreshBackground | Step::RefreshEarly { background: true }
    )
}

/// The sync entry: `compute` runs on this thread, at most once.
///
/// Never inlined: the driver's future lives in this frame, and a typed hit (which returns
/// before calling this) must not pay for setting up a frame that large.
#[inline(never)]
pub(crate) fn run_sync<V: Value, E: Send + 'static>(
    ctx: Ctx<'_, V, E>,
    compute: impl FnOnce() -> Result<V, E>,
    refresh: impl SyncRefresh<V, E>,
) -> Result<V, E> {
    let available = refresh.available();
    block_local(drive(
        ctx,
        Mode::Sync,
        || std::future::ready(compute()),
        available,
        || refresh.job().map(RefreshJob::Sync),
    ))
}

/// The async entry: `compute` is awaited at most once, in the calling task.
pub(crate) async fn run_async<V: Value, E: Send + 'static, Fut>(
    ctx: Ctx<'_, V, E>,
    compute: impl FnOnce() -> Fut,
    refresh: impl AsyncRefresh<V, E>,
) -> Result<V, E>
where
    Fut: Future<Output = Result<V, E>>,
{
    let available = refresh.available();
    drive(ctx, Mode::Async, compute, available, || {
        refresh.job().map(RefreshJob::Async)
    })
    .await
}

/// The flow of one call (see the module docs).
async fn drive<V, E, F, Fut, J>(
    ctx: Ctx<'_, V, E>,
    mode: Mode,
    compute: F,
    can_refresh_in_background: bool,
    make_job: J,
) -> Result<V, E>
where
    V: Value,
    E: Send + 'static,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<V, E>>,
    J: FnOnce() -> Option<RefreshJob<V, E>>,
{
    let opts = enter_call();
    let mut call = Call {
        bypass: opts.bypass,
        force_refresh: opts.refresh,
        can_refresh_in_background,
        too_old: false,
        early: false,
    };
    if call.bypass {
        return compute().await;
    }
    let mut found = if call.force_refresh {
        None
    } else {
        super::lookup::lookup(mode, &ctx.place, ctx.plan, true, ctx.stats).await
    };
    // A found value older than the call's `max_age` (on the wall clock) is stale for it.
    let too_old = |f: &Found<V>| {
        opts.max_age.is_some_and(|age| {
            let age_ms = u64::try_from(age.as_millis()).unwrap_or(u64::MAX);
            unix_millis().saturating_sub(f.created_at) > age_ms
        })
    };
    call.too_old = found.as_ref().is_some_and(too_old);
    // Early refresh rolls its dice here, off the hit path, inside a value's window only.
    call.early = ctx.plan.early.is_some()
        && !call.too_old
        && found.as_ref().is_some_and(|f| {
            f.freshness == Freshness::Fresh
                && ctx
                    .plan
                    .refresh_early(unix_millis(), f.at, f.took_ms, fastrand::f64())
        });
    let freshness = found.as_ref().map(|f| f.freshness);
    let mut step = decide(ctx.plan, freshness, call);
    // `max_hits`: a value served its last time already is dropped, and computed anew.
    if ctx.plan.max_hits.is_some() && serves_found(step) {
        if let Some(f) = &found {
            if !counted::hit(mode, &ctx.place, ctx.plan, f, ctx.stats).await {
                (step, found) = (Step::Compute, None);
            }
        }
    }
    let mut stale = match (step, found) {
        (Step::Hit, Some(f)) => {
            ctx.stats.incr(Counter::Hits);
            tracing::trace!("steadycache: hit");
            note_origin(opts, Origin::Hit);
            return Ok(f.value);
        }
        (Step::ServeStaleRefreshBackground, Some(f)) => {
            ctx.stats.incr(Counter::Stale);
            tracing::debug!("steadycache: serving stale, refreshing in the background");
            refresh::spawn(&ctx, make_job, &f, false);
            note_origin(opts, Origin::Stale);
            return Ok(f.value);
        }
        (Step::RefreshEarly { background: true }, Some(f)) => {
            ctx.stats.incr(Counter::Hits);
            tracing::debug!("steadycache: refreshing early in the background");
            refresh::spawn(&ctx, make_job, &f, true);
            note_origin(opts, Origin::Hit);
            return Ok(f.value);
        }
        // Refreshed now, by this caller; the fresh value is served if that fails.
        (Step::RefreshEarly { background: false }, Some(f)) => Some(f),
        // The old value, served if the recompute fails.
        (Step::RefreshInline { fallback: true }, Some(f)) => Some(f),
        _ => None,
    };
    // An early refresh accepts, from another round, only a value newer than the one it found.
    let found_at = stale.as_ref().filter(|_| call.early).map(|f| f.created_at);
    let mut guard = None;
    if ctx.plan.lock != Lock::None {
        loop {
            match flight::join::<V, E>(ctx.flights, ctx.id, ctx.shape.share_err) {
                Role::Leader(g) => {
                    guard = Some(g);
                    break;
                }
                Role::Solo => break,
                // A sync caller on a `current_thread` runtime: the leader may be an async task
                // that needs this very thread, so waiting could never end. It computes without
                // the flight instead (its value is stored as any other).
                Role::Waiter(_) if mode == Mode::Sync && io::on_current_thread_runtime() => break,
                Role::Waiter(f) => {
                    // An early refresh already running: this reader keeps the fresh value.
                    if call.early {
                        if let Some(fresh) = stale {
                            ctx.stats.incr(Counter::Hits);
                            note_origin(opts, Origin::Hit);
                            return Ok(fresh.value);
                        }
                    }
                    ctx.stats.incr(Counter::Coalesced);
                    // A waiter waits for the leader within the same factory timeouts.
                    let timed = timeout_of(&ctx, stale.as_ref(), can_refresh_in_background);
                    let limit = timed.as_ref().map(|t| t.0);
                    let outcome = match mode {
                        Mode::Sync => f.wait_sync_for(limit),
                        Mode::Async => f.wait_async_for(limit).await,
                    };
                    let Some(outcome) = outcome else {
                        match timed {
                            Some((limit, fallback)) => {
                                return fall_back(&ctx, opts, limit, fallback);
                            }
                            None => continue,
                        }
                    };
                    let fallback = stale.as_ref().is_some_and(|o| o.servable(unix_millis()));
                    match (after_wait(ended(&outcome), fallback), outcome) {
                        (AfterWait::Value, Outcome::Value(v)) => {
                            note_origin(opts, Origin::Coalesced);
                            return Ok(v);
                        }
                        (AfterWait::Error, Outcome::Error(e)) => {
                            note_origin(opts, Origin::Coalesced);
                            return Err(e);
                        }
                        (AfterWait::ServeStale, _) => {
                            if let Some(old) = stale {
                                ctx.stats.incr(Counter::Stale);
                                ctx.stats.incr(Counter::FailSafe);
                                note_origin(opts, Origin::FailSafe);
                                return Ok(old.value);
                            }
                            break;
                        }
                        (AfterWait::Rejoin, _) => continue,
                        _ => break, // compute alone
                    }
                }
            }
        }
        if guard.is_some() && !call.force_refresh {
            // The round before ours may have stored the value after our lookup (for an early
            // refresh: a value newer than the fresh one found).
            let again =
                super::lookup::lookup(mode, &ctx.place, ctx.plan, found_at.is_none(), ctx.stats)
                    .await;
            let again = again.filter(|f| !too_old(f) && found_at.is_none_or(|c| f.created_at > c));
            if let Some(v) = again.and_then(Found::fresh) {
                ctx.stats.incr(Counter::Hits);
                note_origin(opts, Origin::Hit);
                return Ok(publish(guard, v));
            }
        }
    }
    let mut held = None;
    let distributed = wants_distributed(&ctx.place, ctx.plan);
    if let (Some(l2), true) = (distributed, found_at.is_some()) {
        // An early refresh does not wait for another process's: it takes the lock at once,
        // or keeps serving the fresh value it found.
        match (lease::try_once(mode, l2, ctx.plan, ctx.stats).await, stale) {
            (Some(lease), s) => (held, stale) = (lease, s),
            (None, Some(fresh)) => {
                ctx.stats.incr(Counter::Hits);
                note_origin(opts, Origin::Hit);
                return Ok(publish(guard, fresh.value));
            }
            (None, None) => stale = None,
        }
    } else if let Some(l2) = distributed {
        // A value found while waiting is taken, unless this call refreshes (forced, or because
        // what is stored is older than its `max_age`).
        let accept_cached = !call.force_refresh && !call.too_old;
        let timed = timeout_of(&ctx, stale.as_ref(), can_refresh_in_background);
        let limit = timed.as_ref().map(|t| t.0);
        match lease::acquire(
            mode,
            &ctx.place,
            l2,
            ctx.plan,
            accept_cached,
            limit,
            ctx.stats,
        )
        .await
        {
            Acquired::Found(v) => {
                ctx.stats.incr(Counter::Coalesced);
                note_origin(opts, Origin::Coalesced);
                return Ok(publish(guard, v));
            }
            Acquired::Held(lease) => held = Some(lease),
            Acquired::NotHeld => {}
            Acquired::TimedOut => {
                if let Some((limit, fallback)) = timed {
                    // Waiters of this process stay with the round; they get the fallback too.
                    drop(guard);
                    return fall_back(&ctx, opts, limit, fallback);
                }
            }
        }
    }
    ctx.stats.incr(if stale.is_some() || call.force_refresh {
        Counter::Refreshes
    } else {
        Counter::Misses
    });
    if call.early {
        ctx.stats.incr(Counter::EarlyRefresh);
    }
    tracing::debug!("steadycache: miss, computing");
    // Factory timeouts: the computation becomes a task the caller waits for, within limits.
    let timed = timeout_of(&ctx, stale.as_ref(), can_refresh_in_background);
    let round = Round { guard, held, stale };
    if let Some((limit, fallback)) = timed {
        if let Some(job) = make_job() {
            let (result, origin) = timeout::run(&ctx, mode, job, limit, round, fallback).await;
            note_origin(opts, origin);
            return result;
        }
        // No job after all (the caller could not make one): computed inline, unbounded.
    }
    let started = std::time::Instant::now();
    let result = compute().await;
    let (result, origin) =
        tail::conclude(mode, &ctx.tail(), result, started.elapsed(), round).await;
    note_origin(opts, origin);
    result
}
