//! One clock for every client of a bucket: the store's. Each response's `Date` header says what
//! time the store had when it answered; [`ServerClock`] keeps an estimate of the offset between
//! the store's clock and this machine's, and every expiry this backend writes or judges is in
//! the store's time (see [Clocks](crate::S3Backend#clocks)).

use super::S3Backend;
use aws_sdk_s3::config::interceptors::{
    BeforeDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_s3::error::BoxError;
use aws_sdk_s3::primitives::{DateTime, DateTimeFormat};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use steadycache_api::plumbing::unix_millis;

/// How long past its expiry an entry must be before a read deletes it. A read that finds an
/// entry expired by less is a miss but leaves the entry alone: the clocks of the machines that
/// share a bucket, and this backend's estimate of the store's clock (within about a second,
/// see [Clocks](crate::S3Backend#clocks)), may disagree by that much, and what looks expired
/// here may still be live for its writer.
pub const SKEW_MARGIN: Duration = Duration::from_secs(2);

/// How long the first write of a client waits for an answer that gives the store's clock.
const CLOCK_SYNC_TIMEOUT: Duration = Duration::from_secs(2);
/// How soon a write asks again for the store's clock when no answer has given it yet.
const CLOCK_SYNC_RETRY: Duration = Duration::from_secs(5);

impl S3Backend {
    /// The store's clock as estimated (ms since the Unix epoch): for judging what an answer
    /// just received says.
    pub(crate) fn now(&self) -> u64 {
        self.inner.clock.now()
    }

    /// The store's clock for an expiry about to be written. While no answer of the store has
    /// been seen, one `HeadBucket` (any answer will do, within [`CLOCK_SYNC_TIMEOUT`]) reads
    /// its clock first, and concurrent writers wait for it, so a client's first write is in
    /// the store's time too. It is asked at most once per [`CLOCK_SYNC_RETRY`]: a store that is
    /// down, or whose answers carry no `Date`, leaves this machine's clock in use meanwhile.
    pub(crate) async fn write_now(&self) -> u64 {
        let clock = &self.inner.clock;
        if !clock.synced() {
            let mut asked = self.inner.clock_asked.lock().await;
            if !clock.synced() && asked.is_none_or(|t| t.elapsed() >= CLOCK_SYNC_RETRY) {
                *asked = Some(Instant::now());
                if let Ok(client) = self.client().await {
                    let ask = client
                        .head_bucket()
                        .bucket(&self.inner.bucket)
                        .customize()
                        .interceptor(self.probe())
                        .send();
                    let _answer = tokio::time::timeout(CLOCK_SYNC_TIMEOUT, ask).await;
                }
                if !clock.synced() {
                    tracing::debug!("s3: no answer gave the store's clock; this machine's is used until one does");
                }
            }
        }
        clock.now()
    }

    /// An interceptor for one request that gives its answer's `Date` to the clock.
    pub(crate) fn probe(&self) -> Probe {
        Probe::new(self.inner.clock.clone())
    }
}

/// The store's clock as this client sees it: this machine's clock (shifted by the configured
/// `clock_skew_ms`, for tests) plus an estimated offset.
///
/// # The estimate
/// `Date` has whole seconds, so one response says only that the offset lies in an interval
/// about a second wide: the store's clock read between `Date` and `Date + 1 s` at some instant
/// between sending the request and receiving the answer. The estimate starts at zero (this
/// machine's clock is trusted while no answer contradicts it) and each answer that contradicts
/// it moves it to the nearest end of that answer's interval, no further. The true offset lies
/// in every interval, so each move brings the estimate closer to it and the estimate never
/// jumps back and forth; a machine in step with the store (within the second of `Date`) keeps
/// its own clock, and one running ahead or behind is brought within about a second of the
/// store at the first answer, and closer as answers arrive.
#[derive(Debug)]
pub(crate) struct ServerClock {
    /// Added to this machine's clock, ms (the `clock_skew_ms` knob; zero in production).
    skew_ms: i64,
    /// The estimated offset, ms: the store's clock minus this machine's (skewed) clock.
    offset_ms: AtomicI64,
    /// An answer has been seen.
    synced: AtomicBool,
}

impl ServerClock {
    pub(crate) fn new(skew_ms: i64) -> Self {
        ServerClock {
            skew_ms,
            offset_ms: AtomicI64::new(0),
            synced: AtomicBool::new(false),
        }
    }

    /// This machine's clock, shifted by the skew knob: ms since the Unix epoch.
    pub(crate) fn local_ms(&self) -> i64 {
        i64::try_from(unix_millis())
            .unwrap_or(i64::MAX)
            .saturating_add(self.skew_ms)
    }

    /// The store's clock as estimated: ms since the Unix epoch.
    pub(crate) fn now(&self) -> u64 {
        let t = self
            .local_ms()
            .saturating_add(self.offset_ms.load(Ordering::Relaxed));
        u64::try_from(t).unwrap_or(0)
    }

    /// Whether an answer of the store has been seen.
    pub(crate) fn synced(&self) -> bool {
        self.synced.load(Ordering::Relaxed)
    }

    /// An answer said the offset lies in `[lo, hi]` (ms): move the estimate into it, to its
    /// nearest end. An empty interval (this machine's clock stepped during the request) is
    /// ignored.
    pub(crate) fn observe(&self, lo: i64, hi: i64) {
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

    /// An answer sent at `sent` and received at `received` (both [`local_ms`](Self::local_ms))
    /// carried `date` (an HTTP date, whole seconds).
    fn observe_date(&self, sent: i64, received: i64, date: &str) {
        let Ok(d) = DateTime::from_str(date.trim(), DateTimeFormat::HttpDate) else {
            return;
        };
        let Ok(d) = d.to_millis() else {
            return;
        };
        // The store read its clock at some instant between `sent` and `received`, and it read
        // between `d` and `d + 999` ms.
        self.observe(
            d.saturating_sub(received),
            d.saturating_add(999).saturating_sub(sent),
        );
    }
}

/// An SDK interceptor for one request: it notes when the request left and gives the `Date` of
/// the answer (any answer: 200, 404, 412, …) to the [`ServerClock`]. One per request, so the
/// time it left is its own.
#[derive(Debug)]
pub(crate) struct Probe {
    clock: Arc<ServerClock>,
    sent: AtomicI64,
}

impl Probe {
    pub(crate) fn new(clock: Arc<ServerClock>) -> Self {
        Probe {
            clock,
            sent: AtomicI64::new(i64::MIN),
        }
    }
}

impl Intercept for Probe {
    fn name(&self) -> &'static str {
        "steadycache::ServerClock"
    }

    fn read_before_transmit(
        &self,
        _ctx: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.sent.store(self.clock.local_ms(), Ordering::Relaxed);
        Ok(())
    }

    fn read_after_transmit(
        &self,
        ctx: &BeforeDeserializationInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let received = self.clock.local_ms();
        let sent = self.sent.load(Ordering::Relaxed);
        if sent != i64::MIN {
            if let Some(date) = ctx.response().headers().get("date") {
                self.clock.observe_date(sent, received, date);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_estimate_moves_only_when_an_answer_contradicts_it() {
        let c = ServerClock::new(0);
        assert!(!c.synced());
        c.observe(-400, 600);
        assert_eq!(c.offset_ms.load(Ordering::Relaxed), 0, "in step: kept");
        // Running 60 s ahead: the store is 60 s behind this machine.
        c.observe(-60_010, -59_000);
        assert_eq!(c.offset_ms.load(Ordering::Relaxed), -59_000);
        c.observe(-60_500, -59_600);
        assert_eq!(c.offset_ms.load(Ordering::Relaxed), -59_600);
        c.observe(-59_700, -59_650);
        assert_eq!(c.offset_ms.load(Ordering::Relaxed), -59_650, "nearest end");
        c.observe(5, 1);
        assert_eq!(
            c.offset_ms.load(Ordering::Relaxed),
            -59_650,
            "empty: ignored"
        );
        assert!(c.synced());
    }

    #[test]
    fn a_date_header_bounds_the_offset() {
        let c = ServerClock::new(0);
        // Sent and received at 1_000_000_000_500 ms; the store said 1_000_000_000 s.
        c.observe_date(
            1_000_000_000_500,
            1_000_000_000_510,
            "Sun, 09 Sep 2001 01:46:40 GMT",
        );
        assert_eq!(c.offset_ms.load(Ordering::Relaxed), 0, "consistent: kept");
        c.observe_date(
            1_000_000_060_500,
            1_000_000_060_510,
            "Sun, 09 Sep 2001 01:46:40 GMT",
        );
        let o = c.offset_ms.load(Ordering::Relaxed);
        assert!((-60_510..=-59_501).contains(&o), "{o}");
        c.observe_date(0, 1, "not a date");
        assert_eq!(c.offset_ms.load(Ordering::Relaxed), o);
    }
}
