//! Stage 1: parse `#[cached(...)]` into [`Options`].
//!
//! Only the shape of each option is checked here (a duration string, a literal of the right
//! kind); the rules that relate options to each other or to the function live in `validate`.

use darling::ast::NestedMeta;
use darling::util::PathList;
use darling::FromMeta;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::quote;
use std::time::Duration;
use syn::spanned::Spanned;

/// The finest duration the engine counts: its deadlines and timeouts are whole milliseconds.
const RESOLUTION: Duration = Duration::from_millis(1);

/// A duration option: a string literal parsed at compile time (`"10m"`, `"1h 30m"`, `"250ms"`)
/// or any expression of type `std::time::Duration`.
#[derive(Debug, Clone)]
pub(crate) enum DurationOpt {
    /// A literal: its value (any `std::time::Duration`, however long) and the literal.
    Lit(Duration, syn::LitStr),
    /// An expression evaluated when the memo is first used.
    Expr(syn::Expr),
}

impl FromMeta for DurationOpt {
    fn from_expr(expr: &syn::Expr) -> darling::Result<Self> {
        if let syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(s),
            ..
        }) = expr
        {
            let d = humantime::parse_duration(&s.value()).map_err(|e| {
                let why = match e {
                    humantime::DurationError::NumberOverflow => format!(
                        "`{}` cannot be a `std::time::Duration`: it is longer than \
                         18446744073709551615 s, or finer than 1 ns",
                        s.value()
                    ),
                    e => format!(
                        "invalid duration `{}`: {e} (write e.g. \"10m\", \"1h 30m\", \"250ms\")",
                        s.value()
                    ),
                };
                darling::Error::custom(why).with_span(s)
            })?;
            return Ok(DurationOpt::Lit(d, s.clone()));
        }
        Ok(DurationOpt::Expr(expr.clone()))
    }
}

impl DurationOpt {
    /// The expression, when the duration is one (not a literal).
    pub(crate) fn expr(&self) -> Option<&syn::Expr> {
        match self {
            DurationOpt::Expr(e) => Some(e),
            DurationOpt::Lit(..) => None,
        }
    }

