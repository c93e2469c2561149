//! The storage contract: bytes in, bytes out, async, object-safe.
//!
//! [`Backend`] is deliberately small; conveniences that every backend gets for free live in
//! [`BackendExt`], implemented once for all backends, so a wrapper cannot forget to forward them
//! (the `object_store` pattern).

use crate::envelope::Entry;
use crate::error::{Error, Result};
use crate::glob::Glob;
use crate::listing::KeyPage;
use crate::time::unix_millis;
use async_trait::async_trait;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// What a backend does natively. The engine and the conformance suite read this instead of
/// guessing; an operation a backend lacks returns [`Error::Unsupported`], never a fake.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// `set` honours a ttl (the store expires the value itself or the backend checks on read).
    pub ttl: bool,
    /// `set_if_absent` is atomic.
    pub set_if_absent: bool,
    /// `delete_prefix` is supported.
    pub delete_prefix: bool,
    /// `incr` is atomic and honours its ttl.
    pub incr: bool,
    /// `acquire_lock` / `extend_lock` / `release_lock` are supported.
    pub locks: bool,
    /// Several processes see the same data (files, SQLite, Redis, MongoDB, S3; not memory).
    pub shared: bool,
    /// Values survive a restart of the process.
    pub persistent: bool,
    /// `delete_matching` is supported (natively or by a bounded scan).
    pub delete_matching: bool,
    /// `publish` / `subscribe` are supported (a native message bus, such as Redis pub/sub).
    pub pubsub: bool,
    /// `list_keys` is supported.
    pub list_keys: bool,
    /// `track` is supported: the store tells which keys any client changed (Redis's
    /// server-assisted client-side caching).
    pub tracking: bool,
}

impl Capabilities {
    /// Every capability on.
    pub fn all() -> Self {
        Capabilities {
            ttl: true,
            set_if_absent: true,
            delete_prefix: true,
            incr: true,
            locks: true,
            shared: true,
            persistent: true,
            delete_matching: true,
            pubsub: true,
            list_keys: true,
            tracking: true,
        }
    }

    /// Set `pubsub`.
    pub fn with_pubsub(mut self, pubsub: bool) -> Self {
        self.pubsub = pubsub;
        self
    }

    /// Set `tracking`.
    pub fn with_tracking(mut self, tracking: bool) -> Self {
        self.tracking = tracking;
        self
    }

    /// Set `shared`.
    pub fn with_shared(mut self, shared: bool) -> Self {
        self.shared = shared;
        self
    }

    /// Set `persistent`.
    pub fn with_persistent(mut self, persistent: bool) -> Self {
        self.persistent = persistent;
        self
    }
}

