//! Stage 4: the generated code.
//!
//! For `fn name(..)` the output is the function itself, its body replaced by a call into the
//! function's `Memo` (kept in a `static`), and a handle: for a free function a unit struct
//! `NameCache` (returned by `name_cache()`) derefing to the `Memo`, with the per-call controls
//! as methods (`refresh`, `invalidate`, …); for a method, the associated functions
//! `name_cache()` (the `Memo`) and the same controls beside it (`name_refresh`,
//! `name_invalidate`, …). The controls are described once, in `control.rs`. Every path is fully
//! qualified (`::steadycache::__private`, `::steadycache`, `::core`, `::std`).

mod body;
mod control;
mod handle;
mod memo;

use crate::err;
use crate::model::{FnModel, Kind};
use crate::options::Options;
use crate::validate::Plan;
use proc_macro2::TokenStream as TokenStream2;
use quote::{format_ident, quote};
use syn::ext::IdentExt;

/// The code for `model` under `opts`, checked into `plan`.
pub(crate) fn emit(opts: &Options, model: &FnModel, plan: &Plan) -> syn::Result<TokenStream2> {
    let names = Names::of(model)?;
    let shape = ValueShape::of(opts, model);
    let parts = handle::Parts {
        model,
        names: &names,
        v_ty: &shape.v_ty,
        memo_static: memo::memo_static(opts, model, plan, &names, &shape.v_ty),
        body: body::body(opts, model, plan, &names, &shape),
        controls: control::controls(opts, model, &names, &shape),
    };
    Ok(if model.is_method() {
        parts.method_items()
    } else {
        parts.free_items()
    })
}

/// The names derived from the function's.
pub(crate) struct Names {
    /// The function's name as text (as written, `r#` included).
    pub name_str: String,
    /// `NameCache`, the name of a free function's handle type (spanned at the function's name):
    /// an alias of `handle_struct`, so that two functions whose names give one `NameCache`
    /// clash on it alone (`handle::name_check`).
    pub handle_ty: syn::Ident,
    /// `__SteadycacheHandle_name`, the handle type itself: one per function name, so its
    /// `impl` blocks never clash.
    pub handle_struct: syn::Ident,
    /// `name_cache`, the handle function.
    pub handle_fn: syn::Ident,
}

impl Names {
    fn of(model: &FnModel) -> syn::Result<Names> {
        let name = model.name();
        let name_str = name.to_string();
        // `format_ident!` would panic on an invalid identifier (e.g. from `fn _1`).
        let mut handle_ty =
            syn::parse_str::<syn::Ident>(&format!("{}Cache", camel(&name.unraw().to_string())))
                .map_err(|_| {
                    err(
                        name.span(),
                        format!(
                            "#[cached] cannot name the cache handle of `{name_str}`: \
                             rename the function"
                        ),
                    )
                })?;
        handle_ty.set_span(name.span());
        Ok(Names {
            handle_fn: format_ident!("{}_cache", name),
            handle_struct: format_ident!("__SteadycacheHandle_{}", name, span = name.span()),
            handle_ty,
            name_str,
        })
    }

