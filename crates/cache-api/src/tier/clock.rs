//! The in-process tier's clock.
//!
//! Reading even a coarse OS clock (`CLOCK_MONOTONIC_COARSE` through the vDSO) costs about 5 ns,
//! a fifth of a hit. So a hit reads [`recent_ms`]: milliseconds since the process's clock base,
//! advanced every millisecond by one `steadycache-clock` thread (started with the first typed
//! store; the same design as `quanta`'s upkeep thread). The only effect of that thread running
//! late is that a value can be served up to that lateness past its expiry; it is never dropped
//! early. Stores, stale checks and everything off the hit path read the precise clock
//! ([`now_ms`]). If the thread cannot be started, hits read the precise clock too.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Once, OnceLock};
use std::time::{Duration, Instant};

fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

/// Milliseconds since the clock base, read from the OS now (below `u64::MAX`, which means
/// never).
pub(crate) fn now_ms() -> u64 {
    u64::try_from(base().elapsed().as_millis())
        .unwrap_or(u64::MAX - 1)
        .saturating_add(crate::time::test_offset_ms())
        .min(u64::MAX - 1)
}

/// Bring the recent clock up to date at once (after a test moved the clocks).
#[cfg(feature = "testing")]
pub(crate) fn catch_up() {
    RECENT.fetch_max(now_ms(), Relaxed);
}

static RECENT: AtomicU64 = AtomicU64::new(0);
static TICKING: AtomicBool = AtomicBool::new(false);

/// Start the ticking thread (once per process).
pub(crate) fn start() {
    static START: Once = Once::new();
    START.call_once(|| {
        RECENT.store(now_ms(), Relaxed);
        let spawned = std::thread::Builder::new()
            .name("steadycache-clock".into())
            .spawn(|| loop {
                RECENT.store(now_ms(), Relaxed);
                std::thread::sleep(Duration::from_millis(1));
            });
        TICKING.store(spawned.is_ok(), Relaxed);
    });
}

/// The recent clock (see the module docs): at most about a millisecond behind [`now_ms`].
#[inline]
pub(crate) fn recent_ms() -> u64 {
    if TICKING.load(Relaxed) {
        RECENT.load(Relaxed)
    } else {
        now_ms()
    }
}

/// An instant on this clock as a wall-clock one (ms since the Unix epoch, `now_unix_ms` being
/// now): the same distance from now, before or after. `u64::MAX` (never) stays never.
pub(crate) fn to_unix(at_ms: u64, now_unix_ms: u64) -> u64 {
    if at_ms == u64::MAX {
        return u64::MAX;
    }
    let now = now_ms();
    if at_ms >= now {
        now_unix_ms.saturating_add(at_ms - now).min(u64::MAX - 1)
    } else {
        now_unix_ms.saturating_sub(now - at_ms)
    }
}

/// A wall-clock instant (ms since the Unix epoch, as stored in envelopes) on this clock: the
/// same distance from now, before or after. `u64::MAX` (never) stays never.
pub(crate) fn from_unix(at_unix_ms: u64, now_unix_ms: u64) -> u64 {
    if at_unix_ms == u64::MAX {
        return u64::MAX;
    }
    let now = now_ms();
    if at_unix_ms >= now_unix_ms {
        now.saturating_add(at_unix_ms - now_unix_ms)
            .min(u64::MAX - 1)
    } else {
        now.saturating_sub(now_unix_ms - at_unix_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_convert_both_ways_past_and_future() {
        let unix = 1_800_000_000_000;
        let tier = now_ms();
        for delta in [0u64, 1, 5_000] {
            let future = from_unix(unix + delta, unix);
            assert!(future >= tier + delta && future <= now_ms() + delta);
            let back = to_unix(future, unix);
            assert!(back >= unix + delta - 5 && back <= unix + delta, "{back}");
            let past = to_unix(tier.saturating_sub(delta), unix);
            assert!(past <= unix.saturating_sub(delta.min(tier)), "{past}");
        }
        assert_eq!(from_unix(u64::MAX, unix), u64::MAX);
        assert_eq!(to_unix(u64::MAX, unix), u64::MAX);
        assert_eq!(from_unix(0, u64::MAX - 1), 0, "saturates, never panics");
    }
}
