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
//!
//! `#[cached]` defines names beside the function, in the user's module (for `fn user`: the
//! handle type `UserCache` and `user_cache()`; for a method, `user_cache()` and `user_refresh`
//! and the other controls in its impl block): [`cached`] lists them, with how they can clash.
//! The per-call controls are described once, in `emit/control.rs`.
#![deny(missing_docs)]

mod emit;
mod guard;
mod invalidates;
mod model;
mod options;
mod validate;

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};

/// Memoize a function, sync or async, free or a method. Its options and examples are in the
/// crate docs of `steadycache`.
///
/// # What it defines
///
/// Beside `fn user(..)`, in the same module:
///
/// * a free function gets a handle: `user_cache()` returns it, and its type is `UserCache`
///   (the function's name in CamelCase, then `Cache`; an alias of `__SteadycacheHandle_user`,
///   defined too). The handle derefs to the function's `Memo` (`stats()`, `clear()` and
///   `clear_sync()`,
///   `set_enabled(..)`, …) and has the per-call controls below as methods;
/// * a method (`fn user(&self, ..)` in an impl block) gets associated functions beside it in
///   that block: `user_cache()` (the `Memo`) and `user_<control>` for each control
///   (`user_refresh`, `user_prime`, …).
///
/// # Per-call controls
///
/// The same set for free functions and methods. Each takes the function's arguments and names
/// that one call:
///
/// | control | what it does | sync or async |
/// |---|---|---|
/// | `refresh(args…)` | compute now and store the result, whatever is cached | as the function |
/// | `bypass(args…)` | run the function without reading or writing the cache | as the function |
/// | `call_with(opts, args…)` | call with these `CallOptions` (e.g. `max_age(d)`) | as the function |
/// | `call_with_origin(args…)` | call, and return the value with its `Origin` | as the function |
/// | `prime(args…, value)` | store `value` as the call's result, without running it | async, and `prime_sync` |
/// | `get_cached(args…)` | the cached value, fresh or stale, without computing it | async, and `get_cached_sync` |
/// | `key(args…)` | the call's key in the store | sync (no I/O) |
/// | `invalidate(args…)` | remove the call's entry | async, and `invalidate_sync` |
///
/// The rule of `Cache` and `Memo`: a control that does the store's I/O is async under its plain
/// name and blocking as `_sync` (works inside and outside tokio); a control that runs the
/// function has the function's mode.
///
/// `refresh`, `bypass` and `call_with` reach that call only: the memoized functions its body
/// calls are served as usual (`with_options` is the scope that reaches them too). On a method,
/// the controls that run it take its receiver as written; the others take `&self` when the key
/// or the tags read `self` (`key_self`, `{self.id}`), and are associated functions otherwise
/// (`Repo::load_prime(id, value)`).
///
/// # Name clashes
///
/// These names can clash with the module's other items: with a `struct UserCache` or a
/// `fn user_cache` of your own, with the items of a method's impl block (`user_key` beside a
/// cached `user`), or between two `#[cached]` functions whose names differ only in case or
/// underscores (`user_id` and `userId`, `get_user` and `get_User` give one handle type). That
/// last clash is one compile error at both functions ("the name `UserIdCache` is defined
/// multiple times"), with a second that says why ("#[cached] names the cache handle of `userId`
/// `UserIdCache`, and something else in this module has that name"): rename one of them, or
/// move it to a module of its own.
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
/// backend. See `steadycache::call_breaker`.
#[proc_macro_attribute]
pub fn call_breaker(attr: TokenStream, item: TokenStream) -> TokenStream {
    output(guard::call_breaker(attr.into(), item.into()))
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