    /// A literal's value in whole milliseconds, as the engine counts it: saturated at
    /// `u64::MAX` (about 584 million years, which the engine reads as "never"), never wrapped
    /// round to a short duration. `None` for an expression.
    pub(crate) fn millis(&self) -> Option<u64> {
        match self {
            DurationOpt::Lit(d, _) => Some(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            DurationOpt::Expr(_) => None,
        }
    }

    /// The literal as written, or the expression's tokens.
    pub(crate) fn text(&self) -> String {
        match self {
            DurationOpt::Lit(_, s) => s.value(),
            DurationOpt::Expr(e) => quote!(#e).to_string(),
        }
    }

    /// The span of the literal or the expression.
    pub(crate) fn span(&self) -> Span {
        match self {
            DurationOpt::Lit(_, s) => s.span(),
            DurationOpt::Expr(e) => e.span(),
        }
    }

    /// An expression of type `std::time::Duration`.
    pub(crate) fn tokens(&self) -> TokenStream2 {
        match self {
            DurationOpt::Lit(..) => {
                let ms = self.millis().unwrap_or(u64::MAX);
                quote!(::std::time::Duration::from_millis(#ms))
            }
            DurationOpt::Expr(e) => quote!({ let __d: ::std::time::Duration = #e; __d }),
        }
    }

    /// A literal must be at least the engine's 1 ms resolution: zero, or a value rounded down
    /// to zero (`"500us"`), is an error at the literal.
    pub(crate) fn check_positive(&self) -> syn::Result<()> {
        match self {
            DurationOpt::Lit(d, s) if d.is_zero() => Err(syn::Error::new(
                s.span(),
                "a duration here must be longer than zero",
            )),
            DurationOpt::Lit(d, s) if *d < RESOLUTION => Err(syn::Error::new(
                s.span(),
                format!(
                    "`{}` is below the 1 ms resolution of durations (they are counted in whole \
                     milliseconds): write \"1ms\" or more",
                    s.value()
                ),
            )),
            _ => Ok(()),
        }
    }
}

/// A float option (`early_refresh = 1.0`, `jitter = 0.1`): a float literal. An integer literal
/// (`early_refresh = 1`) is refused with the float to write instead.
#[derive(Debug, Clone)]
pub(crate) struct FloatLit(pub syn::LitFloat);

impl FromMeta for FloatLit {
    fn from_expr(expr: &syn::Expr) -> darling::Result<Self> {
        match expr {
            syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Float(f),
                ..
            }) => Ok(FloatLit(f.clone())),
            syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Int(i),
                ..
            }) => Err(darling::Error::custom(format!(
                "`{0}` is an integer; this option takes a float: write {0}.0",
                i.base10_digits()
            ))
            .with_span(i)),
            // Invisible groups come from `macro_rules!` fragments such as `$b:expr`.
            syn::Expr::Group(g) => Self::from_expr(&g.expr),
            other => Err(
                darling::Error::custom("this option takes a float literal, such as 1.0")
                    .with_span(other),
            ),
        }
    }
}

/// The `cache` option: a URL string literal, opened at run time, or an expression of type
/// `Cache` or `&Cache`.
///
/// darling's own `syn::Expr` parser reads a string literal as Rust code (`"redis://..."` fails
/// to parse); this type keeps the literal as a URL.
#[derive(Debug, Clone)]
pub(crate) enum CacheOpt {
    /// `cache = "redis://..."`.
    Url(syn::LitStr),
    /// `cache = my_cache()`.
    Expr(syn::Expr),
}

impl CacheOpt {
    /// Whether this names, at compile time, a cache whose values go to a store (a URL of any
    /// scheme but `mem`/`memory`): its values and key arguments must have serde, checked at
    /// compile time. A cache given by an expression is known at run time only (checked at the
    /// function's first use).
    pub(crate) fn is_known_store(&self) -> bool {
        let CacheOpt::Url(url) = self else {
            return false;
        };
        let url = url.value();
        let scheme = url
            .split_once("://")
            .map(|(s, _)| s)
            .or_else(|| url.split_once(':').map(|(s, _)| s))
            .unwrap_or_default()
            .to_ascii_lowercase();
        scheme != "mem" && scheme != "memory"
    }
}

/// `tags = ["user:{id}", "users"]`: tag templates, string literals in an array.
#[derive(Debug, Clone)]
pub(crate) struct TagList(pub Vec<syn::LitStr>);

impl FromMeta for TagList {
    fn from_expr(expr: &syn::Expr) -> darling::Result<Self> {
        let syn::Expr::Array(array) = expr else {
            return Err(darling::Error::custom(
                "write the tags as an array of string templates: `tags = [\"user:{id}\", \"users\"]`",
            )
            .with_span(expr));
        };
        let mut tags = Vec::new();
        for e in &array.elems {
            match e {
                syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(s),
                    ..
                }) => tags.push(s.clone()),
                other => {
                    return Err(darling::Error::custom(
                        "a tag is a string template over the arguments, such as \"user:{id}\"",
                    )
                    .with_span(other))
                }
            }
        }
        if tags.is_empty() {
            return Err(darling::Error::custom("`tags = []` names no tag").with_span(expr));
        }
        Ok(TagList(tags))
    }
}

impl FromMeta for CacheOpt {
    fn from_expr(expr: &syn::Expr) -> darling::Result<Self> {
        match expr {
            syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(s),
                ..
            }) => {
                // The same test `Cache::from_url` applies first: a URL has a scheme.
                if !s.value().contains(':') {
                    return Err(darling::Error::custom(format!(
                        "`cache = \"{}\"` is not a cache URL (scheme://...); for a `Cache` \
                         expression, write it without quotes",
                        s.value()
                    ))
                    .with_span(s));
                }
                Ok(CacheOpt::Url(s.clone()))
            }
            syn::Expr::Lit(syn::ExprLit { lit, .. }) => Err(darling::Error::custom(
                "`cache` takes a URL string literal (`cache = \"redis://127.0.0.1/0\"`) or an \
                 expression of type `Cache` or `&Cache` (`cache = my_cache()`)",
            )
            .with_span(lit)),
            // Invisible groups come from `macro_rules!` fragments such as `$c:expr`.
            syn::Expr::Group(g) => Self::from_expr(&g.expr),
            other => Ok(CacheOpt::Expr(other.clone())),
        }
    }
}

