//! Hit-count rules, on the backend's atomic counters (`Backend::incr`), so that every process
//! sharing the backend counts together:
//!
//! * `min_calls` (cashews' `hit` admission): a value is stored only once its arguments were
//!   computed `min_calls` times within the ttl. The counter `<key>#calls` is created with the
//!   function's ttl (a fixed window from the first call); until it reaches `min_calls`, values
//!   are returned and not stored (`not_admitted` in the stats).
//! * `max_hits`: an entry is served at most `max_hits` times. Each stored value has its own
//!   counter, `<key>#hits<created_at>`, which lives as long as the entry; the hit that finds it
//!   past the limit removes the entry and computes anew.
//!
//! Counters live at most [`MAX_WINDOW`] (a function without a ttl counts `min_calls` per day,
//! and an entry kept longer starts its `max_hits` again after a day). Two readers that find an
//! entry past its limit at once may both remove it (the second may remove the value the first
//! just computed): a recomputation more, never a wrong value.
//!
//! A backend that cannot count (down, or without `incr`) fails open: the value is admitted,
//! the hit served, and the error logged and counted.

use super::io::{self, backend_error, Found, Mode};
use super::job::Value;
use super::plan::Plan;
use crate::stats::{Counter, Stats};
use crate::tier::Place;
use std::time::Duration;

/// The longest a counter lives.
pub(crate) const MAX_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);

/// Whether a value computed for `place` may be stored (`min_calls`).
pub(crate) async fn admitted<V>(mode: Mode, place: &Place<V>, plan: &Plan, stats: &Stats) -> bool {
    let (Some(min), Some(c)) = (plan.min_calls, place.counters.as_ref()) else {
        return true;
    };
    let key = format!("{}#calls", c.key);
    let window = plan.ttl.unwrap_or(MAX_WINDOW).min(MAX_WINDOW);
    match io::incr(mode, c, key, 1, Some(window)).await {
        Ok(n) if n < i64::from(min) => {
            stats.incr(Counter::NotAdmitted);
            tracing::debug!(key = %c.key, calls = n, min_calls = min, "steadycache: not stored yet (min_calls)");
            false
        }
        Ok(_) => true,
        Err(e) => {
            backend_error(stats, &c.key, "incr", &e);
            true
        }
    }
}

/// Count one hit of `found` (`max_hits`); `false` when it was served its last time already:
/// the entry is then removed, and the caller computes.
pub(crate) async fn hit<V: Value>(
    mode: Mode,
    place: &Place<V>,
    plan: &Plan,
    found: &Found<V>,
    stats: &Stats,
) -> bool {
    let (Some(max), Some(c)) = (plan.max_hits, place.counters.as_ref()) else {
        return true;
    };
    let key = format!("{}#hits{}", c.key, found.created_at);
    let now = crate::time::unix_millis();
    let left = found.at.keep_until.max(found.at.expires_at);
    let ttl = Duration::from_millis(left.saturating_sub(now).max(1)).min(MAX_WINDOW);
    match io::incr(mode, c, key.clone(), 1, Some(ttl)).await {
        Ok(n) if n > i64::from(max) => {
            tracing::debug!(key = %c.key, hits = n, max_hits = max, "steadycache: served max_hits times; dropped");
            // Gone with its entry: the next value may be stored within the same millisecond
            // (the same counter key) and starts from zero.
            if let Err(e) = io::delete_key(mode, c, key).await {
                backend_error(stats, &c.key, "delete", &e);
            }
            if let Some(l1) = &place.l1 {
                l1.store.remove(l1.hash);
            }
            if let Some(l2) = &place.l2 {
                if let Err(e) = io::delete(mode, l2).await {
                    backend_error(stats, &l2.key, "delete", &e);
                }
            }
            false
        }
        Ok(_) => true,
        Err(e) => {
            backend_error(stats, &c.key, "incr", &e);
            true
        }
    }
}
