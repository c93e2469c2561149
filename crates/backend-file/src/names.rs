//! Key → path: the encoded namespace directory and file name of a key, and the names of the
//! bookkeeping entries (temp files, lock files, trash) that share the tree with them.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use xxhash_rust::xxh3::xxh3_128;

/// Encoded names longer than this are replaced by a hash.
const MAX_NAME: usize = 120;
const NO_NAMESPACE_DIR: &str = "_";
const EMPTY_NAME: &str = "_empty";
pub(crate) const LOCKS_DIR: &str = ".locks";
pub(crate) const TEMP_PREFIX: &str = ".tmp-";
/// Random characters after [`TEMP_PREFIX`] in a temp file's name.
pub(crate) const TEMP_RAND: usize = 6;
pub(crate) const TRASH_PREFIX: &str = ".trash-";

/// Where a key lives: its namespace directory and file name, both encoded.
pub(crate) struct Location {
    pub(crate) ns: String,
    pub(crate) name: String,
}

impl Location {
    pub(crate) fn of(key: &str) -> Location {
        match key.split_once(':') {
            Some((ns, rest)) => Location {
                ns: encode_name(ns),
                name: encode_name(rest),
            },
            None => Location {
                ns: NO_NAMESPACE_DIR.to_owned(),
                name: encode_name(key),
            },
        }
    }
}

/// Encode one path component (see [`FileBackend`](crate::FileBackend)). Injective for names up
/// to [`MAX_NAME`] bytes; longer ones are hashed.
pub(crate) fn encode_name(raw: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let raw = raw.as_bytes();
    let Some(last) = raw.len().checked_sub(1) else {
        return EMPTY_NAME.to_owned();
    };
    let escape = |out: &mut String, b: u8| {
        out.push('_');
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 0xf)] as char);
    };
    let mut out = String::with_capacity(raw.len().min(MAX_NAME) + 8);
    for (i, &b) in raw.iter().enumerate() {
        let literal = match b {
            b'h' => !(i == 0 && raw.get(1) == Some(&b'-')),
            b'a'..=b'z' | b'0'..=b'9' | b'-' => true,
            b'.' => i != 0 && i != last,
            _ => false,
        };
        if literal {
            out.push(char::from(b));
        } else {
            escape(&mut out, b);
        }
        if out.len() > MAX_NAME {
            return hashed_name(raw);
        }
    }
    if is_windows_device(&out) {
        // The first byte of a device name is a literal letter: escape it.
        let mut escaped = String::with_capacity(out.len() + 2);
        if let Some(&first) = raw.first() {
            escape(&mut escaped, first);
        }
        escaped.push_str(out.get(1..).unwrap_or(""));
        out = escaped;
        if out.len() > MAX_NAME {
            return hashed_name(raw);
        }
    }
    out
}

fn hashed_name(raw: &[u8]) -> String {
    format!("h-{:032x}", xxh3_128(raw))
}

/// `con`, `prn`, `aux`, `nul`, `com0`-`com9`, `lpt0`-`lpt9`, alone or before a `.`: reserved on
/// Windows whatever the extension.
pub(crate) fn is_windows_device(name: &str) -> bool {
    let stem = name.split('.').next().unwrap_or(name);
    match stem.len() {
        3 => matches!(stem, "con" | "prn" | "aux" | "nul"),
        4 => {
            (stem.starts_with("com") || stem.starts_with("lpt"))
                && stem.as_bytes().get(3).is_some_and(u8::is_ascii_digit)
        }
        _ => false,
    }
}

/// A temp file this backend makes: [`TEMP_PREFIX`] and [`TEMP_RAND`] letters or digits.
pub(crate) fn is_temp_name(name: &OsStr) -> bool {
    name.as_encoded_bytes()
        .strip_prefix(TEMP_PREFIX.as_bytes())
        .is_some_and(|r| r.len() == TEMP_RAND && r.iter().all(u8::is_ascii_alphanumeric))
}

/// A trash directory an older version of this backend made when it cleared a namespace:
/// [`TRASH_PREFIX`], milliseconds, `-`, 16 hex digits.
pub(crate) fn is_trash_name(name: &OsStr) -> bool {
    let Some(rest) = name
        .as_encoded_bytes()
        .strip_prefix(TRASH_PREFIX.as_bytes())
    else {
        return false;
    };
    let Some(dash) = rest.iter().position(|&b| b == b'-') else {
        return false;
    };
    let (ms, hex) = rest.split_at(dash);
    let hex = hex.get(1..).unwrap_or_default();
    !ms.is_empty()
        && ms.iter().all(u8::is_ascii_digit)
        && hex.len() == 16
        && hex.iter().all(u8::is_ascii_hexdigit)
}

pub(crate) fn is_hidden(name: &OsStr) -> bool {
    name.as_encoded_bytes().first() == Some(&b'.')
}

impl Location {
    /// The entry's file under the cache's `root`.
    pub(crate) fn path_under(&self, root: &Path) -> PathBuf {
        let mut p = root.join(&self.ns);
        p.push(&self.name);
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_safe_and_distinct() {
        let cases = [
            "", ".", "..", "...", "a", "A", "h-x", "h", "con", "CON", "nul.txt", "com1", "lpt9.x",
            "a.b", ".a", "a.", "a/b", "a\\b", "a\0b", "_", "_5f", "_empty", "日本",
        ];
        let mut seen = std::collections::HashSet::new();
        for c in cases {
            let n = encode_name(c);
            assert!(!n.is_empty() && n != "." && n != "..", "{c:?} -> {n:?}");
            assert!(!n.starts_with('.') && !n.ends_with('.'), "{c:?} -> {n:?}");
            assert!(
                n.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b)),
                "{c:?} -> {n:?}"
            );
            assert!(!is_windows_device(&n), "{c:?} -> {n:?}");
            assert!(seen.insert(n.clone()), "{c:?} collides as {n:?}");
        }
        assert!(seen.insert(NO_NAMESPACE_DIR.to_owned()));
        let long = "x".repeat(10_000);
        let h = encode_name(&long);
        assert!(h.starts_with("h-") && h.len() == 34);
        assert_eq!(encode_name("h-x"), "_68-x");
    }
}
