//! `delete_matching`: a bounded scan of the `_id` index over the pattern's literal prefix.
//!
//! The ids in that range are read (nothing else: a projection), matched in process by the
//! exact glob matcher, and the matches deleted by batches with `$in`. The scan never leaves
//! the range, and only cache documents (those with an `exp`) are touched, so a collection
//! shared with other data keeps it. The server's `$regex` is not used: the test server
//! (nx-27017) does not implement it, and one code path for both is worth more than pushing
//! the match to the server.

use crate::backend::{int, successor, MongoBackend};
use crate::error::convert;
use mongodb::bson::{doc, Bson, Document};
use steadycache_api::{Glob, KeyPage, ListedKey, Result};

/// Ids per `$in` deletion.
const BATCH: usize = 1000;

impl MongoBackend {
    /// See the module docs.
    pub(crate) async fn delete_matching_scan(&self, pattern: &Glob) -> Result<u64> {
        let coll = self.collection().await?;
        let now = self.now(&coll).await?;
        let prefix = pattern.literal_prefix();
        let mut filter = match successor(&prefix) {
            Some(end) => doc! { "_id": { "$gte": &prefix, "$lt": end } },
            None if prefix.is_empty() => Document::new(),
            None => doc! { "_id": { "$gte": &prefix } },
        };
        filter.insert("exp", doc! { "$exists": true });
        let mut cursor = coll
            .find(filter)
            .projection(doc! { "_id": 1, "exp": 1 })
            .await
            .map_err(|e| convert("find", e))?;
        let (mut live, mut dead) = (Vec::new(), Vec::new());
        while cursor.advance().await.map_err(|e| convert("find", e))? {
            let d = cursor
                .deserialize_current()
                .map_err(|e| convert("find", e))?;
            let Some(Bson::String(id)) = d.get("_id") else {
                continue;
            };
            if !pattern.matches(id) {
                continue;
            }
            let alive = int(&d, "exp").is_some_and(|e| e > now);
            if alive {
                live.push(id.clone());
            } else {
                dead.push(id.clone());
            }
        }
        let mut removed = 0;
        for chunk in live.chunks(BATCH) {
            removed += coll
                .delete_many(doc! { "_id": { "$in": chunk }, "exp": { "$exists": true } })
                .await
                .map_err(|e| convert("delete_many", e))?
                .deleted_count;
        }
        for chunk in dead.chunks(BATCH) {
            coll.delete_many(doc! { "_id": { "$in": chunk }, "exp": { "$exists": true } })
                .await
                .map_err(|e| convert("delete_many", e))?;
        }
        Ok(removed)
    }
}

impl MongoBackend {
    /// `list_keys`: one read of the `_id` index from the prefix (or just after the cursor, the
    /// last id of the page before) to the prefix's end, sorted, ids and expiries only, cache
    /// documents only; expired ones are left out of the page. Sizes are not listed.
    pub(crate) async fn list_ids(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<KeyPage> {
        let coll = self.collection().await?;
        let now = self.now(&coll).await?;
        let mut range = Document::new();
        match cursor {
            Some(c) if c >= prefix => range.insert("$gt", c),
            _ => range.insert("$gte", prefix),
        };
        if let Some(end) = successor(prefix) {
            range.insert("$lt", end);
        }
        let limit = limit.max(1);
        let take = i64::try_from(limit).unwrap_or(i64::MAX).saturating_add(1);
        let mut found = coll
            .find(doc! { "_id": range, "exp": { "$exists": true } })
            .projection(doc! { "_id": 1, "exp": 1 })
            .sort(doc! { "_id": 1 })
            .limit(take)
            .await
            .map_err(|e| convert("find", e))?;
        let mut ids = Vec::with_capacity(limit.min(1024) + 1);
        while found.advance().await.map_err(|e| convert("find", e))? {
            let d = found
                .deserialize_current()
                .map_err(|e| convert("find", e))?;
            if let Some(Bson::String(id)) = d.get("_id") {
                ids.push((id.clone(), int(&d, "exp").is_some_and(|e| e > now)));
            }
        }
        let next = (ids.len() > limit).then(|| ids[limit - 1].0.clone());
        ids.truncate(limit);
        let keys = ids
            .into_iter()
            .filter(|(_, live)| *live)
            .map(|(id, _)| ListedKey::new(id))
            .collect();
        Ok(KeyPage::new(keys, next))
    }
}
