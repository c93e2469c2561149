//! The overridable seam between the engine and a backend (RedCache's design).
//!
//! The engine calls [`CacheManager::load`] and [`CacheManager::save`] with [`Entry`] envelopes whose
//! payload the manager's [`Codec`] wrote. The default methods encode the envelope, pass the bytes
//! through [`before_save`](CacheManager::before_save) / [`after_load`](CacheManager::after_load)
//! and talk to the backend. Override one hook to compress, encrypt or sign; override `load`/`save`
//! to use a backend's own datatypes.

use crate::backend::Backend;
use crate::codec::Codec;
use crate::envelope::{Entry, Freshness};
use crate::time::unix_millis;
use crate::Result;
use async_trait::async_trait;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Loads and saves envelopes. Object-safe: the engine holds an `Arc<dyn CacheManager>`.
#[async_trait]
pub trait CacheManager: Send + Sync + fmt::Debug + 'static {
    /// The backend behind this manager (used for deletes, locks and counters).
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
    /// [`Error::Corrupt`](crate::Error::Corrupt) when the stored bytes are not a valid envelope.
    async fn load(&self, key: &str) -> Result<Option<Entry>> {
        let Some(raw) = self.backend().get(key).await? else {
            return Ok(None);
        };
        let entry = Entry::decode(&self.after_load(raw)?)?;
        if entry.freshness(unix_millis()) == Freshness::Expired {
            return Ok(None);
        }
        Ok(Some(entry))
    }

    /// Store `entry` under `key`, with the backend ttl taken from its hard expiry.
    async fn save(&self, key: &str, entry: &Entry) -> Result<()> {
        let ttl = match entry.ttl_ms(unix_millis()) {
            Some(0) => return Ok(()),
            Some(ms) => Some(Duration::from_millis(ms)),
            None => None,
        };
        let bytes = self.before_save(entry.encode()?)?;
        self.backend().set(key, bytes, ttl).await
    }

    /// Blocking twin of [`load`](Self::load), used by sync callers when the backend offers
    /// [`Backend::blocking`]; `None` = not available (the engine then goes through its runtime).
    /// The default mirrors the default `load`: **a manager that overrides `load` or `save`
    /// must override this pair too, or return `None` from them.**
    fn load_blocking(&self, key: &str) -> Option<Result<Option<Entry>>> {
        let b = self.backend().blocking()?;
        Some((|| {
            let Some(raw) = b.get_blocking(key)? else {
                return Ok(None);
            };
            let entry = Entry::decode(&self.after_load(raw)?)?;
            if entry.freshness(unix_millis()) == Freshness::Expired {
                return Ok(None);
            }
            Ok(Some(entry))
        })())
    }

    /// Blocking twin of [`save`](Self::save) (see [`load_blocking`](Self::load_blocking)).
    fn save_blocking(&self, key: &str, entry: &Entry) -> Option<Result<()>> {
        let b = self.backend().blocking()?;
        Some((|| {
            let ttl = match entry.ttl_ms(unix_millis()) {
                Some(0) => return Ok(()),
                Some(ms) => Some(Duration::from_millis(ms)),
                None => None,
            };
            let bytes = self.before_save(entry.encode()?)?;
            b.set_blocking(key, bytes, ttl)
        })())
    }
}

// Compile-time check that `CacheManager` stays object-safe.
const _: Option<&dyn CacheManager> = None;

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
}
