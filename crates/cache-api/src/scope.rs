//! Switches: the process-wide enable flag and per-call options for the current thread or task.
//!
//! * [`set_enabled`] turns every steadycache cache in the process on or off (off = every call runs
//!   its function and nothing is read or written).
//! * [`with_options`] runs a closure with [`CallOptions`] for the calls made on this thread inside
//!   it; [`with_options_async`] does the same for the calls a future makes, wherever its task runs.
//!   Both are scopes: they reach every memoized call made inside, nested ones included.
//! * A function's handle (`f_cache().refresh(x)`, `.bypass(x)`, `.call_with(opts, x)`) names one
//!   call: its options apply to that call only (`with_call_options`), and the memoized calls its
//!   body makes see the options in force around the handle's call, as cachier's
//!   `overwrite_cache` and `cached`'s refresh do. Refreshing one function never refreshes its
//!   dependencies.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

static ENABLED: AtomicBool = AtomicBool::new(true);

/// Turn every cache in the process on or off.
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Whether caching is on process-wide.
#[inline]
pub fn is_enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Options for the calls made inside [`with_options`] / [`with_options_async`] (or through a
/// function's handle: `f_cache().call_with(opts, args…)`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CallOptions {
    /// Run the function without reading or writing the cache (a scoped disable).
    pub bypass: bool,
    /// Run the function even on a hit and store its result (force refresh).
    pub refresh: bool,
    /// Treat an entry older than this as stale: the call recomputes it (blocking; the old value
    /// is served if that fails and the policy serves stale values on error). cachier's
    /// `max_age`.
    pub max_age: Option<Duration>,
    /// Note where each call's value came from ([`with_origin`]).
    pub(crate) record_origin: bool,
    /// For the next memoized call only (a handle's control); that call restores the options
    /// around it before its body runs.
    pub(crate) once: bool,
}

const DEFAULT_OPTIONS: CallOptions = CallOptions {
    bypass: false,
    refresh: false,
    max_age: None,
    record_origin: false,
    once: false,
};

impl CallOptions {
    /// Options that bypass the cache.
    pub fn bypass() -> Self {
        CallOptions {
            bypass: true,
            ..DEFAULT_OPTIONS
        }
    }

    /// Options that force a refresh.
    pub fn refresh() -> Self {
        CallOptions {
            refresh: true,
            ..DEFAULT_OPTIONS
        }
    }

    /// Options that treat entries older than `age` as stale (see [`CallOptions::max_age`]).
    pub fn max_age(age: Duration) -> Self {
        CallOptions {
            max_age: Some(age),
            ..DEFAULT_OPTIONS
        }
    }

    pub(crate) fn is_default(self) -> bool {
        !self.bypass && !self.refresh && self.max_age.is_none() && !self.record_origin && !self.once
    }
}

thread_local! {
    static THREAD_OPTS: Cell<CallOptions> = const { Cell::new(DEFAULT_OPTIONS) };
    /// Whether `THREAD_OPTS` holds the defaults: what an in-process hit reads (one byte; reading
    /// and comparing the options themselves was about 0.4 ns of a 19 ns hit). Written with
    /// them, by [`put`] alone.
    static PLAIN: Cell<bool> = const { Cell::new(true) };
    /// The options around a handle's control, restored by the call it names.
    static OUTER: Cell<CallOptions> = const { Cell::new(DEFAULT_OPTIONS) };
}

/// Run `f` with `opts` applied to every memoized call it makes on this thread, nested calls
/// included (a scope; a handle's `call_with` names one call instead).
///
/// ```
/// use steadycache_api::{with_options, CallOptions};
/// let v = with_options(CallOptions::bypass(), || 40 + 2);
/// assert_eq!(v, 42);
/// ```
pub fn with_options<R>(opts: CallOptions, f: impl FnOnce() -> R) -> R {
    let _restore = Restore(put(opts));
    f()
}

struct Restore(CallOptions);

impl Drop for Restore {
    fn drop(&mut self) {
        put(self.0);
    }
}

/// Put `opts` in force on this thread (and [`PLAIN`] with them); the options they replace.
fn put(opts: CallOptions) -> CallOptions {
    PLAIN.with(|p| p.set(opts.is_default()));
    THREAD_OPTS.with(|c| c.replace(opts))
}

/// Whether the options in force are the defaults (what a hit checks: [`current_options`]
/// `.is_default()`, read from one flag).
#[inline(always)]
pub(crate) fn options_are_default() -> bool {
    PLAIN.with(|p| p.get())
}

/// Run `fut` with `opts` applied to every memoized call it makes, nested calls included, on
/// whichever thread each poll runs: the options are set around every poll of `fut` and
/// restored after it (so the hot path reads one thread-local, and no task-local is needed).
pub async fn with_options_async<F: Future>(opts: CallOptions, fut: F) -> F::Output {
    WithOptions {
        opts,
        fut: Box::pin(fut),
    }
    .await
}

