//! An injected clock for tests of time-dependent strategies (ttls, stale windows, fail-safe,
//! throttles): [`advance`] moves every clock the library reads (the wall clock of envelopes and
//! stores that judge expiry in the process, and the in-process tier's clock) forward at once,
//! without waiting. Process-wide: a test binary that uses it runs its timed tests one at a
//! time ([`exclusive`]). Stores that keep their own time (a Redis ttl, a server's clock) are
//! not moved.
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
use std::sync::atomic::Ordering;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// Move every clock of the library forward by `d` (saturating).
pub fn advance(d: Duration) {
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

/// Hold it while a test moves the clocks: tests of one binary that do run one at a time.
pub fn exclusive() -> MutexGuard<'static, ()> {
    static ONE: Mutex<()> = Mutex::new(());
    ONE.lock().unwrap_or_else(|p| p.into_inner())
}
