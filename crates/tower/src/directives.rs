//! `Cache-Control` (RFC 9111 §5.2, RFC 5861) and `Vary` (RFC 9110 §12.5.5): what a request
//! asks of the cache and whether, and for how long, a response may be stored.

use crate::config::Config;
use http::header::{HeaderMap, AGE, AUTHORIZATION, CACHE_CONTROL, PRAGMA, RANGE, SET_COOKIE, VARY};
use http::{Method, StatusCode};
use std::time::Duration;
use steadycache_api::Lifetimes;

/// The directives of every `Cache-Control` line of a message that this cache acts on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct CacheControl {
    pub(crate) no_store: bool,
    pub(crate) no_cache: bool,
    pub(crate) private: bool,
    pub(crate) must_revalidate: bool,
    pub(crate) max_age: Option<u64>,
    pub(crate) s_maxage: Option<u64>,
    pub(crate) stale_while_revalidate: Option<u64>,
    pub(crate) stale_if_error: Option<u64>,
}

impl CacheControl {
    /// Parse every `Cache-Control` line of `headers` (directives are case-insensitive, comma
    /// separated, values may be quoted; an unreadable line or value is ignored; a repeated
    /// directive keeps its first value, as RFC 9111 §4.2.1 advises for `max-age`).
    pub(crate) fn of(headers: &HeaderMap) -> CacheControl {
        let mut cc = CacheControl::default();
        let lines = headers.get_all(CACHE_CONTROL).iter();
        for directive in lines
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
        {
            let (name, value) = match directive.split_once('=') {
                Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
                None => (directive.trim(), None),
            };
            let secs = value.and_then(|v| v.parse::<u64>().ok());
            let set = |slot: &mut Option<u64>| *slot = slot.or(secs);
            match name.to_ascii_lowercase().as_str() {
                "no-store" => cc.no_store = true,
                "no-cache" => cc.no_cache = true,
                "private" => cc.private = true,
                "must-revalidate" | "proxy-revalidate" => cc.must_revalidate = true,
                "max-age" => set(&mut cc.max_age),
                "s-maxage" => set(&mut cc.s_maxage),
                "stale-while-revalidate" => set(&mut cc.stale_while_revalidate),
                "stale-if-error" => set(&mut cc.stale_if_error),
                _ => {}
            }
        }
        cc
    }
}

/// Why a request goes straight to the service, neither read from nor written to the cache.
pub(crate) fn bypasses(method: &Method, headers: &HeaderMap) -> bool {
    if method != Method::GET && method != Method::HEAD {
        return true;
    }
    let cc = CacheControl::of(headers);
    let pragma_no_cache = headers
        .get_all(PRAGMA)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.to_ascii_lowercase().contains("no-cache"));
    // A body on a GET or HEAD cannot be replayed by a refresh, nor is it in the key.
    let has_body = headers.contains_key(http::header::TRANSFER_ENCODING)
        || headers
            .get(http::header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0");
    cc.no_store
        || cc.no_cache
        || pragma_no_cache
        || headers.contains_key(AUTHORIZATION)
        || headers.contains_key(RANGE)
        || has_body
}

/// The statuses stored (RFC 9111 §4.2.2's heuristically cacheable ones, without 206, which
/// needs ranges, and 501, a failure).
pub(crate) fn storable_status(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200 | 203 | 204 | 300 | 301 | 308 | 404 | 405 | 410 | 414
    )
}

/// The header names a response's `Vary` lists, lower-cased, sorted, deduplicated; `None` for
/// `Vary: *` (a response that varies on what no header says: never stored).
pub(crate) fn vary_names(headers: &HeaderMap) -> Option<Vec<String>> {
    let mut names = Vec::new();
    for v in headers.get_all(VARY).iter() {
        let Ok(v) = v.to_str() else { continue };
        for name in v.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if name == "*" {
                return None;
            }
            names.push(name.to_ascii_lowercase());
        }
    }
    names.sort();
    names.dedup();
    Some(names)
}

/// Why a response is passed to the caller without being stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// A status this cache does not store.
    Status,
    /// `no-store`, `no-cache` or `private`.
    Directive,
    /// `Vary: *`.
    VaryAll,
    /// `Set-Cookie`, unless the layer allows it.
    SetCookie,
    /// No lifetime: neither `s-maxage` nor `max-age` and no default ttl, or all windows zero.
    NoLifetime,
}