/// A byte store. Keys are readable ASCII strings; values are opaque bytes (the engine stores
/// [`Entry`] envelopes, the conformance suite also stores raw bytes).
///
/// Semantics every implementation follows (and the conformance suite checks):
/// * a value set with a ttl is gone (reads as `None`) once the ttl has passed;
/// * `set_if_absent` writes only when no live value exists and says whether it wrote;
/// * `incr` adds to a signed 64-bit counter, creating it at 0; the ttl is applied when the
///   counter is created (a fixed window, as rate limits want) and left alone afterwards;
/// * a lock is held by one token until released by that token or until its ttl passes;
///   releasing or extending with another token does nothing and returns `false`; extending
///   with the holder's token moves the expiry to `ttl` from now;
/// * `delete_prefix` removes every key starting with the prefix and returns how many;
///   `delete_matching` every key matching a glob pattern, never an internal key (one with `#`);
/// * `publish` reaches every live `subscribe`r of the channel, in any process, in order.
#[async_trait]
pub trait Backend: Send + Sync + fmt::Debug + 'static {
    /// A short name for logs and errors (`"memory"`, `"redis"`).
    fn name(&self) -> &str;
    /// What the backend does natively.
    fn capabilities(&self) -> Capabilities;
    /// The deadline this backend puts on each operation itself (a Redis request's response
    /// timeout), when it can leave it to a caller that bounds the operation: a cache then bounds
    /// each store operation by the shorter of its `backend_timeout` and this, and the backend
    /// skips its own timer while [`plumbing::caller_deadline`](crate::plumbing::caller_deadline)
    /// is no longer than it, so an operation waits on one timer, not two. Everywhere else (a
    /// user's own call, a bulk operation) it keeps its deadline.
    ///
    /// `None` (the default): the cache bounds each operation by `backend_timeout`, and the
    /// backend's own deadlines, if any, run inside it. A wrapper that adds work around each
    /// operation (retries, say) should keep the default: the cache's deadline would then cover
    /// all of it.
    fn own_deadline(&self) -> Option<Duration> {
        None
    }
    /// The value under `key`, if any and not expired.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;
    /// Store `value` under `key`, replacing any, expiring after `ttl` when given.
    async fn set(&self, key: &str, value: Vec<u8>, ttl: Option<Duration>) -> Result<()>;
    /// Store only if no live value exists; `true` if it stored.
    async fn set_if_absent(&self, key: &str, value: Vec<u8>, ttl: Option<Duration>)
        -> Result<bool>;
    /// Remove `key`; `true` if something was removed.
    async fn delete(&self, key: &str) -> Result<bool>;
    /// Remove every key starting with `prefix`; the number removed.
    ///
    /// Only what the library wrote: a store whose keys or files may be shared with other data
    /// (a directory, a Redis without a key prefix) leaves anything it did not write, telling
    /// the two apart by its own format or, for a bytes store, by
    /// [`plumbing::is_library_value`](crate::plumbing::is_library_value). A store the library
    /// owns whole (a table, a collection, a prefix of its own) removes everything under
    /// `prefix`.
    async fn delete_prefix(&self, prefix: &str) -> Result<u64>;
    /// Add `by` to the counter at `key` and return the new value.
    async fn incr(&self, key: &str, by: i64, ttl: Option<Duration>) -> Result<i64>;
    /// Take the lock `key` for `token` for at most `ttl`; `false` if someone else holds it.
    async fn acquire_lock(&self, key: &str, token: &str, ttl: Duration) -> Result<bool>;
    /// Release the lock `key` if `token` holds it; `true` if it was released.
    async fn release_lock(&self, key: &str, token: &str) -> Result<bool>;
    /// Renew the lease of the lock `key` held by `token`: it now expires `ttl` from now.
    /// `false`, changing nothing, when `token` does not hold a live lock there (it expired, was
    /// released, or another token took it over). Atomic where the store allows it (the check
    /// and the renewal are one operation), so a lease that expired is never revived after
    /// another holder took it. The engine's heartbeat calls it every `lock_ttl / 3` while a
    /// holder computes.
    async fn extend_lock(&self, key: &str, token: &str, ttl: Duration) -> Result<bool>;
    /// Check that the store answers.
    async fn ping(&self) -> Result<()>;

    /// Admit one call under a sliding-window rate limit: at most `limit` calls admitted under
    /// `key` in any span of `period`, judged by the store's clock. `Ok(None)`: admitted (and
    /// counted); `Ok(Some(wait))`: refused, a slot frees within `wait`. Atomic on the store.
    /// The default is `Err(Unsupported)`: a rate limiter then counts fixed windows with
    /// [`incr`](Self::incr) (see `RateLimiter`).
    async fn admit_rate(
        &self,
        key: &str,
        limit: u64,
        period: Duration,
    ) -> Result<Option<Duration>> {
        let _ = (key, limit, period);
        Err(Error::unsupported("admit_rate", self.name().to_owned()))
    }

    /// Remove every key matching `pattern` (see [`Glob`]: internal keys, those with `#`, never
    /// match); the number removed; only what the library wrote, as for
    /// [`delete_prefix`](Self::delete_prefix). The default is `Err(Unsupported)`.
    async fn delete_matching(&self, pattern: &Glob) -> Result<u64> {
        let _ = pattern;
        Err(Error::unsupported(
            "delete_matching",
            self.name().to_owned(),
        ))
    }

    /// Send `message` to every subscriber of `channel` (fire and forget: a subscriber that is
    /// not connected misses it). The default is `Err(Unsupported)`: the cache's invalidation
    /// bus then polls a feed kept in the store (see `Cache`'s docs on coherence).
    async fn publish(&self, channel: &str, message: &[u8]) -> Result<()> {
        let _ = (channel, message);
        Err(Error::unsupported("publish", self.name().to_owned()))
    }

    /// Receive the messages published on `channel` from now on, until the connection breaks
    /// (the receiver then ends: the caller subscribes again). The default is
    /// `Err(Unsupported)`.
    async fn subscribe(&self, channel: &str) -> Result<Subscription> {
        let _ = channel;
        Err(Error::unsupported("subscribe", self.name().to_owned()))
    }

    /// Hear which of this backend's keys any client writes or removes from now on (Redis's
    /// server-assisted client-side caching: `CLIENT TRACKING` in broadcast mode), so that a
    /// cache's in-process copies drop what changed in the store, whoever changed it. The
    /// backend confirms every `beat` that it still hears the store ([`Tracked::Beat`]); the
    /// receiver ends when it no longer can (a connection broke, a cluster's masters changed):
    /// the caller tracks again, and must assume it missed changes meanwhile. Keys are the
    /// backend's own (its key prefix taken off; keys outside it are not reported). The
    /// default is `Err(Unsupported)`.
    async fn track(&self, beat: Duration) -> Result<Tracking> {
        let _ = beat;
        Err(Error::unsupported("track", self.name().to_owned()))
    }

    /// One page of the keys that start with `prefix` (internal ones, with `#`, included), at
    /// most about `limit`, from `cursor` (`None`: the start; else the [`KeyPage::next`] of the
    /// page before). For operators' tools, not for the hot path: a listing may read every key
    /// of the store. Keys written or removed while a listing runs may or may not appear, Redis
    /// may give a key twice, and an expired entry may be listed (its `get` is a miss). The
    /// default is `Err(Unsupported)`.
    async fn list_keys(&self, prefix: &str, cursor: Option<&str>, limit: usize) -> Result<KeyPage> {
        let _ = (prefix, cursor, limit);
        Err(Error::unsupported("list_keys", self.name().to_owned()))
    }

    /// Blocking twins of the hot operations, for stores whose I/O is local (files, SQLite). The
    /// sync engine calls them on the caller's thread instead of handing the call to a runtime
    /// (two thread hops cost more than reading a small file). `None`, the default, means not
    /// available.
    fn blocking(&self) -> Option<&dyn BlockingBackend> {
        None
    }
}

