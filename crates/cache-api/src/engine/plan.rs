//! The decision core: every freshness and failure rule of the engine, as pure functions.
//!
//! Nothing here does I/O or reads a clock: time, randomness and what the tiers found are the
//! caller's inputs, as in `quinn-proto`. A [`Policy`] is compiled once per memoized function (or
//! per call by hand) into a [`Plan`], whose durations are validated and saturated, so that no
//! later arithmetic can overflow or panic. The driver asks [`decide`] what to do with what the
//! tiers found, and [`after_wait`] what to do when the leader it waited on is done.
//!
//! A new strategy is a new rule here (or a layer around the computation in the driver), never
//! a branch copied into a sync and an async flow.

use super::job::Lifetimes;
use super::xfetch;
use crate::envelope::Freshness;
use crate::policy::{
    Lock, Policy, Refresh, DEFAULT_FAIL_SAFE_THROTTLE, MAX_JITTER, MAX_LOCK_TTL, MIN_LOCK_TTL,
};
use crate::tier::Deadlines;
use std::time::Duration;

/// A [`Policy`], validated once: every field within range, so the driver never has to check.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Plan {
    /// Hard expiry of a positive result.
    pub(crate) ttl: Option<Duration>,
    /// Soft expiry of a positive result.
    pub(crate) stale_after: Option<Duration>,
    /// Hard expiry of a negative result; `None`: negative results are not stored.
    pub(crate) negative_ttl: Option<Duration>,
    /// How stale entries are refreshed.
    pub(crate) refresh: Refresh,
    /// How concurrent misses coalesce.
    pub(crate) lock: Lock,
    /// The ttl of a distributed lock, in `[MIN_LOCK_TTL, MAX_LOCK_TTL]`.
    pub(crate) lock_ttl: Duration,
    /// How long a caller waits for another process's lock before computing without it
    /// (`None`: while the holder renews its lease).
    pub(crate) lock_wait: Option<Duration>,
    /// How often a holder renews its lease: a third of `lock_ttl`, at least 1 ms.
    pub(crate) heartbeat: Duration,
    /// Serve the stale value when its refresh fails.
    pub(crate) serve_stale_on_error: bool,
    /// How long past its ttl a positive entry is kept for fail-safe (`None`: not kept).
    pub(crate) fail_safe: Option<Duration>,
    /// How long an old value served after a failed recompute (blocking, in the background or
    /// early) is served before the function is called again (`None`: no throttle, only when
    /// the policy sets it to zero).
    pub(crate) throttle: Option<Duration>,
    /// Jitter fraction in `[0, MAX_JITTER]`.
    pub(crate) jitter: f64,
    /// Early refresh's beta (XFetch), in `(0, xfetch::MAX_BETA]`; `None`: off.
    pub(crate) early: Option<f64>,
    /// How long a caller with an old value to serve waits for the function.
    pub(crate) soft_timeout: Option<Duration>,
    /// How long any caller waits for the function.
    pub(crate) hard_timeout: Option<Duration>,
    /// An abandoned computation still stores its result.
    pub(crate) background_completion: bool,
    /// Computations of the same arguments within the ttl before a value is stored (at least 2).
    pub(crate) min_calls: Option<u32>,
    /// Times an entry is served before it is dropped.
    pub(crate) max_hits: Option<u32>,
    /// The largest encoding stored, in bytes (`None`: no limit).
    pub(crate) entry_size_limit: Option<u64>,
}

impl Plan {
    /// Compile `policy`: clamp what is out of range (a jitter set by hand to 7 or NaN, a
    /// `lock_ttl` of `Duration::MAX` or zero) instead of failing at the first call.
    pub(crate) fn compile(policy: &Policy) -> Plan {
        let lock_ttl = policy.lock_ttl.clamp(MIN_LOCK_TTL, MAX_LOCK_TTL);
        Plan {
            ttl: policy.ttl,
            stale_after: policy.stale_after,
            negative_ttl: policy.negative_ttl,
            refresh: policy.refresh,
            lock: policy.lock,
            lock_ttl,
            lock_wait: policy.lock_wait,
            heartbeat: (lock_ttl / 3).max(MIN_LOCK_TTL),
            serve_stale_on_error: policy.serve_stale_on_error,
            fail_safe: policy.fail_safe.filter(|d| !d.is_zero()),
            throttle: match (policy.fail_safe_throttle, policy.fail_safe) {
                (Some(t), _) => Some(t).filter(|t| !t.is_zero()),
                // Every failing recompute is throttled: a failed background or early refresh
                // backs off too, fail-safe or not.
                (None, _) => Some(DEFAULT_FAIL_SAFE_THROTTLE),
            },
            jitter: if policy.jitter.is_finite() {
                policy.jitter.clamp(0.0, MAX_JITTER)
            } else {
                0.0
            },
            early: xfetch::beta(policy.early_refresh),
            soft_timeout: policy.soft_timeout,
            hard_timeout: policy.hard_timeout,
            background_completion: policy.background_completion,
            min_calls: policy.min_calls.filter(|n| *n >= 2),
            max_hits: policy.max_hits,
            entry_size_limit: policy.entry_size_limit,
        }
    }

