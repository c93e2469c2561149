//! `#[rate_limit]` and `#[call_breaker]`: a guard statement in front of the function's body,
//! on a `RateLimiter` or a `CallBreaker` kept in a `static`.
//!
//! Under `#[cached]` (written above them) they move onto the cached function's inner body, so
//! they guard the computations (the misses), not the hits; `#[cached]` passes them the outer
//! function's name (`fn_name`), which names the guard.

use crate::err;
use crate::options::{CacheOpt, DurationOpt, FloatLit};
use darling::ast::NestedMeta;
use darling::FromMeta;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::quote;
use syn::spanned::Spanned;
use syn::{ItemFn, ReturnType};

/// The options of `#[rate_limit(...)]`.
#[derive(Debug, FromMeta)]
struct RateOptions {
    /// `limit = 10`: calls admitted per period.
    limit: syn::LitInt,
    /// `period = "1s"`.
    period: DurationOpt,
    /// `cache = "redis://…"` or an expression: where the counts live (default cache if absent).
    cache: Option<CacheOpt>,
    /// `on_exceed = "error"` (the default: `Err(RateLimited.into())`) or `"wait"`.
    on_exceed: Option<syn::LitStr>,
    /// `name = "github"`: the limit's name, shared by every function giving it (default: the
    /// module path and the function's name).
    name: Option<syn::LitStr>,
    /// Set by `#[cached]`: the name of the function it memoizes.
    fn_name: Option<syn::LitStr>,
}

/// The options of `#[call_breaker(...)]`.
#[derive(Debug, FromMeta)]
struct BreakerOptions {
    /// `error_rate = 0.5`: the share of failed calls (0 to 1) that opens the breaker.
    error_rate: FloatLit,
    /// `min_calls = 20`: calls in the period before the rate counts.
    min_calls: syn::LitInt,
    /// `period = "1m"`: the window the calls are counted in.
    period: DurationOpt,
    /// `half_open_after = "30s"`: how long it stays open before a probe.
    half_open_after: DurationOpt,
    cache: Option<CacheOpt>,
    name: Option<syn::LitStr>,
    fn_name: Option<syn::LitStr>,
}

fn parse<T: FromMeta>(attr: TokenStream2) -> syn::Result<T> {
    let metas = NestedMeta::parse_meta_list(attr).map_err(|e| syn::Error::new(e.span(), e))?;
    T::from_list(&metas).map_err(syn::Error::from)
}

fn function(item: TokenStream2, what: &str) -> syn::Result<ItemFn> {
    syn::parse2(item).map_err(|e| err(e.span(), format!("#[{what}] goes on a function")))
}

/// Whether the function returns a `Result` (by the last segment of its return type's path).
pub(crate) fn returns_result(f: &ItemFn) -> bool {
    match &f.sig.output {
        ReturnType::Type(_, ty) => match &**ty {
            syn::Type::Path(p) => p.path.segments.last().is_some_and(|s| s.ident == "Result"),
            _ => false,
        },
        ReturnType::Default => false,
    }
}

/// A method's guard names itself: the attribute cannot see the impl's type, so two methods of
/// the same name in one module would share it.
fn check_named(
    name: &Option<syn::LitStr>,
    fn_name: &Option<syn::LitStr>,
    f: &ItemFn,
    what: &str,
) -> syn::Result<()> {
    let method = f
        .sig
        .inputs
        .iter()
        .any(|i| matches!(i, syn::FnArg::Receiver(_)));
    if method && name.is_none() && fn_name.is_none() {
        return Err(err(
            f.sig.ident.span(),
            format!("#[{what}] on a method needs `name = \"…\"` (the attribute cannot see the impl's type, so two methods of one name in a module would share it)"),
        ));
    }
    Ok(())
}

