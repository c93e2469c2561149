//! [`Stored`]: a response as the cache keeps it (status, headers, whole body, lifetimes).

use crate::body::HttpCacheBody;
use crate::directives::age_of;
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, AGE};
use http::response::Parts;
use http::{Response, StatusCode};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use steadycache_api::plumbing::unix_millis;
use steadycache_api::Lifetimes;

/// Headers that describe one connection, never stored (RFC 9110 §7.6.1), and `Age`, which is
/// computed when a stored response is served.
const NOT_STORED: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "age",
];

/// A stored response. Serialized with the cache's codec; on a memory cache kept typed (a hit
/// clones the headers and shares the body's bytes).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Stored {
    status: u16,
    headers: Vec<(String, Bytes)>,
    body: Bytes,
    /// When it was stored (ms since the epoch), less the `Age` it arrived with: its `Age`
    /// when served is counted from here.
    born_ms: u64,
    fresh_ms: u64,
    stale_ms: u64,
    fail_safe_ms: u64,
}

impl Stored {
    /// The response of `parts` and `body`, to be stored for `lifetimes`.
    pub(crate) fn new(parts: &Parts, body: Bytes, lifetimes: Lifetimes) -> Stored {
        let headers = parts
            .headers
            .iter()
            .filter(|(name, _)| !NOT_STORED.contains(&name.as_str()))
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    Bytes::copy_from_slice(value.as_bytes()),
                )
            })
            .collect();
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Stored {
            status: parts.status.as_u16(),
            headers,
            body,
            born_ms: unix_millis().saturating_sub(age_of(&parts.headers).saturating_mul(1000)),
            fresh_ms: ms(lifetimes.fresh),
            stale_ms: ms(lifetimes.stale),
            fail_safe_ms: ms(lifetimes.fail_safe),
        }
    }

    /// The lifetimes it was stored for (what the engine's `lifetimes_of` reads).
    pub(crate) fn lifetimes(&self) -> Lifetimes {
        Lifetimes {
            fresh: Duration::from_millis(self.fresh_ms),
            stale: Duration::from_millis(self.stale_ms),
            fail_safe: Duration::from_millis(self.fail_safe_ms),
        }
    }

    /// The response to serve: its status and headers with its `Age` now, and its body
    /// (none for a `HEAD` request).
    pub(crate) fn to_response<B>(&self, head: bool) -> Response<HttpCacheBody<B>> {
        let body = if head {
            Bytes::new()
        } else {
            self.body.clone()
        };
        let mut response = Response::new(HttpCacheBody::full(body));
        *response.status_mut() = StatusCode::from_u16(self.status).unwrap_or(StatusCode::OK);
        let headers = response.headers_mut();
        for (name, value) in &self.headers {
            let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_maybe_shared(value.clone()),
            ) else {
                continue; // written from valid headers: only a foreign entry gets here
            };
            headers.append(name, value);
        }
        let age = unix_millis().saturating_sub(self.born_ms) / 1000;
        headers.insert(AGE, HeaderValue::from(age));
        response
    }
}
