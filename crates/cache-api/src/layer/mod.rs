//! Store layers: code that runs around every operation a cache makes into its store, added
//! once when the cache is built ([`CacheBuilder::layer`](crate::CacheBuilder::layer)).
//!
//! A cache reaches its store through a stack (outermost first):
//!
//! 1. the **store breaker** ([`StoreBreaker`](crate::StoreBreaker)), which stops calling a store that keeps failing;
//! 2. the **backend timeout**, which bounds each call (a store that does not answer is a
//!    transient error, so the caller fails open);
//! 3. **your layers**, in the order they were added (the first added is the outermost);
//! 4. the **manager** (its codec, its hooks) and its **backend**.
//!
//! The first two are the engine's own (they depend on how the caller waits, see
//! `ARCHITECTURE.md`); a layer of yours sees every operation below them: the manager's `load`,
//! `save` and removals (even when your manager overrides them) and every backend operation the
//! engine makes directly (locks, counters, marks, the bus). So a layer's retries happen within
//! the backend timeout, and the breaker counts one failure per call, after the retries.
//!
//! A layer is one type implementing [`Layer`]: one method around each operation, told which
//! operation and key it is. [`Retry`] is the worked example, and [`Spans`] another; the
//! per-function metrics and spans stay with the function (`metrics`), since a store does not
//! know which function calls it.
//!
//! ```
//! use steadycache_api::layer::{Layer, Op};
//! use steadycache_api::{Cache, MemoryBackend, Result};
//! use std::future::Future;
//! use std::sync::atomic::{AtomicU64, Ordering};
//!
//! /// Counts the operations that failed.
//! #[derive(Debug, Default)]
//! struct CountErrors(AtomicU64);
//!
//! impl Layer for CountErrors {
//!     async fn around<'a, T, F>(
//!         &'a self,
//!         _op: Op,
//!         _key: &'a str,
//!         mut next: impl FnMut() -> F + Send + 'a,
//!     ) -> Result<T>
//!     where
//!         T: Send + 'a,
//!         F: Future<Output = Result<T>> + Send + 'a,
//!     {
//!         let r = next().await;
//!         if r.is_err() {
//!             self.0.fetch_add(1, Ordering::Relaxed);
//!         }
//!         r
//!     }
//! }
//!
//! let cache = Cache::builder()
//!     .backend(MemoryBackend::default())
//!     .layer(CountErrors::default())
//!     .build();
//! # let _ = cache;
//! ```

mod retry;
mod spans;

pub use retry::Retry;
pub use spans::Spans;

use crate::backend::{Backend, BlockingBackend, Capabilities, Subscription, Tracking};
use crate::codec::Codec;
use crate::envelope::Entry;
use crate::error::Result;
use crate::glob::Glob;
use crate::listing::KeyPage;
use crate::manager::{BlockingManager, CacheManager};
use async_trait::async_trait;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// One operation into a cache's store, as a [`Layer`] sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Op {
    /// [`CacheManager::load`]: read and decode an entry.
    Load,
    /// [`CacheManager::save`]: encode and write an entry.
    Save,
    /// [`CacheManager::delete`] or [`Backend::delete`].
    Delete,
    /// [`CacheManager::delete_prefix`] or [`Backend::delete_prefix`].
    DeletePrefix,
    /// [`CacheManager::delete_matching`] or [`Backend::delete_matching`].
    DeleteMatching,
    /// [`Backend::get`] (the engine's own keys: marks, tag times).
    Get,
    /// [`Backend::set`].
    Set,
    /// [`Backend::set_if_absent`].
    SetIfAbsent,
    /// [`Backend::incr`].
    Incr,
    /// [`Backend::acquire_lock`].
    AcquireLock,
    /// [`Backend::release_lock`].
    ReleaseLock,
    /// [`Backend::extend_lock`].
    ExtendLock,
    /// [`Backend::ping`].
    Ping,
    /// [`Backend::admit_rate`].
    AdmitRate,
    /// [`Backend::publish`].
    Publish,
    /// [`Backend::subscribe`].
    Subscribe,
    /// [`Backend::list_keys`].
    ListKeys,
    /// [`Backend::track`].
    Track,
}

