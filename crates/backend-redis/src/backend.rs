//! [`RedisBackend`]: the [`Backend`] contract on Redis commands.

use crate::config::RedisConfig;
use crate::error::{convert, NAME};
use crate::scripts::{EXTEND, INCR, RATE, RELEASE};
use crate::timed::Timed;
use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{cmd, Cmd, FromRedisValue, Script};
use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use steadycache_api::plumbing::check_ttl;
use steadycache_api::plumbing::redact_url;
use steadycache_api::{Backend, Capabilities, Error, Glob, Result, Subscription};
use tokio::sync::OnceCell;

/// The longest lock ttl, in ms, sent to Redis. Redis refuses an expiry that overflows a signed
/// 64-bit count of ms once added to the current time; half of that range leaves room for any
/// clock.
const MAX_LOCK_PX: u64 = (i64::MAX / 2) as u64;

// One per backend, inside its `Arc`: the variants' sizes (which depend on the TLS feature)
// do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
pub(crate) enum Client {
    Single(redis::Client),
    Cluster(ClusterClient),
}

/// A connection handle; cloning is an `Arc` clone.
#[derive(Clone)]
pub(crate) enum Conn {
    /// Its requests bounded by the response timeout, or by the cache's deadline (see `timed`).
    Single(Timed),
    Cluster(ClusterConnection),
}

pub(crate) struct Inner {
    pub(crate) config: RedisConfig,
    pub(crate) client: Client,
    conn: OnceCell<Conn>,
}

/// A steadycache backend on Redis or a Redis Cluster: every process that points at the same
/// server shares one cache.
///
/// # Commands
/// Each operation is native and atomic on the server:
///
/// | operation | command |
/// |---|---|
/// | `get` | `GET` |
/// | `set` | `SET key value [PX ms]` |
/// | `set_if_absent`, `acquire_lock` | `SET key value NX [PX ms]` |
/// | `release_lock` | a Lua script: `DEL` only if the value is still the caller's token |
/// | `extend_lock` | a Lua script: `PEXPIRE` only if the value is still the caller's token and has an expiry |
/// | `incr` | a Lua script: `INCRBY`, then `PEXPIRE` if this call created the counter |
/// | `admit_rate` | a Lua script: a sliding-window log in a sorted set (`ZREMRANGEBYSCORE`, `ZCARD`, `ZADD`) on the server's clock (`TIME`) |
/// | `delete` | `UNLINK` |
/// | `delete_prefix` | `SCAN MATCH <prefix>* COUNT 1000` + `UNLINK`, on every master of a cluster; never `KEYS` |
/// | `delete_matching` | `SCAN MATCH <pattern> COUNT 1000` + `UNLINK` of the matches (internal keys, with `#`, left alone), on every master |
/// | `publish` / `subscribe` | `PUBLISH` / `SUBSCRIBE` on `key_prefix` + the channel (on a cluster, to the first node: classic pub/sub reaches every node) |
/// | `track` | RESP3 connections of its own with `CLIENT TRACKING ON BCAST PREFIX <key_prefix>`, one per master of a cluster (see [`BusConfig::tracking`](steadycache_api::BusConfig::tracking)) |
/// | `ping` | `PING` |
///
/// `delete_prefix("")` (what [`Cache::clear`](steadycache_api::Cache::clear) calls) removes every key
/// under [`key_prefix`](RedisConfig::key_prefix): the prefix is the cache's own. Without one,
/// the database may hold anything besides the cache, so `delete_prefix` and `delete_matching`
/// remove only what the library wrote ([`is_library_value`](steadycache_api::plumbing::is_library_value):
/// strings that begin like a stored entry, `steadycache#…` keys, and the bookkeeping keys of
/// memoized calls by name and content, read with a script per key). Other keys, and keys of
/// other types, stay. A manager that stores its own format (Redis
/// lists, say) owns its clears: give such a cache a `key_prefix`.
///
/// Values are stored as they are given (the engine's envelope: `redis-cli GET` shows it; with the
/// JSON codec it is a JSON document), with Redis's own expiry, so `redis-cli PTTL` shows the
/// time left.
///
/// # Connections
/// Nothing connects until the first operation; it then connects once (a standalone server
/// through a [`ConnectionManager`], which reconnects by itself after a failure; a cluster
/// through a [`ClusterConnection`], which follows slot moves and failovers) and every clone of
/// the backend shares that connection: operations are multiplexed on it, none waits for
/// another's answer. A call made while Redis is down fails with [`Error::Unavailable`] within the
/// timeouts of [`RedisConfig`], and the engine then fails open. Idempotent operations (`get`,
/// `set`, `ping`) are retried once when the connection was dropped under them (a restarted
/// server, a connection made on a tokio runtime that has since shut down); the others are not,
/// since their first attempt may have been applied.
///
/// # Redis Cluster: where keys go
/// Keys carry no hash tag: a memoized function's entries (`namespace:version:args-hash`) spread
/// over every master by the CRC16 of the whole key. That spreads a hot function's load and
/// memory over the cluster, and nothing needs them together: every operation touches a single
/// key (a value and its lock, `key#lock`, are never used in one command). The price is that
/// clearing a function or a prefix visits every master — which [`Backend::delete_prefix`] does.
/// To pin all keys of one application to one slot, give a `key_prefix` with a hash tag
/// (`{app1}:`); that trades the spread for locality.
#[derive(Clone)]
pub struct RedisBackend {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBackend")
            .field("config", &self.inner.config)
            .field("connected", &self.inner.conn.initialized())
            .finish()
    }
}

