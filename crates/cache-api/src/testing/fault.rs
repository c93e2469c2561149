//! Faults as a tool: a layer that wraps any [`Backend`] and injects, per operation, errors,
//! latency, lost writes, a non-atomic `set_if_absent` and a client clock offset, and counts the
//! calls it sees. For this crate's tests and for users testing how their own code behaves when
//! the store misbehaves.
//!
//! ```
//! use steadycache_api::testing::fault::{Faulty, Op};
//! use steadycache_api::{Backend, MemoryBackend};
//! use std::time::Duration;
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let store = Faulty::new(MemoryBackend::default());
//! let faults = store.faults();
//! faults.fail(Op::Get, 2); // the next two reads fail (transient errors)
//! assert!(store.get("k").await.is_err());
//! assert!(store.get("k").await.is_err());
//! assert_eq!(store.get("k").await.unwrap(), None);
//! faults.delay(Op::Set, Duration::from_millis(5)); // every write is 5 ms slower
//! faults.lose_writes(true); // writes succeed and store nothing
//! store.set("k", b"v".to_vec(), None).await.unwrap();
//! assert_eq!(store.get("k").await.unwrap(), None);
//! assert_eq!(faults.calls(Op::Get), 4);
//! # });
//! ```
//!
//! The layer has no blocking path ([`Backend::blocking`] is `None`), so a sync caller reaches
//! the store through the library runtime and sees every fault.

use crate::backend::{Backend, Capabilities};
use crate::envelope::Entry;
use crate::error::{Error, Result};
use async_trait::async_trait;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// A [`Backend`] operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(usize)]
pub enum Op {
    /// [`Backend::get`].
    Get,
    /// [`Backend::set`].
    Set,
    /// [`Backend::set_if_absent`].
    SetIfAbsent,
    /// [`Backend::delete`].
    Delete,
    /// [`Backend::delete_prefix`].
    DeletePrefix,
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
}

const OPS: usize = 10;

impl Op {
    /// Every operation.
    pub const ALL: [Op; OPS] = [
        Op::Get,
        Op::Set,
        Op::SetIfAbsent,
        Op::Delete,
        Op::DeletePrefix,
        Op::Incr,
        Op::AcquireLock,
        Op::ReleaseLock,
        Op::ExtendLock,
        Op::Ping,
    ];
}

#[derive(Clone, Copy, Debug, Default)]
enum Failing {
    #[default]
    No,
    Next(u64),
    Always,
}

#[derive(Debug, Default)]
struct Rules {
    failing: [Failing; OPS],
    delay: [Duration; OPS],
    lose_writes: bool,
    racy_set_if_absent: Option<Duration>,
    clock_offset_ms: i64,
    capabilities: Option<Capabilities>,
}

#[derive(Debug, Default)]
struct State {
    rules: Mutex<Rules>,
    calls: [AtomicU64; OPS],
}

/// The controls of one [`Faulty`] layer; cheap to clone, changes apply to the next calls.
#[derive(Clone, Debug, Default)]
pub struct Faults(Arc<State>);

impl Faults {
    fn rules(&self) -> MutexGuard<'_, Rules> {
        self.0.rules.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next `times` calls of `op` fail with a transient error ([`Error::Unavailable`]), as
    /// a store that is down or timing out does.
    pub fn fail(&self, op: Op, times: u64) {
        self.rules().failing[op as usize] = Failing::Next(times);
    }

    /// Every call of `op` fails (transient) until [`Faults::heal`].
    pub fn fail_always(&self, op: Op) {
        self.rules().failing[op as usize] = Failing::Always;
    }

    /// Every call of every operation fails (transient): the store is down.
    pub fn down(&self) {
        self.rules().failing = [Failing::Always; OPS];
    }

    /// Stop failing any operation.
    pub fn heal(&self) {
        self.rules().failing = [Failing::No; OPS];
    }

    /// Every call of `op` takes `latency` longer (before it reaches the store).
    pub fn delay(&self, op: Op, latency: Duration) {
        self.rules().delay[op as usize] = latency;
    }

