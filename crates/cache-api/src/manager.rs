//! The overridable seam between the engine and a backend (RedCache's design), and the only way
//! the engine touches stored entries: it loads, saves, deletes, clears by prefix and removes
//! corrupt entries through a [`CacheManager`], never through the backend directly. (The
//! backend's locks, which coordinate writers but hold no entry, are the one exception.)
//!
//! Which method to override for what is on [`CacheManager`] itself.

use crate::backend::{Backend, BlockingBackend};
use crate::codec::Codec;
use crate::envelope::Entry;
use crate::error::Result;
use crate::time::unix_millis;
use async_trait::async_trait;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Loads, saves and removes envelopes: the only way the engine touches stored entries.
/// Object-safe: the engine holds an `Arc<dyn CacheManager>`. RedCache's four hooks are here by
/// their names: `load`, `save`, `before_save`, `after_load`.
///
/// # Which method to override for what
/// * **Transform the bytes** (compress, encrypt): override the two hooks,
///   [`before_save`](CacheManager::before_save) and [`after_load`](CacheManager::after_load).
///   The default `load`/`save` call them around the backend. `examples/custom_manager.rs`
///   gzips every entry this way; compression and encryption come ready in
///   [`transform`](crate::transform) (a [`Transform`](crate::transform::Transform) on the
///   hooks of any manager).
/// * **Store in a backend's own datatypes** (a Redis list per value, a hash per object):
///   override [`load`](CacheManager::load) and [`save`](CacheManager::save), and with them
///   [`delete`](CacheManager::delete) and [`delete_prefix`](CacheManager::delete_prefix) when
///   your keys are not exactly the engine's, so that invalidating or clearing leaves no orphan.
///   The Redis pagination example (`crates/integration/examples/redis_pagination.rs`) stores
///   each page list this way.
///
/// # The blocking fast path
/// Sync memoized functions on local stores (files, SQLite) read on the calling thread through
/// [`CacheManager::blocking`]. It is `None` by default, so a manager that overrides `load` or
/// `save` is always called through them (on the library's runtime for sync callers): the fast
/// path can never go around an override. [`DefaultManager`] returns `Some` when its backend has
/// blocking I/O; a hook-only manager of your own may do the same by implementing
/// [`BlockingManager`] with [`load_blocking_with_hooks`] and [`save_blocking_with_hooks`].
#[async_trait]
pub trait CacheManager: Send + Sync + fmt::Debug + 'static {
    /// The backend behind this manager (its locks coordinate writers across processes).
    fn backend(&self) -> &dyn Backend;

    /// The codec that writes and reads payloads.
    fn codec(&self) -> &Codec;

    /// Transform the encoded envelope before it is stored (compress, encrypt...).
    fn before_save(&self, bytes: Vec<u8>) -> Result<Vec<u8>> {
        Ok(bytes)
    }

    /// Undo [`before_save`](Self::before_save) on bytes read from the backend. An error here
    /// makes the entry a logged miss.
    fn after_load(&self, bytes: Vec<u8>) -> Result<Vec<u8>> {
        Ok(bytes)
    }

    /// Read the entry under `key`. `Ok(None)` when absent or past its hard expiry;
    /// [`Error::Corrupt`](crate::error::Error::Corrupt) when the stored bytes are not a valid envelope.
    async fn load(&self, key: &str) -> Result<Option<Entry>> {
        match self.backend().get(key).await? {
            Some(raw) => decode_loaded(self, raw),
            None => Ok(None),
        }
    }

    /// Store `entry` under `key`, with the backend ttl taken from its hard expiry.
    async fn save(&self, key: &str, entry: &Entry) -> Result<()> {
        match encode_for_save(self, entry)? {
            Some((bytes, ttl)) => self.backend().set(key, bytes, ttl).await,
            None => Ok(()),
        }
    }

    /// Remove the entry under `key` (an invalidation, or a corrupt entry being healed); `true`
    /// if something was removed.
    async fn delete(&self, key: &str) -> Result<bool> {
        self.backend().delete(key).await
    }

    /// Remove every entry whose key starts with `prefix` (a function's namespace, or `""` for
    /// the whole cache); how many were removed.
    async fn delete_prefix(&self, prefix: &str) -> Result<u64> {
        self.backend().delete_prefix(prefix).await
    }

    /// Remove every entry whose key matches `pattern` ([`Glob`](crate::Glob)); how many were
    /// removed. Override it with [`delete`](Self::delete) when your keys are not the engine's.
    async fn delete_matching(&self, pattern: &crate::glob::Glob) -> Result<u64> {
        self.backend().delete_matching(pattern).await
    }

    /// Blocking access for sync callers, when this manager's I/O is local; `None` (the
    /// default) sends sync callers through the async methods on the library's runtime. See
    /// the module docs.
    fn blocking(&self) -> Option<&dyn BlockingManager> {
        None
    }
}

