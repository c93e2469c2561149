//! [`S3Backend`]: the [`Backend`] contract on objects in one bucket.

use crate::config::S3Config;
use crate::error::{convert, is_conflict, is_not_found, is_precondition_failed, status, NAME};
use async_trait::async_trait;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketLifecycleConfiguration, BucketLocationConstraint, CreateBucketConfiguration, Delete,
    ExpirationStatus, LifecycleExpiration, LifecycleRule, LifecycleRuleFilter, ObjectIdentifier,
};
use aws_sdk_s3::Client;
use bytes::Bytes;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use steadycache_api::plumbing::{check_ttl, deadline, unix_millis};
use steadycache_api::{Backend, Capabilities, Error, Result};
use tokio::sync::OnceCell;

/// Metadata key (`x-amz-meta-…`) of the hard expiry, ms since the Unix epoch; absent = never.
pub(crate) const META_EXPIRES: &str = "steadycache-expires-at";
/// Metadata key of what the object is: `value` or `lock`.
pub(crate) const META_KIND: &str = "steadycache-kind";
/// Metadata key of the random id of the conditional write that made the object.
pub(crate) const META_WRITER: &str = "steadycache-writer";
/// Objects per `DeleteObjects` call (the S3 maximum).
const DELETE_BATCH: usize = 1000;
/// Attempts of a conditional create that keeps meeting a vanished object or a 409.
const CREATE_ATTEMPTS: usize = 4;
/// Largest body size trusted from `Content-Length` for preallocation (bigger ones grow).
const MAX_PREALLOC: usize = 256 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Value,
    Lock,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Value => "value",
            Kind::Lock => "lock",
        }
    }
}

/// What the metadata of a stored object says.
#[derive(Debug)]
struct Head {
    expires_at: Option<u64>,
    /// The expiry metadata, when it is there but not a time (a corrupt entry).
    bad_expiry: Option<String>,
    kind: Kind,
    writer: Option<String>,
    etag: Option<String>,
}

impl Head {
    /// Read our metadata. An expiry that is not a number is kept in `bad_expiry`: the object is
    /// then no live entry (a read reports it corrupt, a create takes it over, a delete removes
    /// it).
    fn parse(meta: Option<&HashMap<String, String>>, etag: Option<&str>) -> Head {
        let get = |k: &str| meta.and_then(|m| m.get(k));
        let (expires_at, bad_expiry) = match get(META_EXPIRES) {
            None => (None, None),
            Some(v) => match v.trim().parse::<u64>() {
                Ok(t) => (Some(t), None),
                Err(_) => (None, Some(v.clone())),
            },
        };
        let kind = match get(META_KIND).map(String::as_str) {
            Some("lock") => Kind::Lock,
            _ => Kind::Value,
        };
        Head {
            expires_at,
            bad_expiry,
            kind,
            writer: get(META_WRITER).cloned(),
            etag: etag.map(str::to_owned),
        }
    }

    fn live(&self, now: u64) -> bool {
        self.bad_expiry.is_none() && self.expires_at.is_none_or(|e| e > now)
    }

    /// [`Error::Corrupt`] when the metadata is not ours to read.
    fn check(&self, key: &str) -> Result<()> {
        match &self.bad_expiry {
            None => Ok(()),
            Some(v) => Err(Error::Corrupt(format!(
                "s3 object `{key}`: metadata {META_EXPIRES}=`{v}` is not a time"
            ))),
        }
    }
}

/// The condition of a write.
enum Cond {
    None,
    /// `If-None-Match: *`: only if no object exists.
    Absent,
    /// `If-Match: <etag>`: only if the object is still this version.
    Version(String),
}

/// How a conditional write ended.
enum Put {
    Written,
    /// 412: the condition did not hold.
    Refused,
    /// 409: another conditional write of the key was in flight.
    Conflict,
}

enum Source {
    Config(Box<S3Config>),
    Given(Client),
}

