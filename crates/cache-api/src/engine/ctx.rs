//! One call's context: where its value lives, the rules it follows, and what every step of the
//! driver (and a background refresh it starts) shares.

use super::job::Shape;
use super::plan::Plan;
use super::tail::Tail;
use crate::flight::FlightMap;
use crate::policy::Lock;
use crate::stats::Stats;
use crate::tier::{Place, L2};
use std::sync::Arc;

/// One call: where its value lives and the rules it follows.
pub(crate) struct Ctx<'a, V, E> {
    pub(crate) place: Place<V>,
    /// The key's identity in this process (the flight id).
    pub(crate) id: u128,
    pub(crate) plan: &'a Plan,
    pub(crate) stats: &'a Arc<Stats>,
    pub(crate) flights: &'a FlightMap,
    pub(crate) shape: Shape<V, E>,
}

impl<V, E> Ctx<'_, V, E> {
    /// What the end of the call's round works with.
    pub(crate) fn tail(&self) -> Tail<'_, V, E> {
        Tail {
            place: &self.place,
            plan: self.plan,
            stats: self.stats,
            shape: self.shape,
        }
    }
}

/// The L2 slot to lock when the plan wants a distributed lock and the backend has locks.
pub(crate) fn wants_distributed<'p, V>(place: &'p Place<V>, plan: &Plan) -> Option<&'p L2> {
    if plan.lock != Lock::Distributed {
        return None;
    }
    place
        .l2
        .as_ref()
        .filter(|l2| l2.store.manager().backend().capabilities().locks)
}