/// The options of `#[cached(...)]`, each documented for users in the facade's `cached` docs.
///
/// Every field is optional; an absent option keeps the engine's default.
#[derive(Debug, Default, FromMeta)]
pub(crate) struct Options {
    /// `ttl = "10m"`: hard expiry; an entry older than this is never served. Default: forever.
    pub ttl: Option<DurationOpt>,
    /// `stale_after = "5m"`: soft expiry; past it the next call refreshes the entry (blocking,
    /// unless `refresh = "background"`).
    pub stale_after: Option<DurationOpt>,
    /// `stale_while_revalidate = "1m"`: serve the stale value for this long past `ttl` while one
    /// background refresh runs. Implies `refresh = "background"`; excludes `stale_after`.
    pub stale_while_revalidate: Option<DurationOpt>,
    /// `refresh = "block" | "background"`: how a stale entry is refreshed. `"background"` needs
    /// `stale_after` or `stale_while_revalidate`, and a free function.
    pub refresh: Option<syn::LitStr>,
    /// `lock = "none" | "local" | "distributed"`: who computes a missing entry. Default
    /// `"local"` (one caller per process; the others wait for it).
    pub lock: Option<syn::LitStr>,
    /// `lock_ttl = "30s"`: longest hold of a distributed lock (only with
    /// `lock = "distributed"`).
    pub lock_ttl: Option<DurationOpt>,
    /// `lock_wait = "10s"`: longest wait on another process's distributed lock before
    /// computing without it (default: while the holder renews its lease; only with
    /// `lock = "distributed"`).
    pub lock_wait: Option<DurationOpt>,
    /// `jitter = 0.1`: a random fraction of `ttl` (0.0 to 0.9) taken off each entry's lifetime,
    /// so entries written together do not expire together. Default 0.0.
    pub jitter: Option<FloatLit>,
    /// `negative_ttl = "30s"`: also cache negative results, for this long: `None` of a function
    /// returning `Option`, `Err` of one returning `Result` (the error type must then be
    /// serializable and `Clone`; excludes `fail_safe`). The name of `Policy::with_negative_ttl`.
    pub negative_ttl: Option<DurationOpt>,
    /// `serve_stale_on_error = false`: whether a stale value is served when its refresh fails.
    /// Default true.
    pub serve_stale_on_error: Option<bool>,
    /// `strict = true`: while the cache cannot be opened (`cache = "url"` whose backend is not
    /// open yet), the function returns the open error (`Err(steadycache::Error)` converted with
    /// `From`) instead of running on a memory fallback. Functions returning `Result` only.
    pub strict: Option<bool>,
    /// `fail_safe = "1h"`: keep each value this long past its `ttl`, and serve it when the
    /// function fails (an error or a panic) after the ttl. Needs `ttl` or `ttl_fn`; excludes
    /// `negative_ttl` on a function returning `Result`.
    pub fail_safe: Option<DurationOpt>,
    /// `fail_safe_throttle = "30s"`: after a failed recompute, serve the old value this long
    /// before calling the function again (default 30 s, with or without `fail_safe`).
    pub fail_safe_throttle: Option<DurationOpt>,
    /// `early_refresh = 1.0`: XFetch's beta (above 0, at most 100): before a value goes stale,
    /// reads refresh it early with a probability growing as the deadline nears.
    pub early_refresh: Option<FloatLit>,
    /// `soft_timeout = "100ms"`: with an old value to serve, stop waiting for the function
    /// after this long; it finishes in the background. Shorter than `hard_timeout`.
    pub soft_timeout: Option<DurationOpt>,
    /// `hard_timeout = "2s"`: stop waiting for the function after this long even without an
    /// old value (the caller gets `Err(FactoryTimeout.into())`).
    pub hard_timeout: Option<DurationOpt>,
    /// `background_completion = false`: a computation abandoned by a timeout does not store its
    /// result (default true).
    pub background_completion: Option<bool>,
    /// `min_calls = 3`: store a value only once the same arguments were computed this many
    /// times within the ttl (a counter in the backend).
    pub min_calls: Option<syn::LitInt>,
    /// `max_hits = 100`: drop an entry after it was served this many times.
    pub max_hits: Option<syn::LitInt>,
    /// `ttl_fn = path::to_fn`: the ttl of each value, chosen when it is stored: a
    /// `fn(&V) -> Duration` (`V`: the `Ok` type of a `Result` function, else the return type).
    pub ttl_fn: Option<syn::Expr>,
    /// `cache_if = path::to_fn`: store a value only when this `fn(&V) -> bool` says so.
    pub cache_if: Option<syn::Expr>,
    /// `cache = "redis://..."` or `cache = expr`: the cache, a URL string literal or an
    /// expression of type `Cache` or `&Cache`. Default: the process-wide default cache.
    pub cache: Option<CacheOpt>,
    /// `key = "user:{id}"`: a readable key template (`format!` syntax over the arguments)
    /// instead of the hash of the key arguments. Excludes `skip`.
    pub key: Option<syn::LitStr>,
    /// `convert = expr`: hash this expression's value (any `Serialize` value built from the
    /// arguments) instead of the key arguments (cached's `convert`); needed, or `key`, on
    /// generic functions. Excludes `key`, `skip` and `key_self`.
    pub convert: Option<syn::Expr>,
    /// `tags = ["user:{id}", "users"]`: tags of each value, templates over the arguments (the
    /// rules and escaping of `key`); `Cache::invalidate_tag("user:5")` makes every value
    /// stored with that tag a miss, in every process.
    pub tags: Option<TagList>,
    /// `key_prefix = "users"`: the key namespace, instead of module path + function name.
    pub key_prefix: Option<syn::LitStr>,
    /// `version = "2"`: a pinned version, instead of the hash of the function's tokens (which
    /// changes, and so drops old entries, whenever the function changes).
    pub version: Option<syn::LitStr>,
    /// `skip(client, log)`: arguments left out of the key (they need not be `Serialize`).
    pub skip: Option<PathList>,
    /// `key_self` or `key_self = true`: put `self` in the key; `key_self = false`: share the
    /// entries across instances. A method must say one or the other (or use `self` in its
    /// `key` template or `convert`).
    pub key_self: Option<bool>,
    /// `max_bytes = 1 << 20`: bound of the function's in-process tier in bytes, on a memory
    /// cache.
    pub max_bytes: Option<syn::Expr>,
    /// `entry_size_limit = 1 << 20`: store no value whose encoding is larger than this many
    /// bytes, in the store or in process (cachier's `entry_size_limit`); the value is still
    /// returned.
    pub entry_size_limit: Option<syn::Expr>,
    /// `tti = "10m"`: time-to-idle: a value not read for this long expires from the in-process
    /// tier (`Memo::with_tti`).
    pub tti: Option<DurationOpt>,
}

