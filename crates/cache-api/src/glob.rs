//! Glob patterns over stored keys ([`Cache::invalidate_matching`](crate::Cache::invalidate_matching)).
//!
//! The syntax is the one Redis's `SCAN MATCH` and shells use:
//!
//! | pattern | matches |
//! |---|---|
//! | `*` | any run of characters, `:` included, possibly empty |
//! | `?` | exactly one character |
//! | `[abc]`, `[a-z]` | one character of the set (ranges inclusive) |
//! | `[!abc]`, `[^abc]` | one character not in the set |
//! | `\x` | the character `x` itself (`\*` is a star) |
//!
//! A pattern is checked when it is parsed (an unclosed `[`, an empty set, a trailing `\` or a
//! range that runs backwards is a clear [`Error::Config`]), matched by this module in linear
//! space, and rendered as a superset for each store's native matcher ([`Glob::to_redis`],
//! [`Glob::to_sqlite_glob`]); its [`literal_prefix`](Glob::literal_prefix) narrows a scan to the
//! keys that can match. Internal keys (those containing `#`: locks, counters, tag times) never
//! match any pattern, so an invalidation cannot break a lease held by another process.

use crate::error::{Error, Result};
use std::fmt;

/// The longest pattern accepted, in bytes.
pub const MAX_GLOB_LEN: usize = 4096;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Char(char),
    Any,
    Star,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

/// A parsed glob pattern over stored keys (see the module docs for the syntax).
///
/// ```
/// use steadycache_api::Glob;
/// let g = Glob::new("user:*:profile").unwrap();
/// assert!(g.matches("user:5:profile"));
/// assert!(!g.matches("user:5:orders"));
/// assert_eq!(g.literal_prefix(), "user:");
/// assert!(Glob::new("user:[").is_err());
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Glob {
    source: String,
    tokens: Vec<Token>,
}

impl fmt::Debug for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Glob({:?})", self.source)
    }
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

fn bad(pattern: &str, why: &str) -> Error {
    let shown: String = pattern.chars().take(80).collect();
    Error::Config(format!("invalid glob pattern {shown:?}: {why}"))
}

impl Glob {
    /// Parse `pattern`.
    pub fn new(pattern: &str) -> Result<Glob> {
        if pattern.len() > MAX_GLOB_LEN {
            return Err(bad(pattern, "longer than 4096 bytes"));
        }
        let mut tokens = Vec::new();
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            let token = match c {
                '*' => {
                    if tokens.last() == Some(&Token::Star) {
                        continue; // `**` is `*`
                    }
                    Token::Star
                }
                '?' => Token::Any,
                '\\' => Token::Char(chars.next().ok_or_else(|| bad(pattern, "ends in `\\`"))?),
                '[' => Self::class(pattern, &mut chars)?,
                c => Token::Char(c),
            };
            tokens.push(token);
        }
        Ok(Glob {
            source: pattern.to_owned(),
            tokens,
        })
    }

    fn class(pattern: &str, chars: &mut std::str::Chars<'_>) -> Result<Token> {
        let mut negated = false;
        let mut ranges = Vec::new();
        let mut first = true;
        loop {
            let c = chars
                .next()
                .ok_or_else(|| bad(pattern, "a `[` is never closed"))?;
            let lo = match c {
                '!' | '^' if first && !negated => {
                    negated = true;
                    continue;
                }
                ']' if !ranges.is_empty() => break,
                ']' => return Err(bad(pattern, "an empty `[]` set")),
                '\\' => chars.next().ok_or_else(|| bad(pattern, "ends in `\\`"))?,
                c => c,
            };
            first = false;
            let mut peek = chars.clone();
            let hi = match (peek.next(), peek.next()) {
                (Some('-'), Some(hi)) if hi != ']' => {
                    chars.next();
                    chars.next();
                    let hi = if hi == '\\' {
                        chars.next().ok_or_else(|| bad(pattern, "ends in `\\`"))?
                    } else {
                        hi
                    };
                    if hi < lo {
                        return Err(bad(pattern, "a range that runs backwards"));
                    }
                    hi
                }
                _ => lo,
            };
            ranges.push((lo, hi));
        }
        Ok(Token::Class { negated, ranges })
    }

    /// The pattern as given.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The characters every match starts with (up to the first wildcard).
    pub fn literal_prefix(&self) -> String {
        self.tokens
            .iter()
            .map_while(|t| match t {
                Token::Char(c) => Some(*c),
                _ => None,
            })
            .collect()
    }

    /// Whether `key` matches. Internal keys (containing `#`) never do.
    pub fn matches(&self, key: &str) -> bool {
        !key.contains('#') && self.matches_text(key)
    }

    /// The classic two-pointer glob match: linear space, and at most (pattern × text) steps.
    fn matches_text(&self, text: &str) -> bool {
        let text: Vec<char> = text.chars().collect();
        let (mut p, mut t) = (0usize, 0usize);
        let mut star: Option<(usize, usize)> = None;
        while t < text.len() {
            match self.tokens.get(p) {
                Some(Token::Star) => {
                    star = Some((p, t));
                    p += 1;
                    continue;
                }
                Some(tok) if one(tok, text[t]) => {
                    p += 1;
                    t += 1;
                    continue;
                }
                _ => {}
            }
            match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            }
        }
        self.tokens[p.min(self.tokens.len())..]
            .iter()
            .all(|t| *t == Token::Star)
    }

    /// A Redis `MATCH` pattern matching every key this pattern matches, and possibly more:
    /// literals escaped with `\`, `*` as is, and `?` and `[...]` widened to `*` (Redis matches
    /// them byte by byte, and reads some escapes in a set differently): narrow a `SCAN` with
    /// it, then keep what [`matches`](Self::matches) accepts.
    pub fn to_redis(&self) -> String {
        let mut out = String::with_capacity(self.source.len() + 4);
        for t in &self.tokens {
            match t {
                Token::Char(c) => push_escaped(&mut out, *c, "*?[]\\^-"),
                Token::Any | Token::Star | Token::Class { .. } => {
                    if !out.ends_with('*') || out.ends_with("\\*") {
                        out.push('*');
                    }
                }
            }
        }
        out
    }

    /// A SQLite `GLOB` pattern matching every key this pattern matches, and possibly more (a
    /// `[...]` set is widened to `?`; literal `*`, `?` and `[` are written as `[*]`, `[?]`,
    /// `[[]`): narrow a scan with it, then keep what [`matches`](Self::matches) accepts.
    pub fn to_sqlite_glob(&self) -> String {
        let mut out = String::with_capacity(self.source.len() + 4);
        for t in &self.tokens {
            match t {
                Token::Char(c @ ('*' | '?' | '[')) => {
                    out.push('[');
                    out.push(*c);
                    out.push(']');
                }
                Token::Char(c) => out.push(*c),
                Token::Any | Token::Class { .. } => out.push('?'),
                Token::Star => out.push('*'),
            }
        }
        out
    }

    /// Whether some key starting with `prefix` may match (used to find the in-process tiers a
    /// pattern reaches: a tier is a function's keys, all starting with its `namespace:version:`).
    pub fn may_match_under(&self, prefix: &str) -> bool {
        let mut pc = prefix.chars();
        for t in &self.tokens {
            let Some(c) = pc.next() else {
                return true; // the prefix is used up: the rest of a key can be anything
            };
            match t {
                Token::Star => return true,
                tok if one(tok, c) => {}
                _ => return false,
            }
        }
        pc.next().is_none()
    }
}

