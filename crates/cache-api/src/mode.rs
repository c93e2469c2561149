//! How a caller waits, and one operation run for either kind of caller.
//!
//! Every I/O operation of the engine is an `async fn` that takes a [`Mode`]. In
//! [`Mode::Async`] it awaits the manager on the caller's runtime. In [`Mode::Sync`] it never
//! returns `Pending`: it uses the manager's blocking path when there is one (local stores) and
//! otherwise runs the async operation on the library's runtime and waits for it on this thread.
//! So one driver, polled by [`block_local`] for sync callers, runs the same code for both, and
//! a sync caller never needs a runtime of its own (nor breaks inside one). The mode is matched
//! here (and in the factory timeout's hand-over of a task), nowhere else.

use crate::error::{Error, Result};
use crate::manager::CacheManager;
use crate::runtime;
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

/// How the caller waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// A sync caller: block this thread, never return `Pending`.
    Sync,
    /// An async caller: await on its runtime.
    Async,
}

struct ThreadWaker(std::thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Run `fut` to completion on this thread. In [`Mode::Sync`] the driver's future is ready at
/// its first poll (nothing in it pends), so this costs no allocation; should anything pend, the
/// thread parks until it is woken.
pub(crate) fn block_local<F: Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    if let Poll::Ready(v) = fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        return v;
    }
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        match fut.as_mut().poll(&mut cx) {
            Poll::Ready(v) => return v,
            Poll::Pending => std::thread::park(),
        }
    }
}

tokio::task_local! {
    /// The deadline the cache puts on the store operation this task runs (see
    /// [`caller_deadline`]).
    static DEADLINE: Duration;
}

/// The deadline a cache puts on the store operation the current task is running, if it runs
/// one (`None` elsewhere: a user's own call on a backend, a bulk operation, a bus's
/// connection).
///
/// For a backend that bounds each operation itself (a Redis request's response timeout, see
/// [`Backend::own_deadline`](crate::Backend::own_deadline)): while this is no longer than its
/// own deadline, the operation already waits on the cache's timer, and the backend may skip its
/// own. Measured: a second timer per operation made a Redis hit under 64 tasks 1.22–1.35× a
/// raw `GET` instead of 1.02–1.05×.
pub fn caller_deadline() -> Option<Duration> {
    DEADLINE.try_with(|d| *d).ok()
}

/// `op` under `timeout`, which it can read with [`caller_deadline`].
fn timed<F: Future>(
    timeout: Duration,
    op: F,
) -> tokio::time::Timeout<impl Future<Output = F::Output>> {
    tokio::time::timeout(timeout, DEADLINE.scope(timeout, op))
}

/// `op` within `timeout`: a store that does not answer in time is an [`Error::Unavailable`]
/// (transient), so the caller fails open instead of hanging.
pub(crate) async fn within<T>(timeout: Duration, op: impl Future<Output = Result<T>>) -> Result<T> {
    in_time(timed(timeout, op).await, timeout)
}

/// What [`within`] returns, from the timeout's outcome.
fn in_time<T>(
    r: std::result::Result<Result<T>, tokio::time::error::Elapsed>,
    timeout: Duration,
) -> Result<T> {
    match r {
        Ok(r) => r,
        Err(_) => Err(Error::unavailable(
            "backend",
            format!("no answer within {timeout:?} (backend_timeout)"),
        )),
    }
}

/// `op` on `manager` for the key `key`, within `timeout`, in either mode (for a sync caller,
/// run on the library runtime and waited for on this thread: this works outside any runtime
/// and inside one). Not through the breaker: see [`Store`](crate::tier::Store).
pub(crate) async fn on_manager<T, F, Fut>(
    mode: Mode,
    manager: &Arc<dyn CacheManager>,
    key: &str,
    timeout: Duration,
    op: F,
) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(Arc<dyn CacheManager>, String) -> Fut,
    Fut: Future<Output = Result<T>> + Send + 'static,
{
    // Written out rather than `finish(mode, within(..))`: an `async fn` keeps a future it is
    // passed beside the one it awaits, so each such wrapper doubled the size of every store
    // call's future (and of every call's above it, moved on each call).
    match mode {
        Mode::Async => in_time(
            timed(timeout, op(manager.clone(), key.to_owned())).await,
            timeout,
        ),
        Mode::Sync => runtime::block_on(within(timeout, op(manager.clone(), key.to_owned())))?,
    }
}

