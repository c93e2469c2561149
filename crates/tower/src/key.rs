//! Keys: a request's base key (method, host and URI, or the layer's key function), the key of
//! its variants record, and the key of its response (the base key and the values of the
//! request headers the record names).
//!
//! **The Vary problem.** Which request headers select a response (its `Vary`) is known only
//! once a response arrived. So each base key has a small *variants record* in the cache: the
//! header names the last stored response's `Vary` listed (no record: none). A request reads
//! the record, then looks up `base` + the values of those headers in this request. A response
//! whose `Vary` names other headers than the record it was looked up with is passed to its
//! caller and not stored; the record is rewritten with its names, so the next request is
//! keyed by them. A response is therefore only ever stored under a key that holds the values
//! of exactly the headers its `Vary` names (RFC 9111 §4.1), whatever happened to the record
//! meanwhile (evicted, rewritten by another process).

use crate::config::Config;
use http::header::HOST;
use http::request::Parts;
use xxhash_rust::xxh3::Xxh3;

/// A request's base key: the key function's, or `host/path?query`. `None`: the key function
/// said to bypass the cache. The method is added by [`record`] and [`response`]: a `HEAD`
/// request never reads a `GET`'s entry, nor the other way round.
pub(crate) fn base(parts: &Parts, config: &Config) -> Option<String> {
    if let Some(key) = &config.key_fn {
        return key(parts);
    }
    let host = parts
        .uri
        .authority()
        .map(|a| a.as_str())
        .or_else(|| parts.headers.get(HOST).and_then(|h| h.to_str().ok()))
        .unwrap_or("");
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    Some(format!("{host}{path}"))
}

/// The key of the variants record of `base` for requests with `parts`' method.
pub(crate) fn record(config: &Config, base: &str, parts: &Parts) -> String {
    format!("{}:vary:{} {base}", config.prefix, parts.method)
}

/// The key of the response to a request with `parts`, base key `base`, under a record naming
/// `names`: `prefix:res:METHOD base`, and with names, the XXH3-128 of their values in this request
/// (each name and value length-prefixed, each name's values counted, so no two lists of
/// values collide by their concatenation).
pub(crate) fn response(config: &Config, base: &str, parts: &Parts, names: &[String]) -> String {
    if names.is_empty() {
        return format!("{}:res:{} {base}", config.prefix, parts.method);
    }
    let mut h = Xxh3::new();
    for name in names {
        h.update(&(name.len() as u64).to_le_bytes());
        h.update(name.as_bytes());
        let values = parts.headers.get_all(name.as_str());
        h.update(&(values.iter().count() as u64).to_le_bytes());
        for value in values {
            h.update(&(value.len() as u64).to_le_bytes());
            h.update(value.as_bytes());
        }
    }
    let digest = h.digest128();
    format!(
        "{}:res:{} {base} vary={digest:032x}",
        config.prefix, parts.method
    )
}
