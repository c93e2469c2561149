//! Listing a store's keys, a page at a time ([`Backend::list_keys`](crate::Backend::list_keys)):
//! what operators' tools (the `steadycache` CLI) read to show what is in a cache.

/// One key found by a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListedKey {
    /// The key, as [`Backend::get`](crate::Backend::get) takes it (a backend's own key prefix,
    /// such as Redis's `prefix=`, removed).
    pub key: String,
    /// The stored size in bytes, when the listing tells it without reading the value (SQLite,
    /// files, S3, memory); `None` otherwise.
    pub size: Option<u64>,
}

impl ListedKey {
    /// A listed key of unknown size.
    pub fn new(key: impl Into<String>) -> Self {
        ListedKey {
            key: key.into(),
            size: None,
        }
    }

    /// With its stored size.
    pub fn with_size(mut self, size: u64) -> Self {
        self.size = Some(size);
        self
    }
}

/// One page of a key listing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyPage {
    /// The keys of this page.
    pub keys: Vec<ListedKey>,
    /// Where the next page starts (give it back as the `cursor`); `None` after the last page.
    /// Opaque: the last key of the page for stores that list in key order, a `SCAN` cursor
    /// for Redis.
    pub next: Option<String>,
}

impl KeyPage {
    /// A page of `keys` followed by the one at `next`.
    pub fn new(keys: Vec<ListedKey>, next: Option<String>) -> Self {
        KeyPage { keys, next }
    }

    /// The page after `cursor` (a key; `None`: from the start) of `keys`, a listing that a
    /// store could only give whole (files, memory): sorted by key, at most `limit` keys (at
    /// least one), the next cursor being the page's last key when more follow.
    pub fn of_sorted(mut keys: Vec<ListedKey>, cursor: Option<&str>, limit: usize) -> Self {
        if let Some(after) = cursor {
            keys.retain(|k| k.key.as_str() > after);
        }
        keys.sort_unstable_by(|a, b| a.key.cmp(&b.key));
        let limit = limit.max(1);
        let next = (keys.len() > limit).then(|| keys[limit - 1].key.clone());
        keys.truncate(limit);
        KeyPage { keys, next }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_of_a_whole_listing_cover_it_once_in_order() {
        let all: Vec<ListedKey> = ["b", "a", "d", "c", "e"]
            .iter()
            .map(|k| ListedKey::new(*k))
            .collect();
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = KeyPage::of_sorted(all.clone(), cursor.as_deref(), 2);
            assert!(page.keys.len() <= 2);
            seen.extend(page.keys.iter().map(|k| k.key.clone()));
            match page.next {
                Some(n) => cursor = Some(n),
                None => break,
            }
        }
        assert_eq!(seen, ["a", "b", "c", "d", "e"]);
        assert_eq!(
            KeyPage::of_sorted(all, None, 0).keys.len(),
            1,
            "at least one"
        );
    }
}
