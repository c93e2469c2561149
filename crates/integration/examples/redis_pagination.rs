//! RedCache's datatypes: a custom `CacheManager` that stores a cached list as a Redis list, so
//! that one page of it is read with `LRANGE` instead of loading (and deserializing) the whole
//! result.
//!
//! `search` stands for an expensive query returning every hit. Its result is memoized through
//! [`ListManager`]: `save` writes the items with `RPUSH` to a Redis list beside a small
//! metadata entry, `load` rebuilds the whole value from them, and `delete` / `delete_prefix`
//! remove both, so invalidating or clearing leaves no orphan list. [`search_page`] reads one page
//! with `LRANGE` when the list is cached, and computes (once, single-flight) when it is not.
//!
//! Run: `cargo run --example redis_pagination --features redis -- [redis://127.0.0.1:6379/0]`
//! (without a URL it starts a temporary `redis-server` on a free port).
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::sync::Arc;
use std::time::Duration;
use steadycache::{
    plumbing::{async_trait, unix_millis},
    Backend, Cache, CacheManager, Codec, Entry, Error, Freshness, Policy, RedisBackend, Result,
};

/// Items per page.
pub const PER_PAGE: usize = 10;

/// Stores a cached JSON array as a Redis list: the entry's metadata (timestamps, flags) under
/// the engine's key, one list element per item under `{key}:items`. The hash tag `{key}` puts
/// both keys in one cluster slot, so the pipeline that writes them is atomic on a cluster too.
/// Both expire together (Redis `PX`). A list without its metadata entry is never read.
#[derive(Debug)]
pub struct ListManager {
    redis: Arc<RedisBackend>,
    codec: Codec,
}

impl ListManager {
    /// Remove every list whose entry key starts with `prefix` (their keys are `{entry key}:items`).
    async fn delete_lists(&self, prefix: &str) -> Result<()> {
        let esc = |text: &str| -> String {
            text.chars()
                .flat_map(|c| {
                    let glob = matches!(c, '*' | '?' | '[' | ']' | '\\');
                    glob.then_some('\\').into_iter().chain(std::iter::once(c))
                })
                .collect()
        };
        // `list_key`: the backend's key prefix, then `{entry key}:items`.
        let pattern = format!("{}{{{}*", esc(&self.redis.redis_key("")), esc(prefix));
        let mut cursor: u64 = 0;
        loop {
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000);
            let (next, keys): (u64, Vec<Vec<u8>>) = self.redis.query(&scan).await?;
            if !keys.is_empty() {
                let mut unlink = redis::cmd("UNLINK");
                for k in &keys {
                    unlink.arg(k.as_slice());
                }
                let _: u64 = self.redis.query(&unlink).await?;
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }

    /// Over `redis`; values go through the JSON codec (a list item is one JSON document).
    pub fn new(redis: RedisBackend) -> Self {
        ListManager {
            redis: Arc::new(redis),
            codec: Codec::json(),
        }
    }

    fn list_key(&self, key: &str) -> String {
        self.redis
            .redis_key(&format!("{{{key}}}:items"))
            .into_owned()
    }

    /// One page of the list cached under `key`: `None` when it is not cached (or expired).
    /// One round trip: `EXISTS` of the metadata entry and `LRANGE` of the page.
    pub async fn page<T: DeserializeOwned>(
        &self,
        key: &str,
        page: usize,
        per_page: usize,
    ) -> Result<Option<Vec<T>>> {
        let start = page.saturating_mul(per_page);
        let stop = start.saturating_add(per_page).saturating_sub(1);
        let mut pipe = redis::pipe();
        pipe.cmd("EXISTS")
            .arg(&*self.redis.redis_key(key))
            .cmd("LRANGE")
            .arg(self.list_key(key))
            .arg(start)
            .arg(stop);
        let (exists, items): (bool, Vec<Vec<u8>>) = self.redis.query_pipeline(&pipe).await?;
        if !exists {
            return Ok(None);
        }
        items
            .iter()
            .map(|i| {
                serde_json::from_slice(i)
                    .map_err(|e| Error::Corrupt(format!("a list item is not the type asked: {e}")))
            })
            .collect::<Result<Vec<T>>>()
            .map(Some)
    }
}

#[async_trait]
impl CacheManager for ListManager {
    fn backend(&self) -> &dyn Backend {
        &*self.redis
    }

    fn codec(&self) -> &Codec {
        &self.codec
    }

    async fn save(&self, key: &str, entry: &Entry) -> Result<()> {
        let ttl_ms = match entry.ttl_ms(unix_millis()) {
            Some(0) => return Ok(()),
            other => other,
        };
        let items: Vec<&RawValue> = serde_json::from_slice(&entry.payload)
            .map_err(|e| Error::Corrupt(format!("ListManager caches JSON arrays only: {e}")))?;
        let mut meta = entry.clone();
        meta.payload = b"[]".to_vec();
        let meta = meta.encode()?;
        let (meta_key, list_key) = (self.redis.redis_key(key).into_owned(), self.list_key(key));
        let mut pipe = redis::pipe();
        pipe.atomic().cmd("DEL").arg(&list_key).ignore();
        if !items.is_empty() {
            let mut rpush = redis::cmd("RPUSH");
            rpush.arg(&list_key);
            for item in &items {
                rpush.arg(item.get());
            }
            pipe.add_command(rpush).ignore();
        }
        match ttl_ms {
            Some(ms) => {
                pipe.cmd("PEXPIRE").arg(&list_key).arg(ms).ignore();
                pipe.cmd("SET")
                    .arg(&meta_key)
                    .arg(meta)
                    .arg("PX")
                    .arg(ms)
                    .ignore();
            }
            None => {
                pipe.cmd("SET").arg(&meta_key).arg(meta).ignore();
            }
        }
        self.redis.query_pipeline::<()>(&pipe).await
    }

