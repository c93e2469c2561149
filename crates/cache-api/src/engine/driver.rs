//! The one driver: runs the steps the decision core chooses, for sync and async callers alike.
//!
//! [`drive`] is an `async fn` over an I/O [`Mode`]. Async callers await it; sync callers poll
//! it on their own thread ([`run_sync`] through [`io::block_local`]), where every operation
//! blocks instead of pending, so the function runs on the caller's thread and no runtime is
//! needed. Hits of the typed tier never come here (see `Memo::call_sync`).
//!
//! A call runs in phases, each a method of [`Driving`] that says what happens next:
//! [`choose`](Driving::choose) (look up, decide, count a `max_hits` hit) serves what it found or
//! says what to recompute; [`join`](Driving::join) coalesces in process (a waiter's wait ends
//! the call), [`look_again`](Driving::look_again) lets a new leader take what the round before
//! it stored, [`lock`](Driving::lock) coalesces across processes, and
//! [`compute`](Driving::compute) runs the function and concludes the round (`tail`), within
//! the factory timeouts (`timeout`) when there are any. An early refresh by the caller, which
//! never waits for anyone, is a path of its own ([`refresh_early`](Driving::refresh_early)).
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
use super::lookup::{lookup, Look};
use super::plan::{after_wait, decide, AfterWait, Background, Call, Ended, Reading, Step, Wants};
use super::refresh;
use super::tail::{self, publish, Round};
use super::timeout::{self, Fallback};
use crate::envelope::Freshness;
use crate::flight::LeaderGuard;
use crate::flight::{self, Outcome, Role};
use crate::policy::{Lock, Refresh};
use crate::scope::CallOptions;
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
    background: Background,
) -> Option<(std::time::Duration, Fallback<V, E>)> {
    if background == Background::Impossible {
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

fn background(available: bool) -> Background {
    if available {
        Background::Possible
    } else {
        Background::Impossible
    }
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
    let background = background(refresh.available());
    block_local(drive(
        ctx,
        Mode::Sync,
        || std::future::ready(compute()),
        background,
        || refresh.job().map(RefreshJob::Sync),
    ))
}

/// The async entry: `compute` is awaited at most once, in the calling task.
///
/// A plain function returning the driver's future, not an `async fn` around it: an `async fn`
/// keeps its arguments beside the future it awaits, so each such level added the call's
/// context (and closures) to the size of every call's future.
pub(crate) fn run_async<'a, V: Value, E: Send + 'static, Fut>(
    ctx: Ctx<'a, V, E>,
    compute: impl FnOnce() -> Fut + 'a,
    refresh: impl AsyncRefresh<V, E> + 'a,
) -> impl Future<Output = Result<V, E>> + 'a
where
    Fut: Future<Output = Result<V, E>> + 'a,
{
    let background = background(refresh.available());
    drive(ctx, Mode::Async, compute, background, move || {
        refresh.job().map(RefreshJob::Async)
    })
}

/// The flow of one call (see the module docs).
async fn drive<V, E, F, Fut, J>(
    ctx: Ctx<'_, V, E>,
    mode: Mode,
    compute: F,
    background: Background,
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
    let wants = Wants::of(opts.bypass, opts.refresh);
    if wants == Wants::Bypass {
        return compute().await;
    }
    let d = Driving {
        ctx: &ctx,
        mode,
        opts,
        wants,
        background,
        compute,
        make_job,
    };
    match d.choose().await {
        Chosen::Serve(v, origin) => {
            note_origin(opts, origin);
            Ok(v)
        }
        Chosen::ServeAndRefresh(found, purpose) => {
            let early = purpose == Purpose::Early;
            refresh::spawn(&ctx, d.make_job, &found, early);
            note_origin(opts, if early { Origin::Hit } else { Origin::Stale });
            Ok(found.value)
        }
        // Boxed: the phases past a lookup (coalescing, leases, the computation, storing) are
        // most of this future's size, and a hit, served above, should not carry (and move)
        // them: an async `#[cached]` call's future went from 7 KB to {size} with this.
        Chosen::RefreshEarly(fresh) => Box::pin(d.refresh_early(fresh)).await,
        Chosen::Compute(old, reading) => Box::pin(d.recompute(old, reading)).await,
    }
}

/// One call on its way through the phases: what each phase reads.
struct Driving<'c, 'a, V, E, F, J> {
    ctx: &'c Ctx<'a, V, E>,
    mode: Mode,
    /// For `max_age` and noting the origin.
    opts: CallOptions,
    wants: Wants,
    background: Background,
    /// The function, run at most once, by [`compute`](Driving::compute).
    compute: F,
    /// Makes the job a background refresh or a timed computation runs.
    make_job: J,
}

/// What [`Driving::choose`] found to do.
enum Chosen<V> {
    /// Serve this value (a hit), noted with this origin.
    Serve(V, Origin),
    /// Serve the value found and refresh it in the background: a stale value
    /// ([`Purpose::Replace`]) or a fresh one early ([`Purpose::Early`]).
    ServeAndRefresh(Found<V>, Purpose),
    /// Refresh the fresh value found now, early, by this caller: it never waits for another.
    RefreshEarly(Found<V>),
    /// Compute (coalesced), serving the old value if that fails when there is one; how the
    /// call read what it found.
    Compute(Option<Found<V>>, Reading),
}

/// How coalescing in process ([`Driving::join`]) ended.
enum Joined<V: Clone, E> {
    /// The call is over: the leader's outcome, or a fallback.
    Done(Result<V, E>),
    /// This caller computes, leading the flight when it holds one; the old value comes back.
    Lead(Option<LeaderGuard<V, E>>, Option<Found<V>>),
}

/// How coalescing across processes ([`Driving::lock`]) ended.
// Returned once per computing call and moved straight into `compute`: boxing the round would
// cost an allocation on every miss to save a copy of a few hundred bytes.
#[allow(clippy::large_enum_variant)]
enum Locked<V: Clone, E> {
    /// The call is over: another process's value, or a fallback.
    Done(Result<V, E>),
    /// This caller computes: the round it holds.
    Lead(Round<V, E>),
}

/// Why a round computes, for the counters.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Purpose {
    /// Nothing servable was found.
    Fill,
    /// A value was found but must be replaced (stale, too old, forced).
    Replace,
    /// A fresh value is refreshed early.
    Early,
}

impl<V, E, F, Fut, J> Driving<'_, '_, V, E, F, J>
where
    V: Value,
    E: Send + 'static,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<V, E>>,
    J: FnOnce() -> Option<RefreshJob<V, E>>,
{
    /// Whether `f` is older than the call's `max_age` (on the wall clock).
    fn too_old(&self, f: &Found<V>) -> bool {
        self.opts.max_age.is_some_and(|age| {
            let age_ms = u64::try_from(age.as_millis()).unwrap_or(u64::MAX);
            unix_millis().saturating_sub(f.created_at) > age_ms
        })
    }

    /// How this call reads `found`: too old for its `max_age`, or due for an early refresh
    /// (the dice roll here, off the hit path, inside a value's window only).
    fn reading(&self, found: Option<&Found<V>>) -> Reading {
        let plan = self.ctx.plan;
        match found {
            Some(f) if self.too_old(f) => Reading::TooOld,
            Some(f)
                if plan.early.is_some()
                    && f.freshness == Freshness::Fresh
                    && plan.refresh_early(unix_millis(), f.at, f.took_ms, fastrand::f64()) =>
            {
                Reading::Early
            }
            _ => Reading::AsStored,
        }
    }

    fn hit(&self, v: V) -> Result<V, E> {
        self.ctx.stats.hit();
        note_origin(self.opts, Origin::Hit);
        Ok(v)
    }

    /// How far this call's lookups go when L1 holds a copy. On a cache whose bus carries what
    /// other processes store (so an L1 copy is as new as L2's, or gone), a caller that can hand
    /// its work to the background does not wait for a store round trip before it serves what
    /// it holds: with a `soft_timeout`, any copy ([`Look::Held`]: it waits for its refresh at
    /// most that long, not for a read first); with stale-while-revalidate, a fresh or stale
    /// one ([`Look::Servable`]).
    fn look(&self) -> Look {
        let ctx = self.ctx;
        if self.background == Background::Impossible || ctx.place.announce.is_none() {
            return Look::FirstFresh;
        }
        if ctx.plan.soft_timeout.is_some() {
            Look::Held
        } else if ctx.plan.refresh == Refresh::Background {
            Look::Servable
        } else {
            Look::FirstFresh
        }
    }

    /// Look up, decide, and count a `max_hits` hit (a value served its last time already is
    /// dropped, and computed anew).
    async fn choose(&self) -> Chosen<V> {
        let (ctx, mode) = (self.ctx, self.mode);
        let look = self.look();
        let mut found = match self.wants {
            Wants::Fresh => None,
            _ => lookup(mode, &ctx.place, ctx.plan, look, ctx.stats).await,
        };
        let call = Call {
            wants: self.wants,
            background: self.background,
            reading: self.reading(found.as_ref()),
        };
        let mut step = decide(ctx.plan, found.as_ref().map(|f| f.freshness), call);
        if let (Some(_), true, Some(f)) = (ctx.plan.max_hits, serves_found(step), &found) {
            if !Box::pin(counted::hit(mode, &ctx.place, ctx.plan, f, ctx.stats)).await {
                (step, found) = (Step::Compute, None);
            }
        }
        match (step, found) {
            (Step::Hit, Some(f)) => {
                ctx.stats.hit();
                tracing::trace!("steadycache: hit");
                Chosen::Serve(f.value, Origin::Hit)
            }
            (Step::ServeStaleRefreshBackground, Some(f)) => {
                ctx.stats.incr(Counter::Stale);
                tracing::debug!("steadycache: serving stale, refreshing in the background");
                Chosen::ServeAndRefresh(f, Purpose::Replace)
            }
            (Step::RefreshEarly { background: true }, Some(f)) => {
                ctx.stats.hit();
                tracing::debug!("steadycache: refreshing early in the background");
                Chosen::ServeAndRefresh(f, Purpose::Early)
            }
            (Step::RefreshEarly { background: false }, Some(f)) => Chosen::RefreshEarly(f),
            // The old value, served if the recompute fails.
            (Step::RefreshInline { fallback: true }, Some(f)) => {
                Chosen::Compute(Some(f), call.reading)
            }
            _ => Chosen::Compute(None, call.reading),
        }
    }

    /// The blocking path: coalesce in process, look again, coalesce across processes, compute.
    async fn recompute(self, old: Option<Found<V>>, reading: Reading) -> Result<V, E> {
        let (guard, old) = match self.join(old).await {
            Joined::Done(result) => return result,
            Joined::Lead(guard, old) => (guard, old),
        };
        if guard.is_some() && self.wants != Wants::Fresh {
            // The round before ours may have stored the value after our lookup.
            if let Some(v) = self.look_again(None).await {
                return self.hit(publish(guard, v));
            }
        }
        let round = match self.lock(guard, old, reading).await {
            Locked::Done(result) => return result,
            Locked::Lead(round) => round,
        };
        let purpose = if round.stale.is_some() || self.wants == Wants::Fresh {
            Purpose::Replace
        } else {
            Purpose::Fill
        };
        self.compute(round, purpose).await
    }

    /// Coalesce in process: lead the key's flight, or wait for its leader (within the factory
    /// timeouts) and take what its round ended with.
    async fn join(&self, mut old: Option<Found<V>>) -> Joined<V, E> {
        let ctx = self.ctx;
        if ctx.plan.lock == Lock::None {
            return Joined::Lead(None, old);
        }
        loop {
            let flight = match flight::join::<V, E>(ctx.flights, ctx.id, ctx.shape.share_err) {
                Role::Leader(g) => return Joined::Lead(Some(g), old),
                Role::Solo => return Joined::Lead(None, old),
                // A sync caller on a `current_thread` runtime: the leader may be an async task
                // that needs this very thread, so waiting could never end. It computes without
                // the flight instead (its value is stored as any other).
                Role::Waiter(_) if self.mode == Mode::Sync && io::on_current_thread_runtime() => {
                    return Joined::Lead(None, old)
                }
                Role::Waiter(f) => f,
            };
            ctx.stats.incr(Counter::Coalesced);
            // A waiter waits for the leader within the same factory timeouts.
            let timed = timeout_of(ctx, old.as_ref(), self.background);
            let limit = timed.as_ref().map(|t| t.0);
            let outcome = flight.wait_for(self.mode, limit).await;
            let Some(outcome) = outcome else {
                match timed {
                    Some((limit, fallback)) => {
                        return Joined::Done(fall_back(ctx, self.opts, limit, fallback))
                    }
                    None => continue,
                }
            };
            let servable = old.as_ref().is_some_and(|o| o.servable(unix_millis()));
            match (after_wait(ended(&outcome), servable), outcome) {
                (AfterWait::Value, Outcome::Value(v)) => {
                    note_origin(self.opts, Origin::Coalesced);
                    return Joined::Done(Ok(v));
                }
                (AfterWait::Error, Outcome::Error(e)) => {
                    note_origin(self.opts, Origin::Coalesced);
                    return Joined::Done(Err(e));
                }
                (AfterWait::ServeStale, _) => match old.take() {
                    Some(old) => {
                        ctx.stats.incr(Counter::Stale);
                        ctx.stats.incr(Counter::FailSafe);
                        note_origin(self.opts, Origin::FailSafe);
                        return Joined::Done(Ok(old.value));
                    }
                    None => return Joined::Lead(None, None),
                },
                (AfterWait::Rejoin, _) => continue,
                _ => return Joined::Lead(None, old), // compute alone
            }
        }
    }

    /// A new leader looks again: the round before its own may have stored after its lookup. A
    /// fresh value not too old for the call, newer than `than` (ms) when given, is the answer.
    async fn look_again(&self, than: Option<u64>) -> Option<V> {
        let ctx = self.ctx;
        let look = match (than, self.look()) {
            (Some(_), _) => Look::Newest,
            // The round before ours stored in this process's L1 too; another process's value
            // would have dropped the copy (and then L2 is read).
            (None, Look::Held) => Look::Held,
            (None, _) => Look::FirstFresh,
        };
        lookup(self.mode, &ctx.place, ctx.plan, look, ctx.stats)
            .await
            .filter(|f| !self.too_old(f) && than.is_none_or(|c| f.created_at > c))
            .and_then(Found::fresh)
    }

    /// Coalesce across processes (a distributed lock, when the plan and the store have one):
    /// take the lock, or take the value another process stored while this caller waited
    /// (unless the call refreshes: forced, or what it found was older than its `max_age`).
    async fn lock(
        &self,
        guard: Option<LeaderGuard<V, E>>,
        old: Option<Found<V>>,
        reading: Reading,
    ) -> Locked<V, E> {
        let ctx = self.ctx;
        let Some(l2) = wants_distributed(&ctx.place, ctx.plan) else {
            return Locked::Lead(Round {
                guard,
                held: None,
                stale: old,
            });
        };
        let accept_cached = self.wants != Wants::Fresh && reading != Reading::TooOld;
        let timed = timeout_of(ctx, old.as_ref(), self.background);
        let limit = timed.as_ref().map(|t| t.0);
        let (place, plan, stats) = (&ctx.place, ctx.plan, ctx.stats);
        let held =
            match lease::acquire(self.mode, place, l2, plan, accept_cached, limit, stats).await {
                Acquired::Found(v) => {
                    ctx.stats.incr(Counter::Coalesced);
                    note_origin(self.opts, Origin::Coalesced);
                    return Locked::Done(Ok(publish(guard, v)));
                }
                Acquired::Held(lease) => Some(lease),
                Acquired::NotHeld => None,
                Acquired::TimedOut => match timed {
                    Some((limit, fallback)) => {
                        // Waiters of this process stay with the round; they get the fallback too.
                        drop(guard);
                        return Locked::Done(fall_back(ctx, self.opts, limit, fallback));
                    }
                    None => None,
                },
            };
        Locked::Lead(Round {
            guard,
            held,
            stale: old,
        })
    }

    /// An early refresh by the caller, of the fresh value it found: it never waits for
    /// another. A flight already under way, or another process's lock, means someone else
    /// refreshes: the fresh value is served. A leader takes a value newer than its own if the
    /// round before stored one.
    async fn refresh_early(self, fresh: Found<V>) -> Result<V, E> {
        let ctx = self.ctx;
        let guard = match ctx.plan.lock {
            Lock::None => None,
            _ => match flight::join::<V, E>(ctx.flights, ctx.id, ctx.shape.share_err) {
                Role::Leader(g) => Some(g),
                Role::Solo => None,
                Role::Waiter(_) => return self.hit(fresh.value),
            },
        };
        if guard.is_some() {
            if let Some(v) = self.look_again(Some(fresh.created_at)).await {
                return self.hit(publish(guard, v));
            }
        }
        let held = match wants_distributed(&ctx.place, ctx.plan) {
            None => None,
            Some(l2) => match lease::try_once(self.mode, l2, ctx.plan, ctx.stats).await {
                Some(lease) => lease,
                None => return self.hit(publish(guard, fresh.value)),
            },
        };
        let round = Round {
            guard,
            held,
            stale: Some(fresh),
        };
        self.compute(round, Purpose::Early).await
    }

    /// Run the function for `round` and conclude it (store, release, publish): as a task the
    /// caller waits for within the factory timeouts when there are any, else inline.
    async fn compute(self, round: Round<V, E>, purpose: Purpose) -> Result<V, E> {
        let ctx = self.ctx;
        ctx.stats.incr(match purpose {
            Purpose::Fill => Counter::Misses,
            Purpose::Replace | Purpose::Early => Counter::Refreshes,
        });
        if purpose == Purpose::Early {
            ctx.stats.incr(Counter::EarlyRefresh);
        }
        tracing::debug!("steadycache: miss, computing");
        if let Some((limit, fallback)) = timeout_of(ctx, round.stale.as_ref(), self.background) {
            if let Some(job) = (self.make_job)() {
                let (result, origin) =
                    timeout::run(ctx, self.mode, job, limit, round, fallback).await;
                note_origin(self.opts, origin);
                return result;
            }
            // No job after all (the caller could not make one): computed inline, unbounded.
        }
        let started = std::time::Instant::now();
        let result = (self.compute)().await;
        let took = started.elapsed();
        let (result, origin) = tail::conclude(self.mode, &ctx.tail(), result, took, round).await;
        note_origin(self.opts, origin);
        result
    }
}
