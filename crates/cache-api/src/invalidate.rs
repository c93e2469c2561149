//! Writing and invalidating by hand on a [`Cache`]: keys, prefixes, glob patterns, tags, the
//! whole cache. Each change is made in the store, then in this process's copies, then announced
//! on the cache's invalidation bus (see [`BusConfig`](crate::BusConfig)), so every other process
//! drops its copies too.

use crate::cache::Cache;
use crate::engine::io::{self, Mode};
use crate::engine::plan::Plan;
use crate::engine::sticks::{key_mark, mark_value, prefix_mark, ALL_MARK, MARK_TTL};
use crate::engine::tags::tag_key;
use crate::envelope::Entry;
use crate::error::Result;
use crate::glob::Glob;
use crate::key::{by_hand, namespace_prefix};
use crate::policy::Policy;
use crate::tier::Event;
use crate::time::unix_millis;
use serde::Serialize;

impl Cache {
    /// Apply `event` to this process's copies and announce it to the others.
    async fn changed(&self, event: Event) -> Result<()> {
        self.bus().apply(&event);
        self.announce(Mode::Async, event).await
    }

    /// Tell the other processes (through the bus) what this one changed, within the backend
    /// timeout and through the breaker; nothing when the bus carries nothing.
    pub(crate) async fn announce(&self, mode: Mode, event: Event) -> Result<()> {
        let bus = self.bus();
        if !bus.carries() {
            return Ok(());
        }
        let (bus, store) = (bus.clone(), self.store().clone());
        crate::mode::finish(mode, async move { store.guard(bus.send(event)).await }).await
    }

    /// Mark an invalidation (see `engine::sticks`) before the removal it covers, so that a
    /// computation already under way does not keep its value after it (also on a plain memory
    /// cache, whose store holds what `get_or_compute` computes). A mark that cannot be written
    /// is logged: the removal goes on.
    pub(crate) async fn mark(&self, mode: Mode, mark: &str) -> bool {
        let (cache, mark) = (self.clone(), mark.to_owned());
        let write = async move {
            let set = cache.backend().set(&mark, mark_value(), Some(MARK_TTL));
            cache.guarded(set).await
        };
        let wrote = crate::mode::finish(mode, write).await;
        if let Err(e) = &wrote {
            tracing::warn!(error = %e, "steadycache: an invalidation could not be marked; a computation under way may keep its value");
        }
        wrote.is_ok()
    }

    /// `op`'s result, after the change it made (`event`) reached the copies and the bus: the
    /// copies are dropped even when the store failed (they may be what it failed to remove).
    async fn then_announce<T>(&self, op: Result<T>, event: Event) -> Result<T> {
        let announced = self.changed(event).await;
        let v = op?;
        announced.map(|()| v)
    }

    /// Store `value` under `key` with the lifetimes of `policy`; the in-process copies of the
    /// key, here and in every process the bus reaches, are dropped. A value over the policy's
    /// `entry_size_limit` is not stored (logged; `Ok`, as for a policy that stores nothing).
    pub async fn set<V: Serialize>(&self, key: &str, value: &V, policy: &Policy) -> Result<()> {
        match self.entry_for(key, value, policy)? {
            Some((key, entry)) => self.save_entry(key, entry).await,
            None => Ok(()),
        }
    }

    /// Blocking twin of [`set`](Self::set) (on the library's runtime: works inside and outside
    /// tokio).
    pub fn set_sync<V: Serialize>(&self, key: &str, value: &V, policy: &Policy) -> Result<()> {
        let Some((key, entry)) = self.entry_for(key, value, policy)? else {
            return Ok(());
        };
        let cache = self.clone();
        crate::runtime::block_on(async move { cache.save_entry(key, entry).await })?
    }

    /// The entry `set` stores for `value` under the by-hand `key`, with its key (`None`: the
    /// policy stores nothing).
    fn entry_for<V: Serialize>(
        &self,
        key: &str,
        value: &V,
        policy: &Policy,
    ) -> Result<Option<(String, Entry)>> {
        let now = unix_millis();
        let Some(at) = Plan::compile(policy).deadlines(now, false, fastrand::f64()) else {
            return Ok(None);
        };
        let key = by_hand(key);
        let meta = io::Meta {
            created_at: now,
            at,
            negative: false,
            took_ms: 0,
        };
        let entry = io::make_entry(self.codec(), &key, value, meta)?;
        if let Some(limit) = policy.entry_size_limit() {
            if entry.payload.len() as u64 > limit {
                tracing::warn!(key = %key, limit, "steadycache: set of a value larger than entry_size_limit; not stored");
                return Ok(None);
            }
        }
        Ok(Some((key.into_owned(), entry)))
    }