fn one(token: &Token, c: char) -> bool {
    match token {
        Token::Char(x) => *x == c,
        Token::Any => true,
        Token::Star => false,
        Token::Class { negated, ranges } => {
            ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c)) != *negated
        }
    }
}

fn push_escaped(out: &mut String, c: char, specials: &str) {
    if specials.contains(c) {
        out.push('\\');
    }
    out.push(c);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, k: &str) -> bool {
        Glob::new(p).unwrap().matches(k)
    }

    #[test]
    fn wildcards_match_as_redis_does() {
        let table: &[(&str, &str, bool)] = &[
            ("user:*:profile", "user:5:profile", true),
            ("user:*:profile", "user::profile", true),
            ("user:*:profile", "user:5:6:profile", true),
            ("user:*:profile", "user:5:profiles", false),
            ("user:?", "user:5", true),
            ("user:?", "user:55", false),
            ("user:[0-4]", "user:3", true),
            ("user:[0-4]", "user:5", false),
            ("user:[!0-4]", "user:5", true),
            ("user:[^0-4]", "user:3", false),
            ("a\\*b", "a*b", true),
            ("a\\*b", "axb", false),
            ("*", "", true),
            ("", "", true),
            ("", "a", false),
            ("a**b", "ab", true),
            ("*a*b*c*", "xxaxxbxxcxx", true),
            ("*a*b*c*", "xxaxxcxxbxx", false),
            ("[]-]", "]", false), // `[]` is an empty set: refused below
        ];
        for (p, k, want) in table {
            match Glob::new(p) {
                Ok(g) => assert_eq!(g.matches(k), *want, "{p} ~ {k}"),
                Err(_) => assert_eq!(*p, "[]-]"),
            }
        }
    }

    #[test]
    fn internal_keys_never_match() {
        assert!(!m("*", "user:5#lock"));
        assert!(!m("user:*", "user:5#calls"));
    }

    #[test]
    fn bad_patterns_are_clear_errors() {
        for p in ["user:[", "user:\\", "[z-a]", "[]", "[!]"] {
            let e = Glob::new(p).unwrap_err().to_string();
            assert!(e.contains("invalid glob pattern"), "{p}: {e}");
        }
        assert!(Glob::new(&"*".repeat(MAX_GLOB_LEN + 1)).is_err());
    }

    #[test]
    fn renderings_and_prefixes() {
        let g = Glob::new("us\\*er:[a-c]?*").unwrap();
        assert_eq!(g.literal_prefix(), "us*er:");
        assert_eq!(g.to_redis(), "us\\*er:*");
        assert_eq!(Glob::new("a?b").unwrap().to_redis(), "a*b");
        assert!(g.may_match_under("us*er:"));
        assert!(g.may_match_under("us*"));
        assert!(!g.may_match_under("user:"));
        assert!(Glob::new("app.users:*")
            .unwrap()
            .may_match_under("app.users:1:"));
        assert!(!Glob::new("app.users:2:x")
            .unwrap()
            .may_match_under("app.users:1:"));
        assert_eq!(g.to_sqlite_glob(), "us[*]er:??*");
    }

    #[test]
    fn long_texts_match_in_bounded_steps() {
        let g = Glob::new(&"*a".repeat(50)).unwrap();
        let text = "a".repeat(49) + &"b".repeat(10_000);
        assert!(!g.matches(&text));
    }
}
