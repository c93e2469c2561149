//! [`Cache`]: a manager (backend + codec) with its switches, stats and in-flight calls; the handle
//! users build, share and pass to `#[cached(cache = ...)]`.

use crate::backend::Backend;
use crate::codec::Codec;
use crate::engine::ctx::Ctx;
use crate::engine::io::{self, Mode};
use crate::engine::plan::Plan;
use crate::engine::Shape;
use crate::error::Result;
use crate::flight::{self, FlightMap};
use crate::key::by_hand;
use crate::manager::{CacheManager, DefaultManager};
use crate::memory::{MemoryBackend, MemoryConfig};
use crate::reopen::Reopening;
use crate::stats::{Stats, StatsSnapshot};
use crate::tier::{
    Breaker, Budget, Bus, BusConfig, LocalTier, Place, Reach, Store, StoreBreaker, Tiers, L2,
};
use serde::{de::DeserializeOwned, Serialize};
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use xxhash_rust::xxh3::xxh3_128;

/// A cache's parts. Private to this module: the rest of the crate asks the [`Cache`].
pub(crate) struct CacheInner {
    /// The manager behind the backend timeout and the breaker, as every call reaches it.
    store: Arc<Store>,
    /// Where the functions keep their values, and the budget of the typed ones.
    tiers: Tiers,
    enabled: AtomicBool,
    flights: FlightMap,
    stats: Arc<Stats>,
    /// The bound of a bulk operation (clear, removal by prefix or pattern).
    bulk_timeout: Duration,
    /// The backend of a URL that could not be opened yet (`Cache::from_url_failing_open`).
    opening: Option<Arc<Reopening>>,
    /// Keeps the in-process copies coherent with other processes (see `tier::bus`).
    bus: Arc<Bus>,
    /// Its listener, and the stats that report to it ([`CacheListener`](crate::CacheListener)).
    events: Arc<crate::stats::Hub>,
}

/// The default [`CacheBuilder::backend_timeout`]: long enough for any healthy store, short
/// enough that a hung one costs a caller a few seconds once, not forever.
pub const DEFAULT_BACKEND_TIMEOUT: Duration = Duration::from_secs(5);

/// A cache: where memoized values live and how they are encoded. Cheap to clone (an `Arc`).
///
/// **Sync and async twins**, one rule on `Cache`, [`Memo`](crate::Memo) and the handle of a
/// `#[cached]` function alike: every operation that does the store's I/O is async under its
/// plain name (`get`, `set`, `invalidate`, `clear`, ...) and has a blocking twin named with
/// `_sync` (`get_sync`, `set_sync`, `invalidate_sync`, `clear_sync`, ...), which runs on the
/// library's runtime and works inside and outside tokio. Operations that run the memoized
/// function instead (a handle's `refresh`, `bypass`, `call_with`, `call_with_origin`) keep the
/// function's own mode under their plain names; `get_or_compute` / `get_or_compute_sync`
/// follow the rule.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use steadycache_api::{Cache, Policy};
/// use std::time::Duration;
/// let cache = Cache::from_url("mem://?max_bytes=1048576").unwrap();
/// let policy = Policy::expire_after(Duration::from_secs(60));
/// let v: u64 = cache
///     .get_or_compute("answer", &policy, || async { Ok::<_, std::io::Error>(42) })
///     .await
///     .unwrap();
/// assert_eq!(v, 42);
/// assert_eq!(cache.get::<u64>("answer").await.unwrap(), Some(42));
/// # });
/// ```
#[derive(Clone)]
pub struct Cache {
    pub(crate) inner: Arc<CacheInner>,
}

impl fmt::Debug for Cache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("manager", &self.inner.store.manager())
            .field("enabled", &self.is_enabled())
            .finish()
    }
}

impl Default for Cache {
    fn default() -> Self {
        Cache::memory()
    }
}

/// Builds a [`Cache`] from a backend, a codec or a whole manager.
///
/// [`backend`](Self::backend) and [`manager`](Self::manager) take a value or a shared one (an
/// `Arc` of a backend is a backend, an `Arc` of a manager a manager): one method each.
pub struct CacheBuilder {
    backend: Option<Arc<dyn Backend>>,
    memory: Option<MemoryConfig>,
    codec: Option<Codec>,
    manager: Option<Arc<dyn CacheManager>>,
    local_tier: Option<LocalTier>,
    backend_timeout: Option<Duration>,
    bulk_timeout: Option<Duration>,
    /// `None`: no breaker ([`CacheBuilder::no_store_breaker`]).
    breaker: Option<StoreBreaker>,
    layers: Vec<crate::layer::Wrap>,
    bus: Option<BusConfig>,
    pub(crate) opening: Option<Arc<Reopening>>,
}