// Compile-time check that `CacheManager` stays object-safe.
const _: Option<&dyn CacheManager> = None;

/// What an `async fn` of [`CacheManager`] returns once `async_trait` has boxed it.
type Boxed<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<T>> + Send + 'a>>;

/// A shared manager is a manager: `Arc<M>` and `Arc<dyn CacheManager>` forward every method
/// (hooks and overrides included), so [`CacheBuilder::manager`](crate::CacheBuilder::manager)
/// takes a manager by value or one the caller keeps a handle on. The operations hand back the
/// inner manager's future as it is: written as `async fn`s they boxed it once more, an
/// allocation on every store call the engine makes through its `Arc<dyn CacheManager>`.
#[async_trait]
impl<M: CacheManager + ?Sized> CacheManager for Arc<M> {
    fn backend(&self) -> &dyn Backend {
        (**self).backend()
    }
    fn codec(&self) -> &Codec {
        (**self).codec()
    }
    fn before_save(&self, bytes: Vec<u8>) -> Result<Vec<u8>> {
        (**self).before_save(bytes)
    }
    fn after_load(&self, bytes: Vec<u8>) -> Result<Vec<u8>> {
        (**self).after_load(bytes)
    }
    fn load<'s, 'k, 'f>(&'s self, key: &'k str) -> Boxed<'f, Option<Entry>>
    where
        's: 'f,
        'k: 'f,
        Self: 'f,
    {
        (**self).load(key)
    }
    fn save<'s, 'k, 'e, 'f>(&'s self, key: &'k str, entry: &'e Entry) -> Boxed<'f, ()>
    where
        's: 'f,
        'k: 'f,
        'e: 'f,
        Self: 'f,
    {
        (**self).save(key, entry)
    }
    fn delete<'s, 'k, 'f>(&'s self, key: &'k str) -> Boxed<'f, bool>
    where
        's: 'f,
        'k: 'f,
        Self: 'f,
    {
        (**self).delete(key)
    }
    fn delete_prefix<'s, 'p, 'f>(&'s self, prefix: &'p str) -> Boxed<'f, u64>
    where
        's: 'f,
        'p: 'f,
        Self: 'f,
    {
        (**self).delete_prefix(prefix)
    }
    fn delete_matching<'s, 'p, 'f>(&'s self, pattern: &'p crate::glob::Glob) -> Boxed<'f, u64>
    where
        's: 'f,
        'p: 'f,
        Self: 'f,
    {
        (**self).delete_matching(pattern)
    }
    fn blocking(&self) -> Option<&dyn BlockingManager> {
        (**self).blocking()
    }
}

/// Blocking twins of a manager's [`load`](CacheManager::load), [`save`](CacheManager::save) and
/// [`delete`](CacheManager::delete), with the same semantics.
pub trait BlockingManager: Send + Sync {
    /// See [`CacheManager::load`].
    fn load_blocking(&self, key: &str) -> Result<Option<Entry>>;
    /// See [`CacheManager::save`].
    fn save_blocking(&self, key: &str, entry: &Entry) -> Result<()>;
    /// See [`CacheManager::delete`].
    fn delete_blocking(&self, key: &str) -> Result<bool>;
}

/// Bytes read from the backend into an envelope: the `after_load` hook, then decoding; an
/// envelope past its hard expiry is `None`.
fn decode_loaded<M: CacheManager + ?Sized>(m: &M, raw: Vec<u8>) -> Result<Option<Entry>> {
    Ok(Entry::decode_vec(m.after_load(raw)?)?.unless_gone(unix_millis()))
}

/// An envelope into the bytes and backend ttl to store (the `before_save` hook applied);
/// `None` when it has already expired.
fn encode_for_save<M: CacheManager + ?Sized>(
    m: &M,
    entry: &Entry,
) -> Result<Option<(Vec<u8>, Option<Duration>)>> {
    match entry.store_ttl(unix_millis()) {
        Some(ttl) => Ok(Some((m.before_save(entry.encode()?)?, ttl))),
        None => Ok(None),
    }
}

/// [`CacheManager::load`]'s default, on a blocking backend: for a hook-only manager's
/// [`BlockingManager`].
pub fn load_blocking_with_hooks<M: CacheManager + ?Sized>(
    m: &M,
    backend: &dyn BlockingBackend,
    key: &str,
) -> Result<Option<Entry>> {
    match backend.get_blocking(key)? {
        Some(raw) => decode_loaded(m, raw),
        None => Ok(None),
    }
}

/// [`CacheManager::save`]'s default, on a blocking backend: for a hook-only manager's
/// [`BlockingManager`].
pub fn save_blocking_with_hooks<M: CacheManager + ?Sized>(
    m: &M,
    backend: &dyn BlockingBackend,
    key: &str,
    entry: &Entry,
) -> Result<()> {
    match encode_for_save(m, entry)? {
        Some((bytes, ttl)) => backend.set_blocking(key, bytes, ttl),
        None => Ok(()),
    }
}

/// A backend plus a codec, with the identity hooks.
#[derive(Debug, Clone)]
pub struct DefaultManager {
    backend: Arc<dyn Backend>,
    codec: Codec,
}

impl DefaultManager {
    /// A manager over `backend` writing with `codec`.
    pub fn new(backend: Arc<dyn Backend>, codec: Codec) -> Self {
        DefaultManager { backend, codec }
    }

