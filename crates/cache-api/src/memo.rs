//! [`Memo`]: one memoized function's engine state: its namespace and version, policy, cache,
//! typed in-process tier, in-flight calls and stats. `#[cached]` makes one per function (in a
//! `static`); it can also be built by hand.

mod controls;

use crate::cache::Cache;
use crate::defaults::default_cache;
use crate::engine::ctx::Ctx;
use crate::engine::driver::{run_async, run_sync};
use crate::engine::plan::Plan;
use crate::engine::{AsyncRefresh, Shape, SyncRefresh};
use crate::error::{Error, Result};
use crate::flight::{self, FlightMap};
pub use crate::key::ArgsKey;
use crate::key::{call_key, namespace_of, part_hashes, sanitize};
use crate::policy::Policy;
use crate::scope::{is_enabled, options_are_default};
use crate::stats::{Counter, Stats, StatsSnapshot};
use crate::tier::{CallTags, LocalStore, Place, L1, L2};
use crate::value::ValueBytes;
use serde::{de::DeserializeOwned, Serialize};
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

/// Where a [`Memo`] gets its cache, resolved once at its first call.
#[derive(Clone, Copy)]
pub enum CacheSource {
    /// The process-wide default ([`default_cache`]).
    Default,
    /// A function returning the cache (what `#[cached(cache = ...)]` generates).
    With(fn() -> Cache),
}

struct MemoState<V> {
    cache: Cache,
    /// The cache sends memoized values to a store (not a memory cache): values without serde
    /// and keys meaningful in process only are refused there (the call runs uncached).
    uses_store: bool,
    local: Option<Arc<LocalStore<V>>>,
    flights: FlightMap,
}

/// One memoized function's engine.
///
/// Its values need only be `Clone + Send + Sync + 'static`: their bytes are its
/// [`ValueBytes`], and without serde it caches in memory only (see [`ValueBytes`] for what
/// happens on a store).
///
/// ```
/// use steadycache_api::{Memo, Policy};
/// use steadycache_api::__private::{hash_args, ArgsKey, NoRefresh, Shape};
/// use std::time::Duration;
/// static SQUARE: std::sync::LazyLock<Memo<u64>> = std::sync::LazyLock::new(|| {
///     Memo::new("docs", "square", "v1", Policy::expire_after(Duration::from_secs(60)))
/// });
/// let mut runs = 0;
/// for _ in 0..3 {
///     let key = ArgsKey::hashed(hash_args(&(7u64,)).unwrap());
///     let v = SQUARE.call_sync(key, Shape::plain(), || { runs += 1; Ok::<_, ()>(49) }, NoRefresh);
///     assert_eq!(v, Ok(49));
/// }
/// assert_eq!(runs, 1);
/// assert_eq!(SQUARE.stats().hits, 2);
/// ```
pub struct Memo<V> {
    namespace: String,
    version: String,
    policy: Policy,
    plan: Plan,
    source: CacheSource,
    max_bytes: Option<u64>,
    /// Time-to-idle of the in-process values, ms (0: none; see [`Memo::with_tti`]).
    tti_ms: u64,
    /// Whether calls carry tags (`#[cached(tags = [...])]`).
    tagged: bool,
    enabled: AtomicBool,
    stats: Arc<Stats>,
    /// How values become bytes (serde, or none).
    values: ValueBytes<V>,
    /// The refusal on a store was logged (once per function).
    refused: AtomicBool,
    state: OnceLock<MemoState<V>>,
}

impl<V> fmt::Debug for Memo<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Memo")
            .field("namespace", &self.namespace)
            .field("version", &self.version)
            .field("policy", &self.policy)
            .finish()
    }
}

impl<V> Memo<V>
where
    V: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    /// A memo for the function `name` of module `module_path` (namespace
    /// `module.path.name`), at `version`, with `policy`, on the default cache; its values
    /// serialized with serde ([`ValueBytes::serde`]).
    pub fn new(module_path: &str, name: &str, version: &str, policy: Policy) -> Self {
        Self::new_with(module_path, name, version, policy, ValueBytes::serde())
    }
}