struct Inner {
    source: Source,
    bucket: String,
    prefix: String,
    confirm: bool,
    confirm_delay: Duration,
    create_bucket: bool,
    /// Bound on reading a body (after the SDK's own operation timeout ends at its headers).
    body_timeout: Option<Duration>,
    /// The bucket was seen to exist (a 404 of `HeadObject` is then a missing object).
    bucket_seen: AtomicBool,
    client: OnceCell<Client>,
}

/// A steadycache backend on an S3 bucket (AWS, or any S3-compatible store): every process and
/// machine that reaches the bucket shares one cache. The cheapest shared store for large,
/// rarely-changing results: model outputs, reports, dataset extracts.
///
/// # Objects
/// One object per entry, named `prefix + key`, so an S3 console or `aws s3 ls` shows what is
/// cached. The body is the value (the engine's envelope) as is. The metadata says:
///
/// | `x-amz-meta-…` | |
/// |---|---|
/// | `steadycache-expires-at` | hard expiry, ms since the Unix epoch (absent: never) |
/// | `steadycache-kind` | `value` or `lock` |
/// | `steadycache-writer` | random id of the conditional write that made it (set-if-absent, locks) |
///
/// S3 does not expire objects by metadata, so every read checks it: an expired object is a
/// miss and is deleted then (lazily, `If-Match` its ETag, so a newer write is never removed by
/// a store that honours it). For eventual cleanup of entries nobody reads again, install a
/// bucket lifecycle rule once with [`install_lifecycle_rule`](S3Backend::install_lifecycle_rule).
///
/// # Operations
/// | operation | S3 |
/// |---|---|
/// | `get` | `GetObject`, metadata checked; the body is read straight into one buffer of its `Content-Length` |
/// | `set` | `PutObject` with the metadata |
/// | `set_if_absent`, `acquire_lock` | `PutObject` with `If-None-Match: *` (412 = taken); an expired leftover is taken over with `If-Match: <its ETag>` |
/// | `release_lock` | `GetObject` (the body is the token), then `DeleteObject` with `If-Match: <its ETag>` |
/// | `delete` | `HeadObject` (was a live entry there?), then `DeleteObject` |
/// | `delete_prefix` | `ListObjectsV2` by prefix, page by page, each page removed by one `DeleteObjects` (≤ 1,000 keys) |
/// | `incr` | not supported: S3 has no atomic increment ([`Error::Unsupported`]) |
/// | `ping` | `HeadBucket` |
///
/// `delete_prefix` counts the objects it removed, including expired ones not yet cleaned up
/// (a listing carries no metadata, and reading every object to tell would cost a request each).
///
/// # Locks
/// A lock is an object whose body is the holder's token and whose metadata holds its expiry,
/// made by a conditional create, so a dead holder's lock is taken over once it expires. On AWS
/// S3 conditional writes are atomic: of many racing creators exactly one gets 200, the others
/// 412 (or 409 while the winner's write is in flight, which counts as lost too).
///
/// Not every S3-compatible store makes them atomic: some check the condition, then write, so
/// two racing creators can both get 200 (the `s3s-fs` test server does this). So a won
/// conditional write is confirmed by reading the object's metadata back:
/// the write won only if the object now carries its own writer id. Of two creators that both
/// passed the check, the one whose write landed last keeps the object, and the other sees a
/// foreign writer and reports that it lost. This costs one `HeadObject` per lock taken (only on
/// misses, before the function runs) and is on by default; turn it off with
/// [`S3Config::with_confirm_conditional_writes`] on a store known to be atomic.
///
/// By itself the read-back leaves a window: a creator that passed the check late, whose write
/// lands after the first creator has already read its own write back. On such a store set
/// [`S3Config::with_confirm_delay`] to a bound on how long the store takes to write an object:
/// the read then comes after any write that passed the check at the same time has landed. The
/// tests run against `s3s-fs` with 50 ms. Measured there, 16 takers starting 0 to 3 ms apart,
/// 200 rounds each (`lock_race_rate` in the crate's tests): without the read-back 158 rounds of
/// taking a fresh lock and 131 of taking over an expired one had several winners; with it and
/// no delay, 0 and 3; with the 50 ms delay, 0 and 0. The delay cannot make a store atomic whose
/// writes sometimes take longer than it.
///
/// A store that ignores `If-None-Match` altogether is not supported: every creator's write
/// lands, carries its writer id, and wins. Locks need conditional writes.
///
/// A retried conditional write whose first attempt was stored (the answer was lost) is
/// refused by the retry; the object then carries this call's writer id, so it is still
/// reported as won.
///
/// # Keys
/// Cache keys become object keys under the prefix. Object keys are at most 1,024 bytes; a
/// longer one is an error from the store, and the engine fails open. On stores that map keys to
/// files (`s3s-fs`), a key `a` and a key `a/b` cannot both exist; steadycache's own keys
/// (`ns:v:…`) never contain `/`.
///
/// # Connections
/// The client is made on first use (credentials and region resolved then), with the timeouts
/// and retries of [`S3Config`], and shared by every clone. An operation while the store is
/// unreachable fails with [`Error::Unavailable`]; refused credentials and a missing bucket are
/// [`Error::Backend`] with a message that says what to fix. The engine fails open on both.
///
/// # Permissions
/// `s3:GetObject`, `s3:PutObject`, `s3:DeleteObject` and `s3:ListBucket` on the bucket and
/// prefix. Without `s3:ListBucket`, S3 answers a missing key with 403 instead of 404, so every
/// miss would be an "access denied" error.
#[derive(Clone)]
pub struct S3Backend {
    inner: Arc<Inner>,
}