    /// The manager owns both of its keys: an invalidation removes the list with the entry.
    async fn delete(&self, key: &str) -> Result<bool> {
        let list = self.redis.delete(&format!("{{{key}}}:items")).await?;
        Ok(self.redis.delete(key).await? || list)
    }

    /// A prefix of entry keys (a function's namespace, or `""` for everything) reaches their
    /// lists too: a list's key is its entry's key in braces, so `{` + prefix covers them.
    ///
    /// The lists are this manager's own format, so it removes them itself (`SCAN MATCH` +
    /// `UNLINK`, on a standalone server): the backend's `delete_prefix` removes only what the
    /// engine writes when the database has no key prefix (a list is not one of its entries).
    async fn delete_prefix(&self, prefix: &str) -> Result<u64> {
        // The lists first: an entry is never left without its list, only the other way round
        // (and a list without its entry is never read). Counted once per entry.
        self.delete_lists(prefix).await?;
        self.redis.delete_prefix(prefix).await
    }

    async fn load(&self, key: &str) -> Result<Option<Entry>> {
        let Some(meta) = self.redis.get(key).await? else {
            return Ok(None);
        };
        let mut entry = Entry::decode(&meta)?;
        if entry.freshness(unix_millis()) == Freshness::Expired {
            return Ok(None);
        }
        let mut lrange = redis::cmd("LRANGE");
        lrange.arg(self.list_key(key)).arg(0).arg(-1);
        let items: Vec<Vec<u8>> = self.redis.query(&lrange).await?;
        let mut payload = Vec::with_capacity(items.iter().map(|i| i.len() + 1).sum::<usize>() + 2);
        payload.push(b'[');
        for (n, item) in items.iter().enumerate() {
            if n > 0 {
                payload.push(b',');
            }
            payload.extend_from_slice(item);
        }
        payload.push(b']');
        entry.payload = payload;
        Ok(Some(entry))
    }
}

/// One search hit.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Hit {
    /// Rank, from 0.
    pub rank: usize,
    /// The title.
    pub title: String,
}

/// A cache whose entries go through [`ListManager`] on `redis`.
pub fn list_cache(redis: RedisBackend) -> (Cache, Arc<ListManager>) {
    let manager = Arc::new(ListManager::new(redis));
    let cache = Cache::builder().manager(manager.clone()).build();
    (cache, manager)
}

/// Stands for the expensive query: every hit for `query`.
pub async fn search(query: &str) -> Vec<Hit> {
    tokio::time::sleep(Duration::from_millis(200)).await;
    (0..35)
        .map(|rank| Hit {
            rank,
            title: format!("{query} result #{rank}"),
        })
        .collect()
}

/// Page `page` of the hits for `query`: `LRANGE` when cached, else the whole query once
/// (concurrent callers wait for it), stored as a list for the next pages.
pub async fn search_page(
    cache: &Cache,
    lists: &ListManager,
    query: &str,
    page: usize,
    runs: &std::sync::atomic::AtomicUsize,
) -> Result<Vec<Hit>> {
    let key = format!("search:{query}");
    if let Some(hits) = lists.page::<Hit>(&key, page, PER_PAGE).await? {
        return Ok(hits);
    }
    let all: Vec<Hit> = cache
        .get_or_compute(
            &key,
            &Policy::expire_after(Duration::from_secs(300)),
            || async {
                runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Ok::<_, Error>(search(query).await)
            },
        )
        .await?;
    Ok(all
        .into_iter()
        .skip(page * PER_PAGE)
        .take(PER_PAGE)
        .collect())
}

#[tokio::main]
async fn main() -> Result<()> {
    let _server;
    let url = match std::env::args().nth(1) {
        Some(url) => url,
        None => {
            let s = steadycache_redis::testing::RedisServer::start();
            let url = s.url();
            _server = s;
            url
        }
    };
    let (cache, lists) = list_cache(RedisBackend::from_url(&url)?);
    let runs = std::sync::atomic::AtomicUsize::new(0);
    for page in 0..4 {
        let hits = search_page(&cache, &lists, "rust", page, &runs).await?;
        let titles: Vec<&str> = hits.iter().map(|h| h.title.as_str()).collect();
        println!(
            "page {page}: {} hits, first {:?}",
            hits.len(),
            titles.first()
        );
    }
    println!(
        "the query ran {} time(s); pages after the first were read with LRANGE",
        runs.load(std::sync::atomic::Ordering::SeqCst)
    );
    Ok(())
}