/// The lifetimes a response may be stored for, from its own headers and the layer's bounds:
/// fresh for `s-maxage` (this is a shared cache), else `max-age`, else the layer's default ttl,
/// less the `Age` it arrived with; then stale for `stale-while-revalidate` (served at once
/// while one refresh runs); then kept for `stale-if-error` past that (served only when the
/// upstream fails). `must-revalidate` / `proxy-revalidate` forbid both stale windows. Each
/// window is capped by the layer's `max_ttl`.
pub(crate) fn lifetimes(
    status: StatusCode,
    headers: &HeaderMap,
    config: &Config,
) -> Result<Lifetimes, Refused> {
    if !storable_status(status) {
        return Err(Refused::Status);
    }
    let cc = CacheControl::of(headers);
    if cc.no_store || cc.no_cache || cc.private {
        return Err(Refused::Directive);
    }
    if vary_names(headers).is_none() {
        return Err(Refused::VaryAll);
    }
    if headers.contains_key(SET_COOKIE) && !config.store_set_cookie {
        return Err(Refused::SetCookie);
    }
    let cap = |d: Duration| d.min(config.max_ttl);
    let age = age_of(headers);
    let fresh = match cc.s_maxage.or(cc.max_age) {
        Some(s) => Duration::from_secs(s.saturating_sub(age)),
        None => config.default_ttl.ok_or(Refused::NoLifetime)?,
    };
    let window = |w: Option<u64>| match cc.must_revalidate {
        true => Duration::ZERO,
        false => cap(Duration::from_secs(w.unwrap_or(0))),
    };
    let l = Lifetimes {
        fresh: cap(fresh),
        stale: window(cc.stale_while_revalidate),
        fail_safe: window(cc.stale_if_error),
    };
    if l == Lifetimes::default() {
        return Err(Refused::NoLifetime);
    }
    Ok(l)
}

/// The `Age` a response arrived with, in seconds (0 when absent or unreadable).
pub(crate) fn age_of(headers: &HeaderMap) -> u64 {
    headers
        .get(AGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(*n, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn directives_are_read_from_every_line() {
        let h = headers(&[
            ("cache-control", "public, Max-Age=10"),
            (
                "cache-control",
                "stale-while-revalidate=\"30\", stale-if-error=60, max-age=99",
            ),
        ]);
        let cc = CacheControl::of(&h);
        assert_eq!(cc.max_age, Some(10));
        assert_eq!(cc.stale_while_revalidate, Some(30));
        assert_eq!(cc.stale_if_error, Some(60));
        assert!(!cc.no_store);
    }

    #[test]
    fn lifetimes_follow_the_response() {
        let cfg = Config::default();
        let ok = StatusCode::OK;
        let l = lifetimes(
            ok,
            &headers(&[(
                "cache-control",
                "max-age=10, s-maxage=20, stale-while-revalidate=5",
            )]),
            &cfg,
        );
        assert_eq!(
            l,
            Ok(Lifetimes {
                fresh: Duration::from_secs(20),
                stale: Duration::from_secs(5),
                fail_safe: Duration::ZERO
            })
        );
        let aged = lifetimes(
            ok,
            &headers(&[("cache-control", "max-age=10"), ("age", "4")]),
            &cfg,
        );
        assert_eq!(aged.map(|l| l.fresh), Ok(Duration::from_secs(6)));
        let must = headers(&[(
            "cache-control",
            "max-age=1, stale-if-error=9, must-revalidate",
        )]);
        assert_eq!(
            lifetimes(ok, &must, &cfg).map(|l| l.fail_safe),
            Ok(Duration::ZERO)
        );
        for (cc, why) in [
            ("no-store, max-age=10", Refused::Directive),
            ("private, max-age=10", Refused::Directive),
            ("no-cache", Refused::Directive),
            ("public", Refused::NoLifetime),
            ("max-age=0", Refused::NoLifetime),
        ] {
            let h = headers(&[("cache-control", cc)]);
            assert_eq!(lifetimes(ok, &h, &cfg), Err(why), "{cc}");
        }
        let vary_all = headers(&[("cache-control", "max-age=9"), ("vary", "*")]);
        assert_eq!(lifetimes(ok, &vary_all, &cfg), Err(Refused::VaryAll));
        let cookie = headers(&[("cache-control", "max-age=9"), ("set-cookie", "a=b")]);
        assert_eq!(lifetimes(ok, &cookie, &cfg), Err(Refused::SetCookie));
        let h = headers(&[("cache-control", "max-age=9")]);
        assert_eq!(
            lifetimes(StatusCode::INTERNAL_SERVER_ERROR, &h, &cfg),
            Err(Refused::Status)
        );
    }

    #[test]
    fn vary_names_are_normalised() {
        let h = headers(&[("vary", "Accept-Language, accept"), ("vary", "ACCEPT")]);
        assert_eq!(
            vary_names(&h),
            Some(vec!["accept".into(), "accept-language".into()])
        );
        assert_eq!(vary_names(&headers(&[("vary", "accept, *")])), None);
    }

    #[test]
    fn requests_that_bypass() {
        let get = Method::GET;
        assert!(!bypasses(&get, &HeaderMap::new()));
        assert!(bypasses(&Method::POST, &HeaderMap::new()));
        assert!(bypasses(&get, &headers(&[("cache-control", "no-cache")])));
        assert!(bypasses(&get, &headers(&[("pragma", "no-cache")])));
        assert!(bypasses(&get, &headers(&[("authorization", "Bearer x")])));
        assert!(bypasses(&get, &headers(&[("content-length", "3")])));
        assert!(!bypasses(&get, &headers(&[("content-length", "0")])));
    }
}