impl fmt::Debug for S3Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("S3Backend");
        match &self.inner.source {
            Source::Config(c) => d.field("config", c),
            Source::Given(_) => d
                .field("bucket", &self.inner.bucket)
                .field("prefix", &self.inner.prefix),
        };
        d.field("connected", &self.inner.client.initialized())
            .finish()
    }
}

fn metadata(kind: Kind, expires_at: Option<u64>, writer: Option<&str>) -> HashMap<String, String> {
    let mut m = HashMap::with_capacity(3);
    m.insert(META_KIND.to_owned(), kind.as_str().to_owned());
    if let Some(e) = expires_at {
        m.insert(META_EXPIRES.to_owned(), e.to_string());
    }
    if let Some(w) = writer {
        m.insert(META_WRITER.to_owned(), w.to_owned());
    }
    m
}

/// The SDK client for `cfg`: credentials from the config or the AWS chain, region from the
/// config, the chain, else `us-east-1`.
///
/// The SDK's flexible checksums are asked for only where S3 requires them (`DeleteObjects`),
/// not on every `PutObject` and `GetObject`: every entry the engine stores carries its own
/// XXH3-64 check of the whole envelope, verified on each read, so a per-request CRC would be a
/// second pass over every value for nothing; and S3-compatible stores differ in how they handle
/// the `aws-chunked` checksum trailers (`s3s-fs` stores the checksum apart from the body, so a
/// read racing a write can pair one write's body with another's checksum).
async fn build_client(cfg: &S3Config) -> Client {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(c) = &cfg.credentials {
        loader = loader.credentials_provider(Credentials::new(
            c.access_key_id.clone(),
            c.secret_access_key.clone(),
            c.session_token.clone(),
            None,
            "steadycache",
        ));
    }
    if let Some(r) = &cfg.region {
        loader = loader.region(Region::new(r.clone()));
    }
    let sdk = loader.load().await;
    let mut b = aws_sdk_s3::config::Builder::from(&sdk)
        .force_path_style(cfg.path_style)
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(cfg.connect_timeout)
                .operation_timeout(cfg.operation_timeout)
                .build(),
        )
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(cfg.max_attempts)
                .with_initial_backoff(Duration::from_millis(50)),
        );
    if sdk.region().is_none() {
        b = b.region(Region::new("us-east-1"));
    }
    if let Some(e) = &cfg.endpoint {
        b = b.endpoint_url(e);
    }
    Client::from_conf(b.build())
}

