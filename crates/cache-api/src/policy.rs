//! What the engine does with a key: how long values live, when they go stale, how they refresh,
//! how concurrent callers are coalesced and which results are stored.

use std::time::Duration;

/// The longest a distributed lock is held before it expires in the backend. A `lock_ttl` above
/// it (up to `Duration::MAX`, set by hand) is clamped: a lock that outlives a day is a lock whose
/// holder died, and backends store lock ttls as milliseconds in 64-bit (or 53-bit) integers.
pub(crate) const MAX_LOCK_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// The shortest lock ttl (a zero ttl is refused by every backend).
pub(crate) const MIN_LOCK_TTL: Duration = Duration::from_millis(1);

/// The largest jitter fraction: entries keep at least a tenth of their lifetimes.
pub(crate) const MAX_JITTER: f64 = 0.9;

/// How a stale entry (past `stale_after`, before `ttl`) is refreshed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Refresh {
    /// The caller that finds the stale entry recomputes it and waits (other callers coalesce on
    /// it). If the recompute fails, the stale value is served instead (fail-safe).
    #[default]
    Block,
    /// Stale-while-revalidate: the caller gets the stale value at once and one background
    /// refresh per key per process runs (the in-process single-flight guarantees one).
    Background,
}

/// How concurrent callers of a cold or stale key are coalesced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Lock {
    /// No coalescing: every caller that misses runs the function.
    None,
    /// In-process single-flight (the default): one caller per process computes, the others wait
    /// for its result.
    #[default]
    Local,
    /// In-process single-flight plus a lock in the backend, so one caller across every process
    /// sharing the backend computes. Needs a backend whose capabilities include `locks`; on one
    /// without, it is the same as [`Lock::Local`]. The holder renews its lease every
    /// `lock_ttl / 3` while it computes; a dead holder's lock expires within `lock_ttl`.
    Distributed,
}

