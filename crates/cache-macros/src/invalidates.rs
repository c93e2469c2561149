//! `#[invalidates(user_profile(id), tags = ["user:{id}"], cache = …)]`: after a mutating
//! function returns `Ok` (any value, for a function that does not return a `Result`), drop the
//! entries of the memoized calls it names and the tags it renders, in every process.
//!
//! Everything the invalidation needs is computed before the body runs (the named calls' keys,
//! through each function's handle, with the arguments cloned; the tags, rendered from the
//! arguments), so the body may consume its arguments. A call that names no `#[cached]`
//! function, or gives it arguments of the wrong number or types, does not compile: the keys
//! come from the function's own handle. A failed invalidation is logged (the function's result
//! is returned as it is).

use crate::err;
use crate::options::{CacheOpt, TagList};
use darling::FromMeta;
use proc_macro2::TokenStream as TokenStream2;
use quote::{format_ident, quote};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ExprCall, FnArg, ItemFn, Pat, ReturnType, Token};

struct Targets {
    calls: Vec<ExprCall>,
    tags: Vec<syn::LitStr>,
    cache: Option<CacheOpt>,
}

fn parse(attr: TokenStream2) -> syn::Result<Targets> {
    let exprs = Punctuated::<Expr, Token![,]>::parse_terminated.parse2(attr)?;
    let mut t = Targets {
        calls: Vec::new(),
        tags: Vec::new(),
        cache: None,
    };
    for e in exprs {
        match e {
            Expr::Call(c) if matches!(*c.func, Expr::Path(_)) => t.calls.push(c),
            Expr::Assign(a) => {
                let name = match &*a.left {
                    Expr::Path(p) => p.path.get_ident().map(|i| i.to_string()),
                    _ => None,
                };
                match name.as_deref() {
                    Some("tags") => t.tags = TagList::from_expr(&a.right)?.0,
                    Some("cache") => t.cache = Some(CacheOpt::from_expr(&a.right)?),
                    _ => {
                        return Err(err(
                            a.left.span(),
                            "#[invalidates] takes calls of `#[cached]` functions, `tags = [...]` and `cache = ...`",
                        ))
                    }
                }
            }
            other => {
                return Err(err(
                    other.span(),
                    "expected a call of a `#[cached]` function with this function's arguments \
                     (`user_profile(id)`), `tags = [\"user:{id}\"]` or `cache = ...`",
                ))
            }
        }
    }
    if t.calls.is_empty() && t.tags.is_empty() {
        return Err(err(
            proc_macro2::Span::call_site(),
            "#[invalidates] names nothing to invalidate: give calls of `#[cached]` functions or `tags = [...]`",
        ));
    }
    Ok(t)
}

/// The path of a named function's handle: `a::b::f` → `a::b::f_cache`.
fn handle_path(call: &ExprCall) -> syn::Result<syn::Path> {
    let Expr::Path(p) = &*call.func else {
        return Err(err(call.span(), "expected a function path"));
    };
    let mut path = p.path.clone();
    let last = path
        .segments
        .last_mut()
        .ok_or_else(|| err(call.span(), "expected a function path"))?;
    last.ident = format_ident!("{}_cache", last.ident);
    Ok(path)
}

/// Expand `#[invalidates(...)]` on `item`.
pub(crate) fn invalidates(attr: TokenStream2, item: TokenStream2) -> syn::Result<TokenStream2> {
    let targets = parse(attr)?;
    let f: ItemFn = syn::parse2(item)
        .map_err(|e| err(e.span(), "#[invalidates] goes on a function or a method"))?;
    let ret_ty = check_function(&f, &targets)?;
    let is_async = f.sig.asyncness.is_some();
    let (mut before, mut after) = call_steps(&targets.calls, is_async)?;
    if !targets.tags.is_empty() {
        before.push(crate::emit::render_tags(&targets.tags));
        after.push(tags_step(&targets.cache, is_async));
    }
    let block = &f.block;
    let run = if is_async {
        quote!(let __steadycache_result: #ret_ty = async move #block.await;)
    } else {
        quote!(let __steadycache_result: #ret_ty = (move || -> #ret_ty #block)();)
    };
    let succeeded = if crate::guard::returns_result(&f) {
        quote!(__steadycache_result.is_ok())
    } else {
        quote!(true)
    };
    let (attrs, vis, sig) = (&f.attrs, &f.vis, &f.sig);
    Ok(quote! {
        #(#attrs)*
        #[allow(clippy::redundant_closure_call)]
        #vis #sig {
            #(#before)*
            #run
            if #succeeded {
                #(#after)*
            }
            __steadycache_result
        }
    })
}