/// Read a body into one buffer sized by its `Content-Length`; a body shorter than announced is
/// a transient error (the connection was cut), never a short value.
async fn read_body(key: &str, mut body: ByteStream, len: Option<i64>) -> Result<Vec<u8>> {
    let cut = |e: aws_sdk_s3::primitives::ByteStreamError| {
        Error::from_backend(NAME, format!("get `{key}`: reading the body: {e}"), true, e)
    };
    let expected = len.and_then(|l| usize::try_from(l).ok());
    let mut out: Vec<u8> = Vec::new();
    while let Some(chunk) = body.try_next().await.map_err(cut)? {
        if out.is_empty() && Some(chunk.len()) == expected {
            // The whole body in one chunk: take its buffer without a copy when it is unshared.
            out = Vec::from(chunk);
            continue;
        }
        if out.capacity() == 0 {
            out.reserve(expected.unwrap_or(0).min(MAX_PREALLOC));
        }
        out.extend_from_slice(&chunk);
    }
    if let Some(n) = expected {
        if out.len() != n {
            return Err(Error::unavailable(
                NAME,
                format!(
                    "get `{key}`: the body ended after {} of {n} bytes",
                    out.len()
                ),
            ));
        }
    }
    Ok(out)
}

impl S3Backend {
    /// A backend for `config`; connects (and resolves credentials) on first use.
    pub fn open(config: S3Config) -> Result<Self> {
        config.validate()?;
        Ok(S3Backend {
            inner: Arc::new(Inner {
                bucket: config.bucket.clone(),
                prefix: config.prefix.clone(),
                confirm: config.confirm_conditional_writes,
                confirm_delay: config.confirm_delay,
                body_timeout: Some(config.operation_timeout),
                bucket_seen: AtomicBool::new(false),
                create_bucket: config.create_bucket,
                source: Source::Config(Box::new(config)),
                client: OnceCell::new(),
            }),
        })
    }

    /// [`S3Config::from_url`], then [`open`](S3Backend::open).
    pub fn from_url(url: &str) -> Result<Self> {
        Self::open(S3Config::from_url(url)?)
    }

    /// A backend on a client the application already has (its own credentials, endpoint,
    /// retries and HTTP client), storing under `prefix` in `bucket`. Conditional writes are
    /// confirmed (see [Locks](S3Backend#locks)).
    pub fn from_client(
        client: Client,
        bucket: impl Into<String>,
        prefix: impl Into<String>,
    ) -> Self {
        S3Backend {
            inner: Arc::new(Inner {
                source: Source::Given(client),
                bucket: bucket.into(),
                prefix: prefix.into(),
                confirm: true,
                confirm_delay: Duration::ZERO,
                create_bucket: false,
                body_timeout: None,
                bucket_seen: AtomicBool::new(false),
                client: OnceCell::new(),
            }),
        }
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.inner.bucket
    }

    /// The object key prefix.
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// The object key of a cache key.
    pub fn object_key(&self, key: &str) -> String {
        let mut k = String::with_capacity(self.inner.prefix.len() + key.len());
        k.push_str(&self.inner.prefix);
        k.push_str(key);
        k
    }

    /// The SDK client (made on first use; the bucket is created then if the config asks).
    pub async fn client(&self) -> Result<&Client> {
        let inner = &self.inner;
        inner
            .client
            .get_or_try_init(|| async {
                let client = match &inner.source {
                    Source::Given(c) => c.clone(),
                    Source::Config(cfg) => build_client(cfg).await,
                };
                if inner.create_bucket {
                    ensure_bucket(&client, &inner.bucket).await?;
                }
                Ok::<_, Error>(client)
            })
            .await
    }

