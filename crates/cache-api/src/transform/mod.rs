//! Ready manager hooks: byte transforms of every stored entry, on the
//! [`before_save`](crate::CacheManager::before_save) / [`after_load`](crate::CacheManager::after_load)
//! hooks of a wrapped manager.
//!
//! * [`Compression`] (feature `compress`): entries above a size threshold compressed with lz4;
//!   entries below it, and entries written before compression was turned on, read as they are.
//! * [`Encryption`] (feature `encrypt`): entries encrypted and authenticated with
//!   XChaCha20-Poly1305 under a keyring (the first key encrypts, every key decrypts, by the key
//!   id stored in each entry).
//! * [`Transform`]: the trait both implement; one of yours (a tag, another compressor) gets the
//!   same wrapper, [`Transformed`], for free.
//!
//! A [`Transformed`] wraps any manager whose `load`/`save` are the defaults (a
//! [`DefaultManager`](crate::DefaultManager), a manager of yours that only overrides the hooks,
//! another `Transformed`): its hooks run the inner manager's hooks and then its own on save,
//! and the reverse on load. It forwards the removals (`delete`, `delete_prefix`,
//! `delete_matching`) to the inner manager, and offers the blocking fast path of files and SQLite
//! exactly when the inner manager does. A manager that overrides `load`/`save` stores a format
//! of its own (a Redis list, say) that never goes through bytes hooks: transform inside its
//! `load`/`save` instead; wrapping it would read and write around its overrides.
//!
//! ## Order
//! Compress first, encrypt second: ciphertext does not compress, so the other order only costs
//! CPU. [`Transforms`] builds the stack in that order whatever order it is given, which is the
//! way to use both. A signed codec ([`Codec::signed`](crate::Codec::signed)) composes with
//! either: it signs the entry (its key, header and payload) before the envelope reaches the
//! hooks, and is checked after they have undone their work.
//!
//! ## Stored bytes
//! Every transform's output starts with a tag byte that no other layer's output starts with:
//! a plain envelope starts with `S` (0x53, the binary form) or `{` (0x7B, the JSON form);
//! compressed bytes with 0xC0 (stored raw, escaped) or 0xC1 (lz4); encrypted bytes with 0xE1.
//! So a store that holds entries of several ages (written before compression was turned on,
//! below its threshold, before encryption was) is read without guessing.
//!
//! ```
//! # #[cfg(all(feature = "compress", feature = "encrypt"))] {
//! use std::sync::Arc;
//! use steadycache_api::transform::{Compression, Encryption, Transforms};
//! use steadycache_api::{Backend, Cache, Codec, DefaultManager, MemoryBackend};
//!
//! let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::default());
//! let codec = Codec::bincode().signed(b"a signing key of 16+ bytes").unwrap();
//! let keys = Encryption::new([(1, [7u8; 32])]).unwrap(); // from your secret store
//! let manager = Transforms::new()
//!     .encrypt(keys) // the order given does not matter: compressed, then encrypted
//!     .compress(Compression::default())
//!     .over(DefaultManager::new(backend, codec));
//! let cache = Cache::builder().manager(manager).build();
//! # let _ = cache;
//! # }
//! ```

#[cfg(feature = "compress")]
mod compress;
#[cfg(feature = "encrypt")]
mod encrypt;

#[cfg(feature = "compress")]
pub use compress::{Compression, DEFAULT_MAX_DECOMPRESSED, DEFAULT_THRESHOLD};
#[cfg(feature = "encrypt")]
pub use encrypt::{Encryption, KEY_LEN};

use crate::backend::Backend;
use crate::codec::Codec;
use crate::envelope::Entry;
use crate::error::{Error, Result};
use crate::glob::Glob;
use crate::manager::{
    load_blocking_with_hooks, save_blocking_with_hooks, BlockingManager, CacheManager,
};
use async_trait::async_trait;
use std::fmt;
use std::sync::Arc;

/// A reversible transform of the bytes of every stored entry (see the [module docs](self)).
/// An error from [`undo`](Self::undo) makes the entry a logged miss (removed and recomputed),
/// so it must be returned for anything not written by [`apply`](Self::apply), never a wrong
/// value and never a panic.
pub trait Transform: Send + Sync + fmt::Debug + 'static {
    /// The bytes to store for `bytes` (an encoded envelope, or an inner transform's output).
    fn apply(&self, bytes: Vec<u8>) -> Result<Vec<u8>>;
    /// The bytes [`apply`](Self::apply) was given, from the bytes it returned.
    fn undo(&self, bytes: Vec<u8>) -> Result<Vec<u8>>;
}

/// A manager with a [`Transform`] on its hooks (see the [module docs](self)): on save the inner
/// manager's `before_save`, then `transform.apply`; on load `transform.undo`, then the inner
/// manager's `after_load`.
pub struct Transformed<T, M = Arc<dyn CacheManager>> {
    transform: T,
    inner: M,
}

