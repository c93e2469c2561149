//! `list_keys`: one `ListObjectsV2` page under the prefix, from just after the cursor (the last
//! key of the page before, as `StartAfter`), with each object's size. A listing does not carry
//! the expiry (it is in each object's metadata), so expired objects not yet removed are listed
//! too; a `get` of one is a miss.

use super::S3Backend;
use crate::error::convert;
use steadycache_api::{KeyPage, ListedKey, Result};

impl S3Backend {
    pub(crate) async fn list_page(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<KeyPage> {
        let client = self.client().await?;
        let full = self.object_key(prefix);
        let limit = limit.clamp(1, 1000);
        let after = cursor.filter(|c| *c >= prefix).map(|c| self.object_key(c));
        let page = client
            .list_objects_v2()
            .bucket(self.bucket())
            .prefix(&full)
            .max_keys(i32::try_from(limit).unwrap_or(1000))
            .set_start_after(after)
            .send()
            .await
            .map_err(|e| convert("list", &full, e))?;
        let keys: Vec<ListedKey> = page
            .contents()
            .iter()
            .filter_map(|o| {
                let key = o.key()?.strip_prefix(self.prefix())?;
                let listed = ListedKey::new(key);
                Some(match o.size().and_then(|s| u64::try_from(s).ok()) {
                    Some(size) => listed.with_size(size),
                    None => listed,
                })
            })
            .collect();
        let next = match (page.is_truncated(), keys.last()) {
            (Some(true), Some(last)) => Some(last.key.clone()),
            _ => None,
        };
        Ok(KeyPage::new(keys, next))
    }
}
