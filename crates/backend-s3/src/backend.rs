//! [`S3Backend`]: the [`Backend`] contract on objects in one bucket.
//!
//! Beside it: `client` makes the SDK client, `meta` reads and writes the object metadata
//! (expiry, kind, writer), `conditional` does the conditional creates and takeovers of
//! `set_if_absent` and the locks, `lifecycle` installs the bucket's cleanup rule.

mod client;
mod conditional;
mod lifecycle;
mod meta;

use crate::config::S3Config;
use crate::error::{convert, is_not_found, is_precondition_failed, status, NAME};
use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use aws_sdk_s3::Client;
use bytes::Bytes;
use client::{build_client, ensure_bucket};
use conditional::{Cond, Put, CREATE_ATTEMPTS};
use meta::{metadata, Head, Kind};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use steadycache_api::plumbing::{check_ttl, deadline, unix_millis};
use steadycache_api::{Backend, Capabilities, Error, Result};
use tokio::sync::OnceCell;

/// Objects per `DeleteObjects` call (the S3 maximum).
const DELETE_BATCH: usize = 1000;
/// Largest body size trusted from `Content-Length` for preallocation (bigger ones grow).
const MAX_PREALLOC: usize = 256 << 20;

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
/// | `delete` | `HeadObject` (was a live entry there?), then `DeleteObject` with `If-Match: <its ETag>` (of two racing deletes only one reports `true`); after a few lost races, a plain `DeleteObject` |
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
