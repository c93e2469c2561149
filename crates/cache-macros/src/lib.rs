//! The `#[cached]` attribute of steadycache.
//!
//! Thin by design: it parses and validates the options in one place ([`Options`]), then emits
//! calls into `steadycache::__private` (fully qualified paths only). Every run-time decision
//! (which store, fresh or stale, who computes) belongs to the engine in `steadycache-api`.
#![deny(missing_docs)]

use darling::ast::NestedMeta;
use darling::util::PathList;
use darling::FromMeta;
use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{FnArg, ItemFn, Pat, ReturnType, Type};

/// A duration option: a string literal parsed at compile time (`"10m"`, `"1h 30m"`, `"250ms"`)
/// or any expression of type `std::time::Duration`.
#[derive(Debug, Clone)]
enum DurationOpt {
    Millis(u64, Span),
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
                darling::Error::custom(format!(
                    "invalid duration `{}`: {e} (write e.g. \"10m\", \"1h 30m\", \"250ms\")",
                    s.value()
                ))
                .with_span(s)
            })?;
            return Ok(DurationOpt::Millis(d.as_millis() as u64, s.span()));
        }
        Ok(DurationOpt::Expr(expr.clone()))
    }
    fn from_string(value: &str) -> darling::Result<Self> {
        Self::from_expr(&syn::Expr::Lit(syn::ExprLit {
            attrs: vec![],
            lit: syn::Lit::Str(syn::LitStr::new(value, Span::call_site())),
        }))
    }
}

