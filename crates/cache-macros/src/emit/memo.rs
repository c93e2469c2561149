//! The function's `Memo`: its policy, version, namespace and cache, in a `static`.

use super::Names;
use crate::model::{FnModel, Kind};
use crate::options::{CacheOpt, DurationOpt, FloatLit, Options};
use crate::validate::{LockMode, Plan};
use proc_macro2::TokenStream as TokenStream2;
use quote::{format_ident, quote, ToTokens};

/// A block evaluating to the `&'static Memo<V>` of the function.
pub(crate) fn memo_static(
    opts: &Options,
    model: &FnModel,
    plan: &Plan,
    names: &Names,
    v_ty: &TokenStream2,
) -> TokenStream2 {
    let name_str = &names.name_str;
    let version = version(opts, model);
    let policy = policy(opts, plan);
    // The values' bytes: serde when the value has it, else none (in memory only), chosen by
    // autoref specialization at the concrete type (`ValueProbe`).
    let bytes = quote! {{
        #[allow(unused_imports)]
        use ::steadycache::__private::{ValueViaSerde as _, ValueOpaque as _};
        (&&::steadycache::__private::ValueProbe::<#v_ty>::new()).value_bytes()
    }};
    let mut memo_new = quote!(::steadycache::__private::Memo::<#v_ty>::new_with(::core::module_path!(), #name_str, #version, #policy, #bytes));
    if let Some(p) = &opts.key_prefix {
        memo_new = quote!(#memo_new.with_namespace(#p));
    }
    if let Some(c) = &opts.cache {
        let source = match c {
            CacheOpt::Url(s) => quote!(::steadycache::__private::cache_from_url(#s)),
            CacheOpt::Expr(e) => quote!(::steadycache::__private::into_cache(#e)),
        };
        memo_new =
            quote!(#memo_new.with_cache(::steadycache::__private::CacheSource::With(|| #source)));
    }
    if let Some(m) = &opts.max_bytes {
        memo_new = quote!(#memo_new.with_max_bytes(#m));
    }
    if let Some(tti) = &opts.tti {
        let tti = tti.tokens();
        memo_new = quote!(#memo_new.with_tti(#tti));
    }
    if opts.tags.is_some() {
        memo_new = quote!(#memo_new.with_tags());
    }
    quote! {
        static __STEADYCACHE_MEMO: ::steadycache::__private::Padded<
            ::std::sync::LazyLock<::steadycache::__private::Memo<#v_ty>>,
        > = ::steadycache::__private::Padded(::std::sync::LazyLock::new(|| #memo_new));
        &__STEADYCACHE_MEMO.0
    }
}

/// The pinned `version`, or a hash of the function's tokens and of the options that change what
/// is stored: editing the function drops its old entries.
fn version(opts: &Options, model: &FnModel) -> String {
    match &opts.version {
        Some(v) => v.value(),
        None => {
            let sig = &model.func.sig;
            let mut toks = quote!(#sig).to_string();
            toks.push_str(&model.func.block.to_token_stream().to_string());
            toks.push_str(&format!(
                "{:?}|{:?}|{:?}",
                opts.key.as_ref().map(|k| k.value()),
                // (was `cache_err`, `cache_none`: the versions of existing keys stay the same)
                opts.negative_ttl.is_some() && model.kind == Kind::Result,
                opts.negative_ttl.is_some() && model.kind == Kind::Option
            ));
            format!("{:08x}", xxhash_rust::xxh3::xxh3_64(toks.as_bytes()) as u32)
        }
    }
}

/// The `Policy` expression: `Policy::forever()` and a builder call for each option given, in
/// this order.
fn policy(opts: &Options, plan: &Plan) -> TokenStream2 {
    let duration = |d: Option<&DurationOpt>| d.map(DurationOpt::tokens);
    let count = |n: &Option<syn::LitInt>| {
        n.as_ref().map(|n| {
            let n: u32 = n.base10_parse().unwrap_or(u32::MAX);
            quote!(#n)
        })
    };
    let flag = |b: Option<bool>| b.map(|b| quote!(#b));
    let lock = match plan.lock {
        LockMode::None => quote!(::steadycache::__private::Lock::None),
        LockMode::Local => quote!(::steadycache::__private::Lock::Local),
        LockMode::Distributed => quote!(::steadycache::__private::Lock::Distributed),
    };
    let jitter = match &plan.jitter {
        Some(j) => quote!(#j),
        None => quote!(0.0),
    };
    let background = quote!(::steadycache::__private::Refresh::Background);
    let calls = [
        ("with_ttl", duration(opts.ttl.as_ref())),
        ("with_stale_after", duration(opts.stale_after.as_ref())),
        (
            "stale_while_revalidate",
            duration(opts.stale_while_revalidate.as_ref()),
        ),
        ("with_refresh", plan.background.then_some(background)),
        ("with_lock", Some(lock)),
        ("with_jitter", Some(jitter)),
        ("with_lock_ttl", duration(opts.lock_ttl.as_ref())),
        ("with_lock_wait", duration(opts.lock_wait.as_ref())),
        ("with_fail_safe", duration(opts.fail_safe.as_ref())),
        (
            "with_fail_safe_throttle",
            duration(opts.fail_safe_throttle.as_ref()),
        ),
        ("with_min_calls", count(&opts.min_calls)),
        ("with_max_hits", count(&opts.max_hits)),
        (
            "with_early_refresh",
            opts.early_refresh.as_ref().map(|FloatLit(b)| quote!(#b)),
        ),
        ("with_soft_timeout", duration(opts.soft_timeout.as_ref())),
        ("with_hard_timeout", duration(opts.hard_timeout.as_ref())),
        (
            "with_background_completion",
            flag(opts.background_completion),
        ),
        ("with_negative_ttl", duration(opts.negative_ttl.as_ref())),
        ("with_serve_stale_on_error", flag(opts.serve_stale_on_error)),
        (
            "with_entry_size_limit",
            opts.entry_size_limit.as_ref().map(|e| quote!(#e)),
        ),
    ];
    let calls = calls.into_iter().filter_map(|(method, arg)| {
        let method = format_ident!("{}", method);
        arg.map(|arg| quote!(.#method(#arg)))
    });
    quote!(::steadycache::__private::Policy::forever() #(#calls)*)
}
