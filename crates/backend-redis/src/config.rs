//! [`RedisConfig`]: where the server is and how to talk to it.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;
use steadycache_api::plumbing::{parse_count, parse_flag, redact_url};
use steadycache_api::{Error, Result};

/// Configuration of a [`RedisBackend`](crate::RedisBackend).
///
/// ```
/// # use steadycache_redis::RedisConfig;
/// # use std::time::Duration;
/// let cfg = RedisConfig::from_url(
///     "redis://:s3cret@cache.internal:6379/2?key_prefix=app1:&response_timeout_ms=250",
/// )?;
/// assert_eq!(cfg.key_prefix, "app1:");
/// assert_eq!(cfg.response_timeout, Duration::from_millis(250));
/// assert!(!format!("{cfg:?}").contains("s3cret"), "the password never shows");
/// # Ok::<(), steadycache_api::Error>(())
/// ```
///
/// # Defaults, and why
/// * `connect_timeout` 1 s and `response_timeout` 500 ms: a cache that waits longer than the
///   function it saves is worse than none. When Redis does not answer in time, the call fails
///   open (the function runs) and the error is counted.
/// * `reconnect_retries` 2: a standalone connection reconnects by itself in the background; a
///   call made while Redis is down fails after at most two quick attempts rather than waiting
///   through a long backoff.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisConfig {
    /// The server (or, with `cluster`, a seed node): `redis://[[user]:password@]host:port/db`,
    /// or `rediss://` for TLS (which needs a TLS feature of the `redis` crate). Never printed:
    /// `Debug` shows it with the password masked.
    pub url: String,
    /// More seed nodes of a cluster (`host:port`), beside the one in `url`.
    pub nodes: Vec<String>,
    /// Talk to a Redis Cluster (`?cluster=true`): keys are routed to the master of their slot,
    /// and prefix deletes visit every master.
    pub cluster: bool,
    /// Prepended to every key this backend reads or writes (`?key_prefix=app1:`), so that
    /// several applications can share one Redis; prefix deletes stay inside it. Default empty.
    pub key_prefix: String,
    /// How long to wait for a connection.
    pub connect_timeout: Duration,
    /// How long to wait for one answer. Inside a cache it also bounds the cache's calls when
    /// it is shorter than `backend_timeout` (see `Backend::own_deadline`): the cache's deadline
    /// then covers the whole operation, and the request is not timed twice.
    pub response_timeout: Duration,
    /// Reconnection attempts per failure (standalone) or retries per command (cluster).
    pub reconnect_retries: u32,
    /// With `rediss://`: a PEM file of the CA that signed the server's certificate
    /// (`?tls_ca=/etc/redis/ca.pem`), for a private CA. `None`: the system's root certificates.
    pub tls_ca: Option<PathBuf>,
}

impl RedisConfig {
    /// A configuration for one server at `url`, with the defaults.
    pub fn new(url: impl Into<String>) -> Self {
        RedisConfig {
            url: url.into(),
            nodes: Vec::new(),
            cluster: false,
            key_prefix: String::new(),
            connect_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_millis(500),
            reconnect_retries: 2,
            tls_ca: None,
        }
    }

