//! Bulk operations are not calls: a clear or a removal by prefix or pattern may scan a whole
//! store, so it runs under a bound of its own ([`CacheBuilder::bulk_timeout`], default
//! [`DEFAULT_BULK_TIMEOUT`]) instead of the per-call `backend_timeout`, never counts towards
//! (nor waits on) the store breaker, and reports how far it got when it stops part way
//! ([`Error::Partial`]).
//!
//! Backends report progress as they remove batches with [`BulkProgress`]: taken once, in the
//! async operation (before moving into a blocking closure), and bumped after each batch.
//!
//! [`CacheBuilder::bulk_timeout`]: crate::CacheBuilder::bulk_timeout

use crate::error::{Error, Result};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The default [`CacheBuilder::bulk_timeout`](crate::CacheBuilder::bulk_timeout): long enough
/// to scan a store of millions of keys, short enough that a hung one frees the caller.
pub const DEFAULT_BULK_TIMEOUT: Duration = Duration::from_secs(600);

tokio::task_local! {
    static PROGRESS: Arc<AtomicU64>;
}

/// Where a backend reports how many keys a bulk removal has removed so far, so that one
/// stopped part way (by its bound or an error) says how far it got. Outside a bulk operation
/// it reports to nobody. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct BulkProgress(Option<Arc<AtomicU64>>);

impl BulkProgress {
    /// The progress of the bulk operation this task runs (nobody's outside one). Take it in the
    /// async operation itself: a blocking closure runs on another thread, which has none.
    pub fn current() -> Self {
        BulkProgress(PROGRESS.try_with(Arc::clone).ok())
    }

    /// `n` more keys were removed.
    pub fn removed(&self, n: u64) {
        if let Some(p) = &self.0 {
            p.fetch_add(n, Ordering::Relaxed);
        }
    }
}

/// Run the bulk removal `op` within `timeout`, reporting progress; an error after some keys
/// were removed (or the bound) is [`Error::Partial`] with how many.
pub(crate) async fn run(timeout: Duration, op: impl Future<Output = Result<u64>>) -> Result<u64> {
    let progress = Arc::new(AtomicU64::new(0));
    let scoped = PROGRESS.scope(progress.clone(), op);
    let outcome = tokio::time::timeout(timeout, scoped).await;
    let removed = progress.load(Ordering::Relaxed);
    match outcome {
        Ok(Ok(n)) => Ok(n),
        Ok(Err(e)) if removed == 0 => Err(e),
        Ok(Err(e)) => Err(Error::Partial {
            removed,
            source: Box::new(e),
        }),
        Err(_) => Err(Error::Partial {
            removed,
            source: Box::new(Error::unavailable(
                "backend",
                format!("not finished within {timeout:?} (bulk_timeout); run it again to go on"),
            )),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn progress_is_reported_when_the_bound_stops_it() {
        let slow = async {
            for _ in 0..10 {
                BulkProgress::current().removed(100);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok(1_000)
        };
        match run(Duration::from_millis(50), slow).await {
            Err(Error::Partial { removed, source }) => {
                assert!((100..1_000).contains(&removed), "{removed}");
                assert!(source.to_string().contains("bulk_timeout"), "{source}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            run(Duration::from_secs(5), async { Ok(3) }).await.unwrap(),
            3
        );
        let failed = async {
            BulkProgress::current().removed(7);
            Err(Error::Config("x".into()))
        };
        assert!(matches!(
            run(Duration::from_secs(5), failed).await,
            Err(Error::Partial { removed: 7, .. })
        ));
        BulkProgress::current().removed(1); // outside: reports to nobody
    }
}