    /// How the body reaches the function's `Memo`.
    pub(crate) fn memo_path(&self, model: &FnModel) -> TokenStream2 {
        let (handle_fn, handle_struct) = (&self.handle_fn, &self.handle_struct);
        if model.is_method() {
            quote!(Self::#handle_fn())
        } else {
            quote!(#handle_struct::memo())
        }
    }
}

/// `snake_case` to `CamelCase`.
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

/// How a return value maps to what the `Memo` stores (`V`) and to the error it does not (`E`).
pub(crate) struct ValueShape {
    /// The stored value type.
    pub v_ty: TokenStream2,
    /// The error type that is never stored.
    pub e_ty: TokenStream2,
    /// Return value to `Result<V, E>`.
    pub to_result: TokenStream2,
    /// `Result<V, E>` back to the return value.
    pub from_result: TokenStream2,
    /// `|v: &V| -> bool`: stored for the negative ttl only (`None`, `Err`).
    pub negative: TokenStream2,
}

impl ValueShape {
    fn of(opts: &Options, model: &FnModel) -> ValueShape {
        let ret_ty = &model.ret_ty;
        let shape = |v_ty, e_ty, to_result, from_result, negative| ValueShape {
            v_ty,
            e_ty,
            to_result,
            from_result,
            negative,
        };
        match model.kind {
            Kind::Result if opts.negative_ttl.is_none() => shape(
                quote!(<#ret_ty as ::steadycache::__private::ResultParts>::Ok),
                quote!(<#ret_ty as ::steadycache::__private::ResultParts>::Err),
                quote!(::steadycache::__private::ResultParts::into_result),
                quote!(::core::convert::identity),
                quote!(|_| false),
            ),
            // Stored whole, the `None` or `Err` for the negative ttl.
            kind => shape(
                quote!(#ret_ty),
                quote!(::core::convert::Infallible),
                quote!(::core::result::Result::Ok),
                quote!(::steadycache::__private::infallible),
                match kind {
                    Kind::Result => {
                        quote!(|v| ::steadycache::__private::ResultParts::is_err_ref(v))
                    }
                    Kind::Option => quote!(|v| ::core::option::Option::is_none(v)),
                    Kind::Plain => quote!(|_| false),
                },
            ),
        }
    }

    /// The `Shape` value passed to each call: the negative test, and how an uncached error is
    /// shared with waiting callers (cloned when the error type is `Clone`).
    pub(crate) fn tokens(&self, opts: &Options, model: &FnModel) -> TokenStream2 {
        let (v_ty, e_ty, negative) = (&self.v_ty, &self.e_ty, &self.negative);
        let share = match model.kind {
            Kind::Result if opts.negative_ttl.is_none() => quote! {{
                #[allow(unused_imports)]
                use ::steadycache::__private::{ShareViaClone as _, ShareNone as _};
                (&&::steadycache::__private::ErrProbe::<#e_ty>::new()).share_fn()
            }},
            _ => quote!(::core::option::Option::None),
        };
        let none = quote!(::core::option::Option::None);
        // The ttl of each value: `ttl_fn`, or a `ttl` expression (evaluated at each store; with
        // `stale_while_revalidate` it is evaluated once, for the window's arithmetic).
        let ttl_expr = opts
            .ttl
            .as_ref()
            .and_then(|t| t.expr())
            .filter(|_| opts.stale_while_revalidate.is_none());
        let ttl_of = match (&opts.ttl_fn, ttl_expr) {
            (Some(f), _) => quote! {
                ::core::option::Option::Some(#f as fn(&#v_ty) -> ::core::time::Duration)
            },
            (None, Some(e)) => quote! {
                ::core::option::Option::Some(
                    (|_: &#v_ty| -> ::core::time::Duration { #e })
                        as fn(&#v_ty) -> ::core::time::Duration,
                )
            },
            (None, None) => none.clone(),
        };
        let store_if = match &opts.cache_if {
            Some(f) => quote!(::core::option::Option::Some(#f as fn(&#v_ty) -> bool)),
            None => none,
        };
        let on_timeout = self.on_timeout(opts);
        quote!(::steadycache::__private::Shape::<#v_ty, #e_ty> {
            is_negative: #negative,
            share_err: #share,
            ttl_of: #ttl_of,
            store_if: #store_if,
            lifetimes_of: ::core::option::Option::None,
            on_timeout: #on_timeout,
        })
    }

    /// `hard_timeout` without an old value: the timeout as the function's error (`validate`
    /// made sure the function returns a `Result`).
    fn on_timeout(&self, opts: &Options) -> TokenStream2 {
        let (v_ty, e_ty) = (&self.v_ty, &self.e_ty);
        let timeout_ty = quote!(::steadycache::__private::FactoryTimeout);
        match (&opts.hard_timeout, opts.negative_ttl.is_some()) {
            (None, _) => quote!(::core::option::Option::None),
            (Some(_), false) => quote! {
                ::core::option::Option::Some(
                    (|t: #timeout_ty| ::core::result::Result::Err(::core::convert::From::from(t)))
                        as fn(#timeout_ty) -> ::core::result::Result<#v_ty, #e_ty>,
                )
            },
            (Some(_), true) => quote! {
                ::core::option::Option::Some(
                    (|t: #timeout_ty| ::core::result::Result::Ok(
                        ::core::result::Result::Err(::core::convert::From::from(t)),
                    )) as fn(#timeout_ty) -> ::core::result::Result<#v_ty, #e_ty>,
                )
            },
        }
    }
}

/// `let __steadycache_text = …;`: the key template rendered with each placeholder's value
/// escaped through `KeyPart` (the template was checked by `validate`).
/// `let __steadycache_tags: Vec<String> = vec![..];`: the tag templates rendered from the
/// arguments (for `#[cached(tags = ..)]` calls and controls, and `#[invalidates(tags = ..)]`).
pub(crate) fn render_tags(tags: &[syn::LitStr]) -> proc_macro2::TokenStream {
    let rendered = tags.iter().map(|tpl| {
        let render = render_template(tpl);
        quote::quote!({ #render __steadycache_text })
    });
    quote::quote! {
        let __steadycache_tags: ::std::vec::Vec<::std::string::String> = ::std::vec![#(#rendered),*];
    }
}

pub(crate) fn render_template(tpl: &syn::LitStr) -> proc_macro2::TokenStream {
    let pieces = crate::validate::template_pieces(&tpl.value()).unwrap_or_default();
    let mut format = String::new();
    let mut args = Vec::new();
    for piece in pieces {
        match piece {
            crate::validate::Piece::Lit(text) => {
                format.push_str(&text.replace('{', "{{").replace('}', "}}"));
            }
            crate::validate::Piece::Hole(inner) => {
                format.push_str("{}");
                let (path, spec) = crate::validate::hole_parts(&inner);
                let one = match syn::parse_str::<syn::Expr>(path) {
                    // A field path (`self.id`, `q.page`): `format!` does not capture those.
                    Ok(expr) if path.contains('.') => {
                        let f = syn::LitStr::new(&format!("{{{spec}}}"), tpl.span());
                        quote::quote!(::std::format!(#f, #expr))
                    }
                    _ => {
                        let f = syn::LitStr::new(&format!("{{{inner}}}"), tpl.span());
                        quote::quote!(::std::format!(#f))
                    }
                };
                args.push(quote::quote!(::steadycache::__private::KeyPart(#one)));
            }
        }
    }
    let format = syn::LitStr::new(&format, tpl.span());
    quote::quote! {
        let __steadycache_text = ::std::format!(#format, #(#args),*);
    }
}

#[cfg(test)]
mod tests {
    use super::camel;

    #[test]
    fn camel_case() {
        assert_eq!(camel("exchange_rate"), "ExchangeRate");
        assert_eq!(camel("_private__fn_"), "PrivateFn");
        assert_eq!(camel("x"), "X");
    }

    fn expand(item: &str) -> Result<String, String> {
        let item = item.parse().map_err(|e| format!("{e}"))?;
        crate::expand(Default::default(), item)
            .map(|t| t.to_string())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn handle_names_of_unusual_function_names() {
        let raw = expand("fn r#type(x: u32) -> u32 { x }").unwrap_or_default();
        assert!(raw.contains("type TypeCache = __SteadycacheHandle_type"));
        assert!(raw.contains("fn type_cache"));
        // `_1` has no CamelCase form that is an identifier: an error, not a panic.
        let e = expand("fn _1(x: u32) -> u32 { x }")
            .err()
            .unwrap_or_default();
        assert!(e.contains("cannot name the cache handle"), "{e}");
    }
}