/// The guard's name: `name`, or the module path and the function's name.
fn name_expr(
    name: &Option<syn::LitStr>,
    fn_name: &Option<syn::LitStr>,
    f: &ItemFn,
) -> TokenStream2 {
    match (name, fn_name) {
        (Some(n), _) => quote!(::std::string::String::from(#n)),
        (None, Some(f)) => quote!(::std::format!("{}::{}", ::core::module_path!(), #f)),
        (None, None) => {
            let ident = f.sig.ident.to_string();
            quote!(::std::format!("{}::{}", ::core::module_path!(), #ident))
        }
    }
}

fn source(cache: &Option<CacheOpt>) -> TokenStream2 {
    match cache {
        None => quote!(::steadycache::__private::CacheSource::Default),
        Some(CacheOpt::Url(s)) => quote!(::steadycache::__private::CacheSource::With(
            || ::steadycache::__private::cache_from_url(#s)
        )),
        Some(CacheOpt::Expr(e)) => quote!(::steadycache::__private::CacheSource::With(
            || ::steadycache::__private::into_cache(#e)
        )),
    }
}

/// `#[rate_limit(limit = 10, period = "1s", on_exceed = "error" | "wait", cache = …)]`.
pub(crate) fn rate_limit(attr: TokenStream2, item: TokenStream2) -> syn::Result<TokenStream2> {
    let o: RateOptions = parse(attr.clone())?;
    let f = function(item.clone(), "rate_limit")?;
    if let Some(reordered) = breaker_first(&attr, &f) {
        return Ok(reordered);
    }
    let (limit, wait) = check_rate(&o, &f)?;
    let (name, period, source) = (
        name_expr(&o.name, &o.fn_name, &f),
        o.period.tokens(),
        source(&o.cache),
    );
    let check = match (wait, f.sig.asyncness.is_some()) {
        (true, true) => quote!(__STEADYCACHE_LIMIT.acquire().await;),
        (true, false) => quote!(__STEADYCACHE_LIMIT.acquire_blocking();),
        (false, true) => quote! {
            if let ::core::result::Result::Err(e) = __STEADYCACHE_LIMIT.try_acquire().await {
                return ::core::result::Result::Err(::core::convert::From::from(e));
            }
        },
        (false, false) => quote! {
            if let ::core::result::Result::Err(e) = __STEADYCACHE_LIMIT.try_acquire_blocking() {
                return ::core::result::Result::Err(::core::convert::From::from(e));
            }
        },
    };
    let (attrs, vis, sig, block) = (&f.attrs, &f.vis, &f.sig, &f.block);
    Ok(quote! {
        #(#attrs)*
        #vis #sig {
            static __STEADYCACHE_LIMIT: ::std::sync::LazyLock<::steadycache::RateLimiter> =
                ::std::sync::LazyLock::new(|| {
                    ::steadycache::RateLimiter::new(&#name, #limit, #period).with_cache(#source)
                });
            #check
            #block
        }
    })
}

/// Written above a `#[call_breaker]`: the function with the breaker first, so that it wraps
/// the function alone and never counts this limit's refusals as failures.
fn breaker_first(attr: &TokenStream2, f: &ItemFn) -> Option<TokenStream2> {
    let is_breaker = |a: &&syn::Attribute| {
        a.path()
            .segments
            .last()
            .is_some_and(|s| s.ident == "call_breaker")
    };
    if !f.attrs.iter().any(|a| is_breaker(&a)) {
        return None;
    }
    let (breakers, others): (Vec<_>, Vec<_>) = f.attrs.iter().partition(is_breaker);
    let (vis, sig, block) = (&f.vis, &f.sig, &f.block);
    Some(quote! {
        #(#breakers)*
        #[::steadycache::rate_limit(#attr)]
        #(#others)*
        #vis #sig #block
    })
}

/// The rules of `#[rate_limit]`: the limit, and whether a refused call waits for a slot.
fn check_rate(o: &RateOptions, f: &ItemFn) -> syn::Result<(u64, bool)> {
    let limit: u64 = o.limit.base10_parse()?;
    if limit == 0 {
        return Err(err(
            o.limit.span(),
            "`limit` is at least 1 (a limit of 0 would refuse every call)",
        ));
    }
    check_named(&o.name, &o.fn_name, f, "rate_limit")?;
    o.period.check_positive()?;
    let wait = match o.on_exceed.as_ref().map(|l| (l.value(), l.span())) {
        None => false,
        Some((v, _)) if v == "error" => false,
        Some((v, _)) if v == "wait" => true,
        Some((v, span)) => {
            return Err(err(
                span,
                format!("`on_exceed = \"{v}\"`: expected \"error\" or \"wait\""),
            ))
        }
    };
    if !wait && !returns_result(f) {
        return Err(err(
            f.sig.output.span(),
            "`on_exceed = \"error\"` (the default) returns `Err(steadycache::RateLimited)` \
             converted with `From`: it needs a function returning `Result`; write \
             `on_exceed = \"wait\"` to wait for a slot instead",
        ));
    }
    Ok((limit, wait))
}

/// `#[call_breaker(error_rate = 0.5, min_calls = 20, period = "1m", half_open_after = "30s",
/// cache = …)]`.
pub(crate) fn call_breaker(attr: TokenStream2, item: TokenStream2) -> syn::Result<TokenStream2> {
    let o: BreakerOptions = parse(attr)?;
    let f = function(item, "call_breaker")?;
    let (rate, min_calls) = check_breaker(&o, &f)?;
    let name = name_expr(&o.name, &o.fn_name, &f);
    let (period, half, source) = (
        o.period.tokens(),
        o.half_open_after.tokens(),
        source(&o.cache),
    );
    let (attrs, vis, sig, block) = (&f.attrs, &f.vis, &f.sig, &f.block);
    let ret = match &sig.output {
        ReturnType::Type(_, t) => quote!(#t),
        ReturnType::Default => quote!(()),
    };
    let (before, run, after) = if sig.asyncness.is_some() {
        (
            quote!(__STEADYCACHE_BREAKER.before().await),
            quote!(async #block.await),
            quote!(__STEADYCACHE_BREAKER.after(__steadycache_permit, __steadycache_result.is_ok()).await;),
        )
    } else {
        (
            quote!(__STEADYCACHE_BREAKER.before_blocking()),
            quote!((|| -> #ret #block)()),
            quote!(__STEADYCACHE_BREAKER.after_blocking(__steadycache_permit, __steadycache_result.is_ok());),
        )
    };
    Ok(quote! {
        #(#attrs)*
        #[allow(clippy::redundant_closure_call)]
        #vis #sig {
            static __STEADYCACHE_BREAKER: ::std::sync::LazyLock<::steadycache::CallBreaker> =
                ::std::sync::LazyLock::new(|| {
                    ::steadycache::CallBreaker::new(&#name, #rate, #min_calls, #period, #half)
                        .with_cache(#source)
                });
            let __steadycache_permit = match #before {
                ::core::result::Result::Ok(p) => p,
                ::core::result::Result::Err(e) => {
                    return ::core::result::Result::Err(::core::convert::From::from(e));
                }
            };
            let __steadycache_result: #ret = #run;
            #after
            __steadycache_result
        }
    })
}

/// The rules of `#[call_breaker]`: its error rate and its minimum of calls.
fn check_breaker(o: &BreakerOptions, f: &ItemFn) -> syn::Result<(f64, u64)> {
    check_named(&o.name, &o.fn_name, f, "call_breaker")?;
    if !returns_result(f) {
        return Err(err(
            f.sig.output.span(),
            "#[call_breaker] counts `Err` results as failures and returns \
             `Err(steadycache::CircuitOpen)` converted with `From` while open: it needs a \
             function returning `Result`",
        ));
    }
    let rate: f64 = o.error_rate.0.base10_parse()?;
    if !(rate > 0.0 && rate <= 1.0) {
        return Err(err(
            o.error_rate.0.span(),
            "`error_rate` is a share of calls: above 0.0, at most 1.0",
        ));
    }
    let min_calls: u64 = o.min_calls.base10_parse()?;
    if min_calls == 0 {
        return Err(err(o.min_calls.span(), "`min_calls` is at least 1"));
    }
    o.period.check_positive()?;
    o.half_open_after.check_positive()?;
    Ok((rate, min_calls))
}

/// Whether `attr` is one of these guards (moved onto the inner body by `#[cached]`).
pub(crate) fn is_guard(attr: &syn::Attribute) -> bool {
    attr.path()
        .segments
        .last()
        .is_some_and(|s| s.ident == "rate_limit" || s.ident == "call_breaker")
}

/// `attr` (a guard) with `fn_name = "<name>"` added, unless it names itself.
pub(crate) fn for_function(attr: &syn::Attribute, name: &str) -> TokenStream2 {
    let path = attr.path();
    let lit = syn::LitStr::new(name, Span::call_site());
    match &attr.meta {
        syn::Meta::List(l) => {
            let tokens = &l.tokens;
            quote!(#[#path(#tokens, fn_name = #lit)])
        }
        _ => quote!(#attr),
    }
}
