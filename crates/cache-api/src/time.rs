//! Clocks. Stored entries carry wall-clock milliseconds since the Unix epoch so that every process
//! and machine can judge their age; the in-process typed tier uses a coarse monotonic clock that
//! costs a few nanoseconds to read.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, now. A clock before 1970 reads as 0. Plus the offset a
/// test added (`test_offset_ms`: 0 unless a test installed the test clock).
pub fn unix_millis() -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis().min(u64::MAX as u128) as u64)
        .unwrap_or(0);
    now.saturating_add(test_offset_ms())
}

/// How far tests moved the clocks forward, ms: one relaxed load of [`TEST_OFFSET_MS`], the same
/// code with and without the feature `testing`.
///
/// The hook cannot change a production clock by accident: the offset is 0 unless a test
/// installed the test clock (`testing::clock::exclusive`, feature `testing`) and moved it
/// while it held it (`testing::clock::advance` moves nothing otherwise). So a dependency that
/// turns `testing` on (features are unified across a build) changes no clock; only code that
/// installs the test clock on purpose does.
#[inline]
pub(crate) fn test_offset_ms() -> u64 {
    TEST_OFFSET_MS.load(std::sync::atomic::Ordering::Relaxed)
}

/// The offset behind [`test_offset_ms`]; written only by `testing::clock::advance` while a test
/// clock is installed.
pub(crate) static TEST_OFFSET_MS: std::sync::atomic::AtomicU64 =
    std::sync::atomic::AtomicU64::new(0);

/// Parse a human duration such as `"10m"`, `"1h 30m"`, `"250ms"`, `"5s"`.
pub fn parse_duration(text: &str) -> crate::error::Result<Duration> {
    humantime::parse_duration(text.trim())
        .map_err(|e| crate::error::Error::Config(format!("invalid duration `{text}`: {e}")))
}

/// The deadline, in milliseconds since the Unix epoch, of a ttl that starts at `now_ms`.
///
/// `None` (no ttl) is never. A ttl is rounded down to whole milliseconds but lasts at least one,
/// so a sub-millisecond ttl is not expired the moment it is written; a ttl too long for the
/// clock saturates at `u64::MAX` (never) instead of wrapping or panicking.
///
/// ```
/// use std::time::Duration;
/// use steadycache_api::plumbing::deadline;
/// assert_eq!(deadline(1_000, Some(Duration::from_secs(2))), Some(3_000));
/// assert_eq!(deadline(1_000, Some(Duration::from_micros(10))), Some(1_001));
/// assert_eq!(deadline(1_000, Some(Duration::MAX)), Some(u64::MAX));
/// assert_eq!(deadline(1_000, None), None);
/// ```
pub fn deadline(now_ms: u64, ttl: Option<Duration>) -> Option<u64> {
    ttl.map(|d| {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        now_ms.saturating_add(ms.max(1))
    })
}

/// [`deadline`] for stores whose integers are signed (SQLite, BSON): saturates at `i64::MAX`.
///
/// ```
/// use std::time::Duration;
/// use steadycache_api::plumbing::deadline_i64;
/// assert_eq!(deadline_i64(5, Some(Duration::from_millis(7))), Some(12));
/// assert_eq!(deadline_i64(5, Some(Duration::MAX)), Some(i64::MAX));
/// ```
pub fn deadline_i64(now_ms: i64, ttl: Option<Duration>) -> Option<i64> {
    ttl.map(|d| {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        now_ms.saturating_add(ms.max(1))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_saturate() {
        assert_eq!(
            deadline(u64::MAX - 1, Some(Duration::from_secs(1))),
            Some(u64::MAX)
        );
        assert_eq!(deadline_i64(i64::MAX, Some(Duration::ZERO)), Some(i64::MAX));
        assert_eq!(deadline(0, Some(Duration::ZERO)), Some(1));
    }
}