impl Op {
    /// A short name, for logs and metrics labels (`"load"`, `"acquire_lock"`).
    pub fn name(self) -> &'static str {
        match self {
            Op::Load => "load",
            Op::Save => "save",
            Op::Delete => "delete",
            Op::DeletePrefix => "delete_prefix",
            Op::DeleteMatching => "delete_matching",
            Op::Get => "get",
            Op::Set => "set",
            Op::SetIfAbsent => "set_if_absent",
            Op::Incr => "incr",
            Op::AcquireLock => "acquire_lock",
            Op::ReleaseLock => "release_lock",
            Op::ExtendLock => "extend_lock",
            Op::Ping => "ping",
            Op::AdmitRate => "admit_rate",
            Op::Publish => "publish",
            Op::Subscribe => "subscribe",
            Op::ListKeys => "list_keys",
            Op::Track => "track",
        }
    }

    /// Whether running the operation twice does what running it once does, so that it may
    /// be retried when its reply was lost. Not so for a counter (`incr` would count twice), a
    /// rate admission (it would count a call twice), a `set_if_absent` or a lock's
    /// `acquire_lock` (the first try may have written, and the retry would then report that
    /// someone else holds it), nor a `publish` (subscribers would hear it twice).
    pub fn is_idempotent(self) -> bool {
        !matches!(
            self,
            Op::Incr | Op::AdmitRate | Op::SetIfAbsent | Op::AcquireLock | Op::Publish
        )
    }
}

/// Code around every operation into a cache's store (see the [module docs](self)). Write
/// `around` as an `async fn` (as in the example there) or as a function returning an `async`
/// block.
pub trait Layer: Send + Sync + fmt::Debug + 'static {
    /// Whether [`around_blocking`](Self::around_blocking) is written. When `false` (the
    /// default), a sync caller of a store with blocking I/O (files, SQLite) reaches it through
    /// the library's runtime instead, so it still goes through [`around`](Self::around): a
    /// layer is never bypassed, it only costs such callers a hand-over.
    const BLOCKING: bool = false;

    /// Run the operation `op` on `key` (the entry's key, a lock's, a channel's; `""` for a
    /// ping): `next()` starts it (through the layers below); call it once, again (a retry),
    /// or not at all (then return an error of yours).
    fn around<'a, T, F>(
        &'a self,
        op: Op,
        key: &'a str,
        next: impl FnMut() -> F + Send + 'a,
    ) -> impl Future<Output = Result<T>> + Send + 'a
    where
        T: Send + 'a,
        F: Future<Output = Result<T>> + Send + 'a;

    /// The same for a sync caller on a store with blocking I/O, on the caller's thread; only
    /// called when [`BLOCKING`](Self::BLOCKING) is `true`. The default runs `next` once.
    fn around_blocking<T>(
        &self,
        op: Op,
        key: &str,
        mut next: impl FnMut() -> Result<T>,
    ) -> Result<T> {
        let _ = (op, key);
        next()
    }
}

/// A manager (and its backend) with a [`Layer`] around every operation. The builder makes it
/// from [`CacheBuilder::layer`](crate::CacheBuilder::layer); make one yourself to layer a
/// store used outside a cache.
pub struct Layered<L> {
    layer: L,
    inner: Arc<dyn CacheManager>,
}

impl<L: Layer> Layered<L> {
    /// `inner` with `layer` around each of its operations.
    pub fn new(layer: L, inner: Arc<dyn CacheManager>) -> Self {
        Layered { layer, inner }
    }

    /// The layer.
    pub fn layer(&self) -> &L {
        &self.layer
    }

    fn store(&self) -> &dyn Backend {
        self.inner.backend()
    }
}

impl<L: Layer> fmt::Debug for Layered<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Layered")
            .field("layer", &self.layer)
            .field("inner", &self.inner)
            .finish()
    }
}