/// The messages of one subscription ([`Backend::subscribe`]); `None` from `recv` when the
/// connection broke.
pub type Subscription = tokio::sync::mpsc::Receiver<Vec<u8>>;

/// What a store's tracking reports ([`Backend::track`]); `None` from `recv` when the store can
/// no longer be heard.
pub type Tracking = tokio::sync::mpsc::Receiver<Tracked>;

/// One report of a store's tracking ([`Backend::track`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Tracked {
    /// These keys were written, removed or expired (by any client).
    Keys(Vec<String>),
    /// Every key may have changed (the store was flushed).
    All,
    /// The store still answers: nothing was missed up to now.
    Beat,
}

/// Blocking access to a local store (see [`Backend::blocking`]). Same semantics as the async
/// methods of the same names.
pub trait BlockingBackend: Send + Sync {
    /// See [`Backend::get`].
    fn get_blocking(&self, key: &str) -> Result<Option<Vec<u8>>>;
    /// See [`Backend::set`].
    fn set_blocking(&self, key: &str, value: Vec<u8>, ttl: Option<Duration>) -> Result<()>;
    /// See [`Backend::delete`].
    fn delete_blocking(&self, key: &str) -> Result<bool>;
}

macro_rules! forward_backend {
    ($ty:ty) => {
        #[async_trait]
        impl<B: Backend + ?Sized> Backend for $ty {
            fn name(&self) -> &str {
                (**self).name()
            }
            fn capabilities(&self) -> Capabilities {
                (**self).capabilities()
            }
            fn own_deadline(&self) -> Option<Duration> {
                (**self).own_deadline()
            }
            async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
                (**self).get(key).await
            }
            async fn set(&self, key: &str, value: Vec<u8>, ttl: Option<Duration>) -> Result<()> {
                (**self).set(key, value, ttl).await
            }
            async fn set_if_absent(
                &self,
                key: &str,
                value: Vec<u8>,
                ttl: Option<Duration>,
            ) -> Result<bool> {
                (**self).set_if_absent(key, value, ttl).await
            }
            async fn delete(&self, key: &str) -> Result<bool> {
                (**self).delete(key).await
            }
            async fn delete_prefix(&self, prefix: &str) -> Result<u64> {
                (**self).delete_prefix(prefix).await
            }
            async fn incr(&self, key: &str, by: i64, ttl: Option<Duration>) -> Result<i64> {
                (**self).incr(key, by, ttl).await
            }
            async fn acquire_lock(&self, key: &str, token: &str, ttl: Duration) -> Result<bool> {
                (**self).acquire_lock(key, token, ttl).await
            }
            async fn release_lock(&self, key: &str, token: &str) -> Result<bool> {
                (**self).release_lock(key, token).await
            }
            async fn extend_lock(&self, key: &str, token: &str, ttl: Duration) -> Result<bool> {
                (**self).extend_lock(key, token, ttl).await
            }
            async fn ping(&self) -> Result<()> {
                (**self).ping().await
            }
            async fn admit_rate(
                &self,
                key: &str,
                limit: u64,
                period: Duration,
            ) -> Result<Option<Duration>> {
                (**self).admit_rate(key, limit, period).await
            }
            async fn delete_matching(&self, pattern: &Glob) -> Result<u64> {
                (**self).delete_matching(pattern).await
            }
            async fn publish(&self, channel: &str, message: &[u8]) -> Result<()> {
                (**self).publish(channel, message).await
            }
            async fn subscribe(&self, channel: &str) -> Result<Subscription> {
                (**self).subscribe(channel).await
            }
            async fn track(&self, beat: Duration) -> Result<Tracking> {
                (**self).track(beat).await
            }
            async fn list_keys(
                &self,
                prefix: &str,
                cursor: Option<&str>,
                limit: usize,
            ) -> Result<KeyPage> {
                (**self).list_keys(prefix, cursor, limit).await
            }
            fn blocking(&self) -> Option<&dyn BlockingBackend> {
                (**self).blocking()
            }
        }
    };
}

