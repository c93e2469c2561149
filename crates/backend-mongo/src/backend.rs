//! [`MongoBackend`]: the [`Backend`] contract on one MongoDB collection.

use crate::clock::{ServerClock, SKEW_MARGIN};
use crate::config::MongoConfig;
use crate::error::{convert, is_duplicate_key, NAME};
use async_trait::async_trait;
use mongodb::bson::{doc, spec::BinarySubtype, Binary, Bson, DateTime, Document};
use mongodb::options::{ClientOptions, IndexOptions, ReturnDocument};
use mongodb::{Client, Collection, IndexModel};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use steadycache_api::plumbing::redact_url;
use steadycache_api::plumbing::{check_ttl, deadline_i64};
use steadycache_api::{Backend, Capabilities, Entry, Error, Result};
use tokio::sync::OnceCell;

const KIND_VALUE: i32 = 0;
const KIND_COUNTER: i32 = 1;
const KIND_LOCK: i32 = 2;
/// `exp` of an entry that never expires.
const NEVER: i64 = i64::MAX;
/// Attempts of an `incr` racing other creators of the same counter.
const INCR_ATTEMPTS: usize = 8;

enum Source {
    Config(MongoConfig),
    Given(Collection<Document>),
}

struct Inner {
    source: Source,
    coll: OnceCell<Collection<Document>>,
    /// The server's clock, estimated.
    clock: ServerClock,
}

/// A steadycache backend on a MongoDB collection: every process and machine that reaches the
/// database shares one cache.
///
/// # Documents
/// One document per entry, `_id` = the key:
///
/// ```text
/// { _id: "ns:v:3f2a…",                 // the key
///   v: BinData(0, …),                   // the value (the engine's envelope)
///   kind: 0,                            // 0 value, 1 counter (`incr`), 2 lock
///   exp: NumberLong(1763900060000),     // hard expiry, ms since the Unix epoch by the server's
///                                       // clock (see Clocks); i64::MAX = never
///   dates: { created_at: ISODate(…), stale_at: ISODate(…), expires_at: ISODate(…) },
///   n: NumberLong(5),                   // counters only
///   token: "…" }                        // locks only
/// ```
///
/// `exp` decides liveness, in every read and in every conditional write, so an entry the TTL
/// monitor has not removed yet (it runs once a minute) is never served. `dates` holds the same
/// instants as BSON dates for people and for the TTL index on `dates.expires_at`
/// (`expireAfterSeconds: 0`, created idempotently on first use), which removes expired
/// documents in the background (by the server's clock, the clock `exp` is in). The dates sit
/// in a sub-document because the MongoDB-wire test server (nx-27017) stores a top-level date
/// written by `$set` on an existing document as a string, and a date set by a dotted path
/// (`dates.expires_at`) too; a whole sub-document's dates survive, and on a real MongoDB every
/// form works. For a lock, `created_at` is when its lease was last taken or renewed.
///
/// # Operations
/// `now` below is the server's clock as this client estimates it (see [Clocks](#clocks)).
///
/// | operation | MongoDB |
/// |---|---|
/// | `get` | `find_one({_id})`, checked against `exp`; one expired by more than [`SKEW_MARGIN`] is deleted: `delete_one({_id, exp: {$lte: now - margin}})` (one expired by less is a miss, and kept) |
/// | `set` | `update_one({_id}, {$set: …}, upsert)` |
/// | `set_if_absent`, `acquire_lock` | `insert_one`; on a duplicate key (11000), take over only an expired document: `update_one({_id, exp: {$lte: now}}, {$set: …})` — atomic, one winner |
/// | `extend_lock` | `update_one({_id, kind: lock, token, exp: {$gt: now}}, {$set: {exp: now + ttl, dates: …}})`, renewed if `matched_count == 1` — the check and the renewal are one atomic write, so an expired lease is never revived after another holder took it |
/// | `release_lock` | `delete_one({_id, kind: lock, token, exp: {$gt: now}})` |
/// | `incr` | `find_one_and_update({_id, kind: counter, exp: {$gt: now}}, {$inc: {n}})`, else create it as `set_if_absent` does (the ttl applies from creation) |
/// | `delete` | `delete_one({_id, exp: {$gt: now}})` (it counts only a live entry), then any expired leftover |
/// | `delete_matching` | the `_id` range of the pattern's literal prefix, read (ids only) and matched in process, then `delete_many({_id: {$in: [...]}})` by 1,000; entries only |
/// | `delete_prefix` | `delete_many({_id: {$gte: prefix, $lt: successor}, exp: …})` on the `_id` index (no regex); only documents with an `exp` (cache entries) are removed, so a collection shared with other data keeps it |
///
/// Upserts use `update_one` with `$set` rather than `replace_one`, and no write relies on
/// `find_one_and_update` with upsert: both behave differently on nx-27017 (it drops `_id` from a
/// `replace_one` upsert and hides errors of an upserting findAndModify), and `update_one` is
/// plain MongoDB semantics.
///
/// # Clocks
/// Expiry is judged by one clock, the server's, not by the wall clock of each machine that
/// shares the collection: a machine whose clock ran ahead would otherwise take over others'
/// live locks and entries and delete their live entries on read, and one running behind would
/// write expiries already past for everyone else. Every `exp` is written as the server's time
/// plus the ttl, and every filter and check above compares with the server's time.
///
/// The server's time comes from the `localTime` field of the `hello` command's reply
/// (`isMaster` on servers that do not know `hello`): each client keeps the offset between the
/// server's clock and its own, read when it first needs the time (concurrent first callers wait
/// for that one reading) and again every 30 s (by one caller; the others go on with the
/// estimate), and uses `its own clock + offset`. A reading bounds the offset to within one
/// round trip; the estimate starts at zero (a machine in step with the server keeps its own
/// clock) and moves only when a reading contradicts it, to the nearest bound. So the server's
/// time is known to within a round trip (and what the machine's clock drifts in 30 s). A step
/// of the machine's clock (NTP correcting it) is caught at the next reading, at most 30 s
/// later; until then the estimate is off by the step.
///
/// Why not `$$NOW`: MongoDB's own variable for the server's time, in `$expr` filters and in
/// update pipelines, would compare inside the server with no estimate at all. The test server
/// (nx-27017 0.8.1) supports neither (`$$NOW` evaluates to null, and an update given as a
/// pipeline is refused), and one code path for it and for MongoDB is worth more than the
/// round trip of precision. What this leaves: the comparisons are made with the client's
/// estimate, written into ordinary filters, so two clients whose estimates differ by a few
/// milliseconds can disagree, for those milliseconds, on whether an entry has expired. Reads
/// delete only entries expired by more than [`SKEW_MARGIN`], so this never deletes a live
/// entry; a lock can be taken over at most that few milliseconds early. Tests simulate a
/// machine whose clock differs with [`MongoConfig::with_clock_skew`].
///
/// # Connections
/// The client is made on first use, on steadycache's own runtime (its pool and monitor tasks
/// then outlive any caller's runtime), and shared by every clone. An operation while the
/// database is unreachable fails with [`Error::Unavailable`] after `server_selection_timeout`
/// (2 s by default); the engine then fails open.
#[derive(Clone)]
pub struct MongoBackend {
    inner: Arc<Inner>,
}

