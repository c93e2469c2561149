//! The end of a round, after the computation: store the value (or fail-safe's old value),
//! release the distributed lock, publish the outcome to the waiters, and choose what the caller
//! gets. Run by the caller (`driver`) or, when a factory timeout let the caller go, by the task
//! that finishes the computation (`timeout`).

use super::counted;
use super::io::{self, Found, Mode};
use super::job::{Shape, Value};
use super::lease::Lease;
use super::plan::Plan;
use crate::flight::{LeaderGuard, Outcome};
use crate::scope::Origin;
use crate::stats::{Counter, Stats};
use crate::tier::Place;
use crate::time::unix_millis;
use std::sync::Arc;
use std::time::Duration;

/// What a round's tail works with (borrowed from the call, or owned by a task).
pub(crate) struct Tail<'a, V, E> {
    pub(crate) place: &'a Place<V>,
    pub(crate) plan: &'a Plan,
    pub(crate) stats: &'a Arc<Stats>,
    pub(crate) shape: Shape<V, E>,
}

/// What a round holds while it computes: its flight (if leading one), its distributed lock (if
/// held), and the old value to serve if the computation fails.
pub(crate) struct Round<V: Clone, E> {
    pub(crate) guard: Option<LeaderGuard<V, E>>,
    pub(crate) held: Option<Lease>,
    pub(crate) stale: Option<Found<V>>,
}

/// Store, release, publish; the caller's result and where it came from.
pub(crate) async fn conclude<V: Value, E>(
    mode: Mode,
    tail: &Tail<'_, V, E>,
    result: Result<V, E>,
    took: Duration,
    round: Round<V, E>,
) -> (Result<V, E>, Origin) {
    let Round { guard, held, stale } = round;
    // The old value is served only while it may be kept (the computation may have been long).
    let stale = stale.filter(|o| result.is_ok() || o.servable(unix_millis()));
    let (place, plan, stats) = (tail.place, tail.plan, tail.stats);
    // A lease that ran out while this computed: another process may have taken it over and
    // stored a value computed after this one began; that newer value is kept (and counts as
    // stored: the waiters find it).
    let lapsed = result.is_ok() && held.as_ref().is_some_and(Lease::lapsed);
    let newer_kept = lapsed && io::newer_in_store(mode, place, took, stats).await;
    if let (true, Some(lease)) = (newer_kept, &held) {
        lease.mark_lost();
    }
    let stored = match (&result, &stale) {
        (Ok(_), _) if newer_kept => true,
        (Ok(v), _) => {
            counted::admitted(mode, place, plan, stats).await
                && io::store(mode, place, v, plan, &tail.shape, took, stats).await
        }
        // Fail-safe: the old value is served; with a throttle it is stored again, fresh for
        // the throttle, so the failing function is not called again before it ends. A value
        // still fresh (refreshed early, or for the call's `max_age`) only has its early-refresh
        // window moved past the throttle.
        (Err(_), Some(old)) => io::store_throttled(mode, place, old, plan, stats).await,
        (Err(_), _) => false,
    };
    if let Some(lease) = held {
        lease.release(mode, stored, stats).await;
    }
    let origin = if result.is_err() && stale.is_some() {
        Origin::FailSafe
    } else {
        Origin::Computed
    };
    (finish(tail, guard, result, stale.map(|o| o.value)), origin)
}

/// The outcome waiters get for a leader's error.
pub(crate) fn share<V, E>(shape: &Shape<V, E>, e: &E) -> Outcome<V, E> {
    match shape.share_err {
        Some(f) => Outcome::Error(f(e)),
        None => Outcome::Failed,
    }
}

/// Hand `v` to the waiters of this round (if leading one) and return it.
pub(crate) fn publish<V: Clone, E>(guard: Option<LeaderGuard<V, E>>, v: V) -> V {
    if let Some(g) = guard {
        g.finish(Outcome::Value(v.clone()));
    }
    v
}

/// Publish the result to the waiters; on an error, serve the stale value if the caller holds
/// one (it only does when the plan allows it).
fn finish<V: Clone, E>(
    tail: &Tail<'_, V, E>,
    guard: Option<LeaderGuard<V, E>>,
    result: Result<V, E>,
    stale: Option<V>,
) -> Result<V, E> {
    match result {
        Ok(v) => Ok(publish(guard, v)),
        Err(e) => {
            tail.stats.incr(Counter::Errors);
            match stale {
                Some(s) => {
                    tail.stats.incr(Counter::Stale);
                    tail.stats.incr(Counter::FailSafe);
                    tracing::warn!(
                        "steadycache: recompute failed, serving the old value (fail-safe)"
                    );
                    Ok(publish(guard, s))
                }
                None => {
                    if let Some(g) = guard {
                        g.finish(share(&tail.shape, &e));
                    }
                    Err(e)
                }
            }
        }
    }
}
