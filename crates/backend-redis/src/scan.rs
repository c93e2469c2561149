//! Deleting by pattern: `SCAN MATCH` on the server (every master of a cluster), then `UNLINK`
//! of what the filter keeps. Never `KEYS`.

use crate::backend::escape_glob;
use crate::backend::{on, Conn, RedisBackend};
use crate::error::{convert, NAME};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{cmd, Value};
use std::collections::BTreeSet;
use steadycache_api::plumbing::{is_library_value, BulkProgress, LIBRARY_HEAD_LEN};
use steadycache_api::{Error, KeyPage, ListedKey, Result};

/// Keys per `SCAN` step and per `UNLINK` of a prefix delete.
const SCAN_COUNT: usize = 1000;
/// The most `SCAN` steps one page of a listing takes.
const LIST_STEPS: usize = 64;

impl RedisBackend {
    /// `UNLINK` every key matching the `SCAN MATCH` `pattern` that `keep` also accepts (given
    /// the key as stored), on the server or every master of a cluster; the number removed.
    pub(crate) async fn delete_scanned(
        &self,
        pattern: &str,
        keep: &(dyn Fn(&[u8]) -> bool + Sync),
    ) -> Result<u64> {
        let mut conn = self.conn().await?;
        match conn.clone() {
            Conn::Single(_) => self.scan_unlink(&mut conn, None, pattern, keep).await,
            Conn::Cluster(mut c) => {
                let mut removed = 0;
                for (host, port) in self.masters(&mut c).await? {
                    removed += self
                        .scan_unlink(&mut conn, Some((&host, port)), pattern, keep)
                        .await?;
                }
                Ok(removed)
            }
        }
    }

    /// The masters of the cluster, as `(host, port)`, from `CLUSTER SLOTS`.
    pub(crate) async fn masters(&self, conn: &mut ClusterConnection) -> Result<Vec<(String, u16)>> {
        let reply: Value = cmd("CLUSTER")
            .arg("SLOTS")
            .query_async(conn)
            .await
            .map_err(|e| convert("CLUSTER SLOTS", e))?;
        let bad = || Error::backend(NAME, "unexpected CLUSTER SLOTS reply");
        let Value::Array(ranges) = reply else {
            return Err(bad());
        };
        let mut masters = BTreeSet::new();
        for range in ranges {
            let Value::Array(parts) = range else {
                return Err(bad());
            };
            let Some(Value::Array(node)) = parts.get(2) else {
                return Err(bad());
            };
            let (Some(host), Some(port)) = (node.first(), node.get(1)) else {
                return Err(bad());
            };
            let host: String = redis::from_redis_value(host.clone()).map_err(|_| bad())?;
            let port: u16 = redis::from_redis_value(port.clone()).map_err(|_| bad())?;
            masters.insert((host, port));
        }
        Ok(masters.into_iter().collect())
    }

    /// `SCAN` one node (or the only server) for `pattern` and `UNLINK` what it finds; the
    /// number removed.
    async fn scan_unlink(
        &self,
        conn: &mut Conn,
        node: Option<(&str, u16)>,
        pattern: &str,
        keep: &(dyn Fn(&[u8]) -> bool + Sync),
    ) -> Result<u64> {
        let mut cursor: u64 = 0;
        let mut removed = 0u64;
        loop {
            let (next, keys) = scan_step(conn, node, cursor, pattern, SCAN_COUNT).await?;
            let keys: Vec<Vec<u8>> = keys.into_iter().filter(|k| keep(k)).collect();
            let keys = if self.inner.config.key_prefix.is_empty() {
                ours(conn, keys).await?
            } else {
                keys
            };
            if !keys.is_empty() {
                let mut unlink = cmd("UNLINK");
                for k in &keys {
                    unlink.arg(k.as_slice());
                }
                // On a cluster the client splits a multi-key command by slot.
                let n: u64 = on(conn, &unlink).await.map_err(|e| convert("UNLINK", e))?;
                removed += n;
                BulkProgress::current().removed(n);
            }
            if next == 0 {
                return Ok(removed);
            }
            cursor = next;
        }
    }
}

