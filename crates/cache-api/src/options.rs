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