impl RedisBackend {
    /// A backend for `config`. Checks the configuration and URL; connects on first use.
    pub fn open(config: RedisConfig) -> Result<Self> {
        config.validate()?;
        let bad_url = |e: redis::RedisError| {
            Error::Config(format!("redis url `{}`: {e}", redact_url(&config.url)))
        };
        let certs = tls_certificates(&config)?;
        let client = if config.cluster {
            let builder = ClusterClient::builder(config.seeds()?)
                .connection_timeout(config.connect_timeout)
                .response_timeout(config.response_timeout)
                .retries(config.reconnect_retries);
            #[cfg(feature = "tls")]
            let builder = match certs {
                Some(certs) => builder.certs(certs),
                None => builder,
            };
            Client::Cluster(builder.build().map_err(bad_url)?)
        } else {
            let client = match certs {
                #[cfg(feature = "tls")]
                Some(certs) => redis::Client::build_with_tls(config.url.as_str(), certs),
                _ => redis::Client::open(config.url.as_str()),
            };
            Client::Single(client.map_err(bad_url)?)
        };
        Ok(RedisBackend {
            inner: Arc::new(Inner {
                config,
                client,
                conn: OnceCell::new(),
            }),
        })
    }

    /// [`RedisConfig::from_url`], then [`open`](RedisBackend::open).
    pub fn from_url(url: &str) -> Result<Self> {
        RedisBackend::open(RedisConfig::from_url(url)?)
    }

    /// The configuration.
    pub fn config(&self) -> &RedisConfig {
        &self.inner.config
    }

    /// The key as stored in Redis: [`key_prefix`](RedisConfig::key_prefix) + `key`.
    pub fn redis_key<'a>(&self, key: &'a str) -> Cow<'a, str> {
        let prefix = &self.inner.config.key_prefix;
        if prefix.is_empty() {
            Cow::Borrowed(key)
        } else {
            Cow::Owned(format!("{prefix}{key}"))
        }
    }

    /// Run `command` on this backend's connection and convert the reply: for users (and
    /// [`CacheManager`](steadycache_api::CacheManager)s) that store Redis datatypes of their own —
    /// lists, hashes — beside the cache's entries. Keys in `command` are used as given (add
    /// [`redis_key`](RedisBackend::redis_key) yourself).
    pub async fn query<T: FromRedisValue>(&self, command: &Cmd) -> Result<T> {
        self.run("query", command, false).await
    }

    /// Run a pipeline (atomic with `redis::pipe().atomic()`), as [`query`](Self::query) does.
    pub async fn query_pipeline<T: FromRedisValue>(&self, pipeline: &redis::Pipeline) -> Result<T> {
        let r = match self.conn().await? {
            Conn::Single(mut c) => pipeline.query_async(&mut c).await,
            Conn::Cluster(mut c) => pipeline.query_async(&mut c).await,
        };
        r.map_err(|e| convert("pipeline", e))
    }

    pub(crate) async fn conn(&self) -> Result<Conn> {
        let inner = &self.inner;
        let conn = inner
            .conn
            .get_or_try_init(|| async {
                // Connected on the library's runtime: the connection's own tasks (its driver,
                // its reconnects and their timers) live there, not on the runtime of whichever
                // call came first, which may end (a test's, a setup `block_on`'s) while the
                // cache lives on; a reconnect there would then panic inside the client.
                let connect = connect(inner.client.clone(), inner.config.clone());
                match steadycache_api::plumbing::library_runtime() {
                    Ok(rt) => match rt.spawn(connect).await {
                        Ok(r) => r,
                        Err(e) => Err(Error::unavailable(NAME, format!("connect: {e}"))),
                    },
                    Err(e) => Err(e),
                }
            })
            .await?;
        Ok(conn.clone())
    }

    /// Run one command; `retry`: once more if the connection dropped under it.
    pub(crate) async fn run<T: FromRedisValue>(
        &self,
        op: &str,
        command: &Cmd,
        retry: bool,
    ) -> Result<T> {
        let mut conn = self.conn().await?;
        match on(&mut conn, command).await {
            Err(e) if retry && (e.is_connection_dropped() || e.is_io_error()) => {
                tracing::debug!(op, error = %e, "redis: connection dropped; retrying once");
                on(&mut conn, command).await.map_err(|e| convert(op, e))
            }
            r => r.map_err(|e| convert(op, e)),
        }
    }

    async fn script<T: FromRedisValue>(
        &self,
        op: &str,
        script: &Script,
        key: &str,
        args: &[&str],
    ) -> Result<T> {
        let mut invocation = script.key(key);
        for a in args {
            invocation.arg(*a);
        }
        let r = match self.conn().await? {
            Conn::Single(mut c) => invocation.invoke_async(&mut c).await,
            Conn::Cluster(mut c) => invocation.invoke_async(&mut c).await,
        };
        r.map_err(|e| convert(op, e))
    }
}

