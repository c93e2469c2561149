//! Parsing the values of URL options (`?durable=true&max_bytes=1_000_000`), the same way in every
//! backend crate.

use crate::error::{Error, Result};

/// A boolean option: `true`/`false`, `1`/`0`, `yes`/`no` or `on`/`off` (any case); anything else
/// is an [`Error::Config`] naming `option`.
///
/// ```
/// assert!(steadycache_api::plumbing::parse_flag("durable", "ON").unwrap());
/// assert!(steadycache_api::plumbing::parse_flag("durable", "maybe").is_err());
/// ```
pub fn parse_flag(option: &str, value: &str) -> Result<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(Error::Config(format!(
            "option `{option}` must be true or false, got `{value}`"
        ))),
    }
}

/// A whole-number option; `_` may group digits (`1_000_000`). Anything else is an
/// [`Error::Config`] naming `option`.
///
/// ```
/// assert_eq!(steadycache_api::plumbing::parse_count("max_bytes", "1_000").unwrap(), 1000);
/// assert!(steadycache_api::plumbing::parse_count("max_bytes", "-1").is_err());
/// ```
pub fn parse_count(option: &str, value: &str) -> Result<u64> {
    value.replace('_', "").parse::<u64>().map_err(|_| {
        Error::Config(format!(
            "option `{option}` must be a whole number, got `{value}`"
        ))
    })
}

/// A size in bytes: a whole number (`_` may group digits), optionally followed by a unit: `B`,
/// `K`/`KB`/`KiB`, `M`/`MB`/`MiB`, `G`/`GB`/`GiB`, `T`/`TB`/`TiB` (any case; every unit is a
/// power of 1024, as memory sizes are). Anything else, or a size past `u64::MAX`, is an
/// [`Error::Config`] naming `option`.
///
/// ```
/// use steadycache_api::plumbing::parse_bytes;
/// assert_eq!(parse_bytes("local", "64MiB").unwrap(), 64 << 20);
/// assert_eq!(parse_bytes("local", "512k").unwrap(), 512 << 10);
/// assert_eq!(parse_bytes("local", "1_000").unwrap(), 1000);
/// assert!(parse_bytes("local", "12 parsecs").is_err());
/// ```
pub fn parse_bytes(option: &str, value: &str) -> Result<u64> {
    let v = value.trim();
    let split = v
        .find(|c: char| !(c.is_ascii_digit() || c == '_'))
        .unwrap_or(v.len());
    let (number, unit) = v.split_at(split);
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => {
            return Err(Error::Config(format!(
                "option `{option}` must be a size such as 64MiB, got `{value}`"
            )))
        }
    };
    let n = parse_count(option, number)?;
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| Error::Config(format!("option `{option}` is too large: `{value}`")))
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
}
