//! Clocks. Stored entries carry wall-clock milliseconds since the Unix epoch so that every process
//! and machine can judge their age; the in-process typed tier uses a coarse monotonic clock that
//! costs a few nanoseconds to read.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, now. A clock before 1970 reads as 0.
pub fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis().min(u64::MAX as u128) as u64)
        .unwrap_or(0)
}

/// Parse a human duration such as `"10m"`, `"1h 30m"`, `"250ms"`, `"5s"`.
pub fn parse_duration(text: &str) -> crate::Result<Duration> {
    humantime::parse_duration(text.trim())
        .map_err(|e| crate::Error::Config(format!("invalid duration `{text}`: {e}")))
}