    /// The deadlines, in ms on the clock `now_ms` is read from (`u64::MAX` = never), of a
    /// value computed at `now_ms`; `None` when the value is not to be stored (a negative result
    /// without `negative_ttl`). `rand01` in `[0, 1)` draws the jitter, which shortens both
    /// lifetimes by the same fraction (at least 1 ms is kept). A positive value with fail-safe
    /// is kept `fail_safe` past its expiry (not jittered).
    pub(crate) fn deadlines(&self, now_ms: u64, negative: bool, rand01: f64) -> Option<Deadlines> {
        self.deadlines_with(now_ms, negative, rand01, None)
    }

    /// [`deadlines`](Self::deadlines) of a value whose ttl was chosen for it (`ttl`, from
    /// `ttl_fn`): it replaces the plan's `ttl` of a positive value.
    pub(crate) fn deadlines_with(
        &self,
        now_ms: u64,
        negative: bool,
        rand01: f64,
        ttl: Option<Duration>,
    ) -> Option<Deadlines> {
        let (stale, ttl, fail_safe) = if negative {
            (None, Some(self.negative_ttl?), None)
        } else {
            (self.stale_after, ttl.or(self.ttl), self.fail_safe)
        };
        Some(self.deadlines_from(now_ms, rand01, stale, ttl, fail_safe))
    }

    /// [`deadlines`](Self::deadlines) of a positive value whose every lifetime was chosen for
    /// it (`Shape::lifetimes_of`): stale after `fresh`, expired `stale` later, kept `fail_safe`
    /// longer. The plan's jitter still shortens the first two.
    pub(crate) fn deadlines_of(&self, now_ms: u64, rand01: f64, l: Lifetimes) -> Deadlines {
        let ttl = l.fresh.saturating_add(l.stale);
        let fail_safe = Some(l.fail_safe).filter(|d| !d.is_zero());
        self.deadlines_from(now_ms, rand01, Some(l.fresh), Some(ttl), fail_safe)
    }

    /// The deadlines of a value stale after `stale`, expired after `ttl` and kept `fail_safe`
    /// past its expiry (not jittered), jittered by `rand01`.
    fn deadlines_from(
        &self,
        now_ms: u64,
        rand01: f64,
        stale: Option<Duration>,
        ttl: Option<Duration>,
        fail_safe: Option<Duration>,
    ) -> Deadlines {
        let factor = if self.jitter > 0.0 && rand01.is_finite() {
            1.0 - self.jitter * rand01.clamp(0.0, 1.0)
        } else {
            1.0
        };
        let at = |d: Option<Duration>| match d {
            None => u64::MAX,
            Some(d) => {
                let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
                // `as` saturates for floats; `factor` is in [0.1, 1].
                let ms = ((ms as f64) * factor) as u64;
                // A finite deadline stays below `u64::MAX` (which means never).
                now_ms.saturating_add(ms.max(1)).min(u64::MAX - 1)
            }
        };
        let (stale_at, expires_at) = (at(stale), at(ttl));
        let keep_until = match fail_safe {
            Some(f) if expires_at != u64::MAX => expires_at
                .saturating_add(u64::try_from(f.as_millis()).unwrap_or(u64::MAX))
                .min(u64::MAX - 1),
            _ => expires_at,
        };
        let stale_at = stale_at.min(expires_at);
        Deadlines {
            early_at: stale_at,
            stale_at,
            expires_at,
            keep_until,
        }
    }

