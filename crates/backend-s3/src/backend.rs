//! [`S3Backend`]: the [`Backend`] contract on objects in one bucket.
//!
//! Beside it: `client` makes the SDK client, `clock` estimates the store's clock from the
//! `Date` of its answers, `body` reads object bodies, `meta` reads and writes the object
//! metadata (expiry, kind, writer) and lock bodies, `conditional` does the conditional creates
//! and takeovers of `set_if_absent` and the locks, `locks` renews and releases locks, `remove`
//! does the (conditional) deletes, `lifecycle` installs the bucket's cleanup rule.

mod body;
mod client;
mod clock;
mod conditional;
mod lifecycle;
mod listing;
mod locks;
mod meta;
mod remove;

use crate::config::S3Config;
use crate::error::{convert, is_not_found, NAME};
use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ObjectIdentifier;
use aws_sdk_s3::Client;
use bytes::Bytes;
use client::{build_client, ensure_bucket};
pub use clock::SKEW_MARGIN;
use conditional::{Cond, Put, CREATE_ATTEMPTS};
use meta::{metadata, Head, Kind};
use remove::Removal;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use steadycache_api::plumbing::StoreClock;
use steadycache_api::plumbing::{check_ttl, deadline};
use steadycache_api::{Backend, Capabilities, Error, Result};
use tokio::sync::OnceCell;

/// Objects per `DeleteObjects` call (the S3 maximum).
const DELETE_BATCH: usize = 1000;

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
    /// The store's clock, estimated from its answers.
    clock: Arc<StoreClock>,
    /// When a write last asked for the store's clock, none known yet (see `write_now`).
    clock_asked: tokio::sync::Mutex<Option<std::time::Instant>>,
}

