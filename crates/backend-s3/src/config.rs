//! [`S3Config`]: which bucket and prefix, which endpoint, which credentials.

use std::fmt;
use std::time::Duration;
use steadycache_api::plumbing::{parse_count, parse_flag, redact_url};
use steadycache_api::{Error, Result};

/// Whether the authority of `url` (between `://` and the next `/`, `?` or `#`) has user info.
fn has_user_info(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    authority.contains('@')
}

/// An access key given to the builder (instead of the AWS credential chain). `Debug` shows the
/// key id but never the secret or the session token.
#[derive(Clone, PartialEq, Eq)]
pub struct StaticCredentials {
    /// The access key id (`AKIA…`).
    pub access_key_id: String,
    /// The secret access key. Never printed.
    pub secret_access_key: String,
    /// A session token for temporary credentials. Never printed.
    pub session_token: Option<String>,
}

impl fmt::Debug for StaticCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"***")
            .field("session_token", &self.session_token.as_ref().map(|_| "***"))
            .finish()
    }
}

/// Configuration of an [`S3Backend`](crate::S3Backend).
///
/// ```
/// # use steadycache_s3::S3Config;
/// let cfg = S3Config::from_url(
///     "s3://reports-cache/steadycache?endpoint=http://127.0.0.1:9000&region=us-east-1&path_style=true",
/// )?
/// .with_credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG", None);
/// assert_eq!((cfg.bucket.as_str(), cfg.prefix.as_str()), ("reports-cache", "steadycache/"));
/// assert!(!format!("{cfg:?}").contains("wJalr"), "the secret never shows");
/// # Ok::<(), steadycache_api::Error>(())
/// ```
///
/// # Credentials and region
/// Without [`with_credentials`](S3Config::with_credentials), credentials come from the standard
/// AWS chain (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, the shared profile files, web
/// identity, the container and instance metadata services), resolved at first use, so the
/// URL never carries a secret (a URL with a user or password is refused). Without a region the
/// AWS chain's region is used (`AWS_REGION`, the profile), else `us-east-1`.
///
/// # Defaults, and why
/// * `connect_timeout` 2 s and `operation_timeout` 30 s: while the store is unreachable or hangs,
///   each S3 request waits at most this long (and reading a body at most `operation_timeout`
///   more) before it fails and the cache fails open. One cache operation makes one request on
///   a hit or a plain write, up to a handful for a lock (create, read back, take over). Raise
///   `operation_timeout` for very large values on slow links.
/// * `max_attempts` 2 (one retry, after 50 ms): the SDK's standard retry of transient failures,
///   kept short because a cache that waits seconds for its store is worse than a miss.
/// * `confirm_conditional_writes` on, `confirm_delay` zero: see
///   [`S3Backend`](crate::S3Backend#locks).
/// * `create_bucket` off: production buckets are made with their policies by whoever owns them;
///   turn it on for local stores and tests.
/// * `clock_skew_ms` zero: a knob for tests only (see [`with_clock_skew`](S3Config::with_clock_skew)).
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct S3Config {
    /// The bucket.
    pub bucket: String,
    /// Prepended to every cache key to make the object key (`"steadycache/"`). Empty means the
    /// bucket root; then clearing the cache removes every object in the bucket, so give a cache
    /// that shares its bucket a prefix of its own.
    pub prefix: String,
    /// An S3-compatible endpoint (`http://127.0.0.1:9000`); `None` is AWS.
    pub endpoint: Option<String>,
    /// The region; `None` asks the AWS chain, else `us-east-1`.
    pub region: Option<String>,
    /// Path-style addressing (`endpoint/bucket/key`), which most S3-compatible stores need.
    pub path_style: bool,
    /// Credentials from the builder; `None` is the AWS credential chain.
    pub credentials: Option<StaticCredentials>,
    /// How long to wait for a connection.
    pub connect_timeout: Duration,
    /// How long one S3 request may take in all, retries included; reading a body gets as long
    /// again.
    pub operation_timeout: Duration,
    /// Attempts per operation for transient failures (1 = no retry).
    pub max_attempts: u32,
    /// Read a conditional write back before reporting it won (see the backend's docs).
    pub confirm_conditional_writes: bool,
    /// How long to wait before that read: a bound on how long the store takes to write an
    /// object, for stores whose conditional checks are not atomic (zero: read at once).
    pub confirm_delay: Duration,
    /// Create the bucket on first use when it does not exist.
    pub create_bucket: bool,
    /// Milliseconds added to this machine's clock wherever the backend reads it: a knob for
    /// tests, which make one client's clock run ahead (positive) or behind (negative) of
    /// another's on the same machine. Zero (the default) in production. It shifts only the
    /// backend's own clock reads (not the SDK's request signing); see
    /// [Clocks](crate::S3Backend#clocks) for what the backend does about clocks that differ.
    pub clock_skew_ms: i64,
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("path_style", &self.path_style)
            .field("credentials", &self.credentials)
            .field("connect_timeout", &self.connect_timeout)
            .field("operation_timeout", &self.operation_timeout)
            .field("max_attempts", &self.max_attempts)
            .field(
                "confirm_conditional_writes",
                &self.confirm_conditional_writes,
            )
            .field("confirm_delay", &self.confirm_delay)
            .field("create_bucket", &self.create_bucket)
            .field("clock_skew_ms", &self.clock_skew_ms)
            .finish()
    }
}