impl<T: Transform, M: CacheManager> Transformed<T, M> {
    /// `inner` with `transform` on its bytes.
    pub fn new(transform: T, inner: M) -> Self {
        Transformed { transform, inner }
    }

    /// The transform.
    pub fn transform(&self) -> &T {
        &self.transform
    }

    /// The wrapped manager.
    pub fn inner(&self) -> &M {
        &self.inner
    }
}

impl<T: fmt::Debug, M: fmt::Debug> fmt::Debug for Transformed<T, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transformed")
            .field("transform", &self.transform)
            .field("inner", &self.inner)
            .finish()
    }
}

/// `load` and `save` are the trait's defaults: they read and write `inner`'s backend through
/// this manager's hooks (which run `inner`'s).
#[async_trait]
impl<T: Transform, M: CacheManager> CacheManager for Transformed<T, M> {
    fn backend(&self) -> &dyn Backend {
        self.inner.backend()
    }
    fn codec(&self) -> &Codec {
        self.inner.codec()
    }
    fn before_save(&self, bytes: Vec<u8>) -> Result<Vec<u8>> {
        self.transform.apply(self.inner.before_save(bytes)?)
    }
    fn after_load(&self, bytes: Vec<u8>) -> Result<Vec<u8>> {
        self.inner.after_load(self.transform.undo(bytes)?)
    }
    async fn delete(&self, key: &str) -> Result<bool> {
        self.inner.delete(key).await
    }
    async fn delete_prefix(&self, prefix: &str) -> Result<u64> {
        self.inner.delete_prefix(prefix).await
    }
    async fn delete_matching(&self, pattern: &Glob) -> Result<u64> {
        self.inner.delete_matching(pattern).await
    }
    /// Offered when the inner manager offers one (so it cannot go around an override of its)
    /// and its backend has blocking I/O.
    fn blocking(&self) -> Option<&dyn BlockingManager> {
        match self.inner.blocking().is_some() && self.inner.backend().blocking().is_some() {
            true => Some(self),
            false => None,
        }
    }
}

impl<T: Transform, M: CacheManager> BlockingManager for Transformed<T, M> {
    fn load_blocking(&self, key: &str) -> Result<Option<Entry>> {
        match self.inner.backend().blocking() {
            Some(b) => load_blocking_with_hooks(self, b, key),
            None => Err(no_blocking(self.inner.backend())),
        }
    }
    fn save_blocking(&self, key: &str, entry: &Entry) -> Result<()> {
        match self.inner.backend().blocking() {
            Some(b) => save_blocking_with_hooks(self, b, key, entry),
            None => Err(no_blocking(self.inner.backend())),
        }
    }
    fn delete_blocking(&self, key: &str) -> Result<bool> {
        match self.inner.blocking() {
            Some(m) => m.delete_blocking(key),
            None => Err(no_blocking(self.inner.backend())),
        }
    }
}

fn no_blocking(b: &dyn Backend) -> Error {
    Error::unsupported("blocking I/O", b.name().to_owned())
}

/// The ready transforms stacked in the one order that makes sense, compression inside
/// encryption, whatever order they are given in (see the [module docs](self)).
#[cfg(any(feature = "compress", feature = "encrypt"))]
#[derive(Debug, Default)]
#[must_use]
pub struct Transforms {
    #[cfg(feature = "compress")]
    compression: Option<Compression>,
    #[cfg(feature = "encrypt")]
    encryption: Option<Encryption>,
}

#[cfg(any(feature = "compress", feature = "encrypt"))]
impl Transforms {
    /// No transform yet.
    pub fn new() -> Self {
        Transforms::default()
    }

    /// Compress entries (applied first on save).
    #[cfg(feature = "compress")]
    pub fn compress(mut self, compression: Compression) -> Self {
        self.compression = Some(compression);
        self
    }

    /// Encrypt entries (applied last on save, after compression).
    #[cfg(feature = "encrypt")]
    pub fn encrypt(mut self, encryption: Encryption) -> Self {
        self.encryption = Some(encryption);
        self
    }

    /// `inner` with the transforms on its hooks, for
    /// [`CacheBuilder::manager`](crate::CacheBuilder::manager).
    pub fn over(self, inner: impl CacheManager) -> Arc<dyn CacheManager> {
        let manager: Arc<dyn CacheManager> = Arc::new(inner);
        #[cfg(feature = "compress")]
        let manager = match self.compression {
            Some(c) => Arc::new(Transformed::new(c, manager)) as Arc<dyn CacheManager>,
            None => manager,
        };
        #[cfg(feature = "encrypt")]
        let manager = match self.encryption {
            Some(e) => Arc::new(Transformed::new(e, manager)) as Arc<dyn CacheManager>,
            None => manager,
        };
        manager
    }
}
