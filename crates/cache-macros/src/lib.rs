//! The `#[cached]` attribute of steadycache.
//!
//! Thin by design: it emits calls into `steadycache::__private` (fully qualified paths only).
//! Every run-time decision (which store, fresh or stale, who computes) belongs to the engine in
//! `steadycache-api`.
//!
//! The expansion runs in four stages, one module each:
//!
//! 1. `options`: parse the attribute's arguments into `Options`;
//! 2. `model`: model the function (arguments and key arguments, receiver, return shape, sync
//!    or async), rejecting what cannot be memoized;
//! 3. `validate`: check the rules across options and against the function's shape;
//! 4. `emit`: generate the function's new body, its `Memo` static and its cache handle.
//!
//! Every invalid use is a compile error (a `syn::Error` at the offending tokens), never a panic.
#![deny(missing_docs)]

mod emit;
mod guard;
mod invalidates;
mod model;
mod options;
mod validate;

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};

/// Memoize a function, sync or async, free or a method. See `steadycache::cached` for the
/// options and examples.
#[proc_macro_attribute]
pub fn cached(attr: TokenStream, item: TokenStream) -> TokenStream {
    output(expand(attr.into(), item.into()))
}

/// Limit a function to `limit` calls per `period`, shared across processes through a cache's
/// backend. See `steadycache::rate_limit`.
#[proc_macro_attribute]
pub fn rate_limit(attr: TokenStream, item: TokenStream) -> TokenStream {
    output(guard::rate_limit(attr.into(), item.into()))
}

/// Stop calling a function that keeps failing, shared across processes through a cache's
/// backend. See `steadycache::circuit_breaker`.
#[proc_macro_attribute]
pub fn circuit_breaker(attr: TokenStream, item: TokenStream) -> TokenStream {
    output(guard::circuit_breaker(attr.into(), item.into()))
}

/// Invalidate memoized calls and tags after a mutating function returns `Ok`. See
/// `steadycache::invalidates`.
#[proc_macro_attribute]
pub fn invalidates(attr: TokenStream, item: TokenStream) -> TokenStream {
    output(invalidates::invalidates(attr.into(), item.into()))
}

/// The whole expansion: options, model, rules, code.
fn expand(attr: TokenStream2, item: TokenStream2) -> syn::Result<TokenStream2> {
    let opts = options::Options::parse(attr)?;
    let model = model::FnModel::build(item, &opts)?;
    let plan = validate::check(&opts, &model)?;
    emit::emit(&opts, &model, &plan)
}

/// The expansion, or the compile error that stopped it.
fn output(expansion: syn::Result<TokenStream2>) -> TokenStream {
    expansion.unwrap_or_else(|e| e.to_compile_error()).into()
}

/// A compile error at `span`.
fn err(span: Span, msg: impl std::fmt::Display) -> syn::Error {
    syn::Error::new(span, msg)
}