/// The rules for one memoized function or one call by hand.
///
/// One way to set each rule: a `with_*` setter (which clamps what is out of range: a jitter
/// above 0.9, a lock ttl of zero), read back by the getter of the same name (`ttl()`,
/// `jitter()`, ...); the fields are private. Every optional duration has one shape:
/// `with_x(Duration)` sets it, `without_x()` unsets it (all are unset by default but
/// `lock_ttl`).
///
/// ```
/// use steadycache_api::{Policy, Refresh};
/// use std::time::Duration;
/// // Fresh for 5 s, then served stale for up to a minute while one background refresh runs.
/// let p = Policy::expire_after(Duration::from_secs(5))
///     .stale_while_revalidate(Duration::from_secs(60));
/// assert_eq!(p.stale_after(), Some(Duration::from_secs(5)));
/// assert_eq!(p.ttl(), Some(Duration::from_secs(65)));
/// assert_eq!(p.refresh(), Refresh::Background);
/// assert_eq!(p.with_jitter(7.0).jitter(), 0.9, "clamped");
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Policy {
    /// Hard expiry: after it the entry is gone. `None` = kept until evicted or invalidated.
    pub(crate) ttl: Option<Duration>,
    /// Soft expiry: after it the entry is stale (servable, refresh due). `None` = never stale.
    pub(crate) stale_after: Option<Duration>,
    /// Spread expiries: each stored entry's `ttl` and `stale_after` are shortened by a random
    /// fraction in `[0, jitter)`, so entries written together do not expire together.
    pub(crate) jitter: f64,
    /// How stale entries are refreshed.
    pub(crate) refresh: Refresh,
    /// How concurrent callers coalesce.
    pub(crate) lock: Lock,
    /// The lease of a distributed lock: a holder renews it every `lock_ttl / 3` while it
    /// computes (so a computation may take longer than `lock_ttl`), and a holder that dies
    /// (killed, partitioned from the store) loses it at most `lock_ttl` after its last renewal,
    /// when one waiter takes over.
    pub(crate) lock_ttl: Duration,
    /// The longest a caller waits on another process's distributed lock before computing
    /// without it. `None` (the default): as long as the holder keeps renewing its lease, i.e.
    /// until its value is stored, its round ends, or it dies (then at most `lock_ttl` more).
    /// Set it when a caller must not wait behind a slow computation elsewhere longer than this.
    pub(crate) lock_wait: Option<Duration>,
    /// Negative results (`None`, or `Err` of a function with the macro's `negative_ttl`) are stored only
    /// when this is set, with this ttl.
    pub(crate) negative_ttl: Option<Duration>,
    /// When a refresh of a stale entry fails, serve the stale value instead of the error.
    pub(crate) serve_stale_on_error: bool,
    /// Fail-safe: keep each positive entry this much longer than its `ttl`, and when the
    /// function fails after the ttl, serve that value instead (counted as `fail_safe` in the
    /// stats): to the caller whose call returned an error, and to the callers waiting on a call
    /// that failed or panicked. `None` (the default): an expired entry is gone.
    pub(crate) fail_safe: Option<Duration>,
    /// After a recompute failed and the old value was served (fail-safe, or a stale value with
    /// `serve_stale_on_error`), serve the old value for this long before calling the function
    /// again, instead of calling it on every call. `None`: 30 s
    /// ([`DEFAULT_FAIL_SAFE_THROTTLE`]), with or without `fail_safe` (every failing recompute is
    /// throttled); zero turns the throttle off.
    pub(crate) fail_safe_throttle: Option<Duration>,
    /// Early refresh (XFetch): before a value goes stale (or expires), each read refreshes it
    /// with a probability that grows as the deadline nears, faster for values that took long
    /// to compute: a read at `now` refreshes when `now - took · beta · ln(rand) >= deadline`.
    /// The value is served meanwhile (fresh); the refresh runs in the background when the
    /// caller can hand one over (`#[cached]` free functions), else inline. `beta` = 1.0 is the
    /// paper's optimum; larger refreshes earlier. `None`: off.
    pub(crate) early_refresh: Option<f64>,
    /// Soft factory timeout: when a stale (or fail-safe) value exists and the function takes
    /// longer than this, the caller gets the old value and the computation finishes in the
    /// background, storing its result. Needs a background job (`#[cached]` free functions).
    pub(crate) soft_timeout: Option<Duration>,
    /// Hard factory timeout: stop waiting for the function after this long even without an old
    /// value; the caller gets the old value if any, else the timeout error
    /// ([`FactoryTimeout`](crate::FactoryTimeout), converted into the function's error type).
    pub(crate) hard_timeout: Option<Duration>,
    /// Whether a computation abandoned by a timeout still completes and stores its result
    /// (FusionCache's background completion). Default true; `false` drops it (an async one is
    /// cancelled; a sync one cannot be stopped and finishes, but its result is not stored).
    pub(crate) background_completion: bool,
    /// Admission: store a value only once its arguments were computed this many times within
    /// the ttl (a counter in the backend, shared by every process using it; a window of the
    /// `ttl` from the first call, no window without a ttl). Values refused meanwhile are
    /// returned, not stored (counted as `not_admitted`). `None` (or below 2): every value.
    pub(crate) min_calls: Option<u32>,
    /// Drop an entry after it was served this many times (a counter in the backend per stored
    /// value, shared by every process): the next call computes it anew. Hits of such a
    /// function go through the engine (and the counter), not the typed fast path. `None`: no
    /// limit.
    pub(crate) max_hits: Option<u32>,
    /// The largest value stored (cachier's `entry_size_limit`), in bytes of its encoding: the
    /// codec's payload on a cache with a store, the value's bincode size on an in-process cache.
    /// A larger value is returned to its caller but stored nowhere, neither in the store nor in
    /// the in-process tier (counted as `too_large`, logged once per function). `None`: no limit
    /// beyond the in-process tier's own bounds.
    pub(crate) entry_size_limit: Option<u64>,
}

/// The throttle of fail-safe when none is set: FusionCache's default.
pub const DEFAULT_FAIL_SAFE_THROTTLE: Duration = Duration::from_secs(30);

impl Default for Policy {
    fn default() -> Self {
        Policy {
            ttl: None,
            stale_after: None,
            jitter: 0.0,
            refresh: Refresh::Block,
            lock: Lock::Local,
            lock_ttl: Duration::from_secs(30),
            lock_wait: None,
            negative_ttl: None,
            serve_stale_on_error: true,
            fail_safe: None,
            fail_safe_throttle: None,
            early_refresh: None,
            soft_timeout: None,
            hard_timeout: None,
            background_completion: true,
            min_calls: None,
            max_hits: None,
            entry_size_limit: None,
        }
    }
}

/// For each optional duration of [`Policy`]: its getter, `with_` (set) and `without_` (unset).
macro_rules! optional_durations {
    ($($field:ident, $with:ident, $without:ident, $doc:literal;)*) => {$(
        #[doc = concat!("The ", $doc, " (see the setter [`", stringify!($with), "`](Self::", stringify!($with), ")); `None`: off.")]
        pub fn $field(&self) -> Option<Duration> {
            self.$field
        }

        #[doc = concat!("No ", $doc, ".")]
        pub fn $without(mut self) -> Self {
            self.$field = None;
            self
        }
    )*};
}

impl Policy {
    /// Values expire after `ttl` (the same as `Policy::forever().with_ttl(ttl)`).
    pub fn expire_after(ttl: Duration) -> Self {
        Policy::forever().with_ttl(ttl)
    }

    /// Values never expire (until evicted or invalidated): the default policy.
    pub fn forever() -> Self {
        Policy::default()
    }

