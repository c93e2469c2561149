//! The engine's I/O, written once for sync and async callers (see `crate::mode`): every call
//! into the store goes through the call's [`Store`](crate::tier::Store), which wraps the
//! manager in the backend timeout and the breaker.

use super::job::Shape;
use super::plan::Plan;
use crate::codec::Codec;
use crate::envelope::{Entry, Freshness, FLAG_NEGATIVE};
use crate::error::{Error, Result};
use crate::manager::CacheManager;
pub(crate) use crate::mode::{block_local, on_current_thread_runtime, pause, within, Mode};
pub(crate) use crate::stats::backend_error;
use crate::stats::{Counter, Stats};
use crate::tier::{Deadlines, Place, L2};
use crate::time::unix_millis;
use serde::Serialize;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Load the envelope under `l2.key` (not tried again in a call whose read went unanswered,
/// see [`L2`]).
pub(crate) async fn load(mode: Mode, l2: &L2) -> Result<Option<Entry>> {
    if l2.unanswered() {
        return Err(unanswered(l2));
    }
    let span = tracing::trace_span!("steadycache.backend", op = "load");
    let loaded = tracing::Instrument::instrument(
        l2.store.through(
            mode,
            &l2.key,
            (),
            |b, ()| b.load_blocking(&l2.key),
            |m, k, ()| async move { m.load(&k).await },
        ),
        span,
    )
    .await;
    l2.read_ended(&loaded);
    loaded
}

/// Whether L2 holds an entry computed after this call's computation began (`took` ago), or
/// cannot tell (a read that failed: a value is never written over what could not be read).
pub(crate) async fn newer_in_store<V>(
    mode: Mode,
    place: &Place<V>,
    took: Duration,
    stats: &Stats,
) -> bool {
    let Some(l2) = place.l2.as_ref() else {
        return false;
    };
    let began = unix_millis().saturating_sub(u64::try_from(took.as_millis()).unwrap_or(u64::MAX));
    match load_entry(mode, l2, stats).await {
        Ok(Some(e)) if e.created_at >= began => {
            tracing::info!(key = %l2.key, "steadycache: the lease ran out while computing and another process stored a newer value; it is kept");
            true
        }
        Ok(_) => false,
        Err(e) => {
            backend_error(stats, &l2.key, "load", &e);
            true
        }
    }
}

/// Why an operation of a call whose read went unanswered was not tried.
fn unanswered(l2: &L2) -> Error {
    Error::unavailable(
        l2.store.manager().backend().name().to_owned(),
        "not tried: this call's read went unanswered",
    )
}

/// Save `entry` under `l2.key` (not in a call whose read went unanswered, see [`L2`]).
pub(crate) async fn save(mode: Mode, l2: &L2, entry: Entry) -> Result<()> {
    if l2.unanswered() {
        return Err(unanswered(l2));
    }
    let span = tracing::trace_span!("steadycache.backend", op = "save");
    let save = l2.store.through(
        mode,
        &l2.key,
        entry,
        |b, entry| b.save_blocking(&l2.key, &entry),
        |m, k, entry| async move { m.save(&k, &entry).await },
    );
    tracing::Instrument::instrument(save, span).await
}

/// Delete the entry under `l2.key`.
pub(crate) async fn delete(mode: Mode, l2: &L2) -> Result<bool> {
    l2.store
        .through(
            mode,
            &l2.key,
            (),
            |b, ()| b.delete_blocking(&l2.key),
            |m, k, ()| async move { m.delete(&k).await },
        )
        .await
}

/// `op` on `l2`'s manager for the internal key `key` (a counter, a mark), through the store.
pub(crate) async fn on_backend<T, F, Fut>(mode: Mode, l2: &L2, key: String, op: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(Arc<dyn CacheManager>, String) -> Fut,
    Fut: Future<Output = Result<T>> + Send + 'static,
{
    l2.store.call(mode, &key, op).await
}

/// Add `by` to the counter `key` (an internal key) in `l2`'s backend, created with `ttl`.
pub(crate) async fn incr(
    mode: Mode,
    l2: &L2,
    key: String,
    by: i64,
    ttl: Option<Duration>,
) -> Result<i64> {
    on_backend(mode, l2, key, move |m, k| async move {
        m.backend().incr(&k, by, ttl).await
    })
    .await
}

/// Mark an invalidation under `mark` (see `engine::sticks`); a failure is logged.
pub(crate) async fn mark(mode: Mode, l2: &L2, mark: String) {
    let wrote = on_backend(mode, l2, mark, |m, k| async move {
        let at = super::sticks::mark_value();
        m.backend().set(&k, at, Some(super::sticks::MARK_TTL)).await
    });
    if let Err(e) = wrote.await {
        tracing::warn!(key = %l2.key, error = %e, "steadycache: an invalidation could not be marked");
    }
}

/// Delete the internal key `key` (a counter) in `l2`'s backend.
pub(crate) async fn delete_key(mode: Mode, l2: &L2, key: String) -> Result<bool> {
    on_backend(
        mode,
        l2,
        key,
        |m, k| async move { m.backend().delete(&k).await },
    )
    .await
}

/// Delete every entry under `prefix`: a bulk operation (within `bulk_timeout`, outside the
/// breaker; see [`CacheBuilder::bulk_timeout`](crate::CacheBuilder::bulk_timeout)).
pub(crate) async fn delete_prefix(
    mode: Mode,
    manager: &Arc<dyn CacheManager>,
    prefix: &str,
    bulk_timeout: Duration,
) -> Result<u64> {
    let (m, p) = (manager.clone(), prefix.to_owned());
    crate::mode::finish(mode, async move {
        crate::bulk::run(bulk_timeout, m.delete_prefix(&p)).await
    })
    .await
}

/// Log, count and remove (through the manager) an entry that cannot be read.
pub(crate) async fn drop_corrupt(mode: Mode, l2: &L2, err: &Error, stats: &Stats) {
    stats.incr(Counter::Corrupt);
    tracing::warn!(key = %l2.key, error = %err, "steadycache: corrupt entry treated as a miss and removed");
    if l2.key.contains('#') {
        // An internal key (a lock, a marker) is never an entry's: healing never removes one.
        return;
    }
    if let Err(e) = delete(mode, l2).await {
        tracing::warn!(key = %l2.key, error = %e, "steadycache: could not remove a corrupt entry");
    }
}

/// Read the envelope under `l2.key` for this cache's codec: a corrupt or foreign one (another
/// codec's, or one written under another key) is removed and read as absent; a backend error
/// is `Err` (the caller fails open).
pub(crate) async fn load_entry(mode: Mode, l2: &L2, stats: &Stats) -> Result<Option<Entry>> {
    let codec = l2.store.manager().codec().id();
    #[cfg(feature = "metrics")]
    let began = std::time::Instant::now();
    let loaded = load(mode, l2).await;
    #[cfg(feature = "metrics")]
    crate::metrics::backend_call(stats, crate::metrics::StoreOp::Load, began.elapsed());
    let err = match loaded {
        Ok(Some(e)) if e.codec == codec && e.key_hash == Entry::key_hash_of(&l2.key) => {
            return Ok(Some(e))
        }
        Ok(Some(e)) if e.codec == codec => {
            Error::Corrupt("an entry written under another key (copied or misplaced)".into())
        }
        Ok(Some(e)) => Error::Corrupt(format!(
            "entry written by codec {:#x}, this cache reads {codec:#x}",
            e.codec
        )),
        Ok(None) => return Ok(None),
        Err(e @ (Error::Corrupt(_) | Error::Codec { .. })) => e,
        Err(e) => return Err(e),
    };
    Box::pin(drop_corrupt(mode, l2, &err, stats)).await; // rare: kept out of a load's future
    Ok(None)
}

/// What the tiers hold for a call.
#[derive(Clone)]
pub(crate) struct Found<V> {
    pub(crate) value: V,
    pub(crate) freshness: Freshness,
    /// Its deadlines (ms since the epoch): `keep_until` bounds a fail-safe value.
    pub(crate) at: Deadlines,
    /// When it was computed (ms since the epoch).
    pub(crate) created_at: u64,
    /// How long it took to compute, ms.
    pub(crate) took_ms: u32,
}

impl<V> Found<V> {
    /// The value, if fresh.
    pub(crate) fn fresh(self) -> Option<V> {
        (self.freshness == Freshness::Fresh).then_some(self.value)
    }

    /// Whether, held as the old value of a recompute, it may still be served at `now_ms`
    /// (never past what was to be kept).
    pub(crate) fn servable(&self, now_ms: u64) -> bool {
        now_ms < self.at.keep_until
    }
}

/// What is stored with a new value besides its bytes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Meta {
    /// When it was computed (ms since the epoch).
    pub(crate) created_at: u64,
    /// Its deadlines (ms since the epoch).
    pub(crate) at: Deadlines,
    /// A cached `None` or `Err`.
    pub(crate) negative: bool,
    /// How long the computation took, ms.
    pub(crate) took_ms: u32,
}

/// The envelope of a new value to store under `key`: bound to `key` by its hash, and signed
/// when the codec signs.
pub(crate) fn make_entry<V: Serialize + ?Sized>(
    codec: &Codec,
    key: &str,
    value: &V,
    meta: Meta,
) -> Result<Entry> {
    Ok(seal_entry(codec, key, codec.encode(value)?, meta))
}

/// The envelope of an encoded value (`payload`) to store under `key` (see [`make_entry`]).
pub(crate) fn seal_entry(codec: &Codec, key: &str, payload: Vec<u8>, meta: Meta) -> Entry {
    let mut entry = Entry {
        payload,
        created_at: meta.created_at,
        stale_at: meta.at.stale_at,
        expires_at: meta.at.expires_at,
        keep_until: meta.at.keep_until.max(meta.at.expires_at),
        took_ms: meta.took_ms,
        codec: codec.id(),
        flags: if meta.negative { FLAG_NEGATIVE } else { 0 },
        key_hash: Entry::key_hash_of(key),
    };
    codec.seal(key, &mut entry);
    entry
}

/// The value of an entry loaded under `key`: its signature checked (a signed codec), then
/// decoded.
pub(crate) fn decode_entry<V: serde::de::DeserializeOwned>(
    codec: &Codec,
    key: &str,
    entry: &Entry,
) -> Result<V> {
    codec.decode(codec.open(key, entry)?)
}

/// Store a new value in every tier of `place` as `plan` and the function's `shape` say; whether
/// it was stored anywhere (a negative result without `negative_ttl`, a value `cache_if`
/// refuses, a value the codec cannot encode, or a failing backend store nothing; the last two
/// are counted and logged). `took` is how long it took to compute.
pub(crate) async fn store<V, E>(
    mode: Mode,
    place: &Place<V>,
    value: &V,
    plan: &Plan,
    shape: &Shape<V, E>,
    took: Duration,
    stats: &Stats,
) -> bool
where
    V: super::job::Value,
{
    if shape.store_if.is_some_and(|keep| !keep(value)) {
        return false;
    }
    let negative = (shape.is_negative)(value);
    let now = unix_millis();
    let at = match shape.lifetimes_of {
        Some(f) if !negative => Some(plan.deadlines_of(now, fastrand::f64(), f(value))),
        _ => plan.deadlines_with(
            now,
            negative,
            fastrand::f64(),
            shape.ttl_of.map(|f| f(value)),
        ),
    };
    let Some(at) = at else {
        return false;
    };
    #[cfg(feature = "metrics")]
    if !took.is_zero() {
        crate::metrics::computed(stats, took); // (a primed value took nothing)
    }
    let took_ms = u32::try_from(took.as_millis()).unwrap_or(u32::MAX);
    let at = plan.with_early(at, took_ms);
    let meta = Meta {
        created_at: now,
        at,
        negative,
        took_ms,
    };
    let limit = plan.entry_size_limit;
    if place.l2.is_none() && limit.is_some_and(|l| place.bytes.size(value) > l) {
        over_size_limit(stats, "the in-process tier", limit);
        return false;
    }
    store_with(mode, place, value, meta, stats, CopyRule::IfStored, limit).await
}

/// Count a value over the policy's `entry_size_limit`, and log the first of the function.
#[cold]
fn over_size_limit(stats: &Stats, store: &str, limit: Option<u64>) {
    if stats.over_size_limit() {
        tracing::warn!(
            limit = limit.unwrap_or(u64::MAX),
            "steadycache: a value is larger than entry_size_limit, not stored in {store} \
             (counted as too_large; logged once per function)"
        );
    }
}

/// A value kept after its recompute failed (blocking, background or early), stored again with
/// the deadlines of [`Plan::after_failure`], so the function is not called again before the
/// plan's throttle ends; nothing without a throttle, or when nothing changes. Whether it was
/// stored anywhere.
pub(crate) async fn store_throttled<V>(
    mode: Mode,
    place: &Place<V>,
    old: &Found<V>,
    plan: &Plan,
    stats: &Stats,
) -> bool
where
    V: super::job::Value,
{
    let fresh = old.freshness == Freshness::Fresh;
    let Some(at) = plan.after_failure(unix_millis(), old.at, fresh) else {
        return false;
    };
    // Still the old value: when it was computed stays, so `max_age` keeps judging it right.
    // No early refresh of a value kept only because its function fails.
    let meta = Meta {
        created_at: old.created_at,
        at,
        negative: false,
        took_ms: old.took_ms,
    };
    // (A value the store kept: within any size limit.)
    let value = &old.value;
    store_with(mode, place, value, meta, stats, CopyRule::Always, None).await
}

/// How [`store_with`] treats the in-process tier when the store refuses a value.
#[derive(Clone, Copy, PartialEq, Eq)]
enum CopyRule {
    /// A value just computed: kept in process only once the store has it (with a store to
    /// write to). A copy the store refused would be served while the bus vouches for copies,
    /// though another process may store a newer value that nothing announces to this one again.
    IfStored,
    /// A value the store had (fail-safe's old value, kept on): its copy is kept either way.
    Always,
}

async fn store_with<V>(
    mode: Mode,
    place: &Place<V>,
    value: &V,
    meta: Meta,
    stats: &Stats,
    copy: CopyRule,
    limit: Option<u64>,
) -> bool
where
    V: super::job::Value,
{
    let saved = match &place.l2 {
        Some(l2) => Some(
            save_l2(mode, (place, l2), value, meta, stats, limit).await
                && !undone_if_invalidated(mode, l2, meta, stats).await,
        ),
        None => None,
    };
    let keep_copy = copy == CopyRule::Always || saved != Some(false);
    match &place.l1 {
        Some(l1) if keep_copy => {
            let at = meta.at.to_tier(unix_millis());
            let stamp = (meta.created_at, meta.took_ms, place.tag_stamp());
            l1.store.store(l1.hash, value, at, stamp, l1.gen, stats);
            true
        }
        _ => saved == Some(true),
    }
}

/// After a save: when an invalidation covering the key was marked since the computation began
/// (see `engine::sticks`), remove what was saved; whether it was removed.
async fn undone_if_invalidated(mode: Mode, l2: &L2, meta: Meta, stats: &Stats) -> bool {
    let started_at = meta.created_at.saturating_sub(u64::from(meta.took_ms));
    if !super::sticks::invalidated_since(mode, l2, started_at, stats).await {
        return false;
    }
    tracing::debug!(key = %l2.key, "steadycache: invalidated while it was computed; not kept");
    if let Err(e) = delete(mode, l2).await {
        backend_error(stats, &l2.key, "delete", &e);
    }
    true
}

/// Encode and save `value` in L2 (announcing it on the bus when the cache has an L1); whether
/// it was saved. A payload over `limit` (the policy's `entry_size_limit`) is not saved.
async fn save_l2<V>(
    mode: Mode,
    (place, l2): (&Place<V>, &L2),
    value: &V,
    meta: Meta,
    stats: &Stats,
    limit: Option<u64>,
) -> bool
where
    V: super::job::Value,
{
    let codec = l2.store.manager().codec();
    let encoded = place.bytes.encode(codec, value);
    let entry = match encoded.map(|payload| seal_entry(codec, &l2.key, payload, meta)) {
        Ok(e) if limit.is_some_and(|l| e.payload.len() as u64 > l) => {
            over_size_limit(stats, "the store", limit);
            return false;
        }
        Ok(e) => e,
        Err(e) => {
            stats.incr(Counter::Errors);
            tracing::warn!(key = %l2.key, error = %e, "steadycache: value cannot be encoded; not cached");
            return false;
        }
    };
    #[cfg(feature = "metrics")]
    let began = std::time::Instant::now();
    let saved = save(mode, l2, entry).await;
    #[cfg(feature = "metrics")]
    crate::metrics::backend_call(stats, crate::metrics::StoreOp::Save, began.elapsed());
    match saved {
        Ok(()) => {
            if let Some(bus) = &place.announce {
                bus.send_later(crate::tier::Event::Key(l2.key.clone()));
            }
            true
        }
        Err(e) => {
            backend_error(stats, &l2.key, "save", &e);
            false
        }
    }
}