impl Default for CacheBuilder {
    fn default() -> Self {
        CacheBuilder {
            backend: None,
            memory: None,
            codec: None,
            manager: None,
            local_tier: None,
            backend_timeout: None,
            bulk_timeout: None,
            breaker: Some(StoreBreaker::default()),
            layers: Vec::new(),
            bus: None,
            opening: None,
        }
    }
}

/// `value` as a shared trait object: an `Arc<dyn T>` given as `value` (an `Arc` of a backend
/// or manager is one itself) is taken as it is rather than wrapped in another `Arc`.
fn shared<T: std::any::Any, D: ?Sized + 'static>(value: T, wrap: fn(T) -> Arc<D>) -> Arc<D> {
    match (&value as &dyn std::any::Any).downcast_ref::<Arc<D>>() {
        Some(arc) => arc.clone(),
        None => wrap(value),
    }
}

impl CacheBuilder {
    /// Store in `backend`: a backend by value, or a shared one (`Arc<B>`, `Arc<dyn Backend>`;
    /// an `Arc` of a backend is a backend) that the caller keeps a handle on too.
    pub fn backend(mut self, backend: impl Backend) -> Self {
        self.backend = Some(shared(backend, |b| Arc::new(b) as Arc<dyn Backend>));
        self.memory = None;
        self
    }

    /// Store in process memory with this configuration: one bound, `config.max_bytes`, for
    /// everything the cache holds (the typed values of its memoized functions, values set by
    /// hand, locks and counters), each value held once.
    pub fn memory(mut self, config: MemoryConfig) -> Self {
        self.backend = None;
        self.memory = Some(config);
        self
    }

    /// Encode with `codec` (default: bincode).
    pub fn codec(mut self, codec: Codec) -> Self {
        self.codec = Some(codec);
        self
    }

    /// Use a custom manager (its own backend and codec); overrides `backend` and `codec`. By
    /// value, or shared (`Arc<M>`, `Arc<dyn CacheManager>`; an `Arc` of a manager is a
    /// manager) when the caller keeps a handle on it too (to reach methods of its own, such as
    /// reading part of a value).
    pub fn manager(mut self, manager: impl CacheManager) -> Self {
        self.manager = Some(shared(manager, |m| Arc::new(m) as Arc<dyn CacheManager>));
        self
    }

    /// Keep typed copies of memoized values in process, in front of the backend (L1 + L2),
    /// bounded by `tier` for all the cache's functions together. Off by default on byte-level
    /// backends: see [`LocalTier`] for what another process's update means for these copies.
    /// A plain memory cache has its typed tier already (bounded by its `MemoryConfig`).
    pub fn local_tier(mut self, tier: LocalTier) -> Self {
        self.local_tier = Some(tier);
        self
    }

    /// The deadline of every call the engine makes into the backend (through the manager):
    /// load, save, delete, locks (default [`DEFAULT_BACKEND_TIMEOUT`]). A store that hangs (a
    /// socket that never answers, a client without timeouts of its own) then fails open: the
    /// call is a counted backend error and the function runs. The blocking reads and writes of
    /// local stores (files, SQLite) for sync callers are not cut short: they are bounded by the
    /// store's own timeouts (the file lock wait, SQLite's `busy_timeout`). Also the URL option
    /// `backend_timeout_ms`.
    ///
    /// A backend that bounds each operation itself ([`Backend::own_deadline`]: a Redis store's
    /// `response_timeout`, 500 ms by default) bounds the cache's calls too when its deadline is
    /// the shorter one: the cache's timer then covers the whole operation (a retry after a
    /// dropped connection, a wait for a reconnection included) and the backend's own is skipped.
    pub fn backend_timeout(mut self, timeout: Duration) -> Self {
        self.backend_timeout = Some(timeout);
        self
    }

    /// The bound of a bulk operation: [`Cache::clear`], [`Cache::invalidate_prefix`],
    /// [`Cache::invalidate_matching`] and a function's `clear` (default
    /// [`DEFAULT_BULK_TIMEOUT`](crate::plumbing::DEFAULT_BULK_TIMEOUT), 10 minutes). Such an operation may
    /// scan the whole store, so it is not bound by `backend_timeout`; it also never counts
    /// towards the store breaker, nor waits for it to close. One stopped by this bound (or an
    /// error) after removing some keys is [`Error::Partial`](crate::Error::Partial), which says
    /// how many; running it again goes on. Also the URL option `bulk_timeout_ms`.
    pub fn bulk_timeout(mut self, timeout: Duration) -> Self {
        self.bulk_timeout = Some(timeout);
        self
    }

