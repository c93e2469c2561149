//! Parsing the values of URL options (`?durable=true&max_bytes=1_000_000`), the same way in every
//! backend crate.

use crate::{Error, Result};

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
