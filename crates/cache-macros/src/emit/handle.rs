//! The memoized function with its new body, and its cache handle.

use super::body::key_refs;
use super::{Names, ValueShape};
use crate::model::FnModel;
use crate::options::Options;
use proc_macro2::TokenStream as TokenStream2;
use quote::{format_ident, quote};

/// A free function: the function, the handle type `NameCache` (`memo()`, `invalidate`, `key`,
/// `invalidate_async`, `Deref` to the `Memo`) and `name_cache()`.
pub(crate) fn free_items(
    opts: &Options,
    model: &FnModel,
    names: &Names,
    shape: &ValueShape,
    shape_value: &TokenStream2,
    memo_static: &TokenStream2,
    body: &TokenStream2,
) -> TokenStream2 {
    let v_ty = &shape.v_ty;
    // Guards (`#[rate_limit]`, `#[circuit_breaker]`) go on the inner body (see `body::inner`).
    let attrs = model
        .func
        .attrs
        .iter()
        .filter(|a| !crate::guard::is_guard(a));
    let (vis, sig) = (&model.func.vis, &model.func.sig);
    let (handle_ty, handle_fn) = (&names.handle_ty, &names.handle_fn);
    let Docs {
        handle: doc_handle,
        handle_fn: doc_handle_fn,
        memo: doc_memo,
        invalidate: doc_inv,
        key: doc_key,
    } = Docs::of(&names.name_str);
    let params = params(model);
    let (gen, wh) = (
        &model.func.sig.generics,
        &model.func.sig.generics.where_clause,
    );
    let inv_key = invalidate_key(opts, model);
    let controls = super::control::control_items(model, v_ty, &params, &inv_key, shape_value);
    quote! {
        #(#attrs)*
        #[allow(clippy::needless_return, unreachable_code)]
        #vis #sig #body

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
            pub fn invalidate #gen(&self, #(#params),*) -> ::steadycache::Result<bool> #wh {
                let __steadycache_memo = Self::memo();
                #inv_key
                __steadycache_memo.invalidate_key(__steadycache_key)
            }

            #[doc = #doc_key]
            #[allow(unused_variables, clippy::too_many_arguments)]
            pub fn key #gen(&self, #(#params),*) -> ::steadycache::Result<::std::string::String> #wh {
                let __steadycache_memo = Self::memo();
                #inv_key
                ::core::result::Result::Ok(__steadycache_memo.key_for(&__steadycache_key))
            }

            #[doc = #doc_inv]
            #[allow(unused_variables, clippy::too_many_arguments)]
            pub async fn invalidate_async #gen(&self, #(#params),*) -> ::steadycache::Result<bool> #wh {
                let __steadycache_memo = Self::memo();
                #inv_key
                __steadycache_memo.invalidate_key_async(__steadycache_key).await
            }

            #controls
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
}

/// A method: the method, and the associated functions `name_cache()` (the `Memo`),
/// `name_invalidate(..)` (taking `&self` too when the key needs it) and the per-call controls
/// (`control::method_controls`).
pub(crate) fn method_items(
    opts: &Options,
    model: &FnModel,
    names: &Names,
    v_ty: &TokenStream2,
    memo_static: &TokenStream2,
    body: &TokenStream2,
) -> TokenStream2 {
    let (attrs, vis, sig) = (&model.func.attrs, &model.func.vis, &model.func.sig);
    let handle_fn = &names.handle_fn;
    let Docs {
        memo: doc_memo,
        invalidate: doc_inv,
        ..
    } = Docs::of(&names.name_str);
    let params = params(model);
    let (gen, wh) = (
        &model.func.sig.generics,
        &model.func.sig.generics.where_clause,
    );
    let inv_key = invalidate_key(opts, model);
    // Tags rendered from `self` need it too (the controls render a tagged function's tags).
    let tags_use_self = opts
        .tags
        .iter()
        .flat_map(|t| &t.0)
        .any(|tpl| tpl.value().contains("{self"));
    let self_param = if model.key_self || crate::validate::key_uses_self(opts) || tags_use_self {
        quote!(&self,)
    } else {
        quote!()
    };
    let inv_name = format_ident!("{}_invalidate", model.name());
    let controls = super::control::method_controls(model, v_ty, &params, &inv_key, &self_param);
    quote! {
        #(#attrs)*
        #[allow(clippy::needless_return, unreachable_code, clippy::redundant_closure_call)]
        #vis #sig #body

        #[doc = #doc_memo]
        #[allow(dead_code)]
        #vis fn #handle_fn() -> &'static ::steadycache::__private::Memo<#v_ty> { #memo_static }

        #[doc = #doc_inv]
        #[allow(dead_code, unused_variables, clippy::too_many_arguments)]
        #vis fn #inv_name #gen (#self_param #(#params),*) -> ::steadycache::Result<bool> #wh {
            let __steadycache_memo = Self::#handle_fn();
            #inv_key
            __steadycache_memo.invalidate_key(__steadycache_key)
        }

        #controls
    }
}

/// The doc comments of the handle's items.
struct Docs {
    handle: String,
    handle_fn: String,
    memo: String,
    invalidate: String,
    key: String,
}

impl Docs {
    fn of(name: &str) -> Docs {
        Docs {
            handle: format!("The cache handle of [`{name}`]: clear, invalidate one call, stats (it derefs to its `Memo`)."),
            handle_fn: format!("The cache handle of [`{name}`]."),
            memo: format!("The engine state of [`{name}`]'s cache (clear, stats, enable)."),
            invalidate: format!("Remove the cached entry of one call of [`{name}`]."),
            key: format!("The key under which one call of [`{name}`] is stored (`namespace:version:args`): for inspecting the store (`redis-cli GET`, the backend's own tools). An error when an argument cannot be serialized."),
        }
    }
}

/// `arg: Type` for every argument, skipped ones included (the handle mirrors the function).
fn params(model: &FnModel) -> Vec<TokenStream2> {
    model
        .args
        .iter()
        .map(|a| {
            let (i, t) = (&a.ident, &a.ty);
            quote!(#i: #t)
        })
        .collect()
}

/// `let __steadycache_key: ArgsKey = ..;` in the handle, where a key that cannot be serialized
/// is an error (`?`).
fn invalidate_key(opts: &Options, model: &FnModel) -> TokenStream2 {
    let key = key_only(opts, model);
    // A tagged function's controls (`get_cached`, `prime`) judge and stamp values by its tags.
    let Some(tags) = &opts.tags else {
        return key;
    };
    let render = super::render_tags(&tags.0);
    quote! {
        #key
        #render
        let __steadycache_key = __steadycache_key.with_tags(&__steadycache_tags);
    }
}

fn key_only(opts: &Options, model: &FnModel) -> TokenStream2 {
    if let Some(tpl) = &opts.key {
        let render = super::render_template(tpl);
        quote! {
            #render
            let __steadycache_key = ::steadycache::__private::ArgsKey::text(&__steadycache_text);
        }
    } else if let Some(convert) = &opts.convert {
        quote! {
            let __steadycache_key = ::steadycache::__private::ArgsKey::hashed(
                ::steadycache::__private::hash_args(&(#convert))?,
            );
        }
    } else {
        let refs = key_refs(model);
        quote! {
            let __steadycache_key = ::steadycache::__private::ArgsKey::hashed(
                ::steadycache::__private::hash_args(&(#(#refs,)*))?,
            );
        }
    }
}