impl<V> Memo<V>
where
    V: Clone + Send + Sync + 'static,
{
    /// [`new`](Self::new) with the values' bytes given: [`ValueBytes::opaque`] for values
    /// without serde (cached in memory only: see the type's docs).
    pub fn new_with(
        module_path: &str,
        name: &str,
        version: &str,
        policy: Policy,
        values: ValueBytes<V>,
    ) -> Self {
        Memo {
            namespace: namespace_of(module_path, name),
            version: sanitize(version),
            plan: Plan::compile(&policy),
            policy,
            source: CacheSource::Default,
            max_bytes: None,
            tti_ms: 0,
            tagged: false,
            enabled: AtomicBool::new(true),
            stats: Arc::default(),
            values,
            refused: AtomicBool::new(false),
            state: OnceLock::new(),
        }
    }

    /// Use this namespace instead of the module path and name (`key_prefix`).
    pub fn with_namespace(mut self, namespace: &str) -> Self {
        self.namespace = sanitize(namespace);
        self
    }

    /// Take the cache from `source`.
    pub fn with_cache(mut self, source: CacheSource) -> Self {
        self.source = source;
        self
    }

    /// Bound this function's in-process typed tier to `max_bytes` (within the cache's shared
    /// budget, which bounds all its functions together).
    pub fn with_max_bytes(mut self, max_bytes: u64) -> Self {
        self.max_bytes = Some(max_bytes);
        self
    }

    /// Time-to-idle (`#[cached(tti = "10m")]`): a value not read for `tti` leaves the in-process
    /// tier, fail-safe copy included; nothing without one (logged). No byte store keeps idle
    /// times. A hit stays one comparison: plain hits for `tti / 8` after a touch, then one read
    /// touches it on the engine's path (a read keeps a value ≥ 7/8 `tti`). See the options guide.
    pub fn with_tti(mut self, tti: std::time::Duration) -> Self {
        self.tti_ms = u64::try_from(tti.as_millis()).unwrap_or(u64::MAX);
        self
    }

    /// Calls carry tags ([`ArgsKey::with_tags`]): their values are checked against the tag
    /// invalidations ([`Cache::invalidate_tag`]). Every key handed to such a memo must carry
    /// its tags (what `#[cached(tags = ...)]` generates, for calls and for `prime` and
    /// `get_cached` alike): a key without them is neither checked nor stamped.
    pub fn with_tags(mut self) -> Self {
        self.tagged = true;
        self
    }

    /// The namespace (`module.path.name`).
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The version part of keys.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The full stored key of one call.
    pub fn key_for(&self, key: &ArgsKey<'_>) -> String {
        call_key(&self.namespace, &self.version, key)
    }

    #[inline(always)]
    fn state(&self) -> &MemoState<V> {
        if let Some(st) = self.state.get() {
            return st;
        }
        self.init_state()
    }

    #[cold]
    fn init_state(&self) -> &MemoState<V> {
        self.state.get_or_init(|| {
            let cache = match self.source {
                CacheSource::Default => default_cache(),
                CacheSource::With(f) => f(),
            };
            let bus = cache.bus();
            // A plain memory hit checks nothing but freshness; copies of a shared store and
            // tagged values are checked against the bus's watch too.
            let watched = self.tagged || !bus.is_alone();
            let local = cache.budget().map(|budget| {
                LocalStore::new(
                    budget.clone(),
                    self.max_bytes,
                    &self.namespace,
                    format!("{}:{}:", self.namespace, self.version),
                    part_hashes,
                    crate::tier::local::Rules {
                        watch: watched.then(|| bus.watch.clone()),
                        tti_ms: self.tti_ms,
                        stats: self.stats.clone(),
                    },
                    self.values,
                )
            });
            let uses_store = cache.memos_use_backend();
            if uses_store && self.values.is_opaque() {
                self.refuse();
            }
            cache.events().attach(&self.stats, &self.namespace);
            if local.is_none() && self.tti_ms > 0 {
                tracing::warn!(namespace = %self.namespace, "steadycache: tti has no effect: this cache keeps no values in process");
            }
            if local.is_some() || self.tagged {
                bus.listen();
            }
            #[cfg(feature = "metrics")]
            crate::metrics::register(&self.namespace, cache.manager(), &self.stats);
            MemoState {
                cache,
                uses_store,
                local,
                flights: flight::new_map(),
            }
        })
    }

    /// The cache this function uses (resolved at first use).
    pub fn cache(&self) -> &Cache {
        &self.state().cache
    }

    // The hit path is `#[inline(always)]` down to the table lookup: it is generic over the value
    // type only, so every function returning the same type shares one copy, which the compiler
    // stops inlining once a few functions call it (measured: +25 % per hit with three `u64`
    // functions in one binary).
    #[inline(always)]
    fn active(&self) -> Option<&MemoState<V>> {
        if !is_enabled() || !self.enabled.load(Ordering::Relaxed) {
            return None;
        }
        let st = self.state();
        st.cache.is_enabled().then_some(st)
    }

    /// `Ok` when calls may go on: caching is off for this call (it runs the function, no cache
    /// involved), or the cache's backend is open ([`Cache::ready`]). What `strict = true`
    /// checks before each call.
    pub fn ready(&self) -> Result<()> {
        match self.active() {
            Some(st) => st.cache.ready(),
            None => Ok(()),
        }
    }

    /// Turn caching of this function off (every call runs it) or on.
    pub fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Ordering::Relaxed);
    }

    /// The function's counters.
    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    /// Zero the counters.
    pub fn reset_stats(&self) {
        self.stats.reset();
    }

    /// Entries in the in-process typed tier (0 on remote caches).
    pub fn local_len(&self) -> usize {
        self.state().local.as_ref().map_or(0, |l| l.len())
    }

    fn ctx<'a, E>(
        &'a self,
        st: &'a MemoState<V>,
        key: &ArgsKey<'_>,
        shape: Shape<V, E>,
    ) -> Ctx<'a, V, E> {
        Ctx {
            place: self.place(st, key),
            id: key.hash,
            plan: &self.plan,
            stats: &self.stats,
            flights: &st.flights,
            shape,
        }
    }

    /// The call's slots: L1 when the cache has a typed tier, L2 unless it is plain memory.
    fn place(&self, st: &MemoState<V>, key: &ArgsKey<'_>) -> Place<V> {
        Place {
            l1: st.local.as_ref().map(|store| L1 {
                store: store.clone(),
                hash: key.hash,
                gen: store.generation(),
            }),
            l2: st.cache.memos_use_backend().then(|| self.l2(st, key)),
            counters: self.plan.counts().then(|| self.l2(st, key)),
            tags: self.call_tags(st, key),
            announce: (st.local.is_some() && st.cache.bus().carries())
                .then(|| st.cache.bus().clone()),
            bytes: self.values,
        }
    }

    /// The call's tags, rendered now (the slow path), with the tag epoch read first.
    fn call_tags(&self, st: &MemoState<V>, key: &ArgsKey<'_>) -> Option<CallTags> {
        let names = key.tags.filter(|_| self.tagged)?;
        let bus = st.cache.bus().clone();
        let epoch = bus.watch.tag_epoch();
        Some(CallTags {
            names: names.into(),
            epoch,
            bus,
        })
    }

    /// The call's slot in the cache's manager.
    fn l2(&self, st: &MemoState<V>, key: &ArgsKey<'_>) -> L2 {
        L2::new(st.cache.store().clone(), self.key_for(key))
    }

    /// Whether this call is refused here: an opaque value or an in-process key on a cache whose
    /// values go to a store (see the type's docs). Logged once per function.
    #[inline]
    fn refuses(&self, st: &MemoState<V>, key: &ArgsKey<'_>) -> bool {
        if !st.uses_store || !(self.values.is_opaque() || key.is_in_process()) {
            return false;
        }
        self.refuse();
        true
    }

    /// Log, once per function, that it runs uncached on a store.
    #[cold]
    fn refuse(&self) {
        if self.refused.swap(true, Ordering::Relaxed) {
            return;
        }
        crate::value::log_refusal::<V>(&self.namespace, self.values.is_opaque());
    }

    /// Log a key that could not be built (arguments that fail to serialize): the call runs
    /// uncached.
    pub fn key_error(&self, err: &Error) {
        crate::scope::enter_call(); // the call runs uncached: what it calls sees the outer options
        self.stats.incr(Counter::Errors);
        tracing::warn!(namespace = %self.namespace, error = %err, "steadycache: no key, running uncached");
    }

    /// The hot path: a fresh value in the typed tier (default call options only).
    #[inline(always)]
    fn typed_hit(&self, st: &MemoState<V>, key: &ArgsKey<'_>) -> Option<V> {
        let local = st.local.as_ref()?;
        // (`max_hits` counts every hit: its values are stored with no plain hits at all, see
        // `Plan::with_early`, so this path never serves them.)
        if !options_are_default() {
            return None;
        }
        let v = local.get_fresh(key.hash)?;
        self.stats.hit();
        // Opt-in (feature `trace-hits`): even a disabled `trace!` costs about 2 % of an
        // in-process hit. The hit is always counted in the stats.
        #[cfg(feature = "trace-hits")]
        tracing::trace!(namespace = %self.namespace, "steadycache: hit");
        Some(v)
    }

    /// A fresh value in the typed tier, if there is one (what a call checks first). A tagged
    /// function's generated code asks this before it renders its tags, so a hit allocates
    /// nothing.
    #[inline(always)]
    pub fn hit(&self, key: &ArgsKey<'_>) -> Option<V> {
        self.typed_hit(self.active()?, key)
    }

    /// Run one sync call: a fresh hit in the typed tier returns at once; everything else goes
    /// through the engine.
    ///
    /// `call_sync` / `call_async` run the function, in the mode of the function (what
    /// `#[cached]` expands to): they are named for both modes, outside the rule of the store's
    /// operations (async plain, blocking `_sync`; see [`Cache`](crate::Cache)).
    #[inline]
    pub fn call_sync<E, F, R>(
        &self,
        key: ArgsKey<'_>,
        shape: Shape<V, E>,
        compute: F,
        refresh: R,
    ) -> Result<V, E>
    where
        E: Send + 'static,
        F: FnOnce() -> Result<V, E>,
        R: SyncRefresh<V, E>,
    {
        let Some(st) = self.active() else {
            crate::scope::enter_call();
            return compute();
        };
        if let Some(v) = self.typed_hit(st, &key) {
            return Ok(v);
        }
        self.call_sync_missed(st, key, shape, compute, refresh)
    }

    /// What a sync call does past a missed in-process hit. Out of line: inlined, its stack
    /// frame and registers were set up on every hit (measured: about 1 ns of a 20 ns hit).
    #[inline(never)]
    fn call_sync_missed<E, F, R>(
        &self,
        st: &MemoState<V>,
        key: ArgsKey<'_>,
        shape: Shape<V, E>,
        compute: F,
        refresh: R,
    ) -> Result<V, E>
    where
        E: Send + 'static,
        F: FnOnce() -> Result<V, E>,
        R: SyncRefresh<V, E>,
    {
        if self.refuses(st, &key) {
            crate::scope::enter_call();
            return compute();
        }
        let _span = self.miss_span(&key).entered();
        run_sync(self.ctx(st, &key, shape), compute, refresh)
    }

    /// The span of a call that missed the in-process tier: the function's namespace and a short
    /// hash of its key (never the arguments themselves), around the engine's work for it
    /// (lookups, the computation, stores, locks; a refresh it starts is a child).
    #[cold]
    #[inline(never)]
    fn miss_span(&self, key: &ArgsKey<'_>) -> tracing::Span {
        tracing::debug_span!(
            "steadycache.call",
            namespace = %self.namespace,
            key = %format_args!("{:016x}", (key.hash >> 64) as u64),
        )
    }

    /// Run one async call (see [`call_sync`](Self::call_sync)).
    pub async fn call_async<E, F, Fut, R>(
        &self,
        key: ArgsKey<'_>,
        shape: Shape<V, E>,
        compute: F,
        refresh: R,
    ) -> Result<V, E>
    where
        E: Send + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
        R: AsyncRefresh<V, E>,
    {
        if let Some(v) = self.hit(&key) {
            return Ok(v);
        }
        self.call_async_missed(key, shape, compute, refresh).await
    }

    /// [`call_async`](Self::call_async) for a caller that has asked [`hit`](Self::hit) already
    /// and missed: what `#[cached]` expands to (an async function serves its in-process hit
    /// before it builds the call's future), so the typed tier is not looked at twice.
    #[doc(hidden)]
    pub async fn call_async_missed<E, F, Fut, R>(
        &self,
        key: ArgsKey<'_>,
        shape: Shape<V, E>,
        compute: F,
        refresh: R,
    ) -> Result<V, E>
    where
        E: Send + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
        R: AsyncRefresh<V, E>,
    {
        let Some(st) = self.active() else {
            crate::scope::enter_call();
            return compute().await;
        };
        if self.refuses(st, &key) {
            crate::scope::enter_call();
            return compute().await;
        }
        let ctx = self.ctx(st, &key, shape);
        let span = self.miss_span(&key);
        tracing::Instrument::instrument(run_async(ctx, compute, refresh), span).await
    }
}