    /// The store breaker in front of the backend: after a few consecutive transient failures
    /// the engine stops calling it (calls run their function or are served from L1), probes it
    /// in the background and resumes by itself (see [`StoreBreaker`]). On by default
    /// ([`StoreBreaker::default`]); [`no_store_breaker`](Self::no_store_breaker) turns
    /// it off. Also the URL options `breaker_threshold=<n>` (0: off) and
    /// `breaker_cooldown_ms=<n>`.
    pub fn store_breaker(mut self, breaker: StoreBreaker) -> Self {
        self.breaker = Some(breaker);
        self
    }

    /// No store breaker in front of the backend: every call reaches it (each within
    /// [`backend_timeout`](Self::backend_timeout)). Also the URL option `breaker_threshold=0`.
    pub fn no_store_breaker(mut self) -> Self {
        self.breaker = None;
        self
    }

    /// The invalidation bus that keeps in-process copies (a [`LocalTier`]'s values, tag times)
    /// coherent with what other processes do to a shared store (default
    /// [`BusConfig::default`]: on). See [`BusConfig`] for its carriers, latency and
    /// auto-recovery. Also the URL options `bus=off`, `bus_channel=`, `bus_poll_ms=`,
    /// `bus_grace_ms=`.
    pub fn bus(mut self, config: BusConfig) -> Self {
        self.bus = Some(config);
        self
    }

    /// Add `layer` around every operation into the store (see [`layer`](crate::layer)): a
    /// [`Retry`](crate::layer::Retry), [`Spans`](crate::layer::Spans), or one of your own. The
    /// first added is the outermost; all run inside the backend timeout and the breaker. They
    /// wrap the manager, yours too (its `load` and `save` overrides included), and the backend
    /// operations the engine makes beside it (locks, counters, the bus).
    pub fn layer<L: crate::layer::Layer>(mut self, layer: L) -> Self {
        self.layers.push(crate::layer::wrap(layer));
        self
    }

    /// Build. With nothing set, a memory cache with default bounds.
    pub fn build(mut self) -> Cache {
        let tiers = self.tiers();
        let manager = self.make_manager(&tiers);
        let backend_timeout = self
            .backend_timeout
            .unwrap_or(DEFAULT_BACKEND_TIMEOUT)
            .min(manager.backend().own_deadline().unwrap_or(Duration::MAX))
            .max(Duration::from_millis(1));
        let events = Arc::new(crate::stats::Hub::default());
        let breaker = Breaker::new(self.breaker, &manager, backend_timeout, events.clone());
        let reach = match (&tiers, &self.opening) {
            (Tiers::Typed(_), _) => Reach::Process,
            (_, Some(_)) => Reach::Opening,
            (_, None) => Reach::Store,
        };
        let bus = Bus::new(
            manager.clone(),
            tiers.budget().cloned(),
            reach,
            self.bus.unwrap_or_default(),
        );
        if tiers.budget().is_some() {
            bus.listen(); // copies are served only once the bus is heard: start at once
        }
        let stats = Arc::default();
        events.attach(&stats, "");
        Cache {
            inner: Arc::new(CacheInner {
                store: Arc::new(Store::new(manager, backend_timeout, breaker)),
                tiers,
                enabled: AtomicBool::new(true),
                flights: flight::new_map(),
                stats,
                bulk_timeout: self
                    .bulk_timeout
                    .unwrap_or(crate::bulk::DEFAULT_BULK_TIMEOUT)
                    .max(Duration::from_millis(1)),
                opening: self.opening,
                bus,
                events,
            }),
        }
    }

    /// Where the functions keep their values: a plain memory cache (no backend, codec or
    /// manager given) is typed values alone; a local tier puts typed copies over the bytes.
    fn tiers(&self) -> Tiers {
        let plain = self.manager.is_none() && self.codec.is_none() && self.backend.is_none();
        let budget = |max_bytes, max_entries| Arc::new(Budget::new(max_bytes, max_entries));
        match (plain, &self.memory, self.local_tier) {
            (true, m, _) => {
                let m = m.clone().unwrap_or_default();
                Tiers::Typed(budget(m.max_bytes, m.max_entries))
            }
            (false, _, Some(t)) => Tiers::TypedOverBytes(budget(t.max_bytes, t.max_entries)),
            (false, _, None) => Tiers::Bytes,
        }
    }

