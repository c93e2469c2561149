//! A [`Layer`] that opens a `tracing` span around each store operation.

use super::{Layer, Op};
use crate::error::Result;
use std::future::Future;
use tracing::Instrument;

/// Opens a `steadycache.store` span (at trace level, with the operation's name and key) around
/// each operation into the store, and records its error, if any, as a debug event in it. The
/// engine's own spans name the function and its phases (`steadycache.call`,
/// `steadycache.backend` around a function's load and save); this one shows every operation
/// the store sees, locks, counters and the bus included.
#[derive(Clone, Copy, Debug, Default)]
pub struct Spans;

impl Layer for Spans {
    const BLOCKING: bool = true;

    fn around<'a, T, F>(
        &'a self,
        op: Op,
        key: &'a str,
        mut next: impl FnMut() -> F + Send + 'a,
    ) -> impl Future<Output = Result<T>> + Send + 'a
    where
        T: Send + 'a,
        F: Future<Output = Result<T>> + Send + 'a,
    {
        let span = tracing::trace_span!("steadycache.store", op = op.name(), key);
        async move { noted(next().await) }.instrument(span)
    }

    fn around_blocking<T>(
        &self,
        op: Op,
        key: &str,
        mut next: impl FnMut() -> Result<T>,
    ) -> Result<T> {
        let span = tracing::trace_span!("steadycache.store", op = op.name(), key);
        span.in_scope(|| noted(next()))
    }
}

fn noted<T>(r: Result<T>) -> Result<T> {
    if let Err(e) = &r {
        tracing::debug!(error = %e, "steadycache: store operation failed");
    }
    r
}