    /// Writes (`set`, `set_if_absent`) report success and store nothing, as a store that
    /// loses acknowledged writes (a failover, an asynchronous replica) does.
    pub fn lose_writes(&self, on: bool) {
        self.rules().lose_writes = on;
    }

    /// Make `set_if_absent` a read, a pause of `window` and a write: two callers inside the
    /// window both "win", as on a store without an atomic conditional write. `None` restores
    /// the store's own.
    pub fn racy_set_if_absent(&self, window: Option<Duration>) {
        self.rules().racy_set_if_absent = window;
    }

    /// A client whose wall clock runs `offset_ms` ahead (negative: behind): the entries it
    /// writes carry its times, and the entries it reads are judged by its clock (their
    /// timestamps are shifted by `-offset_ms` on the way in). Applies to the engine's
    /// envelopes (unsigned codecs; a signed entry cannot be rewritten, which is the point of
    /// signing). Expiry judged inside the store (a Redis ttl, a lock's lease) is untouched;
    /// stores that judge it by the client's clock have an offset option of their own.
    pub fn clock_offset(&self, offset_ms: i64) {
        self.rules().clock_offset_ms = offset_ms;
    }

    /// Report these capabilities instead of the store's (e.g. `shared` for several caches
    /// over one in-memory store standing for processes).
    pub fn capabilities(&self, caps: Capabilities) {
        self.rules().capabilities = Some(caps);
    }

    /// How many calls of `op` the layer has seen (failed ones included).
    pub fn calls(&self, op: Op) -> u64 {
        self.0.calls[op as usize].load(Ordering::Relaxed)
    }

    /// How many calls of any operation the layer has seen.
    pub fn total_calls(&self) -> u64 {
        Op::ALL.iter().map(|op| self.calls(*op)).sum()
    }

    /// Count a call of `op`, apply its latency, and fail it if it is to fail.
    async fn enter(&self, op: Op, name: &str) -> Result<()> {
        self.0.calls[op as usize].fetch_add(1, Ordering::Relaxed);
        let (delay, fail) = {
            let mut r = self.rules();
            let fail = match r.failing[op as usize] {
                Failing::No => false,
                Failing::Always => true,
                Failing::Next(n) => {
                    r.failing[op as usize] = if n > 1 {
                        Failing::Next(n - 1)
                    } else {
                        Failing::No
                    };
                    n > 0
                }
            };
            (r.delay[op as usize], fail)
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if fail {
            return Err(Error::unavailable(
                name.to_owned(),
                format!("injected fault in {op:?}"),
            ));
        }
        Ok(())
    }

    fn offset(&self) -> i64 {
        self.rules().clock_offset_ms
    }
}

/// Shift an envelope's timestamps by `by` ms (never past the `u64::MAX` "never" mark); bytes
/// that are not an envelope (or a signed one) pass unchanged.
fn shift(bytes: Vec<u8>, by: i64) -> Vec<u8> {
    if by == 0 {
        return bytes;
    }
    let Ok(mut e) = Entry::decode(&bytes) else {
        return bytes;
    };
    let at = |t: u64| {
        if t == u64::MAX {
            t
        } else if by >= 0 {
            t.saturating_add(by.unsigned_abs()).min(u64::MAX - 1)
        } else {
            t.saturating_sub(by.unsigned_abs())
        }
    };
    e.created_at = at(e.created_at);
    e.stale_at = at(e.stale_at);
    e.expires_at = at(e.expires_at);
    e.keep_until = at(e.keep_until);
    e.encode().unwrap_or(bytes)
}

/// A [`Backend`] wrapped in a fault-injecting layer (see the [module docs](self)).
pub struct Faulty<B> {
    inner: B,
    faults: Faults,
}

impl<B: Backend> Faulty<B> {
    /// Wrap `inner`; no fault until one is set through [`Faulty::faults`].
    pub fn new(inner: B) -> Self {
        Faulty {
            inner,
            faults: Faults::default(),
        }
    }

    /// The controls (shared: keep a clone to change faults after handing the layer over).
    pub fn faults(&self) -> Faults {
        self.faults.clone()
    }

    /// The wrapped store.
    pub fn inner(&self) -> &B {
        &self.inner
    }
}

impl<B: fmt::Debug> fmt::Debug for Faulty<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Faulty")
            .field("inner", &self.inner)
            .finish()
    }
}

