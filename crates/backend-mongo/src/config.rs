//! [`MongoConfig`]: where the collection is and how to reach it.

use std::fmt;
use std::time::Duration;
use steadycache_api::plumbing::{parse_count, redact_url};
use steadycache_api::{Error, Result};

/// Configuration of a [`MongoBackend`](crate::MongoBackend).
///
/// ```
/// # use steadycache_mongo::MongoConfig;
/// let cfg = MongoConfig::from_url(
///     "mongodb://app:s3cret@db.internal:27017/cachedb?collection=fx&authSource=admin",
/// )?;
/// assert_eq!((cfg.database.as_str(), cfg.collection.as_str()), ("cachedb", "fx"));
/// assert!(!format!("{cfg:?}").contains("s3cret"), "the password never shows");
/// # Ok::<(), steadycache_api::Error>(())
/// ```
///
/// # Defaults, and why
/// Database `steadycache`, collection `entries`. `server_selection_timeout` 2 s (the driver's own
/// default is 30 s): while the database is unreachable every call waits this long before it
/// fails open, so it is short. `connect_timeout` 2 s. `clock_skew_ms` zero: a knob for tests
/// only (see [`with_clock_skew`](MongoConfig::with_clock_skew)).
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MongoConfig {
    /// The connection string for the driver (`mongodb://...`, options such as `authSource` or
    /// `directConnection` included), without this crate's own options. Never printed: `Debug`
    /// masks its password.
    pub uri: String,
    /// The database (the URL's path; default `steadycache`).
    pub database: String,
    /// The collection (`?collection=`; default `entries`).
    pub collection: String,
    /// How long an operation waits for a usable server before failing.
    pub server_selection_timeout: Duration,
    /// How long to wait for a connection.
    pub connect_timeout: Duration,
    /// Milliseconds added to this machine's clock wherever the backend reads it: a knob for
    /// tests, which make one client's clock run ahead (positive) or behind (negative) of
    /// another's on the same machine. Zero (the default) in production. See
    /// [Clocks](crate::MongoBackend#clocks) for what the backend does about clocks that differ.
    pub clock_skew_ms: i64,
}

impl MongoConfig {
    /// A configuration for `uri` (a `mongodb://` connection string), database `steadycache`,
    /// collection `entries`.
    pub fn new(uri: impl Into<String>) -> Self {
        MongoConfig {
            uri: uri.into(),
            database: "steadycache".into(),
            collection: "entries".into(),
            server_selection_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(2),
            clock_skew_ms: 0,
        }
    }

    /// Parse `mongodb://[user:password@]host:port[,host:port]/[database][?options]`. This crate's
    /// options are `collection`, `server_selection_timeout_ms` and `connect_timeout_ms`; every
    /// other option goes to the driver unchanged. `mongodb+srv://` needs the driver's
    /// `dns-resolver` feature, which this crate leaves off (it is a configuration error).
    pub fn from_url(url: &str) -> Result<Self> {
        let invalid =
            |why: &str| Error::Config(format!("invalid mongodb url `{}`: {why}", redact_url(url)));
        let rest = if let Some(rest) = url.strip_prefix("mongodb://") {
            rest
        } else if url.starts_with("mongodb+srv://") {
            return Err(invalid(
                "mongodb+srv:// needs DNS SRV lookups, which this build leaves out; list the hosts",
            ));
        } else {
            return Err(invalid("expected mongodb://host:port/database"));
        };
        // An `@` after the authority (with none in it) is a password holding an unencoded `/`,
        // `?` or `#`: refused, rather than read as a database name or an option that would
        // carry the password into logs. (An `@` in an option value must be written `%40`.)
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        if !rest[..authority_end].contains('@') && rest[authority_end..].contains('@') {
            return Err(invalid(
                "an `@` after the host: percent-encode a user or password holding `/`, `?` or `#` \
                 (%2F, %3F, %23), and an `@` in an option (%40)",
            ));
        }
        let (before_query, query) = match rest.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (rest, None),
        };
        let (hosts, path) = match before_query.split_once('/') {
            Some((h, p)) => (h, p),
            None => (before_query, ""),
        };
        if hosts.rsplit('@').next().is_none_or(str::is_empty) {
            return Err(invalid("no host"));
        }
        let mut cfg = MongoConfig::new(String::new());
        if !path.is_empty() {
            cfg.database = path.to_owned();
        }
        let mut passed_on = Vec::new();
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let number = || parse_count(k, v);
            match k {
                "collection" if !v.is_empty() => cfg.collection = v.to_owned(),
                "collection" => return Err(invalid("empty collection name")),
                "server_selection_timeout_ms" => {
                    cfg.server_selection_timeout = Duration::from_millis(number()?)
                }
                "connect_timeout_ms" => cfg.connect_timeout = Duration::from_millis(number()?),
                _ => passed_on.push(pair),
            }
        }
        cfg.uri = format!("mongodb://{hosts}/{path}");
        if !passed_on.is_empty() {
            cfg.uri.push('?');
            cfg.uri.push_str(&passed_on.join("&"));
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Set [`database`](MongoConfig::database).
    pub fn with_database(mut self, name: impl Into<String>) -> Self {
        self.database = name.into();
        self
    }

    /// Set [`collection`](MongoConfig::collection).
    pub fn with_collection(mut self, name: impl Into<String>) -> Self {
        self.collection = name.into();
        self
    }

    /// Set [`server_selection_timeout`](MongoConfig::server_selection_timeout).
    pub fn with_server_selection_timeout(mut self, d: Duration) -> Self {
        self.server_selection_timeout = d;
        self
    }

    /// Set [`connect_timeout`](MongoConfig::connect_timeout).
    pub fn with_connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// Set [`clock_skew_ms`](MongoConfig::clock_skew_ms): make this client's clock run `ms`
    /// milliseconds ahead (positive) or behind (negative). For tests.
    pub fn with_clock_skew(mut self, ms: i64) -> Self {
        self.clock_skew_ms = ms;
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.uri.is_empty() {
            return Err(Error::Config("the mongodb url is empty".into()));
        }
        if self.database.is_empty() || self.collection.is_empty() {
            return Err(Error::Config(
                "the mongodb database and collection names must not be empty".into(),
            ));
        }
        if self.server_selection_timeout.is_zero() || self.connect_timeout.is_zero() {
            return Err(Error::Config(
                "mongodb timeouts must be longer than zero".into(),
            ));
        }
        Ok(())
    }
}

impl fmt::Debug for MongoConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MongoConfig")
            .field("uri", &redact_url(&self.uri))
            .field("database", &self.database)
            .field("collection", &self.collection)
            .field("server_selection_timeout", &self.server_selection_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("clock_skew_ms", &self.clock_skew_ms)
            .finish()
    }
}