    /// Save `entry` under `key`, then drop its copies and announce it.
    async fn save_entry(&self, key: String, entry: Entry) -> Result<()> {
        let saved = self.guarded(self.manager().save(&key, &entry)).await;
        self.then_announce(saved, Event::Key(key)).await
    }

    /// Remove `key`, in the backend and from every function's typed tier (here and in every
    /// process the bus reaches).
    pub async fn invalidate(&self, key: &str) -> Result<bool> {
        let key = by_hand(key);
        self.mark(Mode::Async, &key_mark(&key)).await;
        let removed = self.guarded(self.manager().delete(&key)).await;
        self.then_announce(removed, Event::Key(key.into_owned()))
            .await
    }

    /// Blocking twin of [`invalidate`](Self::invalidate) (on the library's runtime: works
    /// inside and outside tokio).
    pub fn invalidate_sync(&self, key: &str) -> Result<bool> {
        let (cache, key) = (self.clone(), key.to_owned());
        crate::runtime::block_on(async move { cache.invalidate(&key).await })?
    }

    /// Remove every key starting with `prefix`, in the backend and from the typed tiers (a
    /// function whose keys the prefix reaches into loses its whole typed tier: copies only).
    pub async fn invalidate_prefix(&self, prefix: &str) -> Result<u64> {
        let prefix = by_hand(prefix);
        self.mark(Mode::Async, &prefix_mark(&prefix)).await;
        let removed = self.bulk(self.manager().delete_prefix(&prefix)).await;
        self.then_announce(removed, Event::Prefix(prefix.into_owned()))
            .await
    }

    /// Blocking twin of [`invalidate_prefix`](Self::invalidate_prefix).
    pub fn invalidate_prefix_sync(&self, prefix: &str) -> Result<u64> {
        let (cache, prefix) = (self.clone(), prefix.to_owned());
        crate::runtime::block_on(async move { cache.invalidate_prefix(&prefix).await })?
    }

    /// Remove every key of a memoized function's namespace.
    pub async fn clear_namespace(&self, namespace: &str) -> Result<u64> {
        self.invalidate_prefix(&namespace_prefix(namespace)).await
    }

    /// Blocking twin of [`clear_namespace`](Self::clear_namespace).
    pub fn clear_namespace_sync(&self, namespace: &str) -> Result<u64> {
        self.invalidate_prefix_sync(&namespace_prefix(namespace))
    }

    /// Remove every key this cache holds: the backend's (`delete_prefix("")`, tag times
    /// included) and every typed tier's.
    ///
    /// Only what the library wrote: a file cache directory keeps a user's own files and
    /// folders, a Redis without a `key_prefix` keeps every key that is not a stored entry or
    /// one of the library's bookkeeping keys (see
    /// [`Backend::delete_prefix`](crate::Backend::delete_prefix)). A bulk operation, as are
    /// [`invalidate_prefix`](Self::invalidate_prefix) and
    /// [`invalidate_matching`](Self::invalidate_matching): bound by
    /// [`bulk_timeout`](crate::CacheBuilder::bulk_timeout), not the per-call timeout, and
    /// outside the store breaker; one stopped part way is
    /// [`Error::Partial`](crate::Error::Partial) with how many keys it removed.
    pub async fn clear(&self) -> Result<u64> {
        let marked = self.mark(Mode::Async, ALL_MARK).await;
        let removed = self.bulk(self.manager().delete_prefix("")).await;
        self.mark(Mode::Async, ALL_MARK).await; // the clear removed the first one too
                                                // (Its own mark, removed with the entries, is not one of them.)
        let removed = removed.map(|n| n.saturating_sub(u64::from(marked)));
        self.then_announce(removed, Event::All).await
    }

    /// Blocking twin of [`clear`](Self::clear).
    pub fn clear_sync(&self) -> Result<u64> {
        let cache = self.clone();
        crate::runtime::block_on(async move { cache.clear().await })?
    }

