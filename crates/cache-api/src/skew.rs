//! One clock for every client of a store: the store's, as estimated by each client (for
//! backends that judge expiry in the client, such as MongoDB and S3; see
//! [`plumbing`](crate::plumbing)).

use crate::time::unix_millis;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

/// How long past its expiry an entry must be before a read deletes it. A read that finds an
/// entry expired by less is a miss but leaves the entry alone: the clients that share a store
/// estimate its clock each on their own (within a round trip, or the second of an HTTP `Date`),
/// and what looks expired to one may still be live for its writer.
pub const SKEW_MARGIN: Duration = Duration::from_secs(2);

/// A store's clock as one client sees it: this machine's clock, shifted by a configured skew
/// (a test knob that makes a client run ahead or behind; zero in production), plus an
/// estimated offset to the store's clock.
///
/// # The estimate
/// A store's answer carrying its time (MongoDB's `hello` `localTime`, an HTTP `Date`) says only
/// that the offset lies in an interval: the store read its clock at some instant between the
/// request leaving and the answer arriving, at the precision of the field. The estimate starts
/// at zero (this machine's clock is trusted while no answer contradicts it), and an answer that
/// contradicts it moves it to the nearest end of that answer's interval, no further. The true
/// offset lies in every interval, so each move brings the estimate closer to it, it never jumps
/// back and forth, and a machine in step with its store keeps its own clock.
///
/// ```
/// use steadycache_api::plumbing::StoreClock;
/// let clock = StoreClock::new(0);
/// // An answer said the store runs between 59.9 s and 60.1 s ahead.
/// clock.observe(59_900, 60_100);
/// assert_eq!(clock.offset_ms(), 59_900);
/// assert!(clock.synced());
/// ```
#[derive(Debug)]
pub struct StoreClock {
    skew_ms: i64,
    offset_ms: AtomicI64,
    synced: AtomicBool,
}

impl StoreClock {
    /// A clock trusting this machine's (shifted by `skew_ms`) until an answer contradicts it.
    pub fn new(skew_ms: i64) -> Self {
        StoreClock {
            skew_ms,
            offset_ms: AtomicI64::new(0),
            synced: AtomicBool::new(false),
        }
    }

    /// This machine's clock, shifted by the skew: ms since the Unix epoch.
    pub fn local_ms(&self) -> i64 {
        i64::try_from(unix_millis())
            .unwrap_or(i64::MAX)
            .saturating_add(self.skew_ms)
    }

    /// The store's clock as estimated: ms since the Unix epoch.
    pub fn now_ms(&self) -> i64 {
        self.local_ms().saturating_add(self.offset_ms())
    }

    /// [`now_ms`](Self::now_ms), as an unsigned count (0 before the epoch).
    pub fn now(&self) -> u64 {
        u64::try_from(self.now_ms()).unwrap_or(0)
    }

    /// The estimated offset, ms: the store's clock minus this machine's (shifted) clock.
    pub fn offset_ms(&self) -> i64 {
        self.offset_ms.load(Ordering::Relaxed)
    }

    /// Whether an answer of the store has been observed.
    pub fn synced(&self) -> bool {
        self.synced.load(Ordering::Relaxed)
    }

    /// An answer said the offset lies in `[lo, hi]` (ms): move the estimate into it, to its
    /// nearest end. An empty interval (this machine's clock stepped during the request) is
    /// ignored.
    pub fn observe(&self, lo: i64, hi: i64) {
        if lo > hi {
            return;
        }
        let _ = self
            .offset_ms
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |o| {
                let c = o.clamp(lo, hi);
                (c != o).then_some(c)
            });
        self.synced.store(true, Ordering::Relaxed);
    }

    /// An answer to a request sent at `sent` and received at `received` (both
    /// [`local_ms`](Self::local_ms)) said the store's clock read `at`, to within `precision_ms`
    /// (1 for whole milliseconds, 1000 for an HTTP date).
    pub fn observe_reading(&self, sent: i64, received: i64, at: i64, precision_ms: i64) {
        self.observe(
            at.saturating_sub(received),
            at.saturating_add(precision_ms.saturating_sub(1).max(0))
                .saturating_sub(sent),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_estimate_moves_only_when_a_reading_contradicts_it() {
        let c = StoreClock::new(60_000);
        assert!(c.local_ms() > i64::try_from(unix_millis()).unwrap_or(0) + 59_000);
        assert!(!c.synced());
        c.observe(-3, 2);
        assert_eq!(c.offset_ms(), 0, "in step: kept");
        assert!(c.synced());
        c.observe(-60_004, -59_998);
        assert_eq!(c.offset_ms(), -59_998);
        c.observe(-60_001, -59_999);
        assert_eq!(c.offset_ms(), -59_999, "nearest end");
        c.observe(10, 1);
        assert_eq!(c.offset_ms(), -59_999, "empty: ignored");
    }

    #[test]
    fn a_reading_bounds_the_offset_by_the_round_trip_and_the_precision() {
        let c = StoreClock::new(0);
        // Sent at 1000, received at 1010; the store said 61_000 to the second.
        c.observe_reading(1000, 1010, 61_000, 1000);
        assert_eq!(c.offset_ms(), 59_990);
        c.observe_reading(i64::MIN, i64::MAX, i64::MAX, i64::MAX);
        assert_eq!(c.offset_ms(), 59_990, "saturating, never panicking");
    }
}