    /// The manager: the one given, or the default over the backend given, or over a memory
    /// store (a memory cache's shares the typed tiers' budget).
    /// The manager, wrapped in the layers (the last added innermost).
    fn make_manager(&mut self, tiers: &Tiers) -> Arc<dyn CacheManager> {
        let manager = self.bare_manager(tiers);
        self.layers
            .drain(..)
            .rev()
            .fold(manager, |inner, wrap| wrap(inner))
    }

    fn bare_manager(&mut self, tiers: &Tiers) -> Arc<dyn CacheManager> {
        if let Some(m) = self.manager.take() {
            return m;
        }
        let memory = self.memory.take().unwrap_or_default();
        let backend: Arc<dyn Backend> = match (self.backend.take(), tiers) {
            (Some(b), _) => b,
            (None, Tiers::Typed(budget)) => {
                let store = Arc::new(MemoryBackend::sharing(memory, budget.clone()));
                let weighed: Arc<dyn crate::tier::Weighed> = store.clone();
                budget.register_store(Arc::downgrade(&weighed));
                store
            }
            (None, _) => Arc::new(MemoryBackend::new(memory)),
        };
        Arc::new(DefaultManager::new(
            backend,
            self.codec.take().unwrap_or_default(),
        ))
    }
}

impl Cache {
    /// A builder.
    pub fn builder() -> CacheBuilder {
        CacheBuilder::default()
    }

    /// An in-process memory cache with default bounds (256 MiB).
    pub fn memory() -> Self {
        Cache::builder().memory(MemoryConfig::default()).build()
    }

    /// The manager.
    pub fn manager(&self) -> &Arc<dyn CacheManager> {
        self.inner.store.manager()
    }

    /// The backend.
    pub fn backend(&self) -> &dyn Backend {
        self.inner.store.manager().backend()
    }

    /// The codec.
    pub fn codec(&self) -> &Codec {
        self.inner.store.manager().codec()
    }

    /// Whether memoized functions on this cache keep their values typed, in process, with no
    /// serialization: true for [`Cache::memory`] and `mem://` URLs (the typed tier is the whole
    /// store) and for a cache with a [`LocalTier`] in front of its backend. False for a cache on
    /// a byte-level backend alone, [`MemoryBackend`](crate::MemoryBackend) given to
    /// [`CacheBuilder::backend`] included: its entries are bytes that pass through the manager
    /// and the codec (so a custom [`CacheManager`](crate::CacheManager) sees every one).
    pub fn has_typed_tier(&self) -> bool {
        self.inner.tiers.budget().is_some()
    }

    /// Bytes the typed tiers of this cache's functions hold together, with, on a memory cache,
    /// its memory store (values by hand, locks, counters), which shares their budget (0
    /// without a typed tier).
    pub fn typed_tier_bytes(&self) -> u64 {
        self.inner.tiers.budget().map_or(0, |b| b.held())
    }

    pub(crate) fn budget(&self) -> Option<&Arc<Budget>> {
        self.inner.tiers.budget()
    }

    /// Whether `self` and `other` are one cache (clones of one handle, or one URL opened twice:
    /// see [`Cache::from_url`]).
    pub fn same_as(&self, other: &Cache) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// The deadline of every call into the backend: [`CacheBuilder::backend_timeout`], or the
    /// backend's own deadline on each operation when that is shorter
    /// ([`Backend::own_deadline`]: a Redis store's `response_timeout`).
    pub fn backend_timeout(&self) -> Duration {
        self.inner.store.timeout()
    }

    pub(crate) fn memos_use_backend(&self) -> bool {
        self.inner.tiers.memos_use_backend()
    }

    pub(crate) fn bus(&self) -> &Arc<Bus> {
        &self.inner.bus
    }

    /// The store breaker in front of the backend.
    pub(crate) fn breaker(&self) -> &Arc<Breaker> {
        self.inner.store.breaker()
    }

    /// Where its events go.
    pub(crate) fn events(&self) -> &Arc<crate::stats::Hub> {
        &self.inner.events
    }

    /// Report this cache's events to `listener` from now on, replacing any listener set before
    /// (see [`CacheListener`](crate::CacheListener)): the events of every function on it, its own calls and its
    /// store's breaker.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use steadycache_api::{Cache, CacheEvent, CacheListener, EventKind};
    ///
    /// #[derive(Default)]
    /// struct Misses(AtomicU64);
    /// impl CacheListener for Misses {
    ///     fn on_event(&self, e: &CacheEvent<'_>) {
    ///         if e.kind == EventKind::Miss {
    ///             self.0.fetch_add(1, Ordering::Relaxed);
    ///         }
    ///     }
    /// }
    /// let cache = Cache::memory();
    /// let misses = std::sync::Arc::new(Misses::default());
    /// cache.set_listener(misses.clone());
    /// # let p = steadycache_api::Policy::forever();
    /// # let _: u32 = cache.get_or_compute_sync("k", &p, || Ok::<_, String>(1)).unwrap();
    /// # assert_eq!(misses.0.load(Ordering::Relaxed), 1);
    /// ```
    pub fn set_listener<L: crate::CacheListener>(&self, listener: Arc<L>) {
        self.events().set(Some(listener));
    }