    /// The backend as an `Arc`.
    pub fn backend_arc(&self) -> &Arc<dyn Backend> {
        &self.backend
    }
}

#[async_trait]
impl CacheManager for DefaultManager {
    fn backend(&self) -> &dyn Backend {
        &*self.backend
    }
    fn codec(&self) -> &Codec {
        &self.codec
    }
    fn blocking(&self) -> Option<&dyn BlockingManager> {
        self.backend
            .blocking()
            .map(|_| self as &dyn BlockingManager)
    }
}

impl BlockingManager for DefaultManager {
    fn load_blocking(&self, key: &str) -> Result<Option<Entry>> {
        match self.backend.blocking() {
            Some(b) => load_blocking_with_hooks(self, b, key),
            None => Err(no_blocking(&*self.backend)),
        }
    }
    fn save_blocking(&self, key: &str, entry: &Entry) -> Result<()> {
        match self.backend.blocking() {
            Some(b) => save_blocking_with_hooks(self, b, key, entry),
            None => Err(no_blocking(&*self.backend)),
        }
    }
    fn delete_blocking(&self, key: &str) -> Result<bool> {
        match self.backend.blocking() {
            Some(b) => b.delete_blocking(key),
            None => Err(no_blocking(&*self.backend)),
        }
    }
}

fn no_blocking(b: &dyn Backend) -> crate::error::Error {
    crate::error::Error::Unsupported {
        operation: "blocking I/O",
        backend: b.name().to_owned().into(),
    }
}
