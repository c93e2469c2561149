//! # For backend authors
//!
//! What a crate that implements [`Backend`](crate::Backend) needs beyond the trait itself, in one
//! place, so that the rest of the API stays what a user of `#[cached]` and
//! [`Cache`](crate::Cache) reads:
//!
//! * URL schemes: [`Scheme`], [`SCHEMES`] (link-time registration through [`linkme`]) and
//!   [`register_scheme`] (at run time), which [`Cache::from_url`](crate::Cache::from_url)
//!   dispatches on;
//! * the blocking fast path of local stores: [`BlockingBackend`], [`run_blocking`];
//! * the library's own runtime for clients whose background tasks must outlive a caller's
//!   runtime: [`library_runtime`], [`block_on`];
//! * one way to do the small things every backend does: [`check_ttl`] and [`deadline`] /
//!   [`deadline_i64`] for expiry, [`unix_millis`], [`parse_flag`] / [`parse_count`] for URL
//!   options, [`redact_url`] for every URL a message shows, [`io_error`] for I/O errors by
//!   meaning.
//!
//! The backend crates of this workspace (`steadycache-file`, `-sqlite`, `-redis`, `-mongo`,
//! `-s3`) use exactly these; a new backend follows one of them (see `ARCHITECTURE.md`).

use crate::{Error, Result};
use std::time::Duration;

pub use crate::backend::{check_ttl, BlockingBackend};
pub use crate::cache::{register_scheme, Scheme, SchemeOpener, SCHEMES};
pub use crate::options::{parse_bytes, parse_count, parse_flag};
pub use crate::runtime::{block_on, library_runtime};
pub use crate::time::unix_millis;
/// The link-time registry behind [`SCHEMES`], re-exported so backend crates need no dependency
/// of their own on it.
pub use linkme;

/// The deadline, in milliseconds since the Unix epoch, of a ttl that starts at `now_ms`.
///
/// `None` (no ttl) is never. A ttl is rounded down to whole milliseconds but lasts at least one,
/// so a sub-millisecond ttl is not expired the moment it is written; a ttl too long for the
/// clock saturates at `u64::MAX` (never) instead of wrapping or panicking.
///
/// ```
/// use std::time::Duration;
/// use steadycache_api::plumbing::deadline;
/// assert_eq!(deadline(1_000, Some(Duration::from_secs(2))), Some(3_000));
/// assert_eq!(deadline(1_000, Some(Duration::from_micros(10))), Some(1_001));
/// assert_eq!(deadline(1_000, Some(Duration::MAX)), Some(u64::MAX));
/// assert_eq!(deadline(1_000, None), None);
/// ```
pub fn deadline(now_ms: u64, ttl: Option<Duration>) -> Option<u64> {
    ttl.map(|d| {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        now_ms.saturating_add(ms.max(1))
    })
}

/// [`deadline`] for stores whose integers are signed (SQLite, BSON): saturates at `i64::MAX`.
///
/// ```
/// use std::time::Duration;
/// use steadycache_api::plumbing::deadline_i64;
/// assert_eq!(deadline_i64(5, Some(Duration::from_millis(7))), Some(12));
/// assert_eq!(deadline_i64(5, Some(Duration::MAX)), Some(i64::MAX));
/// ```
pub fn deadline_i64(now_ms: i64, ttl: Option<Duration>) -> Option<i64> {
    ttl.map(|d| {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        now_ms.saturating_add(ms.max(1))
    })
}

/// Names of URL query options whose values are secrets (compared case-insensitively, by
/// substring): their values are never shown.
const SECRET_OPTIONS: [&str; 7] = [
    "pass",
    "secret",
    "token",
    "credential",
    "authmechanismproperties",
    "signature",
    "sig",
];