impl DurationOpt {
    fn tokens(&self) -> TokenStream2 {
        match self {
            DurationOpt::Millis(ms, _) => quote!(::std::time::Duration::from_millis(#ms)),
            DurationOpt::Expr(e) => quote!({ let __d: ::std::time::Duration = #e; __d }),
        }
    }
    fn is_zero(&self) -> Option<Span> {
        match self {
            DurationOpt::Millis(0, s) => Some(*s),
            _ => None,
        }
    }
}

/// The options of `#[cached(...)]`, each documented in the facade's `cached` docs.
#[derive(Debug, Default, FromMeta)]
struct Options {
    /// Hard expiry.
    ttl: Option<DurationOpt>,
    /// Soft expiry (refresh due; blocking unless `stale_while_revalidate`).
    stale_after: Option<DurationOpt>,
    /// Serve stale for this long past `ttl` while one background refresh runs.
    stale_while_revalidate: Option<DurationOpt>,
    /// "block" or "background".
    refresh: Option<syn::LitStr>,
    /// "none", "local" (default) or "distributed".
    lock: Option<syn::LitStr>,
    /// Longest hold of a distributed lock.
    lock_ttl: Option<DurationOpt>,
    /// Fraction of ttl jitter, 0.0 to 0.9.
    jitter: Option<syn::LitFloat>,
    /// Cache `None` results for this long.
    cache_none: Option<DurationOpt>,
    /// Cache `Err` results for this long (the error type must be serializable and `Clone`).
    cache_err: Option<DurationOpt>,
    /// Serve the stale value when its refresh fails (default true).
    serve_stale_on_error: Option<bool>,
    /// The cache: a URL string literal or an expression of type `Cache` (or `&Cache`).
    cache: Option<syn::Expr>,
    /// Readable key template, e.g. "user:{id}".
    key: Option<syn::LitStr>,
    /// Namespace instead of module path + name.
    key_prefix: Option<syn::LitStr>,
    /// Pinned version instead of the token hash.
    version: Option<syn::LitStr>,
    /// Arguments left out of the key.
    skip: Option<PathList>,
    /// Put `self` in the key (it is skipped by default).
    key_self: Option<bool>,
    /// Bound of the function's in-process tier in bytes.
    max_bytes: Option<syn::Expr>,
}

enum Kind {
    Plain,
    Option,
    Result,
}

fn last_segment(ty: &Type) -> Option<&syn::PathSegment> {
    match ty {
        Type::Path(p) if p.qself.is_none() => p.path.segments.last(),
        Type::Group(g) => last_segment(&g.elem),
        Type::Paren(p) => last_segment(&p.elem),
        _ => None,
    }
}

fn kind_of(ty: &Type) -> Kind {
    match last_segment(ty).map(|s| s.ident.to_string()) {
        Some(s) if s == "Result" => Kind::Result,
        Some(s) if s == "Option" => Kind::Option,
        _ => Kind::Plain,
    }
}

struct Arg {
    ident: syn::Ident,
    ty: Type,
    in_key: bool,
}

fn err(span: Span, msg: impl std::fmt::Display) -> syn::Error {
    syn::Error::new(span, msg)
}

fn camel(name: &str) -> String {
    name.split('_')
        .filter(|s| !s.is_empty())
        .map(|s| {
            let mut c = s.chars();
            match c.next() {
                Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

/// Memoize a function, sync or async, free or a method. See `steadycache::cached` for the
/// options and examples.
#[proc_macro_attribute]
pub fn cached(attr: TokenStream, item: TokenStream) -> TokenStream {
    match expand(attr.into(), item.into()) {
        Ok(t) => t.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

fn expand(attr: TokenStream2, item: TokenStream2) -> syn::Result<TokenStream2> {
    let metas = NestedMeta::parse_meta_list(attr).map_err(|e| err(e.span(), e))?;
    let opts = Options::from_list(&metas).map_err(syn::Error::from)?;
    let func: ItemFn = syn::parse2(item.clone()).map_err(|e| {
        err(
            e.span(),
            "#[cached] goes on a function or a method (in an impl block)",
        )
    })?;
    let sig = &func.sig;
    if sig.constness.is_some() {
        return Err(err(
            sig.constness.span(),
            "#[cached] cannot memoize a const fn",
        ));
    }
    if let Some(g) = sig.generics.type_params().next() {
        return Err(err(
            g.span(),
            "#[cached] cannot memoize a generic function: each function keeps one typed store \
             (write a non-generic wrapper per type)",
        ));
    }
    if let Some(g) = sig.generics.const_params().next() {
        return Err(err(
            g.span(),
            "#[cached] cannot memoize a function with const generics",
        ));
    }
    if sig.variadic.is_some() {
        return Err(err(
            sig.span(),
            "#[cached] cannot memoize a variadic function",
        ));
    }
    let is_async = sig.asyncness.is_some();

    // ---- arguments
    let skip: Vec<String> = opts
        .skip
        .as_ref()
        .map(|l| l.iter().map(|p| p.to_token_stream().to_string()).collect())
        .unwrap_or_default();
    let mut receiver: Option<&syn::Receiver> = None;
    let mut args: Vec<Arg> = Vec::new();
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(r) => receiver = Some(r),
            FnArg::Typed(pt) => {
                let ident = match &*pt.pat {
                    Pat::Ident(pi) if pi.by_ref.is_none() && pi.subpat.is_none() => {
                        pi.ident.clone()
                    }
                    other => {
                        return Err(err(
                            other.span(),
                            "#[cached] needs plain argument names (no patterns): destructure \
                             inside the body",
                        ))
                    }
                };
                let in_key = !skip.contains(&ident.to_string());
                args.push(Arg {
                    ident,
                    ty: (*pt.ty).clone(),
                    in_key,
                });
            }
        }
    }
    for s in &skip {
        if !args.iter().any(|a| a.ident == s) {
            let span = opts
                .skip
                .as_ref()
                .and_then(|l| l.iter().find(|p| p.to_token_stream().to_string() == *s))
                .map(|p| p.span())
                .unwrap_or_else(Span::call_site);
            return Err(err(
                span,
                format!("`skip({s})`: the function has no argument `{s}`"),
            ));
        }
    }
    let key_self = opts.key_self.unwrap_or(false);
    if key_self && receiver.is_none() {
        return Err(err(
            Span::call_site(),
            "`key_self` needs a method taking `self`",
        ));
    }
    if let Some(r) = receiver {
        if r.reference.is_none() && !key_self {
            // `self` by value is fine; nothing to add.
        }
    }

    // ---- return type
    let ret_ty: Type = match &sig.output {
        ReturnType::Default => syn::parse_quote!(()),
        ReturnType::Type(_, t) => (**t).clone(),
    };
    if let Type::ImplTrait(t) = &ret_ty {
        return Err(err(
            t.span(),
            "#[cached] cannot store an `impl Trait` return value: name the type",
        ));
    }
    let kind = kind_of(&ret_ty);
    if opts.cache_err.is_some() && !matches!(kind, Kind::Result) {
        return Err(err(
            ret_ty.span(),
            "`cache_err` needs a function returning `Result`",
        ));
    }
    if opts.cache_none.is_some() && !matches!(kind, Kind::Option) {
        return Err(err(
            ret_ty.span(),
            "`cache_none` needs a function returning `Option`",
        ));
    }

    // ---- policy options
    for d in [
        &opts.ttl,
        &opts.stale_after,
        &opts.stale_while_revalidate,
        &opts.lock_ttl,
        &opts.cache_none,
        &opts.cache_err,
    ]
    .into_iter()
    .flatten()
    {
        if let Some(s) = d.is_zero() {
            return Err(err(s, "a duration here must be longer than zero"));
        }
    }
    let refresh_mode = match &opts.refresh {
        None => None,
        Some(l) => match l.value().as_str() {
            "block" => Some(false),
            "background" => Some(true),
            other => {
                return Err(err(
                    l.span(),
                    format!("`refresh = \"{other}\"`: expected \"block\" or \"background\""),
                ))
            }
        },
    };
    let background = opts.stale_while_revalidate.is_some() || refresh_mode == Some(true);
    if opts.stale_while_revalidate.is_some() && refresh_mode == Some(false) {
        return Err(err(
            opts.refresh
                .as_ref()
                .map_or(Span::call_site(), |l| l.span()),
            "`stale_while_revalidate` refreshes in the background; it cannot be combined with \
             `refresh = \"block\"` (use `stale_after` for a blocking refresh)",
        ));
    }
    if opts.stale_while_revalidate.is_some() && opts.stale_after.is_some() {
        return Err(err(
            Span::call_site(),
            "give either `stale_after` or `stale_while_revalidate`, not both: \
             `ttl = A, stale_while_revalidate = B` is fresh for A and stale for B more",
        ));
    }
    if refresh_mode == Some(true)
        && opts.stale_after.is_none()
        && opts.stale_while_revalidate.is_none()
    {
        return Err(err(
            opts.refresh
                .as_ref()
                .map_or(Span::call_site(), |l| l.span()),
            "`refresh = \"background\"` needs `stale_after` or `stale_while_revalidate`: \
             nothing ever goes stale otherwise",
        ));
    }
    if background && receiver.is_some() {
        return Err(err(
            receiver.map_or(Span::call_site(), |r| r.span()),
            "background refresh is not supported on methods: the refresh outlives the call and \
             cannot borrow `self` (memoize a free function taking the needed fields)",
        ));
    }
    let lock = match &opts.lock {
        None => quote!(::steadycache::__private::Lock::Local),
        Some(l) => match l.value().as_str() {
            "none" => quote!(::steadycache::__private::Lock::None),
            "local" => quote!(::steadycache::__private::Lock::Local),
            "distributed" => quote!(::steadycache::__private::Lock::Distributed),
            other => {
                return Err(err(
                    l.span(),
                    format!(
                        "`lock = \"{other}\"`: expected \"none\", \"local\" or \"distributed\""
                    ),
                ))
            }
        },
    };
    if opts.lock_ttl.is_some()
        && opts.lock.as_ref().map(|l| l.value()) != Some("distributed".into())
    {
        return Err(err(
            Span::call_site(),
            "`lock_ttl` applies only with `lock = \"distributed\"`",
        ));
    }
    let jitter = match &opts.jitter {
        None => quote!(0.0),
        Some(j) => {
            let v: f64 = j.base10_parse()?;
            if !(0.0..=0.9).contains(&v) {
                return Err(err(j.span(), "`jitter` is a fraction from 0.0 to 0.9"));
            }
            quote!(#j)
        }
    };

    // ---- key
    let key_args: Vec<&Arg> = args.iter().filter(|a| a.in_key).collect();
    let key_expr = if let Some(tpl) = &opts.key {
        if opts.skip.is_some() {
            return Err(err(
                tpl.span(),
                "`key` names the arguments it uses; `skip` does not apply",
            ));
        }
        let text = tpl.value();
        let mut rest = text.as_str();
        let mut names = Vec::new();
        while let Some(open) = rest.find('{') {
            let after = &rest[open + 1..];
            if let Some(stripped) = after.strip_prefix('{') {
                rest = stripped;
                continue;
            }
            let close = after
                .find('}')
                .ok_or_else(|| err(tpl.span(), "unclosed `{` in the key template"))?;
            let inner = &after[..close];
            let name = inner.split(':').next().unwrap_or("").trim();
            if name.is_empty() {
                return Err(err(
                    tpl.span(),
                    "key template placeholders name an argument: `{id}`",
                ));
            }
            if !args.iter().any(|a| a.ident == name) {
                return Err(err(
                    tpl.span(),
                    format!(
                        "key template uses `{{{name}}}` but the function has no argument `{name}`"
                    ),
                ));
            }
            names.push(name.to_string());
            rest = &after[close + 1..];
        }
        if names.is_empty() && !args.is_empty() {
            return Err(err(
                tpl.span(),
                "the key template uses no argument: every call would share one entry",
            ));
        }
        quote! {
            let __steadycache_text = ::std::format!(#tpl);
            let __steadycache_key = ::core::option::Option::Some(
                ::steadycache::__private::ArgsKey::text(&__steadycache_text),
            );
        }
    } else {
        let refs: Vec<TokenStream2> = key_args
            .iter()
            .map(|a| {
                let i = &a.ident;
                quote!(&#i)
            })
            .chain(key_self.then(|| quote!(self)))
            .collect();
        quote! {
            let __steadycache_key = match ::steadycache::__private::hash_args(&(#(#refs,)*)) {
                ::core::result::Result::Ok(h) => {
                    ::core::option::Option::Some(::steadycache::__private::ArgsKey::hashed(h))
                }
                ::core::result::Result::Err(e) => {
                    __steadycache_memo.key_error(&e);
                    ::core::option::Option::None
                }
            };
        }
    };
    let asserts: Vec<TokenStream2> = if opts.key.is_some() {
        Vec::new()
    } else {
        key_args
            .iter()
            .map(|a| {
                let i = &a.ident;
                quote_spanned!(a.ty.span()=> ::steadycache::__private::assert_key_arg(&#i);)
            })
            .collect()
    };

    // ---- version and namespace
    let name = &sig.ident;
    let name_str = name.to_string();
    let version = match &opts.version {
        Some(v) => v.value(),
        None => {
            let mut toks = quote!(#sig).to_string();
            toks.push_str(&func.block.to_token_stream().to_string());
            toks.push_str(&attr_string(&opts));
            format!("{:08x}", xxhash_rust::xxh3::xxh3_64(toks.as_bytes()) as u32)
        }
    };

    // ---- value and error types
    let (v_ty, e_ty, to_result, from_result, negative): (
        TokenStream2,
        TokenStream2,
        TokenStream2,
        TokenStream2,
        TokenStream2,
    ) = match kind {
        Kind::Result if opts.cache_err.is_none() => (
            quote!(<#ret_ty as ::steadycache::__private::ResultParts>::Ok),
            quote!(<#ret_ty as ::steadycache::__private::ResultParts>::Err),
            quote!(::steadycache::__private::ResultParts::into_result),
            quote!(::core::convert::identity),
            quote!(|_| false),
        ),
        Kind::Result => (
            quote!(#ret_ty),
            quote!(::core::convert::Infallible),
            quote!(::core::result::Result::Ok),
            quote!(::steadycache::__private::infallible),
            quote!(|v| ::steadycache::__private::ResultParts::is_err_ref(v)),
        ),
        Kind::Option => (
            quote!(#ret_ty),
            quote!(::core::convert::Infallible),
            quote!(::core::result::Result::Ok),
            quote!(::steadycache::__private::infallible),
            quote!(|v| ::core::option::Option::is_none(v)),
        ),
        Kind::Plain => (
            quote!(#ret_ty),
            quote!(::core::convert::Infallible),
            quote!(::core::result::Result::Ok),
            quote!(::steadycache::__private::infallible),
            quote!(|_| false),
        ),
    };
    let v_assert =
        quote_spanned!(ret_ty.span()=> ::steadycache::__private::assert_value::<#v_ty>(););

    // ---- policy
    let mut policy = quote!(::steadycache::__private::Policy::forever());
    if let Some(t) = &opts.ttl {
        let t = t.tokens();
        policy = quote!(#policy.with_ttl(::core::option::Option::Some(#t)));
    }
    if let Some(s) = &opts.stale_after {
        let s = s.tokens();
        policy = quote!(#policy.with_stale_after(#s));
    }
    if let Some(w) = &opts.stale_while_revalidate {
        let w = w.tokens();
        policy = quote!(#policy.stale_while_revalidate(#w));
    }
    if background {
        policy = quote!(#policy.with_refresh(::steadycache::__private::Refresh::Background));
    }
    policy = quote!(#policy.with_lock(#lock).with_jitter(#jitter));
    if let Some(t) = &opts.lock_ttl {
        let t = t.tokens();
        policy = quote!(#policy.with_lock_ttl(#t));
    }
    if let Some(t) = opts.cache_none.as_ref().or(opts.cache_err.as_ref()) {
        let t = t.tokens();
        policy = quote!(#policy.with_negative_ttl(::core::option::Option::Some(#t)));
    }
    if let Some(b) = opts.serve_stale_on_error {
        policy = quote!(#policy.with_serve_stale_on_error(#b));
    }
    let mut memo_new = quote!(::steadycache::__private::Memo::<#v_ty>::new(::core::module_path!(), #name_str, #version, #policy));
    if let Some(p) = &opts.key_prefix {
        memo_new = quote!(#memo_new.with_namespace(#p));
    }
    if let Some(c) = &opts.cache {
        let source = match c {
            syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(s),
                ..
            }) => {
                quote!(::steadycache::__private::cache_from_url(#s))
            }
            e => quote!(::steadycache::__private::into_cache(#e)),
        };
        memo_new =
            quote!(#memo_new.with_cache(::steadycache::__private::CacheSource::With(|| #source)));
    }
    if let Some(m) = &opts.max_bytes {
        memo_new = quote!(#memo_new.with_max_bytes(#m));
    }
    let memo_static = quote! {
        static __STEADYCACHE_MEMO: ::std::sync::LazyLock<::steadycache::__private::Memo<#v_ty>> =
            ::std::sync::LazyLock::new(|| #memo_new);
        &__STEADYCACHE_MEMO
    };

    // ---- the share-error probe
    let share = match kind {
        Kind::Result if opts.cache_err.is_none() => quote! {{
            #[allow(unused_imports)]
            use ::steadycache::__private::{ShareViaClone as _, ShareNone as _};
            (&&::steadycache::__private::ErrProbe::<#e_ty>::new()).share_fn()
        }},
        _ => quote!(::core::option::Option::None),
    };
    let shape = quote!(::steadycache::__private::Shape::<#v_ty, #e_ty> { is_negative: #negative, share_err: #share });

    // ---- the call
    let attrs = &func.attrs;
    let vis = &func.vis;
    let block = &func.block;
    let arg_idents: Vec<&syn::Ident> = args.iter().map(|a| &a.ident).collect();
    let handle_ty = format_ident!("{}Cache", camel(&name_str));
    let handle_fn = format_ident!("{}_cache", name);
    let memo_path = if receiver.is_some() {
        quote!(Self::#handle_fn())
    } else {
        quote!(#handle_ty::memo())
    };

    // The uncached body, callable as `__steadycache_inner(args)`.
    let (inner_def, call_inner) = if receiver.is_some() {
        let body = if is_async {
            quote!(let __steadycache_inner = move || async move #block;)
        } else {
            quote!(let __steadycache_inner = move || -> #ret_ty #block;)
        };
        (body, quote!(__steadycache_inner()))
    } else {
        let inputs = &sig.inputs;
        let generics = &sig.generics;
        let asyncness = &sig.asyncness;
        let unsafety = &sig.unsafety;
        let output = &sig.output;
        (
            quote!(#[allow(clippy::too_many_arguments)] #unsafety #asyncness fn __steadycache_inner #generics (#inputs) #output #block),
            quote!(__steadycache_inner(#(#arg_idents),*)),
        )
    };
    let call_inner_awaited = if is_async {
        quote!(#call_inner.await)
    } else {
        call_inner.clone()
    };

    // Background refresh job (free functions only): owned clones of the arguments.
    let (compute_call, refresh) = if background {
        let owned: Vec<TokenStream2> = args
            .iter()
            .map(|a| {
                let i = &a.ident;
                let o = format_ident!("__steadycache_owned_{}", i);
                match &a.ty {
                    Type::Reference(r) => {
                        let inner = &r.elem;
                        quote!(let #o = <#inner as ::std::borrow::ToOwned>::to_owned(#i);)
                    }
                    _ => quote!(let #o = ::core::clone::Clone::clone(&#i);),
                }
            })
            .collect();
        let pass: Vec<TokenStream2> = args
            .iter()
            .map(|a| {
                let o = format_ident!("__steadycache_owned_{}", a.ident);
                match &a.ty {
                    Type::Reference(r) => {
                        let inner = &r.elem;
                        quote!(::std::borrow::Borrow::<#inner>::borrow(&#o))
                    }
                    _ => quote!(#o),
                }
            })
            .collect();
        let pass_compute: Vec<TokenStream2> = args
            .iter()
            .map(|a| {
                let i = &a.ident;
                match &a.ty {
                    Type::Reference(_) => quote!(#i),
                    _ => quote!(::core::clone::Clone::clone(&#i)),
                }
            })
            .collect();
        let await_tok = if is_async { quote!(.await) } else { quote!() };
        let compute = quote!(#to_result(__steadycache_inner(#(#pass_compute),*)#await_tok));
        let job = if is_async {
            quote!(::steadycache::__private::RefreshWith(|| { #(#owned)* async move { #to_result(__steadycache_inner(#(#pass),*).await) } }))
        } else {
            quote!(::steadycache::__private::RefreshWith(|| { #(#owned)* move || #to_result(__steadycache_inner(#(#pass),*)) }))
        };
        (compute, job)
    } else {
        (
            quote!(#to_result(#call_inner_awaited)),
            quote!(::steadycache::__private::NoRefresh),
        )
    };

    let call = if is_async {
        quote! {
            __steadycache_memo
                .call_async(__steadycache_key, #shape, move || async move { #compute_call }, #refresh)
                .await
        }
    } else {
        quote!(__steadycache_memo.call_sync(__steadycache_key, #shape, || #compute_call, #refresh))
    };
    let body = quote! {{
        #(#asserts)*
        #v_assert
        let __steadycache_memo: &'static ::steadycache::__private::Memo<#v_ty> = #memo_path;
        #key_expr
        #inner_def
        if let ::core::option::Option::Some(__steadycache_key) = __steadycache_key {
            return #from_result(#call);
        }
        #call_inner_awaited
    }};

    // ---- the handle
    let inv_params: Vec<TokenStream2> = args
        .iter()
        .map(|a| {
            let i = &a.ident;
            let t = &a.ty;
            quote!(#i: #t)
        })
        .collect();
    let inv_key = key_expr_for_invalidate(&opts, &key_args, key_self);
    let mut sig_out = sig.clone();
    sig_out.ident = name.clone();
    let doc_handle = format!("The cache handle of [`{name_str}`]: clear, invalidate one call, stats (it derefs to its `Memo`).");
    let doc_handle_fn = format!("The cache handle of [`{name_str}`].");
    let doc_memo = format!("The engine state of [`{name_str}`]'s cache (clear, stats, enable).");
    let doc_inv = format!("Remove the cached entry of one call of [`{name_str}`].");
    let doc_key = format!("The key under which one call of [`{name_str}`] is stored (`namespace:version:args`): for inspecting the store (`redis-cli GET`, the backend's own tools). An error when an argument cannot be serialized.");

    let out = if receiver.is_some() {
        let self_param = if key_self { quote!(&self,) } else { quote!() };
        let inv_name = format_ident!("{}_invalidate", name);
        quote! {
            #(#attrs)*
            #[allow(clippy::needless_return, unreachable_code, clippy::redundant_closure_call)]
            #vis #sig_out #body

            #[doc = #doc_memo]
            #[allow(dead_code)]
            #vis fn #handle_fn() -> &'static ::steadycache::__private::Memo<#v_ty> { #memo_static }

            #[doc = #doc_inv]
            #[allow(dead_code, unused_variables, clippy::too_many_arguments)]
            #vis fn #inv_name(#self_param #(#inv_params),*) -> ::steadycache::Result<bool> {
                let __steadycache_memo = Self::#handle_fn();
                #inv_key
                __steadycache_memo.invalidate_key(__steadycache_key)
            }
        }
    } else {
        quote! {
            #(#attrs)*
            #[allow(clippy::needless_return, unreachable_code)]
            #vis #sig_out #body

            #[doc = #doc_handle]
            #[allow(dead_code)]
            #[derive(Clone, Copy, Debug)]
            #vis struct #handle_ty(());

            #[allow(dead_code)]
            impl #handle_ty {
                #[doc = #doc_memo]
                pub fn memo() -> &'static ::steadycache::__private::Memo<#v_ty> { #memo_static }

                #[doc = #doc_inv]
                #[allow(unused_variables, clippy::too_many_arguments)]
                pub fn invalidate(&self, #(#inv_params),*) -> ::steadycache::Result<bool> {
                    let __steadycache_memo = Self::memo();
                    #inv_key
                    __steadycache_memo.invalidate_key(__steadycache_key)
                }

                #[doc = #doc_key]
                #[allow(unused_variables, clippy::too_many_arguments)]
                pub fn key(&self, #(#inv_params),*) -> ::steadycache::Result<::std::string::String> {
                    let __steadycache_memo = Self::memo();
                    #inv_key
                    ::core::result::Result::Ok(__steadycache_memo.key_for(&__steadycache_key))
                }

                #[doc = #doc_inv]
                #[allow(unused_variables, clippy::too_many_arguments)]
                pub async fn invalidate_async(&self, #(#inv_params),*) -> ::steadycache::Result<bool> {
                    let __steadycache_memo = Self::memo();
                    #inv_key
                    __steadycache_memo.invalidate_key_async(__steadycache_key).await
                }
            }

            impl ::core::ops::Deref for #handle_ty {
                type Target = ::steadycache::__private::Memo<#v_ty>;
                fn deref(&self) -> &Self::Target {
                    Self::memo()
                }
            }

            #[doc = #doc_handle_fn]
            #[allow(dead_code)]
            #vis fn #handle_fn() -> #handle_ty {
                #handle_ty(())
            }
        }
    };
    Ok(out)
}

fn key_expr_for_invalidate(opts: &Options, key_args: &[&Arg], key_self: bool) -> TokenStream2 {
    if let Some(tpl) = &opts.key {
        quote! {
            let __steadycache_text = ::std::format!(#tpl);
            let __steadycache_key = ::steadycache::__private::ArgsKey::text(&__steadycache_text);
        }
    } else {
        let refs: Vec<TokenStream2> = key_args
            .iter()
            .map(|a| {
                let i = &a.ident;
                quote!(&#i)
            })
            .chain(key_self.then(|| quote!(self)))
            .collect();
        quote! {
            let __steadycache_key = ::steadycache::__private::ArgsKey::hashed(
                ::steadycache::__private::hash_args(&(#(#refs,)*))?,
            );
        }
    }
}

/// The options that change what is stored also change the version.
fn attr_string(opts: &Options) -> String {
    format!(
        "{:?}|{:?}|{:?}",
        opts.key.as_ref().map(|k| k.value()),
        opts.cache_err.is_some(),
        opts.cache_none.is_some()
    )
}