    /// Install a lifecycle rule on the bucket that deletes objects under this backend's prefix
    /// `days` days after they were written: eventual cleanup of entries that expired and were
    /// never read again (reads already treat them as misses). S3 counts from the object's
    /// creation, not from the expiry in its metadata, so choose `days` above your longest ttl.
    ///
    /// The rule is named `steadycache:<prefix>`; the bucket's other rules are kept (S3 replaces
    /// a lifecycle configuration as a whole, so they are read and written back). Calling it
    /// again replaces the rule. Needs `s3:GetLifecycleConfiguration` and
    /// `s3:PutLifecycleConfiguration`; a store without lifecycle support answers with an error.
    pub async fn install_lifecycle_rule(&self, days: u32) -> Result<()> {
        let days = i32::try_from(days)
            .ok()
            .filter(|d| *d > 0)
            .ok_or_else(|| Error::Config(format!("lifecycle days must be 1 to {}", i32::MAX)))?;
        let client = self.client().await?;
        let bucket = &self.inner.bucket;
        let existing = match client
            .get_bucket_lifecycle_configuration()
            .bucket(bucket)
            .send()
            .await
        {
            Ok(out) => out.rules().to_vec(),
            // No configuration yet.
            Err(e) if e.code() == Some("NoSuchLifecycleConfiguration") => Vec::new(),
            Err(e) => return Err(convert("get lifecycle of", bucket, e)),
        };
        let rules = merge_lifecycle_rule(existing, &self.inner.prefix, days)?;
        let config = BucketLifecycleConfiguration::builder()
            .set_rules(Some(rules))
            .build()
            .map_err(|e| Error::Config(format!("lifecycle configuration: {e}")))?;
        client
            .put_bucket_lifecycle_configuration()
            .bucket(bucket)
            .lifecycle_configuration(config)
            .send()
            .await
            .map_err(|e| convert("put lifecycle of", bucket, e))?;
        Ok(())
    }

    async fn put(
        &self,
        key: &str,
        body: Bytes,
        meta: HashMap<String, String>,
        cond: Cond,
    ) -> Result<Put> {
        let client = self.client().await?;
        let mut req = client
            .put_object()
            .bucket(&self.inner.bucket)
            .key(self.object_key(key))
            .body(ByteStream::from(body))
            .set_metadata(Some(meta));
        match cond {
            Cond::None => {}
            Cond::Absent => req = req.if_none_match("*"),
            Cond::Version(etag) => req = req.if_match(etag),
        }
        match req.send().await {
            Ok(_) => Ok(Put::Written),
            Err(e) if is_precondition_failed(&e) => Ok(Put::Refused),
            Err(e) if is_conflict(&e) => Ok(Put::Conflict),
            Err(e) => Err(convert("put", key, e)),
        }
    }

    /// Read a body, within the operation timeout (the SDK's ends once the headers are in).
    async fn read(&self, key: &str, body: ByteStream, len: Option<i64>) -> Result<Vec<u8>> {
        match self.inner.body_timeout {
            None => read_body(key, body, len).await,
            Some(t) => tokio::time::timeout(t, read_body(key, body, len))
                .await
                .map_err(|_| {
                    Error::unavailable(
                        NAME,
                        format!("get `{key}`: reading the body took longer than {t:?}"),
                    )
                })?,
        }
    }

    /// The metadata of `key`'s object, if there is one.
    async fn head(&self, key: &str) -> Result<Option<Head>> {
        let client = self.client().await?;
        match client
            .head_object()
            .bucket(&self.inner.bucket)
            .key(self.object_key(key))
            .send()
            .await
        {
            Ok(o) => {
                self.inner.bucket_seen.store(true, Ordering::Relaxed);
                Ok(Some(Head::parse(o.metadata(), o.e_tag())))
            }
            Err(e) if is_not_found(&e) => {
                // A 404 of HEAD has no body, so a missing bucket looks like a missing object:
                // ask about the bucket once.
                if !self.inner.bucket_seen.load(Ordering::Relaxed) {
                    self.ping().await?;
                    self.inner.bucket_seen.store(true, Ordering::Relaxed);
                }
                Ok(None)
            }
            Err(e) => Err(convert("head", key, e)),
        }
    }

    /// The object of `key`: its metadata and body.
    async fn fetch(&self, key: &str) -> Result<Option<(Head, ByteStream, Option<i64>)>> {
        let client = self.client().await?;
        match client
            .get_object()
            .bucket(&self.inner.bucket)
            .key(self.object_key(key))
            .send()
            .await
        {
            Ok(o) => {
                let head = Head::parse(o.metadata(), o.e_tag());
                Ok(Some((head, o.body, o.content_length)))
            }
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(convert("get", key, e)),
        }
    }

