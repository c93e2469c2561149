//! One cache per URL in a process: every `#[cached(cache = "url")]`, `#[invalidates]`, guard and
//! [`Cache::from_url`] that names the same URL gets the same [`Cache`], so they share one
//! connection pool, one invalidation bus, one store breaker and one byte budget. Forty
//! functions on one Redis URL hold one connection and one subscription, not forty.
//!
//! The registry is keyed by a hash of the normalized URL (scheme in lower case, query options
//! in a fixed order), never by the URL itself: a URL's password is kept nowhere it was not
//! before, and nothing here is printed. Caches are kept for the life of the process (as the
//! functions' statics that hold them are). [`Cache::from_url_unshared`] opens a cache of its
//! own (tests simulating several processes over one store, or a deliberately separate pool).

use crate::cache::Cache;
use crate::error::Result;
use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, PoisonError};
use xxhash_rust::xxh3::xxh3_128;

static CACHES: LazyLock<Mutex<HashMap<u128, Cache>>> = LazyLock::new(Mutex::default);

/// The registry's key of `url`: the hash of its normalized form.
fn key_of(url: &str) -> u128 {
    xxh3_128(normalize(url).as_bytes())
}

/// `url` with its scheme in lower case and its query options sorted (`a=1&b=2` and `b=2&a=1`
/// name one cache); everything else as written.
fn normalize(url: &str) -> String {
    let url = url.trim();
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (s.to_ascii_lowercase(), r),
        None => (String::new(), url),
    };
    let (before, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    let mut out = format!("{scheme}://{before}");
    if let Some(q) = query {
        let (q, fragment) = match q.split_once('#') {
            Some((q, f)) => (q, Some(f)),
            None => (q, None),
        };
        let mut pairs: Vec<&str> = q.split('&').filter(|p| !p.is_empty()).collect();
        pairs.sort_unstable();
        out.push('?');
        out.push_str(&pairs.join("&"));
        if let Some(f) = fragment {
            out.push('#');
            out.push_str(f);
        }
    }
    out
}

/// The cache `url` names in this process: the one already open, else `open(url)`'s, kept.
/// Opening holds the registry, so two threads naming a new URL at once open it once.
pub(crate) fn shared(url: &str, open: impl FnOnce(&str) -> Result<Cache>) -> Result<Cache> {
    let key = key_of(url);
    let mut caches = CACHES.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(c) = caches.get(&key) {
        return Ok(c.clone());
    }
    let cache = open(url)?;
    caches.insert(key, cache.clone());
    Ok(cache)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_cache_per_normalized_url() {
        assert_eq!(
            normalize("REDIS://h:1/0?b=2&a=1"),
            normalize("redis://h:1/0?a=1&b=2")
        );
        assert_ne!(normalize("redis://h:1/0"), normalize("redis://h:1/1"));
        let a = Cache::from_url("mem://?max_bytes=4096&max_entries=9").unwrap();
        let b = Cache::from_url("MEM://?max_entries=9&max_bytes=4096").unwrap();
        assert!(a.same_as(&b));
        let c = Cache::from_url_failing_open("mem://?max_entries=9&max_bytes=4096");
        assert!(a.same_as(&c));
        let own = Cache::from_url_unshared("mem://?max_bytes=4096&max_entries=9").unwrap();
        assert!(!a.same_as(&own));
    }
}
