//! Renewing and releasing a lock: read the lock (its body holds the token), check that the
//! caller holds it and that it is live, then write or delete conditionally on the version read
//! (`If-Match: <ETag>`). Nothing here ever deletes or overwrites a lock unconditionally.

use super::conditional::{writer_id, Cond, Put, CREATE_ATTEMPTS};
use super::meta::{lock_body, lock_token, metadata, Head, Kind};
use super::remove::Removal;
use super::S3Backend;
use crate::error::NAME;
use bytes::Bytes;
use std::time::Duration;
use steadycache_api::plumbing::{check_ttl, deadline};
use steadycache_api::{Error, Result};

/// The pause before looking again after a 409 (another conditional write in flight).
const CONFLICT_PAUSE: Duration = Duration::from_millis(20);

fn no_etag(key: &str) -> Error {
    Error::backend(
        NAME,
        format!("lock `{key}`: the store sent no ETag, so it cannot be changed conditionally"),
    )
}

impl S3Backend {
    /// The metadata of the lock `key` if `token` holds it and it is live; `None` otherwise (no
    /// object, not a lock, expired, another token).
    async fn held_by(&self, key: &str, token: &str) -> Result<Option<Head>> {
        let Some((head, body, len)) = self.fetch(key).await? else {
            return Ok(None);
        };
        if head.kind != Kind::Lock || !head.live(self.now()) {
            return Ok(None);
        }
        let body = self.read(key, body, len).await?;
        Ok((lock_token(&body) == token.as_bytes()).then_some(head))
    }

    /// Whether the object under `key` is now the write `writer` made (the answer to an
    /// `If-Match` write was 412, but it may have been the SDK's retry of our own landed write).
    async fn written_by(&self, key: &str, writer: &str) -> Result<bool> {
        Ok(self
            .head(key)
            .await?
            .is_some_and(|h| h.writer.as_deref() == Some(writer)))
    }

    /// `extend_lock`: rewrite the lock with a new expiry, `If-Match` the version that was read
    /// live and ours. A 412 means another write came in between (a takeover after it expired, a
    /// release): the lease is lost, `false`. The write is confirmed like a create (see
    /// [Locks](S3Backend#locks)).
    pub(crate) async fn extend(&self, key: &str, token: &str, ttl: Duration) -> Result<bool> {
        check_ttl(Some(ttl))?;
        for _ in 0..CREATE_ATTEMPTS {
            let Some(head) = self.held_by(key, token).await? else {
                return Ok(false);
            };
            let etag = head.etag.ok_or_else(|| no_etag(key))?;
            let writer = writer_id();
            let meta = metadata(
                Kind::Lock,
                deadline(self.write_now().await, Some(ttl)),
                Some(&writer),
            );
            let body = Bytes::from(lock_body(token.as_bytes(), &writer));
            match self.put(key, body, meta, Cond::Version(etag)).await? {
                Put::Written => return self.confirm(key, &writer).await,
                Put::Refused => return self.written_by(key, &writer).await,
                Put::Conflict => tokio::time::sleep(CONFLICT_PAUSE).await,
            }
        }
        Err(Error::unavailable(
            NAME,
            format!("extend_lock of `{key}` kept meeting other writes in flight"),
        ))
    }

    /// `release_lock`: delete the lock `If-Match` the version that was read live and ours. Only
    /// ever conditional: when the version changed in between (412) it is read again, and
    /// released only if it is still ours; after [`CREATE_ATTEMPTS`] such rounds the release
    /// gives up with a transient error and the lock expires by its ttl. A store without
    /// conditional deletes (501) gets the lock overwritten in place, `If-Match` the same
    /// version, by an expired one, which the next taker takes over.
    pub(crate) async fn release(&self, key: &str, token: &str) -> Result<bool> {
        for _ in 0..CREATE_ATTEMPTS {
            let Some(head) = self.held_by(key, token).await? else {
                return Ok(false);
            };
            let etag = head.etag.ok_or_else(|| no_etag(key))?;
            match self.remove_if(key, &etag).await? {
                Removal::Removed => return Ok(true),
                Removal::Refused => {}
                Removal::Conflict => tokio::time::sleep(CONFLICT_PAUSE).await,
                Removal::Unsupported => {
                    let writer = writer_id();
                    let meta = metadata(Kind::Lock, Some(0), Some(&writer));
                    let body = Bytes::from(lock_body(token.as_bytes(), &writer));
                    match self.put(key, body, meta, Cond::Version(etag)).await? {
                        Put::Written => return Ok(true),
                        Put::Refused if self.written_by(key, &writer).await? => return Ok(true),
                        Put::Refused => {}
                        Put::Conflict => tokio::time::sleep(CONFLICT_PAUSE).await,
                    }
                }
            }
        }
        Err(Error::unavailable(
            NAME,
            format!(
                "release_lock of `{key}`: the lock kept changing under the conditional delete; \
                 it was left to expire"
            ),
        ))
    }
}