    /// Delete `key`'s object, only if it is still version `etag` when one is given (a store
    /// that does not implement conditional deletes gets a plain delete). `false` if the
    /// condition did not hold.
    async fn remove(&self, key: &str, etag: Option<&str>) -> Result<bool> {
        let client = self.client().await?;
        let req = || {
            client
                .delete_object()
                .bucket(&self.inner.bucket)
                .key(self.object_key(key))
        };
        let Some(etag) = etag else {
            req().send().await.map_err(|e| convert("delete", key, e))?;
            return Ok(true);
        };
        match req().if_match(etag).send().await {
            Ok(_) => Ok(true),
            Err(e) if is_precondition_failed(&e) || is_not_found(&e) => Ok(false),
            Err(e) if matches!(status(&e), Some(501)) => {
                req().send().await.map_err(|e| convert("delete", key, e))?;
                Ok(true)
            }
            Err(e) => Err(convert("delete", key, e)),
        }
    }

    /// Remove an object found expired; a failure only delays the cleanup.
    async fn remove_expired(&self, key: &str, head: &Head) {
        if let Err(e) = self.remove(key, head.etag.as_deref()).await {
            tracing::debug!(key, error = %e, "s3: lazy delete of an expired entry failed");
        }
    }

    /// Whether the conditional write `writer` made is the object now (see [Locks](S3Backend#locks)).
    async fn confirm(&self, key: &str, writer: &str) -> Result<bool> {
        if !self.inner.confirm {
            return Ok(true);
        }
        if !self.inner.confirm_delay.is_zero() {
            tokio::time::sleep(self.inner.confirm_delay).await;
        }
        let mine = self
            .head(key)
            .await?
            .is_some_and(|h| h.writer.as_deref() == Some(writer));
        if !mine {
            tracing::debug!(
                key,
                "s3: a conditional write returned 200 but another write won"
            );
        }
        Ok(mine)
    }

    /// Create `key` if no live object is there (taking over an expired one); `true` if this
    /// call's write is the object now.
    async fn create(
        &self,
        key: &str,
        body: Vec<u8>,
        ttl: Option<Duration>,
        kind: Kind,
    ) -> Result<bool> {
        check_ttl(ttl)?;
        let body = Bytes::from(body);
        let writer = format!("{:016x}", fastrand::u64(..));
        for _ in 0..CREATE_ATTEMPTS {
            let meta = metadata(kind, deadline(unix_millis(), ttl), Some(&writer));
            match self
                .put(key, body.clone(), meta.clone(), Cond::Absent)
                .await?
            {
                Put::Written => return self.confirm(key, &writer).await,
                Put::Conflict => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
                Put::Refused => {}
            }
            let Some(head) = self.head(key).await? else {
                continue; // removed in between: try to create it again
            };
            if head.writer.as_deref() == Some(writer.as_str()) {
                // Our own write, stored by an attempt whose answer was lost: the SDK's retry
                // of it was refused. It is ours.
                return Ok(true);
            }
            if head.live(unix_millis()) {
                return Ok(false);
            }
            // Expired, or not a readable entry: take it over if it is still that version.
            let Some(etag) = head.etag else {
                return Ok(false);
            };
            return match self.put(key, body, meta, Cond::Version(etag)).await? {
                Put::Written => self.confirm(key, &writer).await,
                Put::Refused | Put::Conflict => Ok(self
                    .head(key)
                    .await?
                    .is_some_and(|h| h.writer.as_deref() == Some(writer.as_str()))),
            };
        }
        Ok(false)
    }

    async fn delete_batch(&self, keys: Vec<ObjectIdentifier>) -> Result<u64> {
        let client = self.client().await?;
        let n = keys.len();
        let delete = Delete::builder()
            .set_objects(Some(keys))
            .quiet(false)
            .build()
            .map_err(|e| Error::Config(format!("delete batch: {e}")))?;
        let out = client
            .delete_objects()
            .bucket(&self.inner.bucket)
            .delete(delete)
            .send()
            .await
            .map_err(|e| convert("delete objects in", &self.inner.bucket, e))?;
        let removed = out.deleted().len() as u64;
        if let Some(first) = out.errors().first() {
            return Err(Error::Backend {
                backend: NAME.into(),
                message: format!(
                    "delete objects: {} of {n} could not be removed ({} removed); first: `{}`: {} {}",
                    out.errors().len(),
                    removed,
                    first.key().unwrap_or(""),
                    first.code().unwrap_or(""),
                    first.message().unwrap_or("")
                ),
                source: None,
            });
        }
        Ok(removed)
    }
}