/// The certificates for `rediss://` with a CA file of its own; `None` for plain `redis://` or
/// the system roots. Without the `tls` feature, TLS is a configuration error that says which
/// feature to enable.
#[cfg(feature = "tls")]
pub(crate) fn tls_certificates(config: &RedisConfig) -> Result<Option<redis::TlsCertificates>> {
    if !config.is_tls() {
        if config.tls_ca.is_some() {
            return Err(Error::Config("`tls_ca` needs a rediss:// url".into()));
        }
        return Ok(None);
    }
    // redis uses rustls without a default crypto provider: install ring's, unless the
    // application installed one already (then that one is used).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let Some(path) = &config.tls_ca else {
        return Ok(None);
    };
    let pem = std::fs::read(path).map_err(|e| {
        Error::Config(format!(
            "cannot read the TLS CA file `{}`: {e}",
            path.display()
        ))
    })?;
    Ok(Some(redis::TlsCertificates {
        client_tls: None,
        root_cert: Some(pem),
    }))
}

#[cfg(not(feature = "tls"))]
pub(crate) fn tls_certificates(config: &RedisConfig) -> Result<Option<std::convert::Infallible>> {
    if config.is_tls() || config.tls_ca.is_some() {
        return Err(Error::Config(
            "rediss:// (TLS) needs the `tls` feature of steadycache-redis (steadycache: `redis-tls`)"
                .into(),
        ));
    }
    Ok(None)
}

pub(crate) async fn on<T: FromRedisValue>(conn: &mut Conn, command: &Cmd) -> redis::RedisResult<T> {
    match conn {
        Conn::Single(c) => command.query_async(c).await,
        Conn::Cluster(c) => command.query_async(c).await,
    }
}

/// `text` with the glob characters of `SCAN MATCH` escaped.
pub(crate) fn escape_glob(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 4);
    for ch in text.chars() {
        if matches!(ch, '*' | '?' | '[' | ']' | '\\' | '^' | '-') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

fn px(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// A lock's ttl in ms: above zero and small enough for Redis, else a clear configuration error
/// (instead of the server's "value is not an integer or out of range").
fn lock_px(ttl: Duration) -> Result<u64> {
    check_ttl(Some(ttl))?;
    let ms = px(ttl);
    if ms > MAX_LOCK_PX {
        return Err(Error::Config(format!(
            "a lock ttl of {ttl:?} is too long for Redis (at most {MAX_LOCK_PX} ms)"
        )));
    }
    Ok(ms)
}

/// A key as one command argument: the key prefix, then the key, written straight into the
/// command (no `String` joining them on each call).
pub(crate) struct KeyArg<'a> {
    prefix: &'a str,
    key: &'a str,
}

impl redis::ToRedisArgs for KeyArg<'_> {
    fn write_redis_args<W: ?Sized + redis::RedisWrite>(&self, out: &mut W) {
        use std::io::Write;
        let mut w = out.writer_for_next_arg();
        // Writing into the command's buffer cannot fail.
        let _ = w.write_all(self.prefix.as_bytes());
        let _ = w.write_all(self.key.as_bytes());
    }
}