impl fmt::Debug for MongoBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("MongoBackend");
        match &self.inner.source {
            Source::Config(c) => d.field("config", c),
            Source::Given(c) => d.field("collection", &c.namespace().to_string()),
        };
        d.field("connected", &self.inner.coll.initialized())
            .finish()
    }
}

/// An integer field, Int32 or Int64 (servers may narrow small Int64 values).
pub(crate) fn int(d: &Document, field: &str) -> Option<i64> {
    match d.get(field)? {
        Bson::Int64(v) => Some(*v),
        Bson::Int32(v) => Some(i64::from(*v)),
        _ => None,
    }
}

/// The fields of an entry (all but `_id`).
fn fields(value: &[u8], kind: i32, exp: i64, now: i64) -> Document {
    let mut dates = doc! { "created_at": DateTime::from_millis(now) };
    if exp != NEVER {
        dates.insert("expires_at", DateTime::from_millis(exp));
    }
    if let Ok(entry) = Entry::decode(value) {
        if entry.stale_at != u64::MAX {
            let stale = i64::try_from(entry.stale_at).unwrap_or(NEVER);
            dates.insert("stale_at", DateTime::from_millis(stale));
        }
    }
    doc! {
        "v": Binary { subtype: BinarySubtype::Generic, bytes: value.to_vec() },
        "kind": kind,
        "exp": exp,
        "dates": dates,
    }
}