    /// Whether a rule keeps counters in the backend (`min_calls`, `max_hits`).
    pub(crate) fn counts(&self) -> bool {
        self.min_calls.is_some() || self.max_hits.is_some()
    }

    /// How long a caller waits for the function (`None`: until it ends): with an old value to
    /// serve (`has_old`), the earlier of the soft and hard timeouts; without one, the hard
    /// timeout, when the caller can fail with it (`can_fail`: the function's error type takes a
    /// timeout).
    pub(crate) fn timeout(&self, has_old: bool, can_fail: bool) -> Option<Duration> {
        let hard = self.hard_timeout.filter(|_| has_old || can_fail);
        match (has_old, self.soft_timeout, hard) {
            (true, Some(s), Some(h)) => Some(s.min(h)),
            (true, Some(s), None) => Some(s),
            (_, _, h) => h,
        }
    }

    /// `at` with the end of its plain hits, for a value that took `took_ms`: the start of its
    /// early-refresh window, or 0 with `max_hits` (every hit is counted, on the slow path), so
    /// the hit path itself never has to look at either rule.
    pub(crate) fn with_early(&self, at: Deadlines, took_ms: u32) -> Deadlines {
        let early_at = match self.max_hits {
            Some(_) => 0,
            None => xfetch::early_at(self.early, at.stale_at, took_ms).min(at.stale_at),
        };
        Deadlines { early_at, ..at }
    }

    /// Whether a read at `now_ms` refreshes a fresh value early (XFetch; `rand01` in
    /// `[0, 1)`): only inside its window, never without early refresh.
    pub(crate) fn refresh_early(
        &self,
        now_ms: u64,
        at: Deadlines,
        took_ms: u32,
        rand01: f64,
    ) -> bool {
        now_ms >= at.early_at
            && xfetch::refresh_now(self.early, now_ms, at.stale_at, took_ms, rand01)
    }

    /// The deadlines of a value (deadlines `old`, `fresh` or not when its recompute began)
    /// kept after that recompute failed at `now_ms`, so that the function is not called again
    /// within the throttle: a fresh value (an early or a `max_age` refresh) only has its
    /// early-refresh window moved past the throttle (never past its staleness); an old one is
    /// [`throttled`](Self::throttled). `None` when nothing changes.
    pub(crate) fn after_failure(
        &self,
        now_ms: u64,
        old: Deadlines,
        fresh: bool,
    ) -> Option<Deadlines> {
        if !fresh {
            return self.throttled(now_ms, old).map(|at| self.with_early(at, 0));
        }
        let t = self.throttle?;
        if self.max_hits.is_some() {
            return None; // every hit is counted on the slow path: no window to move
        }
        let until = now_ms.saturating_add(u64::try_from(t.as_millis()).unwrap_or(u64::MAX).max(1));
        let early_at = until.min(old.stale_at).max(old.early_at);
        (early_at != old.early_at).then_some(Deadlines { early_at, ..old })
    }

    /// The deadlines of an old value (deadlines `old`) served after a failed recompute at
    /// `now_ms`: fresh for the throttle (never past its `keep_until`), so the function is not
    /// called again before; its own deadlines are never moved earlier. `None` without a
    /// throttle, or when nothing is left to keep.
    pub(crate) fn throttled(&self, now_ms: u64, old: Deadlines) -> Option<Deadlines> {
        let t = self.throttle?;
        let until = now_ms
            .saturating_add(u64::try_from(t.as_millis()).unwrap_or(u64::MAX).max(1))
            .min(u64::MAX - 1)
            .min(old.keep_until);
        let stale_at = until.max(old.stale_at).min(old.keep_until);
        (until > now_ms).then_some(Deadlines {
            early_at: stale_at,
            stale_at,
            expires_at: until.max(old.expires_at).min(old.keep_until),
            keep_until: old.keep_until,
        })
    }
}

/// What the caller asked of the cache ([`CallOptions`](crate::CallOptions)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Wants {
    /// The cached value when there is one (the default).
    #[default]
    Cached,
    /// Run without the cache: read and write nothing.
    Bypass,
    /// Compute now and store, whatever is stored (force refresh).
    Fresh,
}