impl RedisBackend {
    /// `key` under the key prefix, as a command argument (what [`redis_key`](Self::redis_key)
    /// renders).
    pub(crate) fn key_arg<'a>(&'a self, key: &'a str) -> KeyArg<'a> {
        KeyArg {
            prefix: &self.inner.config.key_prefix,
            key,
        }
    }

    /// The command `name` on `key`, its buffers sized for `more_args` further arguments of
    /// `more_bytes` in all: each allocated once (growing them took two reallocations a call).
    fn key_cmd(&self, name: &str, key: &str, more_args: usize, more_bytes: usize) -> Cmd {
        let prefix = &self.inner.config.key_prefix;
        let bytes = name.len() + prefix.len() + key.len() + more_bytes;
        let mut c = Cmd::with_capacity(2 + more_args, bytes);
        c.arg(name).arg(self.key_arg(key));
        c
    }

    fn set_cmd(&self, key: &str, value: &[u8], ttl: Option<Duration>, nx: bool) -> Cmd {
        // The value, `NX`, `PX` and up to 20 digits.
        let mut c = self.key_cmd("SET", key, 4, value.len() + 2 + 2 + 20);
        c.arg(value);
        set_options(&mut c, ttl, nx);
        c
    }
}

fn set_options(c: &mut Cmd, ttl: Option<Duration>, nx: bool) {
    if nx {
        c.arg("NX");
    }
    if let Some(ttl) = ttl {
        c.arg("PX").arg(px(ttl));
    }
}

