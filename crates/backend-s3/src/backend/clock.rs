//! One clock for every client of a bucket: the store's. Each response's `Date` header says what
//! time the store had when it answered; [`StoreClock`] keeps an estimate of the offset between
//! the store's clock and this machine's, and every expiry this backend writes or judges is in
//! the store's time (see [Clocks](crate::S3Backend#clocks)).

use super::S3Backend;
use aws_sdk_s3::config::interceptors::{
    BeforeDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_s3::error::BoxError;
use aws_sdk_s3::primitives::{DateTime, DateTimeFormat};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use steadycache_api::plumbing::StoreClock;

/// How long past its expiry an entry must be before a read deletes it (the same margin for
/// every backend that judges expiry in the client; see [Clocks](crate::S3Backend#clocks)).
pub use steadycache_api::plumbing::SKEW_MARGIN;

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

/// `Date` has whole seconds, so one answer bounds the store's clock to a second, read at some
/// instant between sending the request and receiving the answer (see [`StoreClock`]).
fn observe_date(clock: &StoreClock, sent: i64, received: i64, date: &str) {
    let Ok(d) = DateTime::from_str(date.trim(), DateTimeFormat::HttpDate) else {
        return;
    };
    let Ok(d) = d.to_millis() else {
        return;
    };
    clock.observe_reading(sent, received, d, 1000);
}

/// An SDK interceptor for one request: it notes when the request left and gives the `Date` of
/// the answer (any answer: 200, 404, 412, …) to the [`StoreClock`]. One per request, so the
/// time it left is its own.
#[derive(Debug)]
pub(crate) struct Probe {
    clock: Arc<StoreClock>,
    sent: AtomicI64,
}

impl Probe {
    pub(crate) fn new(clock: Arc<StoreClock>) -> Self {
        Probe {
            clock,
            sent: AtomicI64::new(i64::MIN),
        }
    }
}

impl Intercept for Probe {
    fn name(&self) -> &'static str {
        "steadycache::StoreClock"
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
                observe_date(&self.clock, sent, received, date);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_date_header_bounds_the_offset() {
        let c = StoreClock::new(0);
        // Sent and received at 1_000_000_000_500 ms; the store said 1_000_000_000 s.
        observe_date(
            &c,
            1_000_000_000_500,
            1_000_000_000_510,
            "Sun, 09 Sep 2001 01:46:40 GMT",
        );
        assert_eq!(c.offset_ms(), 0, "consistent: kept");
        observe_date(
            &c,
            1_000_000_060_500,
            1_000_000_060_510,
            "Sun, 09 Sep 2001 01:46:40 GMT",
        );
        let o = c.offset_ms();
        assert!((-60_510..=-59_501).contains(&o), "{o}");
        observe_date(&c, 0, 1, "not a date");
        assert_eq!(c.offset_ms(), o);
    }
}
