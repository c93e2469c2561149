//! The per-call controls of a free function's handle: `refresh`, `bypass`, `call_with`,
//! `prime` and `get_cached` (cachier's `overwrite_cache`, `ignore_cache` and `max_age`,
//! cached's `prime_cache`), each with its async twin where the call does I/O. A control names
//! one call: its options reach that call only, never the memoized calls its body makes
//! (`with_call_options`; `with_options` is the scope that reaches them).

use crate::model::FnModel;
use proc_macro2::TokenStream as TokenStream2;
use quote::quote;

/// The control methods of the handle of `model` (a free function). `params` are the function's
/// parameters, `key` the code binding `__steadycache_key` (with `?` on a key error), `shape`
/// the function's `Shape` value.
pub(crate) fn control_items(
    model: &FnModel,
    v_ty: &TokenStream2,
    params: &[TokenStream2],
    key: &TokenStream2,
    shape: &TokenStream2,
) -> TokenStream2 {
    let name = model.name();
    let (gen, wh) = (
        &model.func.sig.generics,
        &model.func.sig.generics.where_clause,
    );
    let args: Vec<&syn::Ident> = model.args.iter().map(|a| &a.ident).collect();
    let ret = &model.ret_ty;
    let opts = quote!(::steadycache::CallOptions);
    let calls = if model.is_async {
        quote! {
            /// Compute now and store the result, whatever is cached (cachier's `overwrite_cache`).
            #[allow(clippy::too_many_arguments)]
            pub async fn refresh #gen(&self, #(#params),*) -> #ret #wh {
                ::steadycache::__private::with_call_options_async(#opts::refresh(), #name(#(#args),*)).await
            }

            /// Run the function without reading or writing the cache (cachier's `ignore_cache`).
            #[allow(clippy::too_many_arguments)]
            pub async fn bypass #gen(&self, #(#params),*) -> #ret #wh {
                ::steadycache::__private::with_call_options_async(#opts::bypass(), #name(#(#args),*)).await
            }

            /// Call, and say where the value came from (a hit, a stale value, computed, …).
            #[allow(clippy::too_many_arguments)]
            pub async fn call_with_origin #gen(&self, #(#params),*) -> (#ret, ::steadycache::Origin) #wh {
                ::steadycache::with_origin_async(#name(#(#args),*)).await
            }

            /// Call with these options (e.g. `CallOptions::max_age(d)`: entries older than `d`
            /// are recomputed).
            #[allow(clippy::too_many_arguments)]
            pub async fn call_with #gen(&self, __steadycache_options: #opts, #(#params),*) -> #ret #wh {
                ::steadycache::__private::with_call_options_async(__steadycache_options, #name(#(#args),*)).await
            }
        }
    } else {
        quote! {
            /// Compute now and store the result, whatever is cached (cachier's `overwrite_cache`).
            #[allow(clippy::too_many_arguments)]
            pub fn refresh #gen(&self, #(#params),*) -> #ret #wh {
                ::steadycache::__private::with_call_options(#opts::refresh(), || #name(#(#args),*))
            }

            /// Run the function without reading or writing the cache (cachier's `ignore_cache`).
            #[allow(clippy::too_many_arguments)]
            pub fn bypass #gen(&self, #(#params),*) -> #ret #wh {
                ::steadycache::__private::with_call_options(#opts::bypass(), || #name(#(#args),*))
            }

            /// Call, and say where the value came from (a hit, a stale value, computed, …).
            #[allow(clippy::too_many_arguments)]
            pub fn call_with_origin #gen(&self, #(#params),*) -> (#ret, ::steadycache::Origin) #wh {
                ::steadycache::with_origin(|| #name(#(#args),*))
            }

            /// Call with these options (e.g. `CallOptions::max_age(d)`: entries older than `d`
            /// are recomputed).
            #[allow(clippy::too_many_arguments)]
            pub fn call_with #gen(&self, __steadycache_options: #opts, #(#params),*) -> #ret #wh {
                ::steadycache::__private::with_call_options(__steadycache_options, || #name(#(#args),*))
            }
        }
    };
    quote! {
        #calls

        /// Store the value (the last argument) as the result of this call, as if the function had just returned it
        /// (cached's `prime_cache`). Whether it was stored; an argument that cannot be
        /// serialized is an error.
        #[allow(unused_variables, clippy::too_many_arguments)]
        pub fn prime #gen(&self, #(#params,)* __steadycache_value: #v_ty) -> ::steadycache::Result<bool> #wh {
            let __steadycache_memo = Self::memo();
            #key
            ::core::result::Result::Ok(__steadycache_memo.prime_key(__steadycache_key, #shape, &__steadycache_value))
        }

        /// Async twin of `prime`.
        #[allow(unused_variables, clippy::too_many_arguments)]
        pub async fn prime_async #gen(&self, #(#params,)* __steadycache_value: #v_ty) -> ::steadycache::Result<bool> #wh {
            let __steadycache_memo = Self::memo();
            #key
            ::core::result::Result::Ok(
                __steadycache_memo.prime_key_async(__steadycache_key, #shape, &__steadycache_value).await,
            )
        }

        /// The cached value of this call, fresh or stale, without computing it (`None`: not
        /// cached, expired, or an argument that cannot be serialized).
        #[allow(unused_variables, clippy::too_many_arguments)]
        pub fn get_cached #gen(&self, #(#params),*) -> ::core::option::Option<#v_ty> #wh {
            let __steadycache_memo = Self::memo();
            let __steadycache_found = (|| -> ::steadycache::Result<::core::option::Option<#v_ty>> {
                #key
                ::core::result::Result::Ok(__steadycache_memo.get_cached_key(__steadycache_key))
            })();
            __steadycache_found.ok().flatten()
        }

        /// Async twin of `get_cached`.
        #[allow(unused_variables, clippy::too_many_arguments)]
        pub async fn get_cached_async #gen(&self, #(#params),*) -> ::core::option::Option<#v_ty> #wh {
            let __steadycache_memo = Self::memo();
            let __steadycache_found: ::steadycache::Result<::core::option::Option<#v_ty>> = async {
                #key
                ::core::result::Result::Ok(__steadycache_memo.get_cached_key_async(__steadycache_key).await)
            }
            .await;
            __steadycache_found.ok().flatten()
        }
    }
}

