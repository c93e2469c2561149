//! Conditional writes: creates with `If-None-Match: *`, takeovers of an expired or unreadable
//! object with `If-Match: <its ETag>`, the writer id each create stamps on its object, and the
//! read-back that confirms a write won (see [Locks](S3Backend#locks)).

use super::meta::{lock_body, metadata, Kind};
use super::S3Backend;
use crate::error::{convert, is_conflict, is_precondition_failed};
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use std::collections::HashMap;
use std::time::Duration;
use steadycache_api::plumbing::{check_ttl, deadline};
use steadycache_api::Result;

/// Attempts of a conditional create that keeps meeting a vanished object or a 409.
pub(crate) const CREATE_ATTEMPTS: usize = 4;

/// The condition of a write.
pub(crate) enum Cond {
    None,
    /// `If-None-Match: *`: only if no object exists.
    Absent,
    /// `If-Match: <etag>`: only if the object is still this version.
    Version(String),
}

/// How a conditional write ended.
pub(crate) enum Put {
    Written,
    /// 412: the condition did not hold.
    Refused,
    /// 409: another conditional write of the key was in flight.
    Conflict,
}

/// A fresh random id for one conditional write, stored in the object's metadata (and, for a
/// lock, in its body: see [`lock_body`]).
pub(crate) fn writer_id() -> String {
    format!("{:016x}", fastrand::u64(..))
}

impl S3Backend {
    /// Write `key`'s object with `meta`, under `cond`.
    pub(crate) async fn put(
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
        match req.customize().interceptor(self.probe()).send().await {
            Ok(_) => Ok(Put::Written),
            Err(e) if is_precondition_failed(&e) => Ok(Put::Refused),
            Err(e) if is_conflict(&e) => Ok(Put::Conflict),
            Err(e) => Err(convert("put", key, e)),
        }
    }

    /// Whether the conditional write `writer` made is the object now (see [Locks](S3Backend#locks)).
    pub(crate) async fn confirm(&self, key: &str, writer: &str) -> Result<bool> {
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
    /// call's write is the object now. For a lock, `body` is the token.
    pub(crate) async fn create(
        &self,
        key: &str,
        body: Vec<u8>,
        ttl: Option<Duration>,
        kind: Kind,
    ) -> Result<bool> {
        check_ttl(ttl)?;
        let writer = writer_id();
        let body = match kind {
            Kind::Lock => Bytes::from(lock_body(&body, &writer)),
            Kind::Value => Bytes::from(body),
        };
        for _ in 0..CREATE_ATTEMPTS {
            let meta = metadata(kind, deadline(self.write_now().await, ttl), Some(&writer));
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
            if head.live(self.now()) {
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
}
