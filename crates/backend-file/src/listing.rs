//! `list_keys`: file names are hashes or encodings of keys, so a listing reads the header of
//! every file of the namespace directories the prefix can be in, then pages the sorted keys.

use steadycache_api::plumbing::unix_millis;
use steadycache_api::{KeyPage, ListedKey, Result};

use crate::backend::Inner;
use crate::names::encode_name;
use crate::prefix::each_entry;

impl Inner {
    /// The live keys under `prefix` (corrupt files and expired entries left out), each with
    /// its file's size, paged after `cursor`. Held locks live apart (see `FileBackend`) and
    /// are not listed.
    pub(crate) fn list_keys(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<KeyPage> {
        let now = unix_millis();
        let dirs = match prefix.split_once(':') {
            Some((ns, _)) => vec![self.root.join(encode_name(ns))],
            None => self.namespace_dirs()?,
        };
        let mut keys = Vec::new();
        for dir in dirs {
            each_entry(&dir, |_, meta, header| {
                // Unreadable or not an entry: a get of it would be a miss too.
                if let Ok(header) = header {
                    if header.expires_at > now {
                        if let Ok(key) = String::from_utf8(header.key) {
                            if key.starts_with(prefix) {
                                keys.push(ListedKey::new(key).with_size(meta.len()));
                            }
                        }
                    }
                }
                Ok(())
            })?;
        }
        Ok(KeyPage::of_sorted(keys, cursor, limit))
    }
}