forward_backend!(Arc<B>);
forward_backend!(Box<B>);

// Compile-time check that `Backend` stays object-safe.
const _: Option<&dyn Backend> = None;

/// Conveniences over any [`Backend`], implemented once for all of them.
#[async_trait]
pub trait BackendExt: Backend {
    /// Read and parse an envelope, as a [`CacheManager`](crate::CacheManager) without hooks
    /// reads it. A value that is not a well-formed envelope is [`Error::Corrupt`]; an envelope
    /// past its [`keep_until`](Entry::keep_until) reads as `None` ([`Entry::unless_gone`]; one
    /// past `expires_at` but kept is read, [`Entry::freshness`] says so).
    async fn get_entry(&self, key: &str) -> Result<Option<Entry>> {
        match self.get(key).await? {
            None => Ok(None),
            Some(bytes) => Ok(Entry::decode_vec(bytes)?.unless_gone(unix_millis())),
        }
    }

    /// Store an envelope with the backend ttl derived from its
    /// [`keep_until`](Entry::keep_until) ([`Entry::store_ttl`]). An entry already gone is not
    /// written.
    async fn set_entry(&self, key: &str, entry: &Entry) -> Result<()> {
        match entry.store_ttl(unix_millis()) {
            Some(ttl) => self.set(key, entry.encode()?, ttl).await,
            None => Ok(()),
        }
    }

    /// Remove every key of a namespace (`"ns:"` prefix).
    async fn clear_namespace(&self, namespace: &str) -> Result<u64> {
        self.delete_prefix(&crate::key::namespace_prefix(namespace))
            .await
    }
}

impl<B: Backend + ?Sized> BackendExt for B {}

/// Check that a ttl is representable in milliseconds and not zero.
pub fn check_ttl(ttl: Option<Duration>) -> Result<()> {
    match ttl {
        Some(d) if d.is_zero() => Err(Error::Config("a ttl must be longer than zero".into())),
        _ => Ok(()),
    }
}