/// `existing` rules with the rule for `prefix` added or replaced.
pub(crate) fn merge_lifecycle_rule(
    existing: Vec<LifecycleRule>,
    prefix: &str,
    days: i32,
) -> Result<Vec<LifecycleRule>> {
    let id = format!("steadycache:{prefix}");
    let id = if id.len() > 255 {
        format!(
            "steadycache:{:016x}",
            xxhash_rust::xxh3::xxh3_64(prefix.as_bytes())
        )
    } else {
        id
    };
    let rule = LifecycleRule::builder()
        .id(&id)
        .status(ExpirationStatus::Enabled)
        .filter(LifecycleRuleFilter::builder().prefix(prefix).build())
        .expiration(LifecycleExpiration::builder().days(days).build())
        .build()
        .map_err(|e| Error::Config(format!("lifecycle rule: {e}")))?;
    let mut rules: Vec<LifecycleRule> = existing
        .into_iter()
        .filter(|r| r.id() != Some(id.as_str()))
        .collect();
    rules.push(rule);
    Ok(rules)
}

/// Create `bucket` unless it exists, in the client's region (outside `us-east-1` S3 needs it
/// named as the location constraint). A 409 from a racing creator is fine when the bucket then
/// answers us: `BucketAlreadyExists` of a name another account owns does not (`HeadBucket` is
/// refused), and is reported.
async fn ensure_bucket(client: &Client, bucket: &str) -> Result<()> {
    match client.head_bucket().bucket(bucket).send().await {
        Ok(_) => return Ok(()),
        Err(e) if status(&e) == Some(404) => {}
        Err(e) => return Err(convert("head bucket", bucket, e)),
    }
    let mut req = client.create_bucket().bucket(bucket);
    if let Some(region) = client.config().region().map(|r| r.as_ref().to_owned()) {
        if region != "us-east-1" {
            req = req.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(region.as_str()))
                    .build(),
            );
        }
    }
    match req.send().await {
        Ok(_) => Ok(()),
        Err(e) if status(&e) == Some(409) => client
            .head_bucket()
            .bucket(bucket)
            .send()
            .await
            .map(|_| ())
            .map_err(|_| convert("create bucket", bucket, e)),
        Err(e) => Err(convert("create bucket", bucket, e)),
    }
}