    optional_durations! {
        ttl, with_ttl, without_ttl, "hard expiry";
        stale_after, with_stale_after, without_stale_after, "soft expiry";
        lock_wait, with_lock_wait, without_lock_wait, "bound of the wait on another process's lock";
        negative_ttl, with_negative_ttl, without_negative_ttl, "ttl of negative results";
        fail_safe, with_fail_safe, without_fail_safe, "fail-safe margin past the ttl";
        fail_safe_throttle, with_fail_safe_throttle, without_fail_safe_throttle, "fail-safe throttle";
        soft_timeout, with_soft_timeout, without_soft_timeout, "soft factory timeout";
        hard_timeout, with_hard_timeout, without_hard_timeout, "hard factory timeout";
    }

    /// Hard expiry: after `ttl` the entry is gone (unset: kept until evicted or invalidated).
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Soft expiry: after `d` the entry is stale (servable, refresh due; refresh mode
    /// unchanged). Unset: never stale.
    pub fn with_stale_after(mut self, d: Duration) -> Self {
        self.stale_after = Some(d);
        self
    }

    /// Fresh for the current `ttl`, then stale for `window` more while one background refresh
    /// runs: `stale_after = ttl`, `ttl = ttl + window`, refresh in the background. With no ttl
    /// set, entries go stale after `window` and are kept until evicted.
    pub fn stale_while_revalidate(mut self, window: Duration) -> Self {
        match self.ttl {
            Some(t) => {
                self.stale_after = Some(t);
                self.ttl = Some(t.saturating_add(window));
            }
            None => self.stale_after = Some(window),
        }
        self.refresh = Refresh::Background;
        self
    }

    /// How stale entries are refreshed.
    pub fn refresh(&self) -> Refresh {
        self.refresh
    }

    /// Set the refresh mode.
    pub fn with_refresh(mut self, refresh: Refresh) -> Self {
        self.refresh = refresh;
        self
    }

    /// How concurrent callers coalesce.
    pub fn lock(&self) -> Lock {
        self.lock
    }

    /// Set the lock mode.
    pub fn with_lock(mut self, lock: Lock) -> Self {
        self.lock = lock;
        self
    }

    /// The lease of a distributed lock (see [`with_lock_ttl`](Self::with_lock_ttl)).
    pub fn lock_ttl(&self) -> Duration {
        self.lock_ttl
    }

    /// The lease of a distributed lock (default 30 s; clamped to `[1 ms, 24 h]`): a holder
    /// renews it every `lock_ttl / 3` while it computes (so a computation may take longer than
    /// `lock_ttl`), and a holder that dies (killed, partitioned from the store) loses it at
    /// most `lock_ttl` after its last renewal, when one waiter takes over.
    pub fn with_lock_ttl(mut self, d: Duration) -> Self {
        self.lock_ttl = d.clamp(MIN_LOCK_TTL, MAX_LOCK_TTL);
        self
    }

    /// The longest a caller waits on another process's distributed lock before computing
    /// without it. Unset (the default): as long as the holder keeps renewing its lease, i.e.
    /// until its value is stored, its round ends, or it dies (then at most `lock_ttl` more).
    /// Set it when a caller must not wait behind a slow computation elsewhere longer than this.
    pub fn with_lock_wait(mut self, d: Duration) -> Self {
        self.lock_wait = Some(d);
        self
    }

    /// The jitter fraction (see [`with_jitter`](Self::with_jitter)).
    pub fn jitter(&self) -> f64 {
        self.jitter
    }

    /// Spread expiries: each stored entry's `ttl` and `stale_after` are shortened by a random
    /// fraction in `[0, jitter)`, so entries written together do not expire together. Clamped
    /// to `[0, 0.9]` (not a number: 0).
    pub fn with_jitter(mut self, jitter: f64) -> Self {
        self.jitter = if jitter.is_finite() {
            jitter.clamp(0.0, MAX_JITTER)
        } else {
            0.0
        };
        self
    }

    /// Store negative results (`None`, or `Err` of a function with the macro's
    /// `negative_ttl`) for `ttl`; unset (the default), they are not stored.
    pub fn with_negative_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = Some(ttl);
        self
    }

    /// Whether a stale value is served when its refresh fails.
    pub fn serve_stale_on_error(&self) -> bool {
        self.serve_stale_on_error
    }

    /// When a refresh of a stale entry fails, serve the stale value instead of the error
    /// (default true).
    pub fn with_serve_stale_on_error(mut self, on: bool) -> Self {
        self.serve_stale_on_error = on;
        self
    }

    /// Fail-safe: keep each positive entry `d` longer than its `ttl`, and when the function
    /// fails after the ttl, serve that value instead (counted as `fail_safe` in the stats): to
    /// the caller whose call returned an error, and to the callers waiting on a call that
    /// failed or panicked. Unset (the default): an expired entry is gone.
    pub fn with_fail_safe(mut self, d: Duration) -> Self {
        self.fail_safe = Some(d);
        self
    }