    /// Parse a URL: `redis://[[user]:password@]host:port[/db]`, `rediss://...` for TLS, with
    /// options in the query — `cluster=true`, `nodes=host:port,host:port` (more cluster seeds),
    /// `key_prefix=app1:`, `connect_timeout_ms`, `response_timeout_ms`, `retries`, `tls_ca`. Other query
    /// parameters go to the `redis` crate unchanged. A cluster URL names no database.
    pub fn from_url(url: &str) -> Result<Self> {
        let parsed = url::Url::parse(url)
            .map_err(|e| Error::Config(format!("invalid redis url `{}`: {e}", redact_url(url))))?;
        match parsed.scheme() {
            "redis" | "rediss" => {}
            other => {
                return Err(Error::Config(format!(
                    "`{other}://` is not a redis url (redis://host:port/db or rediss://...)"
                )))
            }
        }
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(Error::Config(format!(
                "redis url `{}` names no host",
                redact_url(url)
            )));
        }
        let mut cfg = RedisConfig::new(String::new());
        let mut passed_on = Vec::new();
        for (k, v) in parsed.query_pairs() {
            let number = || parse_count(&k, &v);
            match &*k {
                "cluster" => cfg.cluster = parse_flag(&k, &v)?,
                "nodes" => {
                    cfg.nodes = v
                        .split(',')
                        .map(str::trim)
                        .filter(|n| !n.is_empty())
                        .map(str::to_owned)
                        .collect()
                }
                "key_prefix" => cfg.key_prefix = v.into_owned(),
                "tls_ca" => cfg.tls_ca = Some(PathBuf::from(&*v)),
                "connect_timeout_ms" => cfg.connect_timeout = Duration::from_millis(number()?),
                "response_timeout_ms" => cfg.response_timeout = Duration::from_millis(number()?),
                "retries" => cfg.reconnect_retries = u32::try_from(number()?).unwrap_or(u32::MAX),
                _ => passed_on.push((k.into_owned(), v.into_owned())),
            }
        }
        let mut rest = parsed.clone();
        rest.set_query(None);
        if !passed_on.is_empty() {
            rest.query_pairs_mut().extend_pairs(passed_on);
        }
        cfg.url = rest.to_string();
        cfg.validate()?;
        Ok(cfg)
    }

    /// Set [`cluster`](RedisConfig::cluster).
    pub fn with_cluster(mut self, cluster: bool) -> Self {
        self.cluster = cluster;
        self
    }

    /// Set [`nodes`](RedisConfig::nodes).
    pub fn with_nodes(mut self, nodes: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.nodes = nodes.into_iter().map(Into::into).collect();
        self
    }

    /// Set [`tls_ca`](RedisConfig::tls_ca).
    pub fn with_tls_ca(mut self, ca_pem_file: impl Into<PathBuf>) -> Self {
        self.tls_ca = Some(ca_pem_file.into());
        self
    }

    /// Whether the URL asks for TLS (`rediss://`).
    pub fn is_tls(&self) -> bool {
        self.url.starts_with("rediss://")
    }

    /// Set [`key_prefix`](RedisConfig::key_prefix).
    pub fn with_key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// Set [`connect_timeout`](RedisConfig::connect_timeout).
    pub fn with_connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// Set [`response_timeout`](RedisConfig::response_timeout).
    pub fn with_response_timeout(mut self, d: Duration) -> Self {
        self.response_timeout = d;
        self
    }

    /// Set [`reconnect_retries`](RedisConfig::reconnect_retries).
    pub fn with_reconnect_retries(mut self, n: u32) -> Self {
        self.reconnect_retries = n;
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.url.is_empty() {
            return Err(Error::Config("the redis url is empty".into()));
        }
        if self.connect_timeout.is_zero() || self.response_timeout.is_zero() {
            return Err(Error::Config(
                "redis timeouts must be longer than zero".into(),
            ));
        }
        Ok(())
    }

    /// The seed URLs of a cluster: `url`, then each of `nodes` with `url`'s scheme and
    /// credentials.
    pub(crate) fn seeds(&self) -> Result<Vec<String>> {
        let base = url::Url::parse(&self.url).map_err(|e| {
            Error::Config(format!(
                "invalid redis url `{}`: {e}",
                redact_url(&self.url)
            ))
        })?;
        let mut out = vec![self.url.clone()];
        for node in &self.nodes {
            let (host, port) = node
                .rsplit_once(':')
                .ok_or_else(|| Error::Config(format!("cluster node `{node}` is not host:port")))?;
            let port: u16 = port
                .parse()
                .map_err(|_| Error::Config(format!("cluster node `{node}` has a bad port")))?;
            let mut u = base.clone();
            u.set_host(Some(host))
                .map_err(|e| Error::Config(format!("cluster node `{node}`: {e}")))?;
            u.set_port(Some(port))
                .map_err(|()| Error::Config(format!("cluster node `{node}` has a bad port")))?;
            out.push(u.to_string());
        }
        Ok(out)
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &redact_url(&self.url))
            .field("nodes", &self.nodes)
            .field("cluster", &self.cluster)
            .field("key_prefix", &self.key_prefix)
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .field("reconnect_retries", &self.reconnect_retries)
            .field("tls_ca", &self.tls_ca)
            .finish()
    }
}
