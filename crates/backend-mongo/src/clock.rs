//! One clock for every client of a collection: the server's. [`ServerClock`] keeps an estimate
//! of the offset between the server's clock and this machine's, read from the `localTime` of
//! the `hello` command and read again every [`REFRESH`]; every expiry this backend writes or
//! judges is in the server's time (see [Clocks](crate::MongoBackend#clocks)).

use mongodb::bson::{doc, Document};
use mongodb::Collection;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;
use steadycache_api::plumbing::StoreClock;
use steadycache_api::Result;

use crate::error::convert;

/// How long past its expiry an entry must be before a read deletes it (the same margin for
/// every backend that judges expiry in the client; see [Clocks](crate::MongoBackend#clocks)).
pub use steadycache_api::plumbing::SKEW_MARGIN;

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

/// The server's clock as this client sees it: a [`StoreClock`] (this machine's clock, shifted
/// by the configured `clock_skew_ms` for tests, plus an estimated offset), fed by the
/// `localTime` of `hello` (whole milliseconds, read by the server between the command leaving
/// and the reply arriving), read on first use and every [`REFRESH`].
#[derive(Debug)]
pub(crate) struct ServerClock {
    estimate: StoreClock,
    /// When (this machine's clock, ms) the server's clock was last read; [`NEVER_READ`].
    read_at: AtomicI64,
    /// Held by the one caller reading the server's clock.
    reading: tokio::sync::Mutex<()>,
}

impl ServerClock {
    pub(crate) fn new(skew_ms: i64) -> Self {
        ServerClock {
            estimate: StoreClock::new(skew_ms),
            read_at: AtomicI64::new(NEVER_READ),
            reading: tokio::sync::Mutex::new(()),
        }
    }

    /// This machine's clock, shifted by the skew knob: ms since the Unix epoch.
    pub(crate) fn local_ms(&self) -> i64 {
        self.estimate.local_ms()
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
        Ok(self.estimate.now_ms())
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
                // The server read it (whole ms) between `sent` and `received`.
                self.estimate
                    .observe_reading(sent, received, t.timestamp_millis(), 1);
            }
            Err(_) => tracing::warn!(
                "mongodb: the server's hello reply has no localTime; expiries use this machine's clock"
            ),
        }
        self.read_at.store(received, Ordering::Relaxed);
        Ok(())
    }
}