/// `url` as it may appear in an error, a log line or `Debug`: the user info (everything between
/// `://` and the last `@`, so a password holding an unescaped `/`, `?`, `#` or `@` is still
/// hidden) becomes `***`, and the values of query options whose names say secret (`password`,
/// `token`, `secret`, `credential`, `authMechanismProperties`, …) become `***`. Text without
/// `://` is shown only as far as its scheme, since nothing in it can be told apart.
///
/// Masking more than needed is the safe side: a query value holding `@` hides the host too.
///
/// ```
/// use steadycache_api::plumbing::redact_url;
/// assert_eq!(redact_url("redis://u:hunter2@h:6379/0"), "redis://***@h:6379/0");
/// assert_eq!(redact_url("redis://u:a/b?c@h/0"), "redis://***@h/0");
/// assert_eq!(
///     redact_url("mongodb://h/db?proxyPassword=x&collection=c"),
///     "mongodb://h/db?proxyPassword=***&collection=c"
/// );
/// assert_eq!(redact_url("mem://?max_bytes=10"), "mem://?max_bytes=10");
/// ```
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return match url.split_once(':') {
            Some((scheme, _)) if !scheme.is_empty() => format!("{scheme}:…"),
            _ => "…".to_owned(),
        };
    };
    let rest = match rest.rfind('@') {
        Some(at) => format!("***@{}", &rest[at + 1..]),
        None => rest.to_owned(),
    };
    let (before, fragment) = match rest.split_once('#') {
        Some((b, _)) => (b, "#…"),
        None => (rest.as_str(), ""),
    };
    let (base, query) = match before.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (before, None),
    };
    let mut out = format!("{scheme}://{base}");
    if let Some(q) = query {
        out.push('?');
        for (i, pair) in q.split('&').enumerate() {
            if i > 0 {
                out.push('&');
            }
            match pair.split_once('=') {
                Some((name, _)) if is_secret_option(name) => {
                    out.push_str(name);
                    out.push_str("=***");
                }
                _ => out.push_str(pair),
            }
        }
    }
    out.push_str(fragment);
    out
}

fn is_secret_option(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_OPTIONS.iter().any(|s| name.contains(s))
}

/// An I/O error of backend `backend` during `what`, by meaning: permission denied, read-only
/// storage, a full disk and an invalid path are permanent ([`Error::Backend`]); anything else may
/// pass ([`Error::Unavailable`], transient).
pub fn io_error(backend: &'static str, what: &str, e: std::io::Error) -> Error {
    use std::io::ErrorKind as K;
    let permanent = matches!(
        e.kind(),
        K::PermissionDenied
            | K::ReadOnlyFilesystem
            | K::StorageFull
            | K::QuotaExceeded
            | K::InvalidInput
            | K::NotADirectory
            | K::IsADirectory
    );
    Error::from_backend(backend, format!("{what}: {e}"), !permanent, e)
}

/// Run blocking I/O from async code: on tokio's blocking pool when inside a runtime, inline
/// otherwise. A blocking task that panics or is cancelled is an [`Error::Unavailable`] of
/// `backend`, never a panic of the caller.
pub async fn run_blocking<T, F>(backend: &'static str, f: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    match tokio::runtime::Handle::try_current() {
        Ok(h) => h
            .spawn_blocking(f)
            .await
            .map_err(|e| Error::unavailable(backend, format!("blocking task failed: {e}")))?,
        Err(_) => f(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_hides_every_secret_shape() {
        for (url, secret) in [
            ("redis://:hunter2@h/0", "hunter2"),
            ("redis://u:hun/ter2@h/0", "ter2"),
            ("redis://u:hun?ter2@h/0", "ter2"),
            ("redis://u:hun@ter2@h/0", "hun"),
            (
                "mongodb://u:p@h/db?authMechanismProperties=AWS_SESSION_TOKEN:tok",
                "tok",
            ),
            ("mongodb://h/db?tlsCertificateKeyFilePassword=kfp", "kfp"),
            ("s3://b/p?secret_access_key=sk", "sk"),
            ("mem://user:hunter2@x", "hunter2"),
        ] {
            let shown = redact_url(url);
            assert!(!shown.contains(secret), "{url} shown as {shown}");
        }
        assert_eq!(redact_url("sqlite::memory:"), "sqlite:…");
        assert_eq!(redact_url("file:///var/cache/app"), "file:///var/cache/app");
    }

    #[test]
    fn deadlines_saturate() {
        assert_eq!(
            deadline(u64::MAX - 1, Some(Duration::from_secs(1))),
            Some(u64::MAX)
        );
        assert_eq!(deadline_i64(i64::MAX, Some(Duration::ZERO)), Some(i64::MAX));
        assert_eq!(deadline(0, Some(Duration::ZERO)), Some(1));
    }
}