/// The per-call controls of a method, as associated functions beside `name_invalidate`:
/// `name_refresh`, `name_bypass`, `name_call_with` (taking the method's receiver as written)
/// and `name_get_cached` (taking `&self` when the key needs it). `key` binds
/// `__steadycache_key` (with `?`), `self_param` is `&self,` or nothing.
pub(crate) fn method_controls(
    model: &FnModel,
    v_ty: &TokenStream2,
    params: &[TokenStream2],
    key: &TokenStream2,
    self_param: &TokenStream2,
) -> TokenStream2 {
    let Some(receiver) = &model.receiver else {
        return TokenStream2::new();
    };
    let name = model.name();
    let (gen, wh) = (
        &model.func.sig.generics,
        &model.func.sig.generics.where_clause,
    );
    let vis = &model.func.vis;
    let args: Vec<&syn::Ident> = model.args.iter().map(|a| &a.ident).collect();
    let ret = &model.ret_ty;
    let opts = quote!(::steadycache::CallOptions);
    let id = |suffix: &str| quote::format_ident!("{}_{}", name, suffix);
    let (refresh, bypass, call_with, get_cached) = (
        id("refresh"),
        id("bypass"),
        id("call_with"),
        id("get_cached"),
    );
    let handle_fn = quote::format_ident!("{}_cache", name);
    let calls = if model.is_async {
        quote! {
            /// Compute now and store the result, whatever is cached (cachier's `overwrite_cache`).
            #[allow(dead_code, clippy::too_many_arguments)]
            #vis async fn #refresh #gen(#receiver, #(#params),*) -> #ret #wh {
                ::steadycache::__private::with_call_options_async(#opts::refresh(), self.#name(#(#args),*)).await
            }

            /// Run the method without reading or writing the cache (cachier's `ignore_cache`).
            #[allow(dead_code, clippy::too_many_arguments)]
            #vis async fn #bypass #gen(#receiver, #(#params),*) -> #ret #wh {
                ::steadycache::__private::with_call_options_async(#opts::bypass(), self.#name(#(#args),*)).await
            }

            /// Call with these options (e.g. `CallOptions::max_age(d)`).
            #[allow(dead_code, clippy::too_many_arguments)]
            #vis async fn #call_with #gen(#receiver, __steadycache_options: #opts, #(#params),*) -> #ret #wh {
                ::steadycache::__private::with_call_options_async(__steadycache_options, self.#name(#(#args),*)).await
            }
        }
    } else {
        quote! {
            /// Compute now and store the result, whatever is cached (cachier's `overwrite_cache`).
            #[allow(dead_code, clippy::too_many_arguments)]
            #vis fn #refresh #gen(#receiver, #(#params),*) -> #ret #wh {
                ::steadycache::__private::with_call_options(#opts::refresh(), || self.#name(#(#args),*))
            }

            /// Run the method without reading or writing the cache (cachier's `ignore_cache`).
            #[allow(dead_code, clippy::too_many_arguments)]
            #vis fn #bypass #gen(#receiver, #(#params),*) -> #ret #wh {
                ::steadycache::__private::with_call_options(#opts::bypass(), || self.#name(#(#args),*))
            }

            /// Call with these options (e.g. `CallOptions::max_age(d)`).
            #[allow(dead_code, clippy::too_many_arguments)]
            #vis fn #call_with #gen(#receiver, __steadycache_options: #opts, #(#params),*) -> #ret #wh {
                ::steadycache::__private::with_call_options(__steadycache_options, || self.#name(#(#args),*))
            }
        }
    };
    quote! {
        #calls

        /// The cached value of this call, fresh or stale, without computing it.
        #[allow(dead_code, unused_variables, clippy::too_many_arguments)]
        #vis fn #get_cached #gen(#self_param #(#params),*) -> ::core::option::Option<#v_ty> #wh {
            let __steadycache_memo = Self::#handle_fn();
            let __steadycache_found = (|| -> ::steadycache::Result<::core::option::Option<#v_ty>> {
                #key
                ::core::result::Result::Ok(__steadycache_memo.get_cached_key(__steadycache_key))
            })();
            __steadycache_found.ok().flatten()
        }
    }
}
