//! The memoized function with its new body, and its cache handle.

use super::Names;
use crate::model::FnModel;
use proc_macro2::TokenStream as TokenStream2;
use quote::{format_ident, quote, quote_spanned};

/// What the output is made of.
pub(crate) struct Parts<'a> {
    pub model: &'a FnModel,
    pub names: &'a Names,
    /// The stored value type.
    pub v_ty: &'a TokenStream2,
    /// A block evaluating to the function's `&'static Memo`.
    pub memo_static: TokenStream2,
    /// The function's new body.
    pub body: TokenStream2,
    /// The per-call controls (`control::controls`).
    pub controls: TokenStream2,
}

impl Parts<'_> {
    /// A free function: the function and its handle (`handle`).
    pub(crate) fn free_items(&self) -> TokenStream2 {
        let func = &self.model.func;
        // Guards (`#[rate_limit]`, `#[call_breaker]`) go on the inner body (`body::inner`).
        let attrs = func.attrs.iter().filter(|a| !crate::guard::is_guard(a));
        let (vis, sig, body) = (&func.vis, &func.sig, &self.body);
        let handle = self.handle();
        quote! {
            #(#attrs)*
            #[allow(clippy::needless_return, unreachable_code)]
            #vis #sig #body

            #handle
        }
    }

    /// A method: the method, the associated function `name_cache()` (the `Memo`) and the
    /// per-call controls beside it (`name_refresh`, `name_invalidate`, …).
    pub(crate) fn method_items(&self) -> TokenStream2 {
        let func = &self.model.func;
        let (attrs, vis, sig, body) = (&func.attrs, &func.vis, &func.sig, &self.body);
        let (handle_fn, v_ty) = (&self.names.handle_fn, self.v_ty);
        let (memo_static, controls) = (&self.memo_static, &self.controls);
        let doc_memo = Docs::of(&self.names.name_str).memo;
        quote! {
            #(#attrs)*
            #[allow(clippy::needless_return, unreachable_code, clippy::redundant_closure_call)]
            #vis #sig #body

            #[doc = #doc_memo]
            #[allow(dead_code)]
            #vis fn #handle_fn() -> &'static ::steadycache::__private::Memo<#v_ty> { #memo_static }

            #controls
        }
    }

    /// A free function's handle: the type `__SteadycacheHandle_name` (`memo()`, the controls,
    /// `Deref` to the `Memo`), its name `NameCache` and `name_cache()`.
    fn handle(&self) -> TokenStream2 {
        let (names, v_ty, vis) = (self.names, self.v_ty, &self.model.func.vis);
        let (memo_static, controls) = (&self.memo_static, &self.controls);
        let (handle_ty, handle_fn) = (&names.handle_ty, &names.handle_fn);
        let handle = &names.handle_struct;
        let docs = Docs::of(&names.name_str);
        let (doc_handle, doc_handle_fn, doc_memo) = (&docs.handle, &docs.handle_fn, &docs.memo);
        let ty_name = handle_ty.to_string();
        let alias = quote_spanned!(handle_ty.span()=> type #handle_ty = #handle;);
        let check = name_check(self.model.name(), names);
        quote! {
            #[doc = #doc_handle]
            #[allow(dead_code, non_camel_case_types)]
            #[derive(Clone, Copy)]
            #vis struct #handle(());

            #[doc = #doc_handle]
            #vis #alias

            #[allow(dead_code)]
            impl #handle {
                #[doc = #doc_memo]
                pub fn memo() -> &'static ::steadycache::__private::Memo<#v_ty> { #memo_static }

                #controls
            }

            impl ::core::fmt::Debug for #handle {
                fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                    f.debug_tuple(#ty_name).field(&self.0).finish()
                }
            }

            impl ::core::ops::Deref for #handle {
                type Target = ::steadycache::__private::Memo<#v_ty>;
                fn deref(&self) -> &Self::Target {
                    Self::memo()
                }
            }

            #[doc = #doc_handle_fn]
            #[allow(dead_code, clippy::init_numbered_fields)]
            #vis fn #handle_fn() -> #handle_ty {
                #handle_ty { 0: () }
            }

            #check
        }
    }
}

/// Two functions whose names give one `NameCache` (`user_id` and `userId`) both define that
/// alias: rustc reports the name defined twice, at both functions. The second one's
/// `NameCache` is then the first one's handle, and this check says so in words.
fn name_check(fn_name: &syn::Ident, names: &Names) -> TokenStream2 {
    let (ty, handle, name) = (&names.handle_ty, &names.handle_struct, &names.name_str);
    let message = format!(
        "#[cached] names the cache handle of `{name}` `{ty}`, and something else in this \
         module has that name"
    );
    let label = format!("`{ty}` is not the handle of `{name}`");
    let note = format!(
        "#[cached] defines `{ty}` and `{}()` beside `{name}`, and two #[cached] functions \
         whose names differ only in case or underscores would both define one type (`user_id` \
         and `userId` both `UserIdCache`): rename one of them",
        names.handle_fn
    );
    // Named after the function: two traits of one name would add a note about their names.
    let own = format_ident!("__SteadycacheHandleOf_{}", fn_name);
    quote_spanned! {ty.span()=>
        const _: () = {
            #[diagnostic::on_unimplemented(message = #message, label = #label, note = #note)]
            #[allow(non_camel_case_types)]
            trait #own {}
            impl #own for #handle {}
            const fn __steadycache_own_handle<T: #own>() {}
            __steadycache_own_handle::<#ty>()
        };
    }
}

/// The doc comments of the handle's items.
struct Docs {
    handle: String,
    handle_fn: String,
    memo: String,
}

impl Docs {
    fn of(name: &str) -> Docs {
        Docs {
            handle: format!("The cache handle of [`{name}`]: clear, invalidate one call, stats (it derefs to its `Memo`)."),
            handle_fn: format!("The cache handle of [`{name}`]."),
            memo: format!("The engine state of [`{name}`]'s cache (clear, stats, enable)."),
        }
    }
}
