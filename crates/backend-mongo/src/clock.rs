//! One clock for every client of a collection: the server's. [`ServerClock`] keeps an estimate
//! of the offset between the server's clock and this machine's, read from the `localTime` of
//! the `hello` command and read again every [`REFRESH`]; every expiry this backend writes or
//! judges is in the server's time (see [Clocks](crate::MongoBackend#clocks)).

use mongodb::bson::{doc, Document};
use mongodb::Collection;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;
use steadycache_api::plumbing::unix_millis;
use steadycache_api::Result;

use crate::error::convert;

/// How long past its expiry an entry must be before a read deletes it. A read that finds an
/// entry expired by less is a miss but leaves the entry alone: what looks expired to this
/// client may still be live for its writer while their estimates of the server's clock differ
/// (by a few milliseconds normally; more around a step of a machine's clock).
pub const SKEW_MARGIN: Duration = Duration::from_secs(2);

/// How often the server's clock is read again: it keeps up with a machine whose clock is
/// stepped or drifts.
pub(crate) const REFRESH: Duration = Duration::from_secs(30);

/// How soon a reading that failed is tried again.
const RETRY: Duration = Duration::from_secs(1);

/// `read_at` of a clock never read.
const NEVER_READ: i64 = i64::MIN;

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The server's clock as this client sees it: this machine's clock (shifted by the configured
/// `clock_skew_ms`, for tests) plus an estimated offset.
///
/// # The estimate
/// A `hello` reply's `localTime` (whole milliseconds) was read by the server at some instant
/// between sending the command and receiving the reply, so it puts the offset in an interval
/// as wide as the round trip. The estimate starts at zero (this machine's clock is trusted
/// while no reading contradicts it) and a reading that contradicts it moves it to the nearest
/// end of that reading's interval, no further: it is then within one round trip of the
/// server's clock, and never jumps back and forth.
#[derive(Debug)]
pub(crate) struct ServerClock {
    /// Added to this machine's clock, ms (the `clock_skew_ms` knob; zero in production).
    skew_ms: i64,
    /// The estimated offset, ms: the server's clock minus this machine's (skewed) clock.
    offset_ms: AtomicI64,
    /// When (this machine's clock, ms) the server's clock was last read; [`NEVER_READ`].
    read_at: AtomicI64,
    /// Held by the one caller reading the server's clock.
    reading: tokio::sync::Mutex<()>,
}

impl ServerClock {
    pub(crate) fn new(skew_ms: i64) -> Self {
        ServerClock {
            skew_ms,
            offset_ms: AtomicI64::new(0),
            read_at: AtomicI64::new(NEVER_READ),
            reading: tokio::sync::Mutex::new(()),
        }
    }

    /// This machine's clock, shifted by the skew knob: ms since the Unix epoch.
    pub(crate) fn local_ms(&self) -> i64 {
        i64::try_from(unix_millis())
            .unwrap_or(i64::MAX)
            .saturating_add(self.skew_ms)
    }

    fn estimate(&self) -> i64 {
        self.local_ms()
            .saturating_add(self.offset_ms.load(Ordering::Relaxed))
    }

    /// A reading said the offset lies in `[lo, hi]` (ms): move the estimate into it, to its
    /// nearest end. An empty interval (this machine's clock stepped meanwhile) is ignored.
    fn observe(&self, lo: i64, hi: i64) {
        if lo > hi {
            return;
        }
        let _ = self
            .offset_ms
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |o| {
                let c = o.clamp(lo, hi);
                (c != o).then_some(c)
            });
    }

    /// The server's clock as estimated, ms since the Unix epoch; read from the server first
    /// when it never was (concurrent callers wait for that one reading) or the last reading is
    /// older than [`REFRESH`] (one caller reads, the others go on with the estimate). A first
    /// reading that fails is an error (the operation would fail too); a later one is logged and
    /// tried again after a second, the estimate kept.
    pub(crate) async fn now(&self, coll: &Collection<Document>) -> Result<i64> {
        let at = self.read_at.load(Ordering::Relaxed);
        let local = self.local_ms();
        if at == NEVER_READ {
            let _one = self.reading.lock().await;
            if self.read_at.load(Ordering::Relaxed) == NEVER_READ {
                self.read(coll).await?;
            }
        } else if local < at || local.saturating_sub(at) >= ms(REFRESH) {
            if let Ok(_one) = self.reading.try_lock() {
                if let Err(e) = self.read(coll).await {
                    tracing::debug!(error = %e, "mongodb: reading the server's clock failed; keeping the estimate");
                    let retry_at = self.local_ms().saturating_sub(ms(REFRESH) - ms(RETRY));
                    self.read_at.store(retry_at, Ordering::Relaxed);
                }
            }
        }
        Ok(self.estimate())
    }

    /// Read the server's clock: `localTime` of `hello` (of `isMaster` on a server that does not
    /// know `hello`). A reply without it leaves the estimate as it is (this machine's clock, if
    /// none was ever read), logged.
    async fn read(&self, coll: &Collection<Document>) -> Result<()> {
        let db = coll.client().database(&coll.namespace().db);
        let sent = self.local_ms();
        let reply = match db.run_command(doc! { "hello": 1 }).await {
            Ok(r) => r,
            Err(_) => db
                .run_command(doc! { "isMaster": 1 })
                .await
                .map_err(|e| convert("hello", e))?,
        };
        let received = self.local_ms();
        match reply.get_datetime("localTime") {
            Ok(t) => {
                let t = t.timestamp_millis();
                // The server read `t` (whole ms) between `sent` and `received`.
                self.observe(
                    t.saturating_sub(received),
                    t.saturating_add(1).saturating_sub(sent),
                );
            }
            Err(_) => tracing::warn!(
                "mongodb: the server's hello reply has no localTime; expiries use this machine's clock"
            ),
        }
        self.read_at.store(received, Ordering::Relaxed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_estimate_moves_only_when_a_reading_contradicts_it() {
        let c = ServerClock::new(60_000);
        assert!(c.local_ms() > i64::try_from(unix_millis()).unwrap_or(0) + 59_000);
        c.observe(-3, 2);
        assert_eq!(c.offset_ms.load(Ordering::Relaxed), 0, "in step: kept");
        c.observe(-60_004, -59_998);
        assert_eq!(c.offset_ms.load(Ordering::Relaxed), -59_998);
        c.observe(-60_001, -59_999);
        assert_eq!(c.offset_ms.load(Ordering::Relaxed), -59_999, "nearest end");
        c.observe(10, 1);
        assert_eq!(
            c.offset_ms.load(Ordering::Relaxed),
            -59_999,
            "empty: ignored"
        );
    }
}