#[async_trait]
impl<L: Layer> CacheManager for Layered<L> {
    fn backend(&self) -> &dyn Backend {
        self
    }
    fn codec(&self) -> &Codec {
        self.inner.codec()
    }
    fn before_save(&self, bytes: Vec<u8>) -> Result<Vec<u8>> {
        self.inner.before_save(bytes)
    }
    fn after_load(&self, bytes: Vec<u8>) -> Result<Vec<u8>> {
        self.inner.after_load(bytes)
    }
    async fn load(&self, key: &str) -> Result<Option<Entry>> {
        let inner = &self.inner;
        self.layer.around(Op::Load, key, || inner.load(key)).await
    }
    async fn save(&self, key: &str, entry: &Entry) -> Result<()> {
        let inner = &self.inner;
        self.layer
            .around(Op::Save, key, || inner.save(key, entry))
            .await
    }
    async fn delete(&self, key: &str) -> Result<bool> {
        let inner = &self.inner;
        self.layer
            .around(Op::Delete, key, || inner.delete(key))
            .await
    }
    async fn delete_prefix(&self, prefix: &str) -> Result<u64> {
        let inner = &self.inner;
        let op = || inner.delete_prefix(prefix);
        self.layer.around(Op::DeletePrefix, prefix, op).await
    }
    async fn delete_matching(&self, pattern: &Glob) -> Result<u64> {
        let inner = &self.inner;
        let op = || inner.delete_matching(pattern);
        self.layer.around(Op::DeleteMatching, "", op).await
    }
    fn blocking(&self) -> Option<&dyn BlockingManager> {
        match L::BLOCKING && self.inner.blocking().is_some() {
            true => Some(self),
            false => None,
        }
    }
}

impl<L: Layer> BlockingManager for Layered<L> {
    fn load_blocking(&self, key: &str) -> Result<Option<Entry>> {
        let inner = self.inner.blocking();
        let op = || match inner {
            Some(b) => b.load_blocking(key),
            None => Err(no_blocking(self.store())),
        };
        self.layer.around_blocking(Op::Load, key, op)
    }
    fn save_blocking(&self, key: &str, entry: &Entry) -> Result<()> {
        let inner = self.inner.blocking();
        let op = || match inner {
            Some(b) => b.save_blocking(key, entry),
            None => Err(no_blocking(self.store())),
        };
        self.layer.around_blocking(Op::Save, key, op)
    }
    fn delete_blocking(&self, key: &str) -> Result<bool> {
        let inner = self.inner.blocking();
        let op = || match inner {
            Some(b) => b.delete_blocking(key),
            None => Err(no_blocking(self.store())),
        };
        self.layer.around_blocking(Op::Delete, key, op)
    }
}

fn no_blocking(b: &dyn Backend) -> crate::error::Error {
    crate::error::Error::unsupported("blocking I/O", b.name().to_owned())
}