impl Options {
    /// Parse the attribute's arguments.
    pub(crate) fn parse(attr: TokenStream2) -> syn::Result<Options> {
        let metas = NestedMeta::parse_meta_list(attr).map_err(|e| syn::Error::new(e.span(), e))?;
        Options::from_list(&metas).map_err(syn::Error::from)
    }

    /// The names given to `skip(...)`, as written.
    pub(crate) fn skip_names(&self) -> Vec<String> {
        self.skip
            .as_ref()
            .map(|l| l.iter().map(|p| quote!(#p).to_string()).collect())
            .unwrap_or_default()
    }

    /// The span of `name` in `skip(...)`.
    pub(crate) fn skip_span(&self, name: &str) -> Span {
        self.skip
            .as_ref()
            .and_then(|l| l.iter().find(|p| quote!(#p).to_string() == name))
            .map(|p| p.span())
            .unwrap_or_else(Span::call_site)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(attr: &str) -> syn::Result<Options> {
        Options::parse(
            attr.parse()
                .map_err(|e| syn::Error::new(Span::call_site(), e))?,
        )
    }

    fn millis(attr: &str) -> Option<u64> {
        parse(attr).ok()?.ttl?.millis()
    }

    #[test]
    fn duration_literals_saturate_instead_of_wrapping() {
        assert_eq!(millis(r#"ttl = "1h 30m""#), Some(5_400_000));
        // 2^64 ms - 1, the most the engine counts.
        assert_eq!(
            millis(r#"ttl = "18446744073709551s 615ms""#),
            Some(u64::MAX)
        );
        // 2^64 ms + 384 ms and + 1 ms: wrapped to 384 and 1 before.
        assert_eq!(millis(r#"ttl = "18446744073709552s""#), Some(u64::MAX));
        assert_eq!(
            millis(r#"ttl = "18446744073709551s 617ms""#),
            Some(u64::MAX)
        );
        let beyond = parse(r#"ttl = "18446744073709551616s""#).err();
        let beyond = beyond.map(|e| e.to_string()).unwrap_or_default();
        assert!(beyond.contains("std::time::Duration"), "{beyond}");
    }

    #[test]
    fn a_duration_below_a_millisecond_is_refused_as_such() {
        let check = |attr: &str| {
            parse(attr)
                .ok()
                .and_then(|o| o.ttl)
                .map(|t| t.check_positive().map_err(|e| e.to_string()))
        };
        assert_eq!(check(r#"ttl = "1ms""#), Some(Ok(())));
        assert_eq!(check(r#"ttl = "1500us""#), Some(Ok(())));
        let sub = check(r#"ttl = "999us""#).and_then(Result::err);
        assert!(sub.is_some_and(|e| e.contains("1 ms resolution")));
        let zero = check(r#"ttl = "0s""#).and_then(Result::err);
        assert!(zero.is_some_and(|e| e.contains("longer than zero")));
    }

    #[test]
    fn a_float_option_refuses_an_integer_with_the_float_to_write() {
        let e = parse("early_refresh = 2").err().map(|e| e.to_string());
        assert!(
            e.as_deref().is_some_and(|e| e.contains("write 2.0")),
            "{e:?}"
        );
        let e = parse("jitter = 0").err().map(|e| e.to_string());
        assert!(
            e.as_deref().is_some_and(|e| e.contains("write 0.0")),
            "{e:?}"
        );
        assert!(parse("early_refresh = 1.0").is_ok());
    }

    #[test]
    fn cache_takes_a_url_literal_as_a_url() {
        for url in [
            "redis://127.0.0.1:6379/0",
            "mem://?max_bytes=1000",
            "sqlite::memory:",
        ] {
            let o = parse(&format!("cache = {url:?}")).map_err(|e| e.to_string());
            assert!(
                matches!(o, Ok(Options { cache: Some(CacheOpt::Url(ref s)), .. }) if s.value() == url),
                "{url}: {o:?}"
            );
        }
    }

    #[test]
    fn cache_takes_an_expression_as_an_expression() {
        for e in [
            "my_cache()",
            "&MY_CACHE",
            "MY_CACHE.clone()",
            "crate::caches::main()",
        ] {
            let o = parse(&format!("cache = {e}")).map_err(|e| e.to_string());
            assert!(
                matches!(
                    o,
                    Ok(Options {
                        cache: Some(CacheOpt::Expr(_)),
                        ..
                    })
                ),
                "{e}: {o:?}"
            );
        }
    }

    #[test]
    fn cache_rejects_other_literals_and_scheme_less_strings() {
        for bad in [
            "cache = 5",
            "cache = true",
            "cache = 1.5",
            "cache = \"my_cache()\"",
        ] {
            let e = parse(bad).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(e.contains("cache"), "{bad}: {e:?}");
        }
    }
}