/// A steadycache backend on an S3 bucket (AWS, or any S3-compatible store): every process and
/// machine that reaches the bucket shares one cache. The cheapest shared store for large,
/// rarely-changing results: model outputs, reports, dataset extracts.
///
/// # Objects
/// One object per entry, named `prefix + key`, so an S3 console or `aws s3 ls` shows what is
/// cached. The body is the value (the engine's envelope) as is; a lock's body is the holder's
/// token, a newline and the writer id below (so every write of a lock has an ETag of its own:
/// S3's ETag of a plain `PutObject` is the MD5 of the body). The metadata says:
///
/// | `x-amz-meta-…` | |
/// |---|---|
/// | `steadycache-expires-at` | hard expiry, ms since the Unix epoch by the store's clock (see [Clocks](#clocks)); absent: never |
/// | `steadycache-kind` | `value` or `lock` |
/// | `steadycache-writer` | random id of the conditional write that made it (set-if-absent, locks) |
///
/// S3 does not expire objects by metadata, so every read checks it: an expired object is a
/// miss. A read deletes it only once it is expired by more than [`SKEW_MARGIN`] (2 s), and
/// then only `If-Match` its ETag, so a newer write is never removed by a store that honours
/// the condition (a store without conditional deletes leaves it alone). For eventual cleanup
/// of entries nobody reads again, install a bucket lifecycle rule once with
/// [`install_lifecycle_rule`](S3Backend::install_lifecycle_rule).
///
/// # Operations
/// | operation | S3 |
/// |---|---|
/// | `get` | `GetObject`, metadata checked against the store's clock; the body is read straight into one buffer of its `Content-Length`; an object expired by more than [`SKEW_MARGIN`] is deleted (`DeleteObject` with `If-Match: <its ETag>`) |
/// | `set` | `PutObject` with the metadata |
/// | `set_if_absent`, `acquire_lock` | `PutObject` with `If-None-Match: *` (412 = taken); a leftover expired by the store's clock is taken over with `If-Match: <its ETag>`; a won write is read back (see [Locks](#locks)) |
/// | `extend_lock` | `GetObject` (a live lock whose body holds the token?), then `PutObject` of the lock with the new expiry and `If-Match: <its ETag>`: 412 = another write came in between (a takeover, a release), the lease is lost, `false`; a won write is read back like a create |
/// | `release_lock` | `GetObject` (a live lock whose body holds the token?), then `DeleteObject` with `If-Match: <its ETag>`. On 412 the lock is read again and released only if still ours; after 4 such rounds a transient error (the lock expires by its ttl). Never a plain `DeleteObject`. A store without conditional deletes (501) gets the lock overwritten, `If-Match: <its ETag>`, by an expired one, which the next taker takes over |
/// | `delete` | `HeadObject` (was a live entry there?), then `DeleteObject` with `If-Match: <its ETag>` (of two racing deletes only one reports `true`); after a few lost races, or on a store without conditional deletes, a plain `DeleteObject`: the caller wants the key gone, whatever version is there |
/// | `delete_matching` | the listing of the pattern's literal prefix, matched key by key, then `DeleteObjects` by 1,000 |
/// | `delete_prefix` | `ListObjectsV2` by prefix, page by page, each page removed by one `DeleteObjects` (≤ 1,000 keys) |
/// | `incr` | not supported: S3 has no atomic increment ([`Error::Unsupported`]) |
/// | `ping` | `HeadBucket` |
///
/// `delete_prefix` counts the objects it removed, including expired ones not yet cleaned up
/// (a listing carries no metadata, and reading every object to tell would cost a request each).
///
/// # Locks
/// A lock is an object whose body holds the holder's token and whose metadata holds its expiry,
/// made by a conditional create, so a dead holder's lock is taken over once it expires. On AWS
/// S3 conditional writes are atomic: of many racing creators exactly one gets 200, the others
/// 412 (or 409 while the winner's write is in flight, which counts as lost too). A renewal
/// (`extend_lock`) and a release are conditional on the version of the lock they read: a
/// takeover that lands in between makes them fail (412) instead of reviving or removing the
/// new holder's lock. AWS S3 honours `If-Match` on `DeleteObject` (general purpose buckets
/// since September 2025).
///
/// Not every S3-compatible store makes them atomic: some check the condition, then write, so
/// two racing creators can both get 200 (the `s3s-fs` test server does this). So a won
/// conditional write (a create, a takeover, a renewal) is confirmed by reading the object's
/// metadata back: the write won only if the object now carries its own writer id. This costs
/// one `HeadObject` per won write (only on misses, before the function runs, and once per
/// renewal) and is on by default; turn it off with
/// [`S3Config::with_confirm_conditional_writes`] on a store known to be atomic.
///
/// What the read-back, with [`S3Config::with_confirm_delay`], guarantees, and what it does not:
///
/// * It reads the object `confirm_delay` after the write's 200 came back, and reports a win
///   only if the object is then this write. Of writers whose checks passed together, the one
///   whose write landed last keeps the object; every other one whose read comes after that
///   landing sees a foreign writer id and reports a loss.
/// * Without a delay (zero, the default) the read comes at once, and a writer that passed
///   the check at the same time but whose write lands after this read is not seen: both
///   report a win. With `confirm_delay` at least the longest time the store takes from
///   checking a condition to making the write visible, every write that passed the check
///   together with this one has landed before this read, so at most one of them reports a win.
///   Measured against plain `s3s-fs` with 50 ms, 16 takers starting 0 to 3 ms apart, 200
///   rounds each (`lock_race_rate` in the crate's tests): without the read-back 158 rounds of
///   taking a fresh lock and 131 of taking over an expired one had several winners; with it
///   and no delay, 0 and 3; with the 50 ms delay, 0 and 0. On a loaded machine it was not
///   enough: in the process tests (a dozen clients on two busy cores) writes landed more than
///   250 ms after their check, and two processes both took one lock. So the tests' own server
///   (`steadycache_s3::testing`, `tools/s3-server`) makes conditional writes atomic, as AWS S3
///   does, and the read-back is measured on plain `s3s-fs`.
/// * It is a bound, not a proof: a store whose writes sometimes take longer than the delay can
///   still give two winners. The loser in that case, whose write was overwritten, finds out at
///   its next renewal (412, or the token is not its own), within `lock_ttl / 3`, and its
///   lease is then lost; until then both compute.
/// * It says who holds the lock at the moment of the read, nothing about later: the lease
///   lasts as long as the ttl and the renewals keep it, and a holder stalled past its expiry
///   may lose it without knowing until its next renewal. Locks are not fencing tokens.
/// * It cannot help a store that ignores `If-None-Match`/`If-Match` on `PutObject` altogether:
///   every creator's write lands, carries its writer id, and wins. Such a store is not
///   supported; locks need conditional writes.
/// * It does not make a release conditional: `s3s-fs` 0.14.1 accepts `If-Match` on
///   `DeleteObject` and ignores it, so there a release removes whatever is there; only the
///   read before it (ours, live) is checked, and a takeover landing in the milliseconds
///   between that read and the delete would be removed. Stores that answer 501 instead are
///   handled without a plain delete (see the table).
///
/// A retried conditional write whose first attempt was stored (the answer was lost) is
/// refused by the retry; the object then carries this call's writer id, so it is still
/// reported as won.
///
/// # Clocks
/// Expiry is judged by one clock, the store's, not by the wall clock of each machine that
/// shares the bucket: a machine whose clock ran ahead would otherwise take over others' live
/// locks and entries and delete their live entries on read, and one running behind would write
/// expiries already past for everyone else. Every answer of the store carries a `Date` header;
/// each client keeps an estimate of the offset between the store's clock and its own from
/// those answers (all of them: 200, 404, 412, …), and writes expiries, and judges them (when a
/// read finds an entry expired, when a create takes over an expired leftover, when a renewal
/// or a release checks a lock is live), by `its own clock + offset`. Before its first write a
/// client asks (`HeadBucket`, at most 2 s; again after 5 s while no answer came) so its first
/// expiry is in the store's time too.
///
/// `Date` has whole seconds, so one answer puts the offset in an interval about a second wide.
/// The estimate starts at zero (a machine in step with the store keeps its own clock) and an
/// answer that contradicts it moves it to the nearest end of that answer's interval, no
/// further: it never jumps back and forth, and stays within about a second of the store's
/// clock. So a lock may be taken over, or an entry read as expired, up to that much early or
/// late by the store's clock. Reads delete only entries expired by more than
/// [`SKEW_MARGIN`], so such an error never deletes a live entry. Tests simulate a machine
/// whose clock differs with [`S3Config::with_clock_skew`].
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
                clock: Arc::new(StoreClock::new(config.clock_skew_ms)),
                clock_asked: tokio::sync::Mutex::new(None),
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
                clock: Arc::new(StoreClock::new(0)),
                clock_asked: tokio::sync::Mutex::new(None),
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

    /// List the objects under `prefix` (a key prefix) and delete those whose key `keep`
    /// accepts, by batches; the number removed.
    async fn delete_listed(
        &self,
        prefix: &str,
        keep: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<u64> {
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
                .filter(|k| k.strip_prefix(self.inner.prefix.as_str()).is_some_and(keep))
                .filter_map(|k| ObjectIdentifier::builder().key(k).build().ok())
                .collect::<Vec<_>>();
            for chunk in keys.chunks(DELETE_BATCH) {
                let n = self.delete_batch(chunk.to_vec()).await?;
                removed += n;
                steadycache_api::plumbing::BulkProgress::current().removed(n);
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

    /// The metadata of `key`'s object, if there is one.
    async fn head(&self, key: &str) -> Result<Option<Head>> {
        let client = self.client().await?;
        match client
            .head_object()
            .bucket(&self.inner.bucket)
            .key(self.object_key(key))
            .customize()
            .interceptor(self.probe())
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
            .customize()
            .interceptor(self.probe())
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
}

#[async_trait]
impl Backend for S3Backend {
    fn name(&self) -> &str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        let mut c = Capabilities::all().with_pubsub(false).with_tracking(false);
        c.incr = false;
        c
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let Some((head, body, len)) = self.fetch(key).await? else {
            return Ok(None);
        };
        head.check(key)?;
        let now = self.now();
        if !head.live(now) {
            drop(body);
            // Deleted only when expired beyond the margin: within it, the writer's clock may
            // still see it live.
            let margin = u64::try_from(SKEW_MARGIN.as_millis()).unwrap_or(u64::MAX);
            if head.expired_at_or_before(now.saturating_sub(margin)) {
                self.remove_expired(key, &head).await;
            }
            return Ok(None);
        }
        self.read(key, body, len).await.map(Some)
    }

    async fn set(&self, key: &str, value: Vec<u8>, ttl: Option<Duration>) -> Result<()> {
        check_ttl(ttl)?;
        let meta = metadata(Kind::Value, deadline(self.write_now().await, ttl), None);
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
            let entry = head.live(self.now()) || head.bad_expiry.is_some();
            let removal = match head.etag.as_deref() {
                Some(etag) => self.remove_if(key, etag).await?,
                None => Removal::Unsupported,
            };
            match removal {
                Removal::Removed => return Ok(entry),
                Removal::Refused => {}
                Removal::Conflict => tokio::time::sleep(Duration::from_millis(20)).await,
                // The caller wants the key gone, whatever version is there.
                Removal::Unsupported => {
                    self.remove_any(key).await?;
                    return Ok(entry);
                }
            }
        }
        // Still changing under us: remove whatever is there.
        self.remove_any(key).await?;
        Ok(true)
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64> {
        self.delete_listed(prefix, &|_| true).await
    }

    async fn delete_matching(&self, pattern: &steadycache_api::Glob) -> Result<u64> {
        let keep = |k: &str| pattern.matches(k);
        self.delete_listed(&pattern.literal_prefix(), &keep).await
    }

    async fn list_keys(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<steadycache_api::KeyPage> {
        self.list_page(prefix, cursor, limit).await
    }

    async fn incr(&self, _key: &str, _by: i64, _ttl: Option<Duration>) -> Result<i64> {
        Err(Error::unsupported("incr", NAME))
    }

    async fn acquire_lock(&self, key: &str, token: &str, ttl: Duration) -> Result<bool> {
        self.create(key, token.as_bytes().to_vec(), Some(ttl), Kind::Lock)
            .await
    }

    async fn release_lock(&self, key: &str, token: &str) -> Result<bool> {
        self.release(key, token).await
    }

    async fn extend_lock(&self, key: &str, token: &str, ttl: Duration) -> Result<bool> {
        self.extend(key, token, ttl).await
    }

    async fn ping(&self) -> Result<()> {
        let client = self.client().await?;
        client
            .head_bucket()
            .bucket(&self.inner.bucket)
            .customize()
            .interceptor(self.probe())
            .send()
            .await
            .map_err(|e| convert("head bucket", &self.inner.bucket, e))?;
        Ok(())
    }
}
