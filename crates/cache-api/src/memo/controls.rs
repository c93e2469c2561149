//! A memoized function's controls by key, beside its calls: clear, prime, peek and invalidate
//! (what the generated handle's methods call).

use super::Memo;
use crate::engine::io::{self, block_local, Mode};
use crate::engine::sticks::{key_mark, prefix_mark};
use crate::engine::Shape;
use crate::envelope::Freshness;
use crate::error::Result;
use crate::key::{namespace_prefix, ArgsKey};
use crate::tier::budget::Tier;
use crate::tier::Event;
use std::time::Duration;

impl<V> Memo<V>
where
    V: Clone + Send + Sync + 'static,
{
    /// Remove every entry of this function (every version), in process and in the backend;
    /// how many the backend removed (the in-process count on a memory cache).
    pub async fn clear(&self) -> Result<u64> {
        self.clear_in(Mode::Async).await
    }

    /// Blocking twin of [`clear`](Self::clear).
    pub fn clear_sync(&self) -> Result<u64> {
        block_local(self.clear_in(Mode::Sync))
    }

    async fn clear_in(&self, mode: Mode) -> Result<u64> {
        let st = self.state();
        if !st.cache.memos_use_backend() {
            return Ok(st.local.as_ref().map_or(0, |l| l.clear()));
        }
        let prefix = namespace_prefix(&self.namespace);
        st.cache.mark(mode, &prefix_mark(&prefix)).await;
        let removed =
            io::delete_prefix(mode, st.cache.manager(), &prefix, st.cache.bulk_timeout()).await;
        // After the store: a call that read the old entry before could otherwise fill L1 again.
        if let Some(l) = &st.local {
            l.clear();
        }
        st.cache.announce(mode, Event::Prefix(prefix)).await?;
        removed
    }

    /// Store `value` as the result of one call, as if the function had just returned it
    /// (cached's `prime_cache`): with the function's policy, in every tier. Whether it was
    /// stored (not when caching is off, `cache_if` refuses it, or the store failed: logged).
    pub async fn prime_key<E>(&self, key: ArgsKey<'_>, shape: Shape<V, E>, value: &V) -> bool {
        self.prime_in(Mode::Async, key, shape, value).await
    }

    /// Blocking twin of [`prime_key`](Self::prime_key).
    pub fn prime_key_sync<E>(&self, key: ArgsKey<'_>, shape: Shape<V, E>, value: &V) -> bool {
        block_local(self.prime_in(Mode::Sync, key, shape, value))
    }

    async fn prime_in<E>(
        &self,
        mode: Mode,
        key: ArgsKey<'_>,
        shape: Shape<V, E>,
        value: &V,
    ) -> bool {
        let Some(st) = self.active().filter(|st| !self.refuses(st, &key)) else {
            return false;
        };
        let place = self.place(st, &key);
        io::store(
            mode,
            &place,
            value,
            &self.plan,
            &shape,
            Duration::ZERO,
            &self.stats,
        )
        .await
    }

    /// The cached value of one call, fresh or stale, without computing it (`None` when there is
    /// none, it expired, or caching is off). Not counted as a hit or a miss.
    pub async fn get_cached_key(&self, key: ArgsKey<'_>) -> Option<V> {
        self.peek_in(Mode::Async, key).await
    }

    /// Blocking twin of [`get_cached_key`](Self::get_cached_key).
    pub fn get_cached_key_sync(&self, key: ArgsKey<'_>) -> Option<V> {
        block_local(self.peek_in(Mode::Sync, key))
    }

    async fn peek_in(&self, mode: Mode, key: ArgsKey<'_>) -> Option<V> {
        let st = self.active().filter(|st| !self.refuses(st, &key))?;
        let place = self.place(st, &key);
        let found = crate::engine::lookup::lookup(
            mode,
            &place,
            &self.plan,
            crate::engine::lookup::Look::FirstFresh,
            &self.stats,
        )
        .await?;
        matches!(found.freshness, Freshness::Fresh | Freshness::Stale).then_some(found.value)
    }

    /// Remove one call's entry, in process and in the backend.
    pub async fn invalidate_key(&self, key: ArgsKey<'_>) -> Result<bool> {
        self.invalidate_in(Mode::Async, key).await
    }

    /// Blocking twin of [`invalidate_key`](Self::invalidate_key).
    pub fn invalidate_key_sync(&self, key: ArgsKey<'_>) -> Result<bool> {
        block_local(self.invalidate_in(Mode::Sync, key))
    }

    async fn invalidate_in(&self, mode: Mode, key: ArgsKey<'_>) -> Result<bool> {
        let st = self.state();
        let place = self.place(st, &key);
        let removed = match &place.l2 {
            Some(l2) => {
                io::mark(mode, l2, key_mark(&l2.key)).await;
                io::delete(mode, l2).await
            }
            None => Ok(false),
        };
        let local = place.l1.as_ref().is_some_and(|l| l.store.evict(l.hash));
        let Some(l2) = &place.l2 else {
            return Ok(local);
        };
        st.cache.announce(mode, Event::Key(l2.key.clone())).await?;
        removed
    }
}
