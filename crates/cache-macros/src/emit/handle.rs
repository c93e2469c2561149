//! The memoized function with its new body, and its cache handle.

use super::Names;
use crate::model::FnModel;
use proc_macro2::TokenStream as TokenStream2;
use quote::quote;

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
        // Guards (`#[rate_limit]`, `#[circuit_breaker]`) go on the inner body (`body::inner`).
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

    /// A free function's handle: the unit struct `NameCache` (`memo()`, the controls, `Deref`
    /// to the `Memo`) and `name_cache()`.
    fn handle(&self) -> TokenStream2 {
        let (names, v_ty, vis) = (self.names, self.v_ty, &self.model.func.vis);
        let (memo_static, controls) = (&self.memo_static, &self.controls);
        let (handle_ty, handle_fn) = (&names.handle_ty, &names.handle_fn);
        let docs = Docs::of(&names.name_str);
        let (doc_handle, doc_handle_fn, doc_memo) = (&docs.handle, &docs.handle_fn, &docs.memo);
        quote! {
            #[doc = #doc_handle]
            #[allow(dead_code)]
            #[derive(Clone, Copy, Debug)]
            #vis struct #handle_ty(());

            #[allow(dead_code)]
            impl #handle_ty {
                #[doc = #doc_memo]
                pub fn memo() -> &'static ::steadycache::__private::Memo<#v_ty> { #memo_static }

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