    /// Report to no listener any more.
    pub fn clear_listener(&self) {
        self.events().set(None);
    }

    /// The manager behind the backend timeout and the breaker.
    pub(crate) fn store(&self) -> &Arc<Store> {
        &self.inner.store
    }

    /// The store of a URL still being opened (`Cache::from_url_failing_open`).
    pub(crate) fn opening(&self) -> Option<&Arc<Reopening>> {
        self.inner.opening.as_ref()
    }

    fn l2(&self, key: &str) -> L2 {
        L2::new(self.inner.store.clone(), key.to_owned())
    }

    /// A call into the manager within the backend timeout, through the store breaker.
    pub(crate) async fn guarded<T>(&self, op: impl Future<Output = Result<T>>) -> Result<T> {
        self.inner.store.guard(op).await
    }

    /// A bulk removal within the bulk bound, outside the breaker (see
    /// [`CacheBuilder::bulk_timeout`]).
    pub(crate) async fn bulk(&self, op: impl Future<Output = Result<u64>>) -> Result<u64> {
        crate::bulk::run(self.inner.bulk_timeout, op).await
    }

    /// The bound of bulk operations ([`CacheBuilder::bulk_timeout`]).
    pub fn bulk_timeout(&self) -> Duration {
        self.inner.bulk_timeout
    }

    /// Turn this cache off (every call runs its function, nothing is read or written) or on.
    pub fn set_enabled(&self, on: bool) {
        self.inner.enabled.store(on, Ordering::Relaxed);
    }

    /// Whether this cache is on (see also the process-wide [`set_enabled`](crate::set_enabled)).
    #[inline]
    pub fn is_enabled(&self) -> bool {
        self.inner.enabled.load(Ordering::Relaxed)
    }

    /// Counters of the calls made by hand on this cache (memoized functions keep their own).
    pub fn stats(&self) -> StatsSnapshot {
        self.inner.stats.snapshot()
    }

    /// Keys given by hand may hold any text, but `#` marks the engine's internal keys (locks), so
    /// it is stored as `%23`: `get("a#b")` reads what `set("a#b", ..)` wrote, and no by-hand key
    /// can name a lock.
    ///
    /// Read a value stored under `key` (fresh or stale). A corrupt or foreign entry is logged,
    /// removed and read as `None`.
    pub async fn get<V: DeserializeOwned>(&self, key: &str) -> Result<Option<V>> {
        let l2 = self.l2(&by_hand(key));
        let Some(entry) = io::load_entry(Mode::Async, &l2, &self.inner.stats).await? else {
            return Ok(None);
        };
        match io::decode_entry(self.codec(), &l2.key, &entry) {
            Ok(v) => Ok(Some(v)),
            Err(e) => {
                io::drop_corrupt(Mode::Async, &l2, &e, &self.inner.stats).await;
                Ok(None)
            }
        }
    }

    /// Blocking twin of [`get`](Self::get) (on the library's runtime: works inside and outside
    /// tokio).
    pub fn get_sync<V: DeserializeOwned + Send + 'static>(&self, key: &str) -> Result<Option<V>> {
        let (cache, key) = (self.clone(), key.to_owned());
        crate::runtime::block_on(async move { cache.get::<V>(&key).await })?
    }

    pub(crate) fn ctx<'a, V: Serialize + DeserializeOwned + 'static, E>(
        &'a self,
        key: &str,
        plan: &'a Plan,
        shape: Shape<V, E>,
    ) -> Ctx<'a, V, E> {
        let key = by_hand(key);
        Ctx {
            place: Place {
                l1: None,
                counters: (plan.min_calls.is_some() || plan.max_hits.is_some())
                    .then(|| self.l2(&key)),
                l2: Some(self.l2(&key)),
                tags: None,
                announce: None,
                bytes: crate::value::ValueBytes::serde(),
            },
            id: xxh3_128(key.as_bytes()),
            plan,
            stats: &self.inner.stats,
            flights: &self.inner.flights,
            shape,
        }
    }
}

impl From<&Cache> for Cache {
    fn from(c: &Cache) -> Self {
        c.clone()
    }
}
