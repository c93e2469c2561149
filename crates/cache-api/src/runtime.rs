//! The library's own tokio runtime, for sync callers of remote backends.
//!
//! As `reqwest::blocking` does, the sync path never calls `block_on` on the caller's thread (that
//! panics inside a tokio runtime); it spawns the backend operation onto this runtime and waits on
//! a channel. So a sync memoized function works outside tokio and when called from inside a tokio
//! runtime. Memory hits never come here.

use crate::error::{Error, Result};
use std::future::Future;
use std::sync::OnceLock;

/// The most threads the library runtime's blocking pool runs at once: the background refreshes
/// of sync functions (and blocking I/O started from the library's tasks) share them; more wait
/// in its queue.
pub(crate) const BLOCKING_THREADS: usize = 8;

fn runtime() -> Result<&'static tokio::runtime::Runtime> {
    static RT: OnceLock<std::result::Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .max_blocking_threads(BLOCKING_THREADS)
            .thread_name("steadycache-io")
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(|e| Error::Config(format!("cannot start steadycache's runtime: {e}")))
}

/// A handle to the library's own runtime (2 worker threads, started on first use), which lives
/// as long as the process. Backends whose clients spawn background tasks (connection pools,
/// monitors) create them here, so that those tasks do not die with a caller's runtime (a
/// `#[tokio::test]`, a short-lived `Runtime`).
pub fn library_runtime() -> Result<tokio::runtime::Handle> {
    Ok(runtime()?.handle().clone())
}

/// A handle to spawn onto: the caller's runtime when there is one, else the library's.
pub fn handle() -> Result<tokio::runtime::Handle> {
    match tokio::runtime::Handle::try_current() {
        Ok(h) => Ok(h),
        Err(_) => Ok(runtime()?.handle().clone()),
    }
}

/// Run `fut` on the library runtime and wait for it on this thread, in this thread's current
/// span (so what it opens, a store layer's span say, stays under the caller's call span).
pub fn block_on<F>(fut: F) -> Result<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let rt = runtime()?;
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let span = tracing::Span::current();
    rt.spawn(async move {
        // The span is let go before the answer: the caller's span ends on the caller's thread.
        let out = tracing::Instrument::instrument(fut, span).await;
        let _ = tx.send(out);
    });
    rx.recv()
        .map_err(|_| Error::unavailable("runtime", "the operation was cancelled"))
}

/// Run a blocking job on the library runtime's bounded blocking pool and wait for it (from any
/// runtime). `Err` when the job panicked (or the runtime is gone).
pub(crate) async fn run_blocking_job<T: Send + 'static>(
    job: impl FnOnce() -> T + Send + 'static,
) -> Result<T> {
    runtime()?
        .spawn_blocking(job)
        .await
        .map_err(|e| Error::unavailable("runtime", format!("blocking job failed: {e}")))
}

/// Start a blocking job on the library runtime's bounded blocking pool; its handle (a panic in
/// the job is the handle's error, with its payload).
pub(crate) fn spawn_blocking<T: Send + 'static>(
    job: impl FnOnce() -> T + Send + 'static,
) -> Result<tokio::task::JoinHandle<T>> {
    Ok(runtime()?.spawn_blocking(job))
}