    /// Remove every key matching the glob `pattern` (see [`Glob`]: `*`, `?`, `[a-z]`, `\`
    /// escapes; internal keys never match); how many the store removed.
    ///
    /// Memoized functions' keys are `namespace:version:args` (`app.users.profile:v1:user:5`
    /// with `key = "user:{id}"`), keys set by hand are as given. Each store matches in its own
    /// way: Redis `SCAN MATCH` on every master (then `UNLINK`), SQLite `GLOB` over the range
    /// of the pattern's literal prefix, MongoDB a `$regex` on `_id` over that range, files and
    /// S3 by listing the prefix's keys (their namespace) and matching each. In process, a
    /// function some of whose keys may match loses its whole typed tier (copies only). An
    /// invalid pattern is an [`Error::Config`](crate::Error::Config) and removes nothing.
    pub async fn invalidate_matching(&self, pattern: &str) -> Result<u64> {
        let glob = Glob::new(&by_hand(pattern))?;
        self.mark(Mode::Async, &prefix_mark(&glob.literal_prefix()))
            .await;
        let removed = self.bulk(self.manager().delete_matching(&glob)).await;
        let event = Event::Matching(glob.as_str().to_owned());
        self.then_announce(removed, event).await
    }

    /// Blocking twin of [`invalidate_matching`](Self::invalidate_matching).
    pub fn invalidate_matching_sync(&self, pattern: &str) -> Result<u64> {
        let (cache, pattern) = (self.clone(), pattern.to_owned());
        crate::runtime::block_on(async move { cache.invalidate_matching(&pattern).await })?
    }

    /// Invalidate `tag`: every value a function with `#[cached(tags = [...])]` stored with this
    /// tag before now is a miss from now on, in every process (see
    /// [`invalidate_tags`](Self::invalidate_tags) for the cost and the consistency model).
    pub async fn invalidate_tag(&self, tag: &str) -> Result<()> {
        self.invalidate_tags([tag]).await
    }

    /// Invalidate every tag of `tags`.
    ///
    /// **Cost**: one write per tag (its time, under `steadycache#tag:<tag>`), never a scan of
    /// entries: a value is judged when it is read, valid only if its computation started after
    /// each of its tags was last invalidated. Tag times are kept in process while the bus is
    /// heard; an L1 hit checks them with one comparison of an epoch.
    ///
    /// **Consistency**: this process never serves an invalidated value once the call returns.
    /// Another process stops serving it: on a memory cache, not applicable (one process); on
    /// Redis, when the bus message reaches it (about a round trip); on files, SQLite, MongoDB
    /// and S3, within the bus's poll ([`BusConfig::poll`](crate::BusConfig::poll), 100 ms by
    /// default); with the bus down, within [`BusConfig::grace`](crate::BusConfig::grace) (1 s),
    /// after which it reads tag times from the store at every check. The comparison is of wall
    /// clocks (the invalidating process's and the computing one's), so machines' clocks are
    /// assumed in step (NTP); a machine running ahead by `d` may keep a value computed up to `d`
    /// before the invalidation. Tag times have no ttl: a Redis with an `allkeys-*` eviction
    /// policy may evict one, reviving the values of that tag; use `volatile-*` or `noeviction`.
    ///
    /// Two processes invalidating one tag within the same instant may leave the earlier of the
    /// two times in the store (a plain write, not a maximum); the processes that hear the bus
    /// keep the later one, so only a later re-read from the store can judge a value computed
    /// between the two times valid.
    ///
    /// A store that cannot be written is an error (this process still drops its copies).
    pub async fn invalidate_tags<I, S>(&self, tags: I) -> Result<()>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let now = unix_millis();
        let mut result = Ok(());
        for tag in tags {
            let tag = tag.as_ref();
            if !self.bus().is_alone() {
                let key = tag_key(tag);
                let bytes = now.to_string().into_bytes();
                let wrote = self.guarded(self.backend().set(&key, bytes, None)).await;
                if let Err(e) = wrote {
                    result = result.and(Err(e));
                }
            }
            let event = Event::Tag {
                tag: tag.to_owned(),
                at: now,
            };
            if let Err(e) = self.changed(event).await {
                result = result.and(Err(e));
            }
        }
        result
    }

    /// Blocking twin of [`invalidate_tag`](Self::invalidate_tag).
    pub fn invalidate_tag_sync(&self, tag: &str) -> Result<()> {
        self.invalidate_tags_sync([tag])
    }

    /// Blocking twin of [`invalidate_tags`](Self::invalidate_tags).
    pub fn invalidate_tags_sync<I, S>(&self, tags: I) -> Result<()>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let tags: Vec<String> = tags.into_iter().map(|t| t.as_ref().to_owned()).collect();
        let cache = self.clone();
        crate::runtime::block_on(async move { cache.invalidate_tags(&tags).await })?
    }
}