/// The function's return type (named: not `impl Trait`), once its tag templates are checked
/// against its arguments.
fn check_function(f: &ItemFn, targets: &Targets) -> syn::Result<syn::Type> {
    let ret_ty: syn::Type = match &f.sig.output {
        ReturnType::Default => syn::parse_quote!(()),
        ReturnType::Type(_, t) => (**t).clone(),
    };
    if let syn::Type::ImplTrait(t) = &ret_ty {
        return Err(err(
            t.span(),
            "#[invalidates] needs a named return type (not `impl Trait`)",
        ));
    }
    let method = f.sig.inputs.iter().any(|i| matches!(i, FnArg::Receiver(_)));
    let args: Vec<String> = f
        .sig
        .inputs
        .iter()
        .filter_map(|i| match i {
            FnArg::Typed(t) => match &*t.pat {
                Pat::Ident(p) => Some(p.ident.to_string()),
                _ => None,
            },
            FnArg::Receiver(_) => None,
        })
        .collect();
    for tpl in &targets.tags {
        crate::validate::check_template(tpl, &args, method, "tag")?;
    }
    Ok(ret_ty)
}

/// For each named call: before the body, its key (through the function's handle) and cache;
/// after it, the invalidation of that key, reported.
fn call_steps(
    calls: &[ExprCall],
    is_async: bool,
) -> syn::Result<(Vec<TokenStream2>, Vec<TokenStream2>)> {
    let mut before = Vec::new();
    let mut after = Vec::new();
    for (n, call) in calls.iter().enumerate() {
        let handle = handle_path(call)?;
        let name = quote!(#call).to_string();
        let v = format_ident!("__steadycache_inv_{n}");
        let call_args = call
            .args
            .iter()
            .map(|a| quote!(::core::clone::Clone::clone(&(#a))));
        before.push(quote! {
            let #v = {
                let h = #handle();
                (h.key(#(#call_args),*), ::core::clone::Clone::clone(h.cache()))
            };
        });
        let invalidate = if is_async {
            quote!(c.invalidate(&k).await)
        } else {
            quote!(c.invalidate_sync(&k))
        };
        after.push(quote! {
            let (k, c) = #v;
            let r = match k {
                ::core::result::Result::Ok(k) => #invalidate.map(|_| ()),
                ::core::result::Result::Err(e) => ::core::result::Result::Err(e),
            };
            ::steadycache::__private::report_invalidation(#name, r);
        });
    }
    Ok((before, after))
}

/// After the body: the invalidation of the rendered tags (`__steadycache_tags`) in `cache`,
/// reported.
fn tags_step(cache: &Option<CacheOpt>, is_async: bool) -> TokenStream2 {
    let cache = match cache {
        None => quote!(::steadycache::default_cache()),
        Some(CacheOpt::Url(s)) => quote! {{
            static C: ::std::sync::LazyLock<::steadycache::Cache> =
                ::std::sync::LazyLock::new(|| ::steadycache::__private::cache_from_url(#s));
            ::core::clone::Clone::clone(&*C)
        }},
        Some(CacheOpt::Expr(e)) => quote!(::steadycache::__private::into_cache(#e)),
    };
    let invalidate = if is_async {
        quote!(#cache.invalidate_tags(&__steadycache_tags).await)
    } else {
        quote!(#cache.invalidate_tags_sync(&__steadycache_tags))
    };
    quote! {
        ::steadycache::__private::report_invalidation("tags", #invalidate);
    }
}
