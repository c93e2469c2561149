//! The memoized function's new body: compile-time checks of the key arguments and the value,
//! the key, the original body as `__steadycache_inner`, and the call into the `Memo`.

use super::{Names, ValueShape};
use crate::model::{Arg, FnModel};
use crate::options::Options;
use crate::validate::Plan;
use proc_macro2::TokenStream as TokenStream2;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::Type;

/// The new body block.
pub(crate) fn body(
    opts: &Options,
    model: &FnModel,
    plan: &Plan,
    names: &Names,
    shape: &ValueShape,
) -> TokenStream2 {
    let asserts = asserts(opts, model, &shape.v_ty);
    let v_ty = &shape.v_ty;
    let memo_path = names.memo_path(model);
    let key_expr = key_expr(opts, model);
    let (inner_def, call_inner) = inner(model);
    let call_inner_awaited = if model.is_async {
        quote!(#call_inner.await)
    } else {
        call_inner
    };
    let call = memo_call(opts, model, plan, shape, &call_inner_awaited);
    let from_result = &shape.from_result;
    let strict = (opts.strict == Some(true)).then(|| {
        quote! {
            if let ::core::result::Result::Err(e) = __steadycache_memo.ready() {
                return ::core::result::Result::Err(::core::convert::From::from(e));
            }
        }
    });
    let tags = tags_expr(opts, &shape.v_ty, &shape.e_ty, from_result).or_else(|| {
        // An async function serves an in-process hit before it builds the call's future
        // (measured: the future's setup was about a third of an async hit).
        model
            .is_async
            .then(|| hit_first(&shape.v_ty, &shape.e_ty, from_result))
    });
    quote! {{
        #asserts
        let __steadycache_memo: &'static ::steadycache::__private::Memo<#v_ty> = #memo_path;
        #strict
        #key_expr
        #inner_def
        if let ::core::option::Option::Some(__steadycache_key) = __steadycache_key {
            #tags
            return #from_result(#call);
        }
        #call_inner_awaited
    }}
}

/// The compile-time checks, at the types they are about: the value can be kept
/// (`Clone + Send + Sync + 'static`); on a cache known at compile time to be a store
/// (`cache = "redis://…"`), the value has serde and so has each key argument (unless `key` or
/// `convert` makes the key). Elsewhere a value or an argument without serde is kept in memory
/// only (see `ValueProbe` and `KeyProbe`), refused at first use on a store.
fn asserts(opts: &Options, model: &FnModel, v_ty: &TokenStream2) -> TokenStream2 {
    let store = opts.cache.as_ref().is_some_and(|c| c.is_known_store());
    let args: Vec<TokenStream2> = if !store || opts.key.is_some() || opts.convert.is_some() {
        Vec::new()
    } else {
        model
            .key_args()
            .map(|a| {
                let i = &a.ident;
                quote_spanned!(a.ty.span()=> ::steadycache::__private::assert_key_arg(&#i);)
            })
            .collect()
    };
    let ret_ty = &model.ret_ty;
    let value = if store {
        quote_spanned!(ret_ty.span()=> ::steadycache::__private::assert_store_value::<#v_ty>();)
    } else {
        quote_spanned!(ret_ty.span()=> ::steadycache::__private::assert_value::<#v_ty>();)
    };
    quote! {
        #(#args)*
        #value
    }
}

/// The call into the `Memo` (`call_sync`, or `call_async_missed` after the hit served first), computing with `call_inner` (the
/// original body's call, awaited), or with a background refresh job (`plan.job`).
fn memo_call(
    opts: &Options,
    model: &FnModel,
    plan: &Plan,
    shape: &ValueShape,
    call_inner: &TokenStream2,
) -> TokenStream2 {
    let to_result = &shape.to_result;
    let (compute, refresh) = if plan.job {
        background_refresh(model, to_result)
    } else {
        let compute = if model.is_async {
            quote!(move || async move { #to_result(#call_inner) })
        } else {
            quote!(|| #to_result(#call_inner))
        };
        (compute, quote!(::steadycache::__private::NoRefresh))
    };
    let shape_value = shape.tokens(opts, model);
    if model.is_async {
        quote! {
            __steadycache_memo
                .call_async_missed(__steadycache_key, #shape_value, #compute, #refresh)
                .await
        }
    } else {
        quote!(__steadycache_memo.call_sync(__steadycache_key, #shape_value, #compute, #refresh))
    }
}

/// With `tags`: serve an in-process hit first (it renders nothing), then render the tags and
/// hand them to the call with its key.
fn tags_expr(
    opts: &Options,
    v_ty: &TokenStream2,
    e_ty: &TokenStream2,
    from_result: &TokenStream2,
) -> Option<TokenStream2> {
    let render = super::render_tags(&opts.tags.as_ref()?.0);
    let hit = hit_first(v_ty, e_ty, from_result);
    Some(quote! {
        #hit
        #render
        let __steadycache_key = __steadycache_key.with_tags(&__steadycache_tags);
    })
}

/// Serve a fresh in-process hit at once (`Memo::hit`, what the call itself checks first).
fn hit_first(v_ty: &TokenStream2, e_ty: &TokenStream2, from_result: &TokenStream2) -> TokenStream2 {
    quote! {
        if let ::core::option::Option::Some(v) = __steadycache_memo.hit(&__steadycache_key) {
            return #from_result(::core::result::Result::<#v_ty, #e_ty>::Ok(v));
        }
    }
}

/// `let __steadycache_key: Option<ArgsKey> = ..;`: `None` (run uncached) when an argument
/// cannot be serialized.
fn key_expr(opts: &Options, model: &FnModel) -> TokenStream2 {
    match KeySource::of(opts, model) {
        KeySource::Text(render) => quote! {
            #render
            let __steadycache_key = ::core::option::Option::Some(
                ::steadycache::__private::ArgsKey::text(&__steadycache_text),
            );
        },
        KeySource::Hashed {
            bind,
            hashed,
            local,
        } => quote! {
            #bind
            let __steadycache_key = match ::steadycache::__private::hash_args(#hashed) {
                ::core::result::Result::Ok(h) => ::core::option::Option::Some(
                    ::steadycache::__private::ArgsKey::hashed(h).in_process(#local),
                ),
                ::core::result::Result::Err(e) => {
                    __steadycache_memo.key_error(&e);
                    ::core::option::Option::None
                }
            };
        },
    }
}

/// What a call's key is made of (in the body and in the controls).
pub(crate) enum KeySource {
    /// The `key` template, rendered: binds `__steadycache_text`.
    Text(TokenStream2),
    /// What is hashed: `convert`'s value, or the key arguments (and `self`), each through a
    /// `KeyProbe` (its serde bytes, or the hash of its `Hash`), bound once by `bind`; and
    /// whether the key is meaningful in this process only (a `bool` expression, constant per
    /// function: an argument went by its `Hash`).
    Hashed {
        bind: TokenStream2,
        hashed: TokenStream2,
        local: TokenStream2,
    },
}

impl KeySource {
    pub(crate) fn of(opts: &Options, model: &FnModel) -> KeySource {
        if let Some(tpl) = &opts.key {
            return KeySource::Text(super::render_template(tpl));
        }
        match &opts.convert {
            Some(convert) => KeySource::Hashed {
                bind: TokenStream2::new(),
                hashed: quote!(&(#convert)),
                local: quote!(false),
            },
            None => {
                // Each probe spanned at its argument's type: an argument with neither serde nor
                // `Hash` is an error there.
                let probes: Vec<TokenStream2> = model
                    .key_args()
                    .map(|a| {
                        let i = &a.ident;
                        quote_spanned!(a.ty.span()=> (&&::steadycache::__private::KeyProbe(&#i)).key_arg())
                    })
                    .chain(model.key_self.then(|| {
                        quote!((&&::steadycache::__private::KeyProbe(self)).key_arg())
                    }))
                    .collect();
                let index = (0..probes.len()).map(syn::Index::from);
                KeySource::Hashed {
                    bind: quote! {
                        #[allow(unused_imports)]
                        use ::steadycache::__private::{KeyViaSerde as _, KeyViaHash as _};
                        let __steadycache_key_args = (#(#probes,)*);
                    },
                    hashed: quote!(&__steadycache_key_args),
                    local: quote! {
                        false #(|| ::steadycache::__private::KeyPiece::is_local(
                            &__steadycache_key_args.#index,
                        ))*
                    },
                }
            }
        }
    }
}

/// The uncached body as `__steadycache_inner` (a nested fn, or for a method a closure that
/// captures `self` and the arguments), and the call of it.
fn inner(model: &FnModel) -> (TokenStream2, TokenStream2) {
    let (sig, block, ret_ty) = (&model.func.sig, &model.func.block, &model.ret_ty);
    if model.is_method() {
        let def = if model.is_async {
            quote!(let __steadycache_inner = move || async move #block;)
        } else {
            quote!(let __steadycache_inner = move || -> #ret_ty #block;)
        };
        return (def, quote!(__steadycache_inner()));
    }
    let inputs = &sig.inputs;
    let generics = &sig.generics;
    let where_clause = &sig.generics.where_clause;
    let asyncness = &sig.asyncness;
    let unsafety = &sig.unsafety;
    let output = &sig.output;
    let arg_idents = model.args.iter().map(|a| &a.ident);
    // `#[rate_limit]` and `#[call_breaker]` guard the computations, not the hits.
    let name = model.name().to_string();
    let guards = model
        .func
        .attrs
        .iter()
        .filter(|a| crate::guard::is_guard(a))
        .map(|a| crate::guard::for_function(a, &name));
    (
        quote!(#(#guards)* #[allow(clippy::too_many_arguments)] #unsafety #asyncness fn __steadycache_inner #generics (#inputs) #output #where_clause #block),
        quote!(__steadycache_inner(#(#arg_idents),*)),
    )
}

/// For a background refresh (free functions only): the compute closure, and the `RefreshWith`
/// job that runs the body again on owned copies of the arguments after the call has returned.
///
/// Both closures only borrow the arguments (the refresh job is built after the compute closure,
/// so a compute closure that moved them would leave the job nothing to clone): the compute
/// closure clones the arguments taken by value when it is called, on a miss only.
fn background_refresh(model: &FnModel, to_result: &TokenStream2) -> (TokenStream2, TokenStream2) {
    let owned_name = |a: &Arg| format_ident!("__steadycache_owned_{}", a.ident);
    // `let __steadycache_owned_x = x.to_owned()` (references) or `x.clone()`.
    let owned = model.args.iter().map(|a| {
        let (i, o) = (&a.ident, owned_name(a));
        match &a.ty {
            Type::Reference(r) => {
                let inner = &r.elem;
                quote!(#[allow(non_snake_case)] let #o = <#inner as ::std::borrow::ToOwned>::to_owned(#i);)
            }
            _ => quote!(#[allow(non_snake_case)] let #o = ::core::clone::Clone::clone(&#i);),
        }
    });
    // The owned copies, borrowed back where the function takes a reference.
    let pass = model.args.iter().map(|a| {
        let o = owned_name(a);
        match &a.ty {
            Type::Reference(r) => {
                let inner = &r.elem;
                quote!(::std::borrow::Borrow::<#inner>::borrow(&#o))
            }
            _ => quote!(#o),
        }
    });
    // The foreground compute borrows the arguments, cloning those taken by value.
    let compute_name = |a: &Arg| format_ident!("__steadycache_arg_{}", a.ident);
    let compute_clones = model.args.iter().map(|a| {
        let (i, c) = (&a.ident, compute_name(a));
        match &a.ty {
            Type::Reference(_) => quote!(#[allow(non_snake_case)] let #c = #i;),
            _ => quote!(#[allow(non_snake_case)] let #c = ::core::clone::Clone::clone(&#i);),
        }
    });
    let pass_compute = model.args.iter().map(compute_name);
    let compute = if model.is_async {
        quote!(|| { #(#compute_clones)* async move { #to_result(__steadycache_inner(#(#pass_compute),*).await) } })
    } else {
        quote!(|| { #(#compute_clones)* #to_result(__steadycache_inner(#(#pass_compute),*)) })
    };
    let job = if model.is_async {
        quote!(::steadycache::__private::RefreshWith(|| { #(#owned)* async move { #to_result(__steadycache_inner(#(#pass),*).await) } }))
    } else {
        quote!(::steadycache::__private::RefreshWith(|| { #(#owned)* move || #to_result(__steadycache_inner(#(#pass),*)) }))
    };
    (compute, job)
}
