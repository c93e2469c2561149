//! Deleting objects: the conditional delete (`If-Match: <ETag>`) that every removal of a
//! version someone may have replaced goes through, the plain delete kept for `delete` alone, the
//! lazy delete of expired entries, and the batches of `delete_prefix`.

use super::meta::Head;
use super::S3Backend;
use crate::error::{convert, is_conflict, is_not_found, is_precondition_failed, status, NAME};
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use steadycache_api::{Error, Result};

/// How a conditional delete ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Removal {
    /// The object was that version, and is gone.
    Removed,
    /// 412 or 404: it is another version now, or gone already.
    Refused,
    /// 409: another conditional write of the key was in flight.
    Conflict,
    /// 501: the store does not implement conditional deletes. Nothing was deleted.
    Unsupported,
}

impl S3Backend {
    /// Delete `key`'s object only if it is still version `etag`. Never falls back to a plain
    /// delete: a store without conditional deletes answers [`Removal::Unsupported`], and the
    /// caller chooses.
    ///
    /// A store that accepts the `If-Match` header of `DeleteObject` but ignores it (`s3s-fs`
    /// 0.14.1 does) deletes whatever is there; see [Locks](S3Backend#locks).
    pub(crate) async fn remove_if(&self, key: &str, etag: &str) -> Result<Removal> {
        let client = self.client().await?;
        match client
            .delete_object()
            .bucket(&self.inner.bucket)
            .key(self.object_key(key))
            .if_match(etag)
            .customize()
            .interceptor(self.probe())
            .send()
            .await
        {
            Ok(_) => Ok(Removal::Removed),
            Err(e) if is_precondition_failed(&e) || is_not_found(&e) => Ok(Removal::Refused),
            Err(e) if is_conflict(&e) => Ok(Removal::Conflict),
            Err(e) if status(&e) == Some(501) => Ok(Removal::Unsupported),
            Err(e) => Err(convert("delete", key, e)),
        }
    }

    /// Delete `key`'s object, whatever version it is: for `delete` only, whose caller wants the
    /// key gone.
    pub(crate) async fn remove_any(&self, key: &str) -> Result<()> {
        let client = self.client().await?;
        client
            .delete_object()
            .bucket(&self.inner.bucket)
            .key(self.object_key(key))
            .customize()
            .interceptor(self.probe())
            .send()
            .await
            .map_err(|e| convert("delete", key, e))?;
        Ok(())
    }

    /// Remove an object found expired, only if it is still the version read (a newer write is
    /// never removed); on a store without conditional deletes it is left to the lifecycle rule.
    /// A failure only delays the cleanup.
    pub(crate) async fn remove_expired(&self, key: &str, head: &Head) {
        let Some(etag) = head.etag.as_deref() else {
            return;
        };
        match self.remove_if(key, etag).await {
            Ok(Removal::Removed | Removal::Refused | Removal::Conflict) => {}
            Ok(Removal::Unsupported) => {
                tracing::debug!(key, "s3: the store has no conditional deletes; an expired entry is left for the lifecycle rule");
            }
            Err(e) => {
                tracing::debug!(key, error = %e, "s3: lazy delete of an expired entry failed");
            }
        }
    }

    /// Remove one batch of at most 1,000 objects; the number removed.
    pub(crate) async fn delete_batch(&self, keys: Vec<ObjectIdentifier>) -> Result<u64> {
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