#[async_trait]
impl<B: Backend> Backend for Faulty<B> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn capabilities(&self) -> Capabilities {
        self.faults
            .rules()
            .capabilities
            .unwrap_or_else(|| self.inner.capabilities())
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.faults.enter(Op::Get, self.name()).await?;
        let v = self.inner.get(key).await?;
        let by = self.faults.offset();
        Ok(v.map(|b| shift(b, by.saturating_neg())))
    }

    async fn set(&self, key: &str, value: Vec<u8>, ttl: Option<Duration>) -> Result<()> {
        self.faults.enter(Op::Set, self.name()).await?;
        if self.faults.rules().lose_writes {
            return Ok(());
        }
        let value = shift(value, self.faults.offset());
        self.inner.set(key, value, ttl).await
    }

    async fn set_if_absent(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> Result<bool> {
        self.faults.enter(Op::SetIfAbsent, self.name()).await?;
        let (lose, racy) = {
            let r = self.faults.rules();
            (r.lose_writes, r.racy_set_if_absent)
        };
        let value = shift(value, self.faults.offset());
        match racy {
            Some(window) => {
                if self.inner.get(key).await?.is_some() {
                    return Ok(false);
                }
                tokio::time::sleep(window).await;
                if !lose {
                    self.inner.set(key, value, ttl).await?;
                }
                Ok(true)
            }
            None if lose => Ok(self.inner.get(key).await?.is_none()),
            None => self.inner.set_if_absent(key, value, ttl).await,
        }
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        self.faults.enter(Op::Delete, self.name()).await?;
        self.inner.delete(key).await
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64> {
        self.faults.enter(Op::DeletePrefix, self.name()).await?;
        self.inner.delete_prefix(prefix).await
    }

    async fn delete_matching(&self, pattern: &crate::glob::Glob) -> Result<u64> {
        self.faults.enter(Op::DeletePrefix, self.name()).await?;
        self.inner.delete_matching(pattern).await
    }

    async fn list_keys(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<crate::KeyPage> {
        self.faults.enter(Op::Get, self.name()).await?;
        self.inner.list_keys(prefix, cursor, limit).await
    }

    async fn publish(&self, channel: &str, message: &[u8]) -> Result<()> {
        self.faults.enter(Op::Set, self.name()).await?;
        self.inner.publish(channel, message).await
    }

    async fn subscribe(&self, channel: &str) -> Result<crate::backend::Subscription> {
        self.faults.enter(Op::Get, self.name()).await?;
        self.inner.subscribe(channel).await
    }

    async fn track(&self, beat: Duration) -> Result<crate::backend::Tracking> {
        self.faults.enter(Op::Get, self.name()).await?;
        self.inner.track(beat).await
    }

    async fn incr(&self, key: &str, by: i64, ttl: Option<Duration>) -> Result<i64> {
        self.faults.enter(Op::Incr, self.name()).await?;
        self.inner.incr(key, by, ttl).await
    }

    async fn admit_rate(
        &self,
        key: &str,
        limit: u64,
        period: Duration,
    ) -> Result<Option<Duration>> {
        self.faults.enter(Op::Incr, self.name()).await?;
        self.inner.admit_rate(key, limit, period).await
    }

    async fn acquire_lock(&self, key: &str, token: &str, ttl: Duration) -> Result<bool> {
        self.faults.enter(Op::AcquireLock, self.name()).await?;
        self.inner.acquire_lock(key, token, ttl).await
    }

    async fn release_lock(&self, key: &str, token: &str) -> Result<bool> {
        self.faults.enter(Op::ReleaseLock, self.name()).await?;
        self.inner.release_lock(key, token).await
    }

    async fn extend_lock(&self, key: &str, token: &str, ttl: Duration) -> Result<bool> {
        self.faults.enter(Op::ExtendLock, self.name()).await?;
        self.inner.extend_lock(key, token, ttl).await
    }

    async fn ping(&self) -> Result<()> {
        self.faults.enter(Op::Ping, self.name()).await?;
        self.inner.ping().await
    }
}