#[async_trait]
impl<L: Layer> Backend for Layered<L> {
    fn name(&self) -> &str {
        self.store().name()
    }
    fn capabilities(&self) -> Capabilities {
        self.store().capabilities()
    }
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let s = self.store();
        self.layer.around(Op::Get, key, || s.get(key)).await
    }
    /// Each try writes a copy of `value` (a retry needs the bytes again).
    async fn set(&self, key: &str, value: Vec<u8>, ttl: Option<Duration>) -> Result<()> {
        let s = self.store();
        let op = || s.set(key, value.clone(), ttl);
        self.layer.around(Op::Set, key, op).await
    }
    async fn set_if_absent(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> Result<bool> {
        let s = self.store();
        let op = || s.set_if_absent(key, value.clone(), ttl);
        self.layer.around(Op::SetIfAbsent, key, op).await
    }
    async fn delete(&self, key: &str) -> Result<bool> {
        let s = self.store();
        self.layer.around(Op::Delete, key, || s.delete(key)).await
    }
    async fn delete_prefix(&self, prefix: &str) -> Result<u64> {
        let s = self.store();
        let op = || s.delete_prefix(prefix);
        self.layer.around(Op::DeletePrefix, prefix, op).await
    }
    async fn incr(&self, key: &str, by: i64, ttl: Option<Duration>) -> Result<i64> {
        let s = self.store();
        self.layer
            .around(Op::Incr, key, || s.incr(key, by, ttl))
            .await
    }
    async fn acquire_lock(&self, key: &str, token: &str, ttl: Duration) -> Result<bool> {
        let s = self.store();
        let op = || s.acquire_lock(key, token, ttl);
        self.layer.around(Op::AcquireLock, key, op).await
    }
    async fn release_lock(&self, key: &str, token: &str) -> Result<bool> {
        let s = self.store();
        let op = || s.release_lock(key, token);
        self.layer.around(Op::ReleaseLock, key, op).await
    }
    async fn extend_lock(&self, key: &str, token: &str, ttl: Duration) -> Result<bool> {
        let s = self.store();
        let op = || s.extend_lock(key, token, ttl);
        self.layer.around(Op::ExtendLock, key, op).await
    }
    async fn ping(&self) -> Result<()> {
        let s = self.store();
        self.layer.around(Op::Ping, "", || s.ping()).await
    }
    async fn admit_rate(
        &self,
        key: &str,
        limit: u64,
        period: Duration,
    ) -> Result<Option<Duration>> {
        let s = self.store();
        let op = || s.admit_rate(key, limit, period);
        self.layer.around(Op::AdmitRate, key, op).await
    }
    async fn delete_matching(&self, pattern: &Glob) -> Result<u64> {
        let s = self.store();
        let op = || s.delete_matching(pattern);
        self.layer.around(Op::DeleteMatching, "", op).await
    }
    async fn publish(&self, channel: &str, message: &[u8]) -> Result<()> {
        let s = self.store();
        let op = || s.publish(channel, message);
        self.layer.around(Op::Publish, channel, op).await
    }
    async fn subscribe(&self, channel: &str) -> Result<Subscription> {
        let s = self.store();
        let op = || s.subscribe(channel);
        self.layer.around(Op::Subscribe, channel, op).await
    }
    async fn track(&self, beat: Duration) -> Result<Tracking> {
        let s = self.store();
        let op = || s.track(beat);
        self.layer.around(Op::Track, "", op).await
    }
    async fn list_keys(&self, prefix: &str, cursor: Option<&str>, limit: usize) -> Result<KeyPage> {
        let s = self.store();
        let op = || s.list_keys(prefix, cursor, limit);
        self.layer.around(Op::ListKeys, prefix, op).await
    }
    fn blocking(&self) -> Option<&dyn BlockingBackend> {
        match L::BLOCKING && self.store().blocking().is_some() {
            true => Some(self),
            false => None,
        }
    }
}

impl<L: Layer> BlockingBackend for Layered<L> {
    fn get_blocking(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let inner = self.store().blocking();
        let op = || match inner {
            Some(b) => b.get_blocking(key),
            None => Err(no_blocking(self.store())),
        };
        self.layer.around_blocking(Op::Get, key, op)
    }
    fn set_blocking(&self, key: &str, value: Vec<u8>, ttl: Option<Duration>) -> Result<()> {
        let inner = self.store().blocking();
        let op = || match inner {
            Some(b) => b.set_blocking(key, value.clone(), ttl),
            None => Err(no_blocking(self.store())),
        };
        self.layer.around_blocking(Op::Set, key, op)
    }
    fn delete_blocking(&self, key: &str) -> Result<bool> {
        let inner = self.store().blocking();
        let op = || match inner {
            Some(b) => b.delete_blocking(key),
            None => Err(no_blocking(self.store())),
        };
        self.layer.around_blocking(Op::Delete, key, op)
    }
}

/// How the builder keeps the layers it was given until it has a manager to wrap.
pub(crate) type Wrap = Box<dyn FnOnce(Arc<dyn CacheManager>) -> Arc<dyn CacheManager> + Send>;

/// `layer` as a [`Wrap`].
pub(crate) fn wrap<L: Layer>(layer: L) -> Wrap {
    Box::new(move |inner| Arc::new(Layered::new(layer, inner)))
}