#[async_trait]
impl Backend for RedisBackend {
    fn name(&self) -> &str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::all()
    }

    /// A single server's `response_timeout`: a cache bounds its operations by it when it is the
    /// shorter deadline, and the connection then skips its own timer (see `timed`). A cluster's
    /// client times its requests itself (`None`).
    fn own_deadline(&self) -> Option<Duration> {
        (!self.inner.config.cluster).then_some(self.inner.config.response_timeout)
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let c = self.key_cmd("GET", key, 0, 0);
        self.run("GET", &c, true).await
    }

    async fn set(&self, key: &str, value: Vec<u8>, ttl: Option<Duration>) -> Result<()> {
        check_ttl(ttl)?;
        let c = self.set_cmd(key, &value, ttl, false);
        self.run("SET", &c, true).await
    }

    async fn set_if_absent(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> Result<bool> {
        check_ttl(ttl)?;
        let c = self.set_cmd(key, &value, ttl, true);
        let reply: Option<String> = self.run("SET NX", &c, false).await?;
        Ok(reply.is_some())
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        let c = self.key_cmd("UNLINK", key, 0, 0);
        let n: u64 = self.run("UNLINK", &c, false).await?;
        Ok(n > 0)
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64> {
        let pattern = format!("{}*", escape_glob(&self.redis_key(prefix)));
        self.delete_scanned(&pattern, &|_| true).await
    }

    async fn delete_matching(&self, pattern: &Glob) -> Result<u64> {
        let prefix = self.inner.config.key_prefix.as_bytes();
        let matched = format!(
            "{}{}",
            escape_glob(&self.inner.config.key_prefix),
            pattern.to_redis()
        );
        // Redis's matcher and ours agree, but internal keys (`#`) are ours to leave alone.
        let keep = |k: &[u8]| {
            k.strip_prefix(prefix)
                .and_then(|k| std::str::from_utf8(k).ok())
                .is_some_and(|k| pattern.matches(k))
        };
        self.delete_scanned(&matched, &keep).await
    }

    async fn list_keys(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<steadycache_api::KeyPage> {
        self.list_scanned(prefix, cursor, limit).await
    }

    async fn publish(&self, channel: &str, message: &[u8]) -> Result<()> {
        let mut c = cmd("PUBLISH");
        c.arg(&*self.redis_key(channel)).arg(message);
        let _: i64 = self.run("PUBLISH", &c, true).await?;
        Ok(())
    }

    async fn subscribe(&self, channel: &str) -> Result<Subscription> {
        self.subscribe_channel(&self.redis_key(channel)).await
    }

    async fn track(&self, beat: Duration) -> Result<steadycache_api::Tracking> {
        self.track_keys(beat).await
    }

    async fn incr(&self, key: &str, by: i64, ttl: Option<Duration>) -> Result<i64> {
        check_ttl(ttl)?;
        let window = ttl.map_or(0, px).to_string();
        self.script(
            "incr",
            &INCR,
            &self.redis_key(key),
            &[&by.to_string(), &window],
        )
        .await
    }

    async fn admit_rate(
        &self,
        key: &str,
        limit: u64,
        period: Duration,
    ) -> Result<Option<Duration>> {
        let period_ms = px(period).max(1);
        let member = format!("{:032x}", fastrand::u128(..));
        let wait: i64 = self
            .script(
                "admit_rate",
                &RATE,
                &self.redis_key(key),
                &[&limit.to_string(), &period_ms.to_string(), &member],
            )
            .await?;
        Ok((wait >= 0).then(|| Duration::from_millis(wait.unsigned_abs().max(1))))
    }

    async fn acquire_lock(&self, key: &str, token: &str, ttl: Duration) -> Result<bool> {
        lock_px(ttl)?;
        let c = self.set_cmd(key, token.as_bytes(), Some(ttl), true);
        let reply: Option<String> = self.run("lock", &c, false).await?;
        Ok(reply.is_some())
    }

    async fn release_lock(&self, key: &str, token: &str) -> Result<bool> {
        let n: i64 = self
            .script("unlock", &RELEASE, &self.redis_key(key), &[token])
            .await?;
        Ok(n == 1)
    }

    async fn extend_lock(&self, key: &str, token: &str, ttl: Duration) -> Result<bool> {
        let ms = lock_px(ttl)?.to_string();
        let n: i64 = self
            .script("extend_lock", &EXTEND, &self.redis_key(key), &[token, &ms])
            .await?;
        Ok(n == 1)
    }

    async fn ping(&self) -> Result<()> {
        let _: String = self.run("PING", &cmd("PING"), true).await?;
        Ok(())
    }
}

/// A connection to `client` with `config`'s deadlines and retries.
async fn connect(client: Client, config: RedisConfig) -> Result<Conn> {
    match client {
        Client::Single(client) => {
            // No response timeout in the client: `Timed` applies it (see `timed`).
            let cfg = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(config.connect_timeout))
                .set_response_timeout(None)
                .set_number_of_retries(config.reconnect_retries as usize)
                .set_min_delay(Duration::from_millis(50))
                .set_max_delay(Duration::from_millis(500));
            ConnectionManager::new_with_config(client, cfg)
                .await
                .map(|c| Conn::Single(Timed::new(c, config.response_timeout)))
        }
        Client::Cluster(client) => client.get_async_connection().await.map(Conn::Cluster),
    }
    .map_err(|e| convert("connect", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commands_key_is_the_prefixed_key() {
        for prefix in ["", "app1:", "{tag}:"] {
            let b = RedisBackend::open(
                RedisConfig::new("redis://127.0.0.1:1/0").with_key_prefix(prefix),
            )
            .unwrap();
            for key in ["", "ns:v1:k", "ünï:#lock"] {
                let mut joined = cmd("GET");
                joined.arg(&*b.redis_key(key));
                let ours = b.key_cmd("GET", key, 0, 0);
                assert_eq!(ours.get_packed_command(), joined.get_packed_command());
                let mut set = cmd("SET");
                set.arg(&*b.redis_key(key))
                    .arg(b"v")
                    .arg("NX")
                    .arg("PX")
                    .arg(1500);
                let ours = b.set_cmd(key, b"v", Some(Duration::from_millis(1500)), true);
                assert_eq!(ours.get_packed_command(), set.get_packed_command());
            }
        }
    }

    #[test]
    fn glob_is_escaped() {
        assert_eq!(escape_glob("ns:a*b?[c]\\"), "ns:a\\*b\\?\\[c\\]\\\\");
        assert_eq!(escape_glob("plain:"), "plain:");
    }

    #[test]
    fn lock_ttls_are_checked() {
        assert_eq!(lock_px(Duration::from_millis(1500)).unwrap(), 1500);
        assert_eq!(lock_px(Duration::from_micros(10)).unwrap(), 1);
        assert!(matches!(lock_px(Duration::ZERO), Err(Error::Config(_))));
        assert!(matches!(lock_px(Duration::MAX), Err(Error::Config(_))));
    }
}