/// The smallest string above every string that starts with `prefix` (MongoDB compares strings
/// by their UTF-8 bytes, which order like their code points): the last character that can be
/// incremented, incremented; `None` when there is none.
pub(crate) fn successor(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match u32::from(last) + 1 {
            0xD800 => Some('\u{E000}'),
            n => char::from_u32(n),
        };
        if let Some(c) = next {
            chars.push(c);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

impl MongoBackend {
    /// A backend for `config`; connects on first use.
    pub fn open(config: MongoConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self::with_source(Source::Config(config)))
    }

    /// [`MongoConfig::from_url`], then [`open`](MongoBackend::open).
    pub fn from_url(url: &str) -> Result<Self> {
        Self::open(MongoConfig::from_url(url)?)
    }

    /// A backend on a collection the application already has (its own client, credentials and
    /// options), as cachier's `mongetter` does. The TTL index is created on first use.
    pub fn from_collection(collection: Collection<Document>) -> Self {
        Self::with_source(Source::Given(collection))
    }

    fn with_source(source: Source) -> Self {
        let skew_ms = match &source {
            Source::Config(c) => c.clock_skew_ms,
            Source::Given(_) => 0,
        };
        MongoBackend {
            inner: Arc::new(Inner {
                source,
                coll: OnceCell::new(),
                clock: ServerClock::new(skew_ms),
            }),
        }
    }

    /// The server's clock as estimated, ms since the Unix epoch (see
    /// [Clocks](MongoBackend#clocks)).
    pub(crate) async fn now(&self, coll: &Collection<Document>) -> Result<i64> {
        self.inner.clock.now(coll).await
    }

    /// The collection (connecting first if needed): for reading entries with the driver.
    pub async fn collection(&self) -> Result<Collection<Document>> {
        let inner = &self.inner;
        let coll = inner
            .coll
            .get_or_try_init(|| async {
                let coll = match &inner.source {
                    Source::Given(c) => c.clone(),
                    Source::Config(cfg) => connect(cfg.clone()).await?,
                };
                ensure_ttl_index(&coll).await;
                Ok::<_, Error>(coll)
            })
            .await?;
        Ok(coll.clone())
    }

    async fn take_if_absent_or_expired(&self, key: &str, set: Document, now: i64) -> Result<bool> {
        let coll = self.collection().await?;
        let mut insert = set.clone();
        insert.insert("_id", key);
        match coll.insert_one(insert).await {
            Ok(_) => Ok(true),
            Err(e) if is_duplicate_key(&e) => {
                let r = coll
                    .update_one(
                        doc! { "_id": key, "exp": { "$lte": now } },
                        doc! { "$set": set },
                    )
                    .await
                    .map_err(|e| convert("take over", e))?;
                Ok(r.matched_count == 1)
            }
            Err(e) => Err(convert("insert", e)),
        }
    }
}

/// Make the client on the library runtime and return the collection.
async fn connect(cfg: MongoConfig) -> Result<Collection<Document>> {
    let rt = steadycache_api::plumbing::library_runtime()?;
    let made = rt
        .spawn(async move {
            let mut opts = ClientOptions::parse(&cfg.uri).await.map_err(|e| {
                Error::Config(format!("mongodb url `{}`: {e}", redact_url(&cfg.uri)))
            })?;
            opts.server_selection_timeout = Some(cfg.server_selection_timeout);
            opts.connect_timeout = Some(cfg.connect_timeout);
            if opts.app_name.is_none() {
                opts.app_name = Some("steadycache".into());
            }
            let client = Client::with_options(opts).map_err(|e| convert("client", e))?;
            Ok::<_, Error>(
                client
                    .database(&cfg.database)
                    .collection::<Document>(&cfg.collection),
            )
        })
        .await;
    made.map_err(|e| Error::unavailable(NAME, format!("connecting failed: {e}")))?
}

/// The TTL index on `dates.expires_at` (idempotent). A failure (no privilege, say) is logged:
/// reads check `exp` anyway, so only the background cleanup is lost.
async fn ensure_ttl_index(coll: &Collection<Document>) {
    let model = IndexModel::builder()
        .keys(doc! { "dates.expires_at": 1 })
        .options(
            IndexOptions::builder()
                .expire_after(Duration::ZERO)
                .name("steadycache_ttl".to_owned())
                .build(),
        )
        .build();
    if let Err(e) = coll.create_index(model).await {
        tracing::warn!(collection = %coll.namespace(), error = %e, "mongodb: cannot create the TTL index; expired entries stay until read or deleted");
    }
}

#[async_trait]
impl Backend for MongoBackend {
    fn name(&self) -> &str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::all().with_pubsub(false).with_tracking(false)
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let coll = self.collection().await?;
        let Some(d) = coll
            .find_one(doc! { "_id": key })
            .await
            .map_err(|e| convert("find_one", e))?
        else {
            return Ok(None);
        };
        let now = self.now(&coll).await?;
        let Some(exp) = int(&d, "exp") else {
            return Err(Error::Corrupt(format!(
                "mongodb document `{key}` has no expiry field: not a steadycache entry"
            )));
        };
        if exp <= now {
            // Deleted only when expired beyond the margin: within it, the writer's estimate of
            // the server's clock may still see it live.
            let margin = i64::try_from(SKEW_MARGIN.as_millis()).unwrap_or(i64::MAX);
            let long_ago = now.saturating_sub(margin);
            if exp <= long_ago {
                if let Err(e) = coll
                    .delete_one(doc! { "_id": key, "exp": { "$lte": long_ago } })
                    .await
                {
                    tracing::debug!(key, error = %e, "mongodb: lazy delete of an expired entry failed");
                }
            }
            return Ok(None);
        }
        match int(&d, "kind") {
            Some(k) if k == i64::from(KIND_COUNTER) => match int(&d, "n") {
                Some(n) => Ok(Some(n.to_string().into_bytes())),
                None => Err(Error::Corrupt(format!(
                    "mongodb counter `{key}` has no count"
                ))),
            },
            _ => match d.get_binary_generic("v") {
                Ok(v) => Ok(Some(v.clone())),
                Err(_) => Err(Error::Corrupt(format!(
                    "mongodb document `{key}` holds no binary value"
                ))),
            },
        }
    }

    async fn set(&self, key: &str, value: Vec<u8>, ttl: Option<Duration>) -> Result<()> {
        check_ttl(ttl)?;
        let coll = self.collection().await?;
        let now = self.now(&coll).await?;
        let update = doc! { "$set": fields(&value, KIND_VALUE, deadline_i64(now, ttl).unwrap_or(NEVER), now) };
        let upsert = || async {
            coll.update_one(doc! { "_id": key }, update.clone())
                .upsert(true)
                .await
        };
        match upsert().await {
            Ok(_) => Ok(()),
            // Two first writers of one key: the loser's upsert collides; the document exists now.
            Err(e) if is_duplicate_key(&e) => upsert()
                .await
                .map(|_| ())
                .map_err(|e| convert("update_one", e)),
            Err(e) => Err(convert("update_one", e)),
        }
    }

    async fn set_if_absent(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> Result<bool> {
        check_ttl(ttl)?;
        let coll = self.collection().await?;
        let now = self.now(&coll).await?;
        let set = fields(
            &value,
            KIND_VALUE,
            deadline_i64(now, ttl).unwrap_or(NEVER),
            now,
        );
        self.take_if_absent_or_expired(key, set, now).await
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        let coll = self.collection().await?;
        let now = self.now(&coll).await?;
        let live = coll
            .delete_one(doc! { "_id": key, "exp": { "$gt": now } })
            .await
            .map_err(|e| convert("delete_one", e))?
            .deleted_count
            == 1;
        if !live {
            coll.delete_one(doc! { "_id": key })
                .await
                .map_err(|e| convert("delete_one", e))?;
        }
        Ok(live)
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64> {
        let coll = self.collection().await?;
        let now = self.now(&coll).await?;
        let range = match successor(prefix) {
            Some(end) => doc! { "_id": { "$gte": prefix, "$lt": end } },
            None if prefix.is_empty() => Document::new(),
            None => doc! { "_id": { "$gte": prefix } },
        };
        let mut live = range.clone();
        live.insert("exp", doc! { "$gt": now });
        let removed = coll
            .delete_many(live)
            .await
            .map_err(|e| convert("delete_many", e))?
            .deleted_count;
        // Expired entries left in the range go too, uncounted. Only documents with an `exp` are
        // touched: a collection the application shares with other data keeps that data.
        let mut expired = range;
        expired.insert("exp", doc! { "$lte": now });
        coll.delete_many(expired)
            .await
            .map_err(|e| convert("delete_many", e))?;
        Ok(removed)
    }

    async fn list_keys(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<steadycache_api::KeyPage> {
        self.list_ids(prefix, cursor, limit).await
    }

    async fn delete_matching(&self, pattern: &steadycache_api::Glob) -> Result<u64> {
        self.delete_matching_scan(pattern).await
    }

    async fn incr(&self, key: &str, by: i64, ttl: Option<Duration>) -> Result<i64> {
        check_ttl(ttl)?;
        let coll = self.collection().await?;
        for _ in 0..INCR_ATTEMPTS {
            let now = self.now(&coll).await?;
            let live_counter = doc! { "_id": key, "kind": KIND_COUNTER, "exp": { "$gt": now } };
            let updated = coll
                .find_one_and_update(live_counter, doc! { "$inc": { "n": by } })
                .return_document(ReturnDocument::After)
                .await
                .map_err(|e| convert("find_one_and_update", e))?;
            if let Some(d) = updated {
                return int(&d, "n").ok_or_else(|| {
                    Error::Corrupt(format!("mongodb counter `{key}` has no count"))
                });
            }
            // Absent, expired, or not a counter.
            if let Some(d) = coll
                .find_one(doc! { "_id": key })
                .await
                .map_err(|e| convert("find_one", e))?
            {
                let live = int(&d, "exp").is_some_and(|exp| exp > now);
                if live && int(&d, "kind") != Some(i64::from(KIND_COUNTER)) {
                    return Err(Error::backend(
                        NAME,
                        format!("`{key}` does not hold an integer"),
                    ));
                }
            }
            let mut set = fields(
                b"",
                KIND_COUNTER,
                deadline_i64(now, ttl).unwrap_or(NEVER),
                now,
            );
            set.insert("n", by);
            if self.take_if_absent_or_expired(key, set, now).await? {
                return Ok(by);
            }
            // Someone else created it meanwhile: increment theirs.
        }
        Err(Error::unavailable(
            NAME,
            format!("incr of `{key}` kept racing other writers"),
        ))
    }

    async fn acquire_lock(&self, key: &str, token: &str, ttl: Duration) -> Result<bool> {
        check_ttl(Some(ttl))?;
        let coll = self.collection().await?;
        let now = self.now(&coll).await?;
        let mut set = fields(
            token.as_bytes(),
            KIND_LOCK,
            deadline_i64(now, Some(ttl)).unwrap_or(NEVER),
            now,
        );
        set.insert("token", token);
        self.take_if_absent_or_expired(key, set, now).await
    }

    async fn release_lock(&self, key: &str, token: &str) -> Result<bool> {
        let coll = self.collection().await?;
        let now = self.now(&coll).await?;
        let filter = doc! {
            "_id": key,
            "kind": KIND_LOCK,
            "token": token,
            "exp": { "$gt": now },
        };
        let r = coll
            .delete_one(filter)
            .await
            .map_err(|e| convert("delete_one", e))?;
        Ok(r.deleted_count == 1)
    }

    async fn extend_lock(&self, key: &str, token: &str, ttl: Duration) -> Result<bool> {
        check_ttl(Some(ttl))?;
        let coll = self.collection().await?;
        let now = self.now(&coll).await?;
        let exp = deadline_i64(now, Some(ttl)).unwrap_or(NEVER);
        // One conditional update: the check (our token, still live) and the renewal together.
        // `dates` is set whole: nx-27017 stores a date set by a dotted path as a string.
        let filter = doc! {
            "_id": key,
            "kind": KIND_LOCK,
            "token": token,
            "exp": { "$gt": now },
        };
        let update = doc! { "$set": {
            "exp": exp,
            "dates": { "created_at": DateTime::from_millis(now), "expires_at": DateTime::from_millis(exp) },
        } };
        let r = coll
            .update_one(filter, update)
            .await
            .map_err(|e| convert("extend", e))?;
        Ok(r.matched_count == 1)
    }

    async fn ping(&self) -> Result<()> {
        let coll = self.collection().await?;
        coll.client()
            .database(&coll.namespace().db)
            .run_command(doc! { "ping": 1 })
            .await
            .map_err(|e| convert("ping", e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn successors() {
        assert_eq!(successor("ns:").as_deref(), Some("ns;"));
        assert_eq!(successor("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(successor("\u{D7FF}").as_deref(), Some("\u{E000}"));
        assert_eq!(successor(""), None);
        assert_eq!(successor("\u{10FFFF}"), None);
    }
}
