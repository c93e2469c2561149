//! `list_keys`: file names are hashes or encodings of keys, so a listing reads the header of
//! every file of the namespace directories the prefix can be in, then pages the sorted keys.

use std::fs::File;
use steadycache_api::plumbing::{io_error, unix_millis};
use steadycache_api::{KeyPage, ListedKey, Result};

use crate::backend::{Inner, NAME};
use crate::format::read_header;
use crate::fs::{is_not_found, list_dir};
use crate::names::{encode_name, is_hidden};

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
            let entries = match list_dir(&dir) {
                Ok(e) => e,
                Err(e) if is_not_found(&e) => continue,
                Err(e) => return Err(io_error(NAME, &format!("list `{}`", dir.display()), e)),
            };
            for entry in entries {
                if is_hidden(&entry.file_name()) || !entry.file_type().is_ok_and(|t| t.is_file()) {
                    continue;
                }
                let path = entry.path();
                let mut file = match File::open(&path) {
                    Ok(f) => f,
                    Err(e) if is_not_found(&e) => continue,
                    Err(e) => return Err(io_error(NAME, &format!("open `{}`", path.display()), e)),
                };
                let len = file
                    .metadata()
                    .map_err(|e| io_error(NAME, &format!("inspect `{}`", path.display()), e))?
                    .len();
                let Ok(Ok(header)) = read_header(&mut file, len) else {
                    continue; // unreadable or not an entry: a get of it would be a miss too
                };
                if header.expires_at <= now {
                    continue;
                }
                match String::from_utf8(header.key) {
                    Ok(key) if key.starts_with(prefix) => {
                        keys.push(ListedKey::new(key).with_size(len));
                    }
                    _ => {}
                }
            }
        }
        Ok(KeyPage::of_sorted(keys, cursor, limit))
    }
}