    /// After a recompute failed and the old value was served (fail-safe, or a stale value with
    /// `serve_stale_on_error`), serve the old value for `d` before calling the function
    /// again, instead of calling it on every call. Unset: 30 s
    /// ([`DEFAULT_FAIL_SAFE_THROTTLE`]).
    pub fn with_fail_safe_throttle(mut self, d: Duration) -> Self {
        self.fail_safe_throttle = Some(d);
        self
    }

    /// XFetch's `beta`, when early refresh is on.
    pub fn early_refresh(&self) -> Option<f64> {
        self.early_refresh
    }

    /// Early refresh (XFetch): before a value goes stale (or expires), each read refreshes it
    /// with a probability that grows as the deadline nears, faster for values that took long
    /// to compute: a read at `now` refreshes when `now - took · beta · ln(rand) >= deadline`.
    /// The value is served meanwhile (fresh); the refresh runs in the background when the
    /// caller can hand one over (`#[cached]` free functions), else inline. `beta` = 1.0 is the
    /// paper's optimum; larger refreshes earlier. A `beta` that is not above 0 (or not a
    /// number) turns it off.
    pub fn with_early_refresh(mut self, beta: f64) -> Self {
        self.early_refresh = Some(beta).filter(|b| b.is_finite() && *b > 0.0);
        self
    }

    /// No early refresh.
    pub fn without_early_refresh(mut self) -> Self {
        self.early_refresh = None;
        self
    }

    /// Soft factory timeout: when a stale (or fail-safe) value exists and the function takes
    /// longer than `d`, the caller gets the old value and the computation finishes in the
    /// background, storing its result. Needs a background job (`#[cached]` free functions).
    pub fn with_soft_timeout(mut self, d: Duration) -> Self {
        self.soft_timeout = Some(d);
        self
    }

    /// Hard factory timeout: stop waiting for the function after `d` even without an old
    /// value; the caller gets the old value if any, else the timeout error
    /// ([`FactoryTimeout`](crate::FactoryTimeout), converted into the function's error type).
    pub fn with_hard_timeout(mut self, d: Duration) -> Self {
        self.hard_timeout = Some(d);
        self
    }

    /// Whether a computation abandoned by a timeout still stores its result.
    pub fn background_completion(&self) -> bool {
        self.background_completion
    }

    /// Whether a computation abandoned by a timeout still completes and stores its result
    /// (FusionCache's background completion). Default true; `false` drops it (an async one is
    /// cancelled; a sync one cannot be stopped and finishes, but its result is not stored).
    pub fn with_background_completion(mut self, on: bool) -> Self {
        self.background_completion = on;
        self
    }

    /// The admission count, when set.
    pub fn min_calls(&self) -> Option<u32> {
        self.min_calls
    }

    /// Admission: store a value only once its arguments were computed `n` times within the
    /// ttl (a counter in the backend, shared by every process using it; a window of the `ttl`
    /// from the first call, no window without a ttl). Values refused meanwhile are returned,
    /// not stored (counted as `not_admitted`). Below 2: every value (unset).
    pub fn with_min_calls(mut self, n: u32) -> Self {
        self.min_calls = Some(n).filter(|n| *n >= 2);
        self
    }

    /// Store every value (no admission count).
    pub fn without_min_calls(mut self) -> Self {
        self.min_calls = None;
        self
    }

    /// The hit limit, when set.
    pub fn max_hits(&self) -> Option<u32> {
        self.max_hits
    }

    /// Drop an entry after it was served `n` times (a counter in the backend per stored value,
    /// shared by every process): the next call computes it anew. Hits of such a function go
    /// through the engine (and the counter), not the typed fast path.
    pub fn with_max_hits(mut self, n: u32) -> Self {
        self.max_hits = Some(n);
        self
    }

    /// No hit limit.
    pub fn without_max_hits(mut self) -> Self {
        self.max_hits = None;
        self
    }

    /// The size limit of stored values, when set.
    pub fn entry_size_limit(&self) -> Option<u64> {
        self.entry_size_limit
    }

    /// Store no value whose encoding is larger than `bytes` (cachier's `entry_size_limit`):
    /// such a value is returned to its caller, stored nowhere (neither in the store nor in
    /// process), counted as `too_large` and logged once per function. The size is the codec's
    /// payload on a cache with a store, the value's bincode size on an in-process cache.
    pub fn with_entry_size_limit(mut self, bytes: u64) -> Self {
        self.entry_size_limit = Some(bytes);
        self
    }

    /// No size limit of stored values (the in-process tier's bounds still hold).
    pub fn without_entry_size_limit(mut self) -> Self {
        self.entry_size_limit = None;
        self
    }
}
