//! The function's `Memo`: its policy, version, namespace and cache, in a `static`.

use super::Names;
use crate::model::FnModel;
use crate::options::{CacheOpt, FloatLit, Options};
use crate::validate::{LockMode, Plan};
use proc_macro2::TokenStream as TokenStream2;
use quote::{quote, ToTokens};

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
    let mut memo_new = quote!(::steadycache::__private::Memo::<#v_ty>::new(::core::module_path!(), #name_str, #version, #policy));
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
                opts.cache_err.is_some(),
                opts.cache_none.is_some()
            ));
            format!("{:08x}", xxhash_rust::xxh3::xxh3_64(toks.as_bytes()) as u32)
        }
    }
}

/// The `Policy` expression.
fn policy(opts: &Options, plan: &Plan) -> TokenStream2 {
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
    if plan.background {
        policy = quote!(#policy.with_refresh(::steadycache::__private::Refresh::Background));
    }
    let lock = match plan.lock {
        LockMode::None => quote!(::steadycache::__private::Lock::None),
        LockMode::Local => quote!(::steadycache::__private::Lock::Local),
        LockMode::Distributed => quote!(::steadycache::__private::Lock::Distributed),
    };
    let jitter = match &plan.jitter {
        Some(j) => quote!(#j),
        None => quote!(0.0),
    };
    policy = quote!(#policy.with_lock(#lock).with_jitter(#jitter));
    if let Some(t) = &opts.lock_ttl {
        let t = t.tokens();
        policy = quote!(#policy.with_lock_ttl(#t));
    }
    if let Some(t) = &opts.lock_wait {
        let t = t.tokens();
        policy = quote!(#policy.with_lock_wait(#t));
    }
    if let Some(t) = &opts.fail_safe {
        let t = t.tokens();
        policy = quote!(#policy.with_fail_safe(#t));
    }
    if let Some(t) = &opts.fail_safe_throttle {
        let t = t.tokens();
        policy = quote!(#policy.with_fail_safe_throttle(#t));
    }
    if let Some(n) = &opts.min_calls {
        let n: u32 = n.base10_parse().unwrap_or(u32::MAX);
        policy = quote!(#policy.with_min_calls(#n));
    }
    if let Some(n) = &opts.max_hits {
        let n: u32 = n.base10_parse().unwrap_or(u32::MAX);
        policy = quote!(#policy.with_max_hits(#n));
    }
    if let Some(FloatLit(b)) = &opts.early_refresh {
        policy = quote!(#policy.with_early_refresh(#b));
    }
    if let Some(t) = &opts.soft_timeout {
        let t = t.tokens();
        policy = quote!(#policy.with_soft_timeout(#t));
    }
    if let Some(t) = &opts.hard_timeout {
        let t = t.tokens();
        policy = quote!(#policy.with_hard_timeout(#t));
    }
    if let Some(b) = opts.background_completion {
        policy = quote!(#policy.with_background_completion(#b));
    }
    if let Some(t) = opts.cache_none.as_ref().or(opts.cache_err.as_ref()) {
        let t = t.tokens();
        policy = quote!(#policy.with_negative_ttl(::core::option::Option::Some(#t)));
    }
    if let Some(b) = opts.serve_stale_on_error {
        policy = quote!(#policy.with_serve_stale_on_error(#b));
    }
    policy
}
