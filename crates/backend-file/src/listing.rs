//! `list_keys`: file names are hashes or encodings of keys, so a listing reads the header of
//! every file of the namespace directories the prefix can be in, then pages the sorted keys.

use steadycache_api::plumbing::unix_millis;
use steadycache_api::{KeyPage, ListedKey, Result};

use crate::backend::Inner;
use crate::format::Sniffed;
use crate::names::{encode_name, Location};
use crate::prefix::each_entry;

impl Inner {
    /// The live keys under `prefix` (corrupt files, expired entries and files that are not
    /// where their key puts them left out), each with its file's size, paged after `cursor`.
    /// Distributed locks (`key#lock`) are entries like any other and are listed; the OS lock
    /// files of read-modify-write operations live apart under `.locks` and are not.
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
            each_entry(&dir, |path, meta, header| {
                // Corrupt, not ours, or misplaced (a copy): a get of it is a miss too.
                let Sniffed::Entry(header) = header else {
                    return Ok(());
                };
                let Ok(key) = String::from_utf8(header.key) else {
                    return Ok(());
                };
                let here = Location::of(&key).path_under(&self.root) == path;
                if here && header.expires_at > now && key.starts_with(prefix) {
                    keys.push(ListedKey::new(key).with_size(meta.len()));
                }
                Ok(())
            })?;
        }
        Ok(KeyPage::of_sorted(keys, cursor, limit))
    }
}