impl Wants {
    /// What a call's options ask: `bypass` wins over `refresh`.
    pub(crate) fn of(bypass: bool, refresh: bool) -> Wants {
        match (bypass, refresh) {
            (true, _) => Wants::Bypass,
            (false, true) => Wants::Fresh,
            (false, false) => Wants::Cached,
        }
    }
}

/// Whether the caller can hand over a job that outlives the call (a background refresh).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Background {
    /// It can (the macro made a refresh job).
    #[default]
    Possible,
    /// It cannot: what must be refreshed is refreshed by the call itself.
    Impossible,
}

/// How the call reads the value found, beyond its freshness.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Reading {
    /// As stored.
    #[default]
    AsStored,
    /// Older than the call's `max_age`: stale for this call.
    TooOld,
    /// Fresh, and early refresh's dice say to refresh it now.
    Early,
}

/// One call, as the decision core sees it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Call {
    pub(crate) wants: Wants,
    pub(crate) background: Background,
    pub(crate) reading: Reading,
}

/// What the driver is to do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Run the function; read and write nothing.
    Bypass,
    /// Serve the value found.
    Hit,
    /// Serve the stale value found now; one refresh runs in the background.
    ServeStaleRefreshBackground,
    /// Early refresh of a fresh value: serve it and refresh in the background (`background`),
    /// or refresh now, serving it if that fails.
    RefreshEarly {
        /// The caller can hand over a background job.
        background: bool,
    },
    /// Refresh now (coalesced); on failure serve the stale value found when `fallback`.
    RefreshInline {
        /// Serve the stale value if the refresh fails.
        fallback: bool,
    },
    /// Nothing servable: compute (coalesced as the plan's lock says).
    Compute,
}

/// What to do with what the tiers found (`None`: nothing, or an expired entry).
pub(crate) fn decide(plan: &Plan, found: Option<Freshness>, call: Call) -> Step {
    match call.wants {
        Wants::Bypass => return Step::Bypass,
        Wants::Fresh => return Step::Compute,
        Wants::Cached => {}
    }
    let background = call.background == Background::Possible;
    match found {
        // Older than the call accepts: refreshed by this caller, like a stale value of a
        // blocking plan.
        Some(Freshness::Fresh | Freshness::Stale) if call.reading == Reading::TooOld => {
            Step::RefreshInline {
                fallback: plan.serve_stale_on_error,
            }
        }
        Some(Freshness::Fresh) if call.reading == Reading::Early => {
            Step::RefreshEarly { background }
        }
        Some(Freshness::Fresh) => Step::Hit,
        Some(Freshness::Stale) => {
            if plan.refresh == Refresh::Background && background {
                Step::ServeStaleRefreshBackground
            } else {
                Step::RefreshInline {
                    fallback: plan.serve_stale_on_error,
                }
            }
        }
        // Expired, kept only as a fallback: compute now, serve it if that fails.
        Some(Freshness::Reserve) => Step::RefreshInline { fallback: true },
        Some(Freshness::Expired) | None => Step::Compute,
    }
}

/// How the leader a caller waited on ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ended {
    /// With a value.
    Value,
    /// With an error the waiters got a copy of.
    SharedError,
    /// With an error that cannot be shared (not `Clone`), or a panic.
    Failed,
    /// Cancelled before it finished (its future was dropped).
    Cancelled,
}

/// What a waiter does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AfterWait {
    /// Return the leader's value.
    Value,
    /// Return the shared error.
    Error,
    /// Serve the stale value the caller found.
    ServeStale,
    /// Compute alone, at once, without joining a new flight. A failed round releases all its
    /// waiters together: a function that failed for one caller is not rerun for the others one
    /// after another (each would wait a whole run per caller before it).
    ComputeAlone,
    /// Join the flight again (one of the waiters leads): the leader never ran to its end.
    Rejoin,
}

/// The rule after a wait. `fallback`: the caller holds an old value it may serve if the round
/// failed (a stale value with `serve_stale_on_error`, or a fail-safe value; see [`decide`]).
pub(crate) fn after_wait(ended: Ended, fallback: bool) -> AfterWait {
    match ended {
        Ended::Value => AfterWait::Value,
        Ended::SharedError if fallback => AfterWait::ServeStale,
        Ended::SharedError => AfterWait::Error,
        Ended::Failed if fallback => AfterWait::ServeStale,
        Ended::Failed => AfterWait::ComputeAlone,
        Ended::Cancelled => AfterWait::Rejoin,
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