/// Of `keys`, those the library wrote ([`is_library_value`]): `steadycache#…` keys by name,
/// the others by the start of the string they hold (read with one script per key, sent
/// together on the multiplexed connection). A Redis without a key prefix may hold anything
/// else besides the cache; a clear or an invalidation by prefix or pattern never removes that.
async fn ours(conn: &Conn, keys: Vec<Vec<u8>>) -> Result<Vec<Vec<u8>>> {
    let mut kept = Vec::with_capacity(keys.len());
    let mut heads = tokio::task::JoinSet::new();
    for key in keys {
        let Ok(name) = String::from_utf8(key) else {
            continue; // the library writes UTF-8 keys only
        };
        if is_library_value(&name, None) {
            kept.push(name.into_bytes());
            continue;
        }
        let mut conn = conn.clone();
        heads.spawn(async move {
            let mut head = HEAD.key(name.as_str());
            head.arg(LIBRARY_HEAD_LEN - 1);
            let got: redis::RedisResult<Option<Vec<u8>>> = match &mut conn {
                Conn::Single(c) => head.invoke_async(c).await,
                Conn::Cluster(c) => head.invoke_async(c).await,
            };
            got.map(|h| is_library_value(&name, h.as_deref()).then_some(name))
        });
    }
    while let Some(done) = heads.join_next().await {
        let got = done.map_err(|e| Error::backend(NAME, format!("a key check failed: {e}")))?;
        if let Some(name) = got.map_err(|e| convert("EVALSHA", e))? {
            kept.push(name.into_bytes());
        }
    }
    Ok(kept)
}

/// The first `ARGV[1] + 1` bytes of a string key; nil for a key of another type (a list, a
/// hash: never an entry) or a missing one.
static HEAD: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r"if redis.call('TYPE', KEYS[1])['ok'] == 'string' then
  return redis.call('GETRANGE', KEYS[1], 0, tonumber(ARGV[1]))
end
return false",
    )
});

/// One `SCAN cursor MATCH pattern COUNT count` on the server, or on one node of a cluster.
async fn scan_step(
    conn: &mut Conn,
    node: Option<(&str, u16)>,
    cursor: u64,
    pattern: &str,
    count: usize,
) -> Result<(u64, Vec<Vec<u8>>)> {
    let mut scan = cmd("SCAN");
    scan.arg(cursor)
        .arg("MATCH")
        .arg(pattern)
        .arg("COUNT")
        .arg(count);
    match (&mut *conn, node) {
        (Conn::Cluster(c), Some((host, port))) => {
            let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                host: host.to_owned(),
                port,
            });
            let v = c
                .route_command(scan, route)
                .await
                .map_err(|e| convert("SCAN", e))?;
            redis::from_redis_value(v).map_err(|e| convert("SCAN", e.into()))
        }
        (c, _) => on(c, &scan).await.map_err(|e| convert("SCAN", e)),
    }
}

impl RedisBackend {
    /// `list_keys`: `SCAN MATCH <prefix>*` steps on one node at a time (the server, or each
    /// master of a cluster in turn) until about `limit` keys are found or [`LIST_STEPS`] steps
    /// were taken; the cursor is `<node index>:<SCAN cursor>`, the index into the masters
    /// ordered by address (a failover between two pages may skip or repeat a node's keys).
    /// Sizes are not listed (that would be a command per key).
    pub(crate) async fn list_scanned(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<KeyPage> {
        let bad = || Error::Config(format!("not a Redis listing cursor: {cursor:?}"));
        let (mut node, mut at) = match cursor {
            None => (0usize, 0u64),
            Some(c) => {
                let (n, at) = c.split_once(':').ok_or_else(bad)?;
                (
                    n.parse().map_err(|_| bad())?,
                    at.parse().map_err(|_| bad())?,
                )
            }
        };
        let stored_prefix = self.inner.config.key_prefix.as_bytes();
        let pattern = format!("{}*", escape_glob(&self.redis_key(prefix)));
        let mut conn = self.conn().await?;
        let nodes: Vec<Option<(String, u16)>> = match conn.clone() {
            Conn::Single(_) => vec![None],
            Conn::Cluster(mut c) => self.masters(&mut c).await?.into_iter().map(Some).collect(),
        };
        let limit = limit.max(1);
        let count = limit.clamp(10, SCAN_COUNT);
        let mut keys = Vec::new();
        let mut steps = 0;
        while let Some(target) = nodes.get(node) {
            let target = target.as_ref().map(|(h, p)| (h.as_str(), *p));
            let (next, found) = scan_step(&mut conn, target, at, &pattern, count).await?;
            steps += 1;
            keys.extend(found.into_iter().filter_map(|k| {
                let k = k.strip_prefix(stored_prefix)?;
                String::from_utf8(k.to_vec()).ok().map(ListedKey::new)
            }));
            if next == 0 {
                node += 1;
                at = 0;
            } else {
                at = next;
            }
            // A page is about `limit` keys, or a bounded amount of scanning: a rare prefix in
            // a large keyspace gives short pages (even empty ones) instead of one long call.
            if keys.len() >= limit || steps >= LIST_STEPS {
                break;
            }
        }
        let next = (node < nodes.len()).then(|| format!("{node}:{at}"));
        Ok(KeyPage::new(keys, next))
    }
}