struct WithOptions<F> {
    opts: CallOptions,
    fut: Pin<Box<F>>,
}

impl<F: Future> Future for WithOptions<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let opts = self.opts;
        let _restore = Restore(put(opts));
        self.fut.as_mut().poll(cx)
    }
}

/// The options in force for the current thread or task.
#[inline]
pub fn current_options() -> CallOptions {
    THREAD_OPTS.with(|c| c.get())
}

/// Run `f`, whose first memoized call (the call a handle's control names) gets `opts`; the
/// calls that one makes see the options in force around this (see the module docs).
#[doc(hidden)]
pub fn with_call_options<R>(opts: CallOptions, f: impl FnOnce() -> R) -> R {
    let outer = current_options();
    let _outer = RestoreOuter(OUTER.with(|c| c.replace(outer)));
    let once = CallOptions { once: true, ..opts };
    let _restore = Restore(put(once));
    f()
}

/// Async twin of [`with_call_options`]: `fut`'s first memoized call gets `opts`. The options
/// are set around `fut`'s first poll only (the named call reads them when it starts, in that
/// poll, and restores the outer ones for the rest of it).
#[doc(hidden)]
pub async fn with_call_options_async<F: Future>(opts: CallOptions, fut: F) -> F::Output {
    let mut first = Some(opts);
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(|cx| match first.take() {
        Some(opts) => with_call_options(opts, || fut.as_mut().poll(cx)),
        None => fut.as_mut().poll(cx),
    })
    .await
}

struct RestoreOuter(CallOptions);

impl Drop for RestoreOuter {
    fn drop(&mut self) {
        OUTER.with(|c| c.set(self.0));
    }
}

/// The options of the memoized call being entered. Options meant for it alone (a handle's
/// control) are taken: the options around the control are in force again for what it calls.
#[inline]
pub(crate) fn enter_call() -> CallOptions {
    let opts = current_options();
    if !opts.once {
        return opts;
    }
    put(OUTER.with(|o| o.get()));
    CallOptions {
        once: false,
        ..opts
    }
}

/// Where a memoized call's value came from (cached's `with_cached_flag`, cashews' `detect`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A fresh value from the cache.
    Hit,
    /// A stale value from the cache (stale-while-revalidate).
    Stale,
    /// An old value served because its recompute failed (fail-safe, or stale on error).
    FailSafe,
    /// The value (or error) of another caller's computation: in this process, or stored by
    /// another process while this one waited on its lock.
    Coalesced,
    /// This call ran the function.
    Computed,
    /// The cache was not used (bypassed, switched off, or no call of a memoized function was
    /// made).
    Uncached,
}

thread_local! {
    static ORIGIN: Cell<Option<Origin>> = const { Cell::new(None) };
}

/// Note `o` as the origin of the call being made, when its caller asked ([`with_origin`]).
pub(crate) fn note_origin(opts: CallOptions, o: Origin) {
    if opts.record_origin {
        ORIGIN.with(|c| c.set(Some(o)));
    }
}

/// Run `f` and say where the value of the last memoized call it made came from.
///
/// ```
/// use steadycache_api::{with_origin, Origin};
/// let (v, origin) = with_origin(|| 1 + 1); // no memoized call inside
/// assert_eq!((v, origin), (2, Origin::Uncached));
/// ```
pub fn with_origin<R>(f: impl FnOnce() -> R) -> (R, Origin) {
    let opts = CallOptions {
        record_origin: true,
        ..current_options()
    };
    struct Restore(Option<Origin>);
    impl Drop for Restore {
        fn drop(&mut self) {
            ORIGIN.with(|c| c.set(self.0));
        }
    }
    let restore = Restore(ORIGIN.with(|c| c.replace(None)));
    let r = with_options(opts, f);
    let o = ORIGIN.with(|c| c.get());
    drop(restore);
    (r, o.unwrap_or(Origin::Uncached))
}

/// Async twin of [`with_origin`]: the origin of the last memoized call `fut` made.
pub async fn with_origin_async<F: Future>(fut: F) -> (F::Output, Origin) {
    let opts = CallOptions {
        record_origin: true,
        ..current_options()
    };
    let mut seen = None;
    let mut fut = std::pin::pin!(with_options_async(opts, fut));
    let out = std::future::poll_fn(|cx| {
        let before = ORIGIN.with(|c| c.replace(None));
        let polled = fut.as_mut().poll(cx);
        if let Some(o) = ORIGIN.with(|c| c.replace(before)) {
            seen = Some(o);
        }
        polled
    })
    .await;
    (out, seen.unwrap_or(Origin::Uncached))
}