/// `fut` for a caller in `mode`: awaited, or run on the library's runtime and waited for on
/// this thread.
pub(crate) async fn finish<T, Fut>(mode: Mode, fut: Fut) -> Result<T>
where
    T: Send + 'static,
    Fut: Future<Output = Result<T>> + Send + 'static,
{
    match mode {
        Mode::Async => fut.await,
        Mode::Sync => runtime::block_on(fut)?,
    }
}

/// Wait `d`: the thread sleeps for a sync caller, the task for an async one.
pub(crate) async fn pause(mode: Mode, d: Duration) {
    match mode {
        Mode::Async => tokio::time::sleep(d).await,
        Mode::Sync => std::thread::sleep(d),
    }
}

/// Whether this thread runs a `current_thread` tokio runtime (or is inside one's `block_on`):
/// blocking it would stall every task of that runtime.
pub(crate) fn on_current_thread_runtime() -> bool {
    tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread)
}

/// The runtime a task handed over by a caller in `mode` runs on: the caller's own for an async
/// caller; the library's for a sync one, which blocks its thread while it waits (never a
/// runtime this thread may be driving).
pub(crate) fn task_runtime(mode: Mode) -> Result<tokio::runtime::Handle> {
    match mode {
        Mode::Sync => runtime::library_runtime(),
        Mode::Async => runtime::handle(),
    }
}

/// The sending half of a [`reply`].
pub(crate) enum Reply<T> {
    Sync(std::sync::mpsc::SyncSender<T>),
    Async(tokio::sync::oneshot::Sender<T>),
}

/// The receiving half of a [`reply`].
pub(crate) enum Answer<T> {
    Sync(std::sync::mpsc::Receiver<T>),
    Async(tokio::sync::oneshot::Receiver<T>),
}

/// What waiting for an [`Answer`] came to.
pub(crate) enum Waited<T> {
    /// The answer.
    Got(T),
    /// The sender went without a word (its task ended or its runtime shut down).
    Silent,
    /// Out of time.
    Late,
}

/// A one-shot answer from a task to a caller waiting in `mode` (a sync caller blocks on its
/// thread, an async one awaits).
pub(crate) fn reply<T>(mode: Mode) -> (Reply<T>, Answer<T>) {
    match mode {
        Mode::Sync => {
            let (tx, rx) = std::sync::mpsc::sync_channel(1);
            (Reply::Sync(tx), Answer::Sync(rx))
        }
        Mode::Async => {
            let (tx, rx) = tokio::sync::oneshot::channel();
            (Reply::Async(tx), Answer::Async(rx))
        }
    }
}

impl<T> Reply<T> {
    /// Answer; a caller that went (it stopped waiting) is not an error.
    pub(crate) fn send(self, value: T) {
        match self {
            Reply::Sync(tx) => drop(tx.try_send(value)),
            Reply::Async(tx) => drop(tx.send(value)),
        }
    }
}

impl<T> Answer<T> {
    /// Wait at most `limit` for the answer.
    pub(crate) async fn wait(self, limit: Duration) -> Waited<T> {
        use std::sync::mpsc::RecvTimeoutError;
        match self {
            Answer::Sync(rx) => match rx.recv_timeout(limit) {
                Ok(v) => Waited::Got(v),
                Err(RecvTimeoutError::Timeout) => Waited::Late,
                Err(RecvTimeoutError::Disconnected) => Waited::Silent,
            },
            Answer::Async(rx) => match tokio::time::timeout(limit, rx).await {
                Ok(Ok(v)) => Waited::Got(v),
                Ok(Err(_)) => Waited::Silent,
                Err(_) => Waited::Late,
            },
        }
    }
}