impl S3Config {
    /// A configuration for `bucket` on AWS, at the bucket root, credentials and region from the
    /// AWS chain.
    pub fn new(bucket: impl Into<String>) -> Self {
        S3Config {
            bucket: bucket.into(),
            prefix: String::new(),
            endpoint: None,
            region: None,
            path_style: false,
            credentials: None,
            connect_timeout: Duration::from_secs(2),
            operation_timeout: Duration::from_secs(30),
            max_attempts: 2,
            confirm_conditional_writes: true,
            confirm_delay: Duration::ZERO,
            create_bucket: false,
            clock_skew_ms: 0,
        }
    }

    /// Parse `s3://bucket[/prefix][?options]`. The path is a folder: `s3://b/cache` and
    /// `s3://b/cache/` both store under `cache/`; it is percent-decoded (`my%20cache` is
    /// `my cache/`). Options: `endpoint` (an `http(s)://` URL),
    /// `region`, `path_style`, `create_bucket`, `confirm_writes` (booleans), `confirm_delay_ms`,
    /// `connect_timeout_ms`, `operation_timeout_ms`, `max_attempts`. Credentials are not taken from the URL.
    pub fn from_url(url: &str) -> Result<Self> {
        // Errors show the URL without its query (option values) and without any user info.
        let shown = redact_url(url);
        let invalid = |why: &str| Error::Config(format!("invalid s3 url `{shown}`: {why}"));
        if has_user_info(url) {
            return Err(Error::Config(format!(
                "invalid s3 url `{shown}`: an s3 url does not carry credentials: set \
                 AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile, or \
                 S3Config::with_credentials"
            )));
        }
        let parsed = url::Url::parse(url).map_err(|e| invalid(&e.to_string()))?;
        if parsed.scheme() != "s3" {
            return Err(invalid("expected s3://bucket/prefix"));
        }
        if parsed.port().is_some() {
            return Err(invalid(
                "the host is the bucket; give a store's address as ?endpoint=",
            ));
        }
        let bucket = parsed.host_str().unwrap_or("");
        if bucket.is_empty() {
            return Err(invalid("no bucket"));
        }
        let mut cfg = S3Config::new(bucket);
        let path = percent_encoding::percent_decode_str(parsed.path().trim_start_matches('/'))
            .decode_utf8()
            .map_err(|_| invalid("the prefix is not UTF-8 once decoded"))?;
        if !path.is_empty() {
            cfg.prefix = if path.ends_with('/') {
                path.to_string()
            } else {
                format!("{path}/")
            };
        }
        for (k, v) in parsed.query_pairs() {
            let number = || parse_count(&k, &v);
            match &*k {
                "endpoint" => cfg.endpoint = Some(v.into_owned()),
                "region" => cfg.region = Some(v.into_owned()),
                "path_style" => cfg.path_style = parse_flag(&k, &v)?,
                "create_bucket" => cfg.create_bucket = parse_flag(&k, &v)?,
                "confirm_writes" => cfg.confirm_conditional_writes = parse_flag(&k, &v)?,
                "connect_timeout_ms" => cfg.connect_timeout = Duration::from_millis(number()?),
                "confirm_delay_ms" => cfg.confirm_delay = Duration::from_millis(number()?),
                "operation_timeout_ms" => cfg.operation_timeout = Duration::from_millis(number()?),
                "max_attempts" => {
                    cfg.max_attempts = u32::try_from(number()?)
                        .map_err(|_| invalid("max_attempts is too large"))?
                }
                other => return Err(invalid(&format!("unknown option `{other}`"))),
            }
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Set [`prefix`](S3Config::prefix) (used as given: no `/` is added).
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Set [`endpoint`](S3Config::endpoint).
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// Set [`region`](S3Config::region).
    pub fn with_region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// Set [`path_style`](S3Config::path_style).
    pub fn with_path_style(mut self, on: bool) -> Self {
        self.path_style = on;
        self
    }

    /// Use these credentials instead of the AWS chain.
    pub fn with_credentials(
        mut self,
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
        session_token: Option<String>,
    ) -> Self {
        self.credentials = Some(StaticCredentials {
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            session_token,
        });
        self
    }

    /// Set [`connect_timeout`](S3Config::connect_timeout).
    pub fn with_connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// Set [`operation_timeout`](S3Config::operation_timeout).
    pub fn with_operation_timeout(mut self, d: Duration) -> Self {
        self.operation_timeout = d;
        self
    }

    /// Set [`max_attempts`](S3Config::max_attempts).
    pub fn with_max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n;
        self
    }

    /// Set [`confirm_conditional_writes`](S3Config::confirm_conditional_writes).
    pub fn with_confirm_conditional_writes(mut self, on: bool) -> Self {
        self.confirm_conditional_writes = on;
        self
    }

    /// Set [`confirm_delay`](S3Config::confirm_delay).
    pub fn with_confirm_delay(mut self, d: Duration) -> Self {
        self.confirm_delay = d;
        self
    }

    /// Set [`create_bucket`](S3Config::create_bucket).
    pub fn with_create_bucket(mut self, on: bool) -> Self {
        self.create_bucket = on;
        self
    }

    /// Set [`clock_skew_ms`](S3Config::clock_skew_ms): make this client's clock run `ms`
    /// milliseconds ahead (positive) or behind (negative). For tests.
    pub fn with_clock_skew(mut self, ms: i64) -> Self {
        self.clock_skew_ms = ms;
        self
    }

    /// Check the values a store would reject later with a less clear message.
    pub fn validate(&self) -> Result<()> {
        let b = &self.bucket;
        let bucket_ok = (3..=63).contains(&b.len())
            && b.bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'.')
            && !b.starts_with(['-', '.'])
            && !b.ends_with(['-', '.']);
        if !bucket_ok {
            return Err(Error::Config(format!(
                "invalid s3 bucket name `{b}`: 3 to 63 lowercase letters, digits, `-` and `.`"
            )));
        }
        if self.prefix.len() > 512 {
            return Err(Error::Config(
                "the s3 key prefix is longer than 512 bytes".into(),
            ));
        }
        if let Some(e) = &self.endpoint {
            let ok = !has_user_info(e)
                && url::Url::parse(e)
                    .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
            if !ok {
                return Err(Error::Config(format!(
                    "invalid s3 endpoint `{}`: expected http(s)://host[:port], without user \
                     info (credentials go in S3Config::with_credentials or the AWS chain)",
                    redact_url(e)
                )));
            }
        }
        if self.region.as_deref() == Some("") {
            return Err(Error::Config("empty s3 region".into()));
        }
        if self.connect_timeout.is_zero() || self.operation_timeout.is_zero() {
            return Err(Error::Config("s3 timeouts must be longer than zero".into()));
        }
        if self.max_attempts == 0 {
            return Err(Error::Config("s3 max_attempts must be at least 1".into()));
        }
        Ok(())
    }
}
