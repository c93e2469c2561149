//! An injected clock for tests of time-dependent strategies (ttls, stale windows, fail-safe,
//! throttles): [`advance`] moves every clock the library reads (the wall clock of envelopes and
//! stores that judge expiry in the process, and the in-process tier's clock) forward at once,
//! without waiting. Process-wide: a test binary that uses it runs its timed tests one at a
//! time ([`exclusive`]). Stores that keep their own time (a Redis ttl, a server's clock) are
//! not moved.
//!
//! The clocks move only while a test holds the test clock ([`exclusive`] installs it, and
//! dropping its guard uninstalls it): [`advance`] without it moves nothing (and says so in a
//! `warn` event). So turning the feature `testing` on, on purpose or through a dependency,
//! never changes the clock of code that did not install it.
//!
//! ```
//! use steadycache_api::testing::clock;
//! use std::time::Duration;
//! let _one_at_a_time = clock::exclusive();
//! let before = steadycache_api::plumbing::unix_millis();
//! clock::advance(Duration::from_secs(3600));
//! assert!(steadycache_api::plumbing::unix_millis() >= before + 3_600_000);
//! ```

use crate::time::TEST_OFFSET_MS;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// How many [`TestClock`]s are held (at most one at a time, by [`exclusive`]'s lock).
static INSTALLED: AtomicUsize = AtomicUsize::new(0);

/// Move every clock of the library forward by `d` (saturating), while a test holds the test
/// clock ([`exclusive`]); without it, nothing moves.
pub fn advance(d: Duration) {
    if INSTALLED.load(Ordering::SeqCst) == 0 {
        tracing::warn!("steadycache: testing::clock::advance without the test clock installed (hold `testing::clock::exclusive()`): the clocks do not move");
        return;
    }
    let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let _ = TEST_OFFSET_MS.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |o| {
        Some(o.saturating_add(ms))
    });
    crate::tier::clock::catch_up();
}

/// How far the clocks were moved so far.
pub fn offset() -> Duration {
    Duration::from_millis(TEST_OFFSET_MS.load(Ordering::Relaxed))
}

/// The test clock, installed while this guard lives (see [`exclusive`]).
#[must_use = "the test clock is uninstalled when the guard is dropped"]
pub struct TestClock {
    _one: MutexGuard<'static, ()>,
}

impl Drop for TestClock {
    fn drop(&mut self) {
        INSTALLED.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Install the test clock and hold it while a test moves the clocks: tests of one binary that
/// do run one at a time. The offset they added stays when the guard is dropped (clocks never
/// run backwards); only [`advance`] stops moving them.
pub fn exclusive() -> TestClock {
    static ONE: Mutex<()> = Mutex::new(());
    let one = ONE.lock().unwrap_or_else(|p| p.into_inner());
    INSTALLED.fetch_add(1, Ordering::SeqCst);
    TestClock { _one: one }
}