#[async_trait]
impl Backend for S3Backend {
    fn name(&self) -> &str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        let mut c = Capabilities::all();
        c.incr = false;
        c
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let Some((head, body, len)) = self.fetch(key).await? else {
            return Ok(None);
        };
        head.check(key)?;
        if !head.live(unix_millis()) {
            drop(body);
            self.remove_expired(key, &head).await;
            return Ok(None);
        }
        self.read(key, body, len).await.map(Some)
    }

    async fn set(&self, key: &str, value: Vec<u8>, ttl: Option<Duration>) -> Result<()> {
        check_ttl(ttl)?;
        let meta = metadata(Kind::Value, deadline(unix_millis(), ttl), None);
        match self.put(key, Bytes::from(value), meta, Cond::None).await? {
            Put::Written => Ok(()),
            // Only conditional writes are refused; a store that does so anyway is answered.
            Put::Refused | Put::Conflict => Err(Error::unavailable(
                NAME,
                format!("put `{key}`: the store refused an unconditional write"),
            )),
        }
    }

    async fn set_if_absent(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> Result<bool> {
        self.create(key, value, ttl, Kind::Value).await
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        // Conditional on the version seen, so of two deletes racing for one entry only one says
        // it removed it; a version written in between is looked at again.
        for _ in 0..CREATE_ATTEMPTS {
            let Some(head) = self.head(key).await? else {
                return Ok(false);
            };
            let entry = head.live(unix_millis()) || head.bad_expiry.is_some();
            if self.remove(key, head.etag.as_deref()).await? {
                return Ok(entry);
            }
        }
        // Still changing under us: remove whatever is there.
        self.remove(key, None).await?;
        Ok(true)
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64> {
        let client = self.client().await?;
        let full = self.object_key(prefix);
        let mut removed = 0u64;
        let mut token: Option<String> = None;
        loop {
            let page = client
                .list_objects_v2()
                .bucket(&self.inner.bucket)
                .prefix(&full)
                .max_keys(DELETE_BATCH as i32)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| convert("list", &full, e))?;
            let keys = page
                .contents()
                .iter()
                .filter_map(|o| o.key())
                .filter_map(|k| ObjectIdentifier::builder().key(k).build().ok())
                .collect::<Vec<_>>();
            for chunk in keys.chunks(DELETE_BATCH) {
                removed += self.delete_batch(chunk.to_vec()).await?;
            }
            match page.next_continuation_token() {
                Some(t) if page.is_truncated() == Some(true) && !t.is_empty() => {
                    token = Some(t.to_owned())
                }
                _ => break,
            }
        }
        Ok(removed)
    }

    async fn incr(&self, _key: &str, _by: i64, _ttl: Option<Duration>) -> Result<i64> {
        Err(Error::unsupported("incr", NAME))
    }

    async fn acquire_lock(&self, key: &str, token: &str, ttl: Duration) -> Result<bool> {
        self.create(key, token.as_bytes().to_vec(), Some(ttl), Kind::Lock)
            .await
    }

    async fn release_lock(&self, key: &str, token: &str) -> Result<bool> {
        let Some((head, body, len)) = self.fetch(key).await? else {
            return Ok(false);
        };
        if head.kind != Kind::Lock || !head.live(unix_millis()) {
            return Ok(false);
        }
        if self.read(key, body, len).await? != token.as_bytes() {
            return Ok(false);
        }
        self.remove(key, head.etag.as_deref()).await
    }

    async fn ping(&self) -> Result<()> {
        let client = self.client().await?;
        client
            .head_bucket()
            .bucket(&self.inner.bucket)
            .send()
            .await
            .map_err(|e| convert("head bucket", &self.inner.bucket, e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_parses_and_bad_expiry_is_corrupt() {
        let m = metadata(Kind::Lock, Some(42), Some("w1"));
        let h = Head::parse(Some(&m), Some("\"e\""));
        assert_eq!(h.expires_at, Some(42));
        assert_eq!(h.kind, Kind::Lock);
        assert_eq!(h.writer.as_deref(), Some("w1"));
        assert!(h.live(41) && !h.live(42));
        assert!(h.check("k").is_ok());
        let never = Head::parse(None, None);
        assert!(never.live(u64::MAX) && never.kind == Kind::Value);
        let mut bad = m.clone();
        bad.insert(META_EXPIRES.into(), "soon".into());
        let b = Head::parse(Some(&bad), None);
        assert!(!b.live(0), "not a live entry");
        assert!(matches!(b.check("k"), Err(Error::Corrupt(_))));
    }

    #[test]
    fn lifecycle_rule_is_added_once_and_others_are_kept() {
        let other = LifecycleRule::builder()
            .id("logs")
            .status(ExpirationStatus::Enabled)
            .filter(LifecycleRuleFilter::builder().prefix("logs/").build())
            .expiration(LifecycleExpiration::builder().days(7).build())
            .build()
            .unwrap();
        let once = merge_lifecycle_rule(vec![other], "cache/", 30).unwrap();
        let twice = merge_lifecycle_rule(once, "cache/", 10).unwrap();
        let ids: Vec<_> = twice.iter().map(|r| r.id().unwrap_or("")).collect();
        assert_eq!(ids, ["logs", "steadycache:cache/"]);
        let ours = &twice[1];
        assert_eq!(ours.expiration().and_then(|e| e.days()), Some(10));
        assert_eq!(ours.filter().and_then(|f| f.prefix()), Some("cache/"));
        let long = "p".repeat(600);
        let r = merge_lifecycle_rule(Vec::new(), &long, 1).unwrap();
        assert!(r[0].id().is_some_and(|id| id.len() <= 255));
    }
}
